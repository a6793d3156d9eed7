"""Pure translation of one Bluesky searchPosts page (postView[] plus the authors' profiles) into feed rows.

No I/O. The payload is `{"service": <URL>, "posts": [postView], "profiles": [profileViewDetailed]}` as
the Bluesky client yields it: search results carry only a basic author view, so follower counts come
from the profiles the client fetched with app.bsky.actor.getProfiles. A post's identity is its
`at://` URI. Tags are the record's hashtag facets (`app.bsky.richtext.facet#tag`) plus its `tags`
field; the language is the primary subtag of `langs[0]`. Bluesky publishes no location, so country
is always unknown (`none`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from tagwatch.parse_feed import (
    NO_COUNTRY,
    FeedParsedPage,
    FeedPost,
    FeedUser,
    count,
    feed_time,
    items,
    mapping,
    primary_language,
    rows_of,
    tracked_tags,
)

SOURCE = "bluesky"
TAG_FEATURE = "app.bsky.richtext.facet#tag"
WEB_URL = "https://bsky.app/profile/{actor}/post/{rkey}"


def parse_page(payload: dict[str, Any], tracked: Iterable[str], query_tag: str | None) -> FeedParsedPage:
    """Turn one search page into rows; posts without a URI or an author DID are skipped."""
    service = str(payload.get("service") or "")
    tracked_set = frozenset(t.lower() for t in tracked)
    profiles = {p["did"]: p for p in map(mapping, items(payload.get("profiles"))) if p.get("did")}
    parsed = rows_of(
        payload.get("posts"), lambda raw: parse_post(raw, service, profiles, tracked_set, query_tag)
    )
    missing = sum(1 for user in parsed.users if user.followers is None)
    notes = [f"{missing} authors without a profile (followers unknown)"] if missing else []
    return replace(parsed, notes=notes)


def parse_post(
    raw: dict[str, Any],
    service: str,
    profiles: dict[str, dict[str, Any]],
    tracked: frozenset[str],
    query_tag: str | None,
) -> tuple[FeedPost, FeedUser] | None:
    """One postView and its author; None without a URI, an author DID or any valid time."""
    uri, author = raw.get("uri"), mapping(raw.get("author"))
    did = str(author.get("did") or "")
    record = mapping(raw.get("record"))
    created = feed_time(record.get("createdAt"), raw.get("indexedAt"))
    if not uri or not did or created is None:
        return None
    user = parse_author(author, profiles.get(did))
    langs = items(record.get("langs"))
    post = FeedPost(
        source=SOURCE,
        source_id=str(uri),
        key=str(uri),
        origin=service,
        url=WEB_URL.format(actor=user.username or did, rkey=str(uri).rsplit("/", 1)[-1]),
        created_at=created[0],
        created_ts=created[1],
        text=str(record.get("text") or ""),
        lang=primary_language(langs[0]) if langs else None,
        author_id=did,
        country=None,
        country_source=NO_COUNTRY,
        tags=tracked_tags(hashtags(record), tracked, query_tag),
    )
    return post, user


def parse_author(author: dict[str, Any], profile: dict[str, Any] | None) -> FeedUser:
    """The author from the post's basic view; followers from the detailed profile when there is one."""
    detailed = profile or {}
    name = detailed.get("displayName") or author.get("displayName")
    return FeedUser(
        source=SOURCE,
        id=str(author["did"]),
        username=str(detailed.get("handle") or author.get("handle") or author["did"]),
        name=str(name or "").strip() or None,
        followers=count(detailed.get("followersCount")) if profile is not None else None,
    )


def hashtags(record: dict[str, Any]) -> Iterator[str]:
    """The record's hashtags: tag features of its facets, then its `tags` field."""
    for facet in items(record.get("facets")):
        for feature in items(mapping(facet).get("features")):
            feature = mapping(feature)
            if feature.get("$type") == TAG_FEATURE and feature.get("tag"):
                yield str(feature["tag"])
    for tag in items(record.get("tags")):
        if isinstance(tag, str):
            yield tag


def sort_at(raw: dict[str, Any]) -> float | None:
    """Bluesky's `sortAt` for a postView: createdAt, unless that is later than indexedAt (then indexedAt).

    searchPosts' `since` compares against it, so the client keeps its high-water mark in these terms.
    """
    created = feed_time(mapping(raw.get("record")).get("createdAt"))
    indexed = feed_time(raw.get("indexedAt"))
    times = [t[1] for t in (created, indexed) if t is not None]
    return float(min(times)) if times else None
