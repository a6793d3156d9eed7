"""Source-neutral rows for the feed sources (Mastodon, Bluesky), and the pure helpers their parsers share.

No I/O. A `FeedPost` carries both the source's own id and the key that identifies the post across
origins (`key`): the same Mastodon status seen through two servers has two ids but one `uri`, and the
store keeps it once. Users are identified per source by a stable key too (Mastodon `name@server`,
Bluesky DID). `followers` is None when the source did not say (a Bluesky profile that could not be
fetched), so a known count is never overwritten with a made-up 0.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from tagwatch import timestamps
from tagwatch.parse import TWITTER_EPOCH_MS, ParsedPage, PostRow, UserRow

NO_COUNTRY = "none"  # country_source of a post whose country neither network states
#: stored ids are X-shaped (milliseconds since X's epoch << 22): 41 bits of time reach the year 2080
MAX_ID_MS = (1 << 41) - 1


@dataclass(frozen=True)
class FeedUser:
    """An author as a feed source describes them."""

    source: str
    id: str  # Mastodon: acct made absolute (name@server); Bluesky: DID
    username: str  # Mastodon: name@server; Bluesky: handle
    name: str | None  # display name
    followers: int | None  # None when unknown
    location: str | None = None  # Mastodon: a profile field named like "Location" (plain text)
    country: str | None = None  # ISO 3166-1 alpha-2 resolved from `location`, else None


@dataclass(frozen=True)
class FeedPost:
    """A post from a feed source, in the shape the store will keep for every source."""

    source: str
    source_id: str  # the source's id: Mastodon status id on `origin`; Bluesky at:// URI
    key: str  # identity across origins: Mastodon status `uri`; Bluesky at:// URI
    origin: str  # where it was read: a Mastodon server URL or the Bluesky service URL
    url: str | None
    created_at: str  # RFC 3339, milliseconds, Z
    created_ts: int
    text: str
    lang: str | None
    author_id: str
    country: str | None
    country_source: str  # "profile" (resolved from the author's profile) or "none"
    tags: tuple[str, ...]  # tracked tags among its hashtags, always with the query's tag


@dataclass(frozen=True)
class FeedParsedPage:
    """One page as rows; `skipped` counts entries that had no usable identity or author."""

    posts: list[FeedPost]
    users: list[FeedUser]
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


def rows_of(
    entries: Any, parse_one: Callable[[dict[str, Any]], tuple[FeedPost, FeedUser] | None]
) -> FeedParsedPage:
    """Rows of every JSON object in `entries` that `parse_one` accepts; the rest count as skipped.
    An author seen on several posts is one user (the last description wins)."""
    posts: list[FeedPost] = []
    users: dict[str, FeedUser] = {}
    skipped = 0
    for raw in items(entries):
        parsed = parse_one(raw) if isinstance(raw, dict) else None
        if parsed is None:
            skipped += 1
            continue
        posts.append(parsed[0])
        users[parsed[1].id] = parsed[1]
    return FeedParsedPage(posts=posts, users=list(users.values()), skipped=skipped)


def feed_time(*candidates: Any) -> tuple[str, int] | None:
    """The first candidate that is a valid date-time, as (RFC 3339 ms Z, epoch seconds); None if none is."""
    for value in candidates:
        if not isinstance(value, str):
            continue
        try:
            moment = timestamps.parse(value)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return timestamps.rfc3339(moment, millis=True), int(moment.timestamp())
    return None


def tracked_tags(hashtags: Iterable[Any], tracked: frozenset[str], query_tag: str | None) -> tuple[str, ...]:
    """Tracked tags among `hashtags` (case-insensitive, leading '#' ignored), always with the query's."""
    found = {query_tag.lower()} if query_tag else set()
    for raw in hashtags:
        tag = str(raw or "").strip().lstrip("#").lower()
        if tag in tracked:
            found.add(tag)
    return tuple(sorted(found))


def primary_language(value: Any) -> str | None:
    """The primary subtag of a language tag, lower-cased ("pt-BR" → "pt") so sources compare; or None."""
    text = str(value or "").strip()
    return text.split("-")[0].split("_")[0].lower() or None


def count(value: Any) -> int | None:
    """A non-negative count, or None when the source did not give one."""
    if isinstance(value, bool):
        return None
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return None


def mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else empty."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else empty."""
    return value if isinstance(value, list) else []


def stored_id(created_at: str, source: str, key: str) -> int:
    """The id a feed post is stored under: its time in X's snowflake layout (so the post list, which
    pages newest first by id, orders every source's posts by time) with 22 bits of a hash of its
    identity. The store moves it up by one while another post holds it."""
    moment = timestamps.parse(created_at)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = min(max(int(moment.timestamp() * 1000) - TWITTER_EPOCH_MS, 1), MAX_ID_MS)
    return (ms << 22) | (zlib.crc32(f"{source}\0{key}".encode()) & 0x3FFFFF)


def stored_rows(page: FeedParsedPage) -> ParsedPage:
    """The page as the rows the store keeps for every source (identity: source + key)."""
    posts = [
        PostRow(
            id=stored_id(p.created_at, p.source, p.key),
            created_at=p.created_at,
            created_ts=p.created_ts,
            text=p.text,
            lang=p.lang,
            author_id=p.author_id,
            place_id=None,
            country=p.country,
            country_source=p.country_source,
            tags=p.tags,
            source=p.source,
            key=p.key,
        )
        for p in page.posts
    ]
    users = [
        UserRow(u.id, u.username, u.name, u.location, u.followers, u.country, source=u.source)
        for u in page.users
    ]
    return ParsedPage(posts=posts, users=users, places=[])
