"""Types shared by every source: a fetched page and the errors a source can raise.

`Page` is what the X client (and the sample behind it) yields today; `FeedPage` is what the Mastodon
and Bluesky clients yield: the same facts (payload, requests, rate-limit remaining, partial errors)
plus an opaque cursor that says exactly where to resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Page:
    """One recent-search response, plus what the collector needs to resume exactly.

    `sent_token` is the next_token this page was asked for; `restarted` says the client dropped a
    rejected next_token or a too-old since_id, so pagination began again from the top.
    """

    payload: dict[str, Any]
    since_id: str | None
    next_token: str | None
    rate_limit_remaining: int | None = None
    requests: int = 1
    partial_errors: list[dict[str, Any]] = field(default_factory=list)
    sent_token: str | None = None
    restarted: bool = False

    @property
    def newest_id(self) -> str | None:
        """`meta.newest_id` as the source claims it (the collector trusts stored ids instead)."""
        meta = self.payload.get("meta")
        newest = meta.get("newest_id") if isinstance(meta, dict) else None
        return str(newest) if newest else None

    @property
    def result_count(self) -> int:
        """Posts on this page (what X bills for)."""
        data = self.payload.get("data")
        return len(data) if isinstance(data, list) else 0


@dataclass(frozen=True)
class FeedPage:
    """One page from a feed source (a Mastodon server, Bluesky), plus the cursor to save with its rows.

    `cursor` is opaque JSON text covering every origin of the source for this tag: store it with the
    page's rows in one transaction and pass it back to `pages()` next time; resuming from it reads
    nothing twice and skips nothing. `payload` is what the source's pure parser takes. `error` is set
    when this origin (one Mastodon server) failed for this tag: the page then has no posts and the
    cursor is unchanged, while other origins go on. `partial_errors` are notes on an otherwise good
    page (profiles that could not be fetched, a pagination that stalled or was restarted).
    """

    source: str
    origin: str
    payload: dict[str, Any]
    cursor: str | None
    result_count: int = 0
    requests: int = 0
    rate_limit_remaining: int | None = None
    partial_errors: list[dict[str, Any]] = field(default_factory=list)
    error: SourceError | None = None


class SourceError(Exception):
    """The source cannot serve this request; `kind` is a stable, loggable cause."""

    #: kinds that fail the whole run: retrying other tags would fail the same way
    FATAL_KINDS = frozenset(
        {
            "invalid_token",
            "credits_depleted",
            "usage_capped",
            "client_not_enrolled",
            "invalid_credentials",  # Bluesky refused BLUESKY_HANDLE / BLUESKY_APP_PASSWORD
            "access_refused",  # Bluesky answered 403 to an authenticated search
        }
    )
    #: kinds that end the run early but not as a failure: cursors are saved and the next run resumes
    RUN_ENDING_KINDS = frozenset({"rate_limited"})

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status

    @property
    def fatal(self) -> bool:
        """True when the error fails the run for all tags."""
        return self.kind in self.FATAL_KINDS

    @property
    def ends_run(self) -> bool:
        """True when no other tag should be tried in this run (fatal, or a rate limit over the cap)."""
        return self.fatal or self.kind in self.RUN_ENDING_KINDS


class StopRequested(Exception):
    """A stop was requested (SIGTERM/SIGINT) while the source waited; the page in flight is dropped."""
