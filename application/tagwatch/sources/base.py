"""Types shared by every source: a fetched page and the errors a source can raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Page:
    """One recent-search response, plus what the collector needs to resume exactly."""

    payload: dict[str, Any]
    since_id: str | None
    next_token: str | None
    rate_limit_remaining: int | None = None
    requests: int = 1
    partial_errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def newest_id(self) -> str | None:
        """`meta.newest_id` of this page; on the first page it becomes the tag's next since_id."""
        meta = self.payload.get("meta") or {}
        newest = meta.get("newest_id")
        return str(newest) if newest else None

    @property
    def result_count(self) -> int:
        """Posts on this page (what X bills for)."""
        return len(self.payload.get("data") or [])


class SourceError(Exception):
    """The source cannot serve this request; `kind` is a stable, loggable cause."""

    #: kinds that end the whole run: retrying other tags would fail the same way
    FATAL_KINDS = frozenset({"invalid_token", "credits_depleted", "usage_capped", "client_not_enrolled"})

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status

    @property
    def fatal(self) -> bool:
        """True when the error ends the run for all tags."""
        return self.kind in self.FATAL_KINDS
