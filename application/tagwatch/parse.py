"""Pure translation of one X API v2 recent-search page into rows for the store.

No I/O and no globals: everything odd in real pages (no `data`, missing or malformed `includes`,
unknown authors, mixed-case hashtags, ids as numbers) is handled here, once. A post whose author or
place is missing from `includes` is marked `country_pending` (country unknown for now): the store
resolves it from what it already knows, or when that author or place is next seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tagwatch import timestamps
from tagwatch.geo import resolve_country

TWITTER_EPOCH_MS = 1288834974657


@dataclass(frozen=True)
class UserRow:
    id: str  # unique within its source: X user id, Mastodon name@server, Bluesky DID
    username: str | None
    name: str | None
    location: str | None
    followers: int | None  # None: the source did not say (a stored count is kept)
    country: str | None = None  # resolved from `location`, for posts that waited for this author
    source: str = "x"


@dataclass(frozen=True)
class PlaceRow:
    id: str
    full_name: str | None
    country_code: str | None
    country: str | None


@dataclass(frozen=True)
class PostRow:
    id: int
    created_at: str
    created_ts: int
    text: str
    lang: str | None
    author_id: str | None
    place_id: str | None
    country: str | None
    country_source: str | None
    tags: tuple[str, ...]
    country_pending: bool = False  # its place or author was missing from includes: resolved later
    source: str = "x"
    key: str = ""  # the post's identity within its source; X's (and the sample's) is its id

    @property
    def identity(self) -> str:
        """The post's key within its source (its id when no other key was given)."""
        return self.key or str(self.id)


@dataclass(frozen=True)
class ParsedPage:
    posts: list[PostRow]
    users: list[UserRow]
    places: list[PlaceRow]
    missing_authors: int = 0  # posts whose author_id had no entry in includes.users
    missing_places: int = 0  # posts whose geo.place_id had no entry in includes.places


def parse_page(
    payload: dict[str, Any], tracked: Iterable[str], query_tag: str | None, source: str = "x"
) -> ParsedPage:
    """Turn one page into rows of `source` (x, or sample: the same shape); a post belongs to every
    tracked tag among its hashtags."""
    tracked_set = frozenset(t.lower() for t in tracked)
    includes = _mapping(payload.get("includes"))
    users = {u.id: u for u in (parse_user(raw, source) for raw in _list(includes.get("users"))) if u}
    places = {p.id: p for p in map(parse_place, _list(includes.get("places"))) if p}
    posts = []
    for raw in _list(payload.get("data")):
        post = (
            parse_post(raw, users, places, tracked_set, query_tag, source) if isinstance(raw, dict) else None
        )
        if post is not None:
            posts.append(post)
    return ParsedPage(
        posts=posts,
        users=list(users.values()),
        places=list(places.values()),
        missing_authors=sum(1 for p in posts if p.author_id and p.author_id not in users),
        missing_places=sum(1 for p in posts if p.place_id and p.place_id not in places),
    )


def _mapping(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else empty (X has been seen sending `includes: []`)."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else empty."""
    return value if isinstance(value, list) else []


def parse_user(raw: dict[str, Any], source: str = "x") -> UserRow | None:
    """A user from `includes.users`; follower count 0 when public_metrics is missing."""
    if not isinstance(raw, dict) or not raw.get("id"):
        return None
    metrics = _mapping(raw.get("public_metrics"))
    location = str(raw.get("location") or "").strip() or None
    return UserRow(
        id=str(raw["id"]),
        username=raw.get("username"),
        name=raw.get("name"),
        location=location,
        followers=_int(metrics.get("followers_count")),
        country=resolve_country(location),
        source=source,
    )


def parse_place(raw: dict[str, Any]) -> PlaceRow | None:
    """A place from `includes.places`; country_code upper-cased."""
    if not isinstance(raw, dict) or not raw.get("id"):
        return None
    code = (raw.get("country_code") or "").strip().upper() or None
    return PlaceRow(str(raw["id"]), raw.get("full_name"), code, raw.get("country"))


def parse_post(
    raw: dict[str, Any],
    users: dict[str, UserRow],
    places: dict[str, PlaceRow],
    tracked: frozenset[str],
    query_tag: str | None,
    source: str = "x",
) -> PostRow | None:
    """One post; None when it has no usable id."""
    try:
        post_id = int(raw["id"])
    except (KeyError, TypeError, ValueError):
        return None
    created_at, created_ts = post_time(raw.get("created_at"), post_id)
    author_id = str(raw["author_id"]) if raw.get("author_id") else None
    place_id = _mapping(raw.get("geo")).get("place_id") or None
    place, author = places.get(place_id or ""), users.get(author_id or "")
    pending = bool(place_id and place is None) or bool(author_id and author is None)
    country, country_source = post_country(place, author)
    if pending and country_source != "place":
        country, country_source = None, None
    else:
        pending = False
    return PostRow(
        id=post_id,
        created_at=created_at,
        created_ts=created_ts,
        text=raw.get("text") or "",
        lang=raw.get("lang") or None,
        author_id=author_id,
        place_id=place_id,
        country=country,
        country_source=country_source,
        tags=post_tags(raw, tracked, query_tag),
        country_pending=pending,
        source=source,
    )


def post_tags(raw: dict[str, Any], tracked: frozenset[str], query_tag: str | None) -> tuple[str, ...]:
    """Tracked tags among the post's hashtags (case-insensitive), always including the query's tag."""
    found = {query_tag.lower()} if query_tag else set()
    for hashtag in _list(_mapping(raw.get("entities")).get("hashtags")):
        tag = str(_mapping(hashtag).get("tag") or "").lower()
        if tag in tracked:
            found.add(tag)
    return tuple(sorted(found))


def post_country(place: PlaceRow | None, author: UserRow | None) -> tuple[str | None, str | None]:
    """Country and where it came from: the geo place first, else the author's profile location."""
    if place is not None and place.country_code:
        return place.country_code, "place"
    if author is not None and author.country:
        return author.country, "profile"
    return None, None


def post_time(created_at: Any, post_id: int) -> tuple[str, int]:
    """Normalised RFC 3339 time (milliseconds, Z) and epoch seconds; else the snowflake id's embedded time."""
    moment = None
    if isinstance(created_at, str):
        try:
            moment = timestamps.parse(created_at)
        except ValueError:
            moment = None
    if moment is None:
        moment = datetime.fromtimestamp(((post_id >> 22) + TWITTER_EPOCH_MS) / 1000, tz=UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return timestamps.rfc3339(moment, millis=True), int(moment.timestamp())


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0
