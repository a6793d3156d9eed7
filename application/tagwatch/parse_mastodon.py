"""Pure translation of one Mastodon hashtag-timeline page (an array of Status) into feed rows.

No I/O. The payload is `{"server": <the server's URL>, "statuses": [...]}` as the Mastodon client
yields it: the server is needed to make a local account's `acct` absolute (`name` → `name@host`).
Content and profile-field values are HTML (Mastodon's sanitised subset: p, br, span, a); they become
plain text through BeautifulSoup with the standard library's parser, never through regexes. A post's
identity across servers is its ActivityPub `uri`. Country: only a profile field whose name says
"Location" (or a listed translation of it) counts, and only when the gazetteer resolves its value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup

from tagwatch.geo import resolve_country
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

SOURCE = "mastodon"
#: profile field names (case-folded, punctuation and emoji dropped) that state where someone is
LOCATION_FIELDS = frozenset(
    {
        "location", "my location", "current location", "based in", "lives in", "home", "hometown",
        "city", "country", "place", "where", "whereabouts", "loc",
        "standort", "wohnort", "ort", "heimat",  # de
        "localisation", "lieu", "ville", "pays",  # fr
        "ubicación", "ubicacion", "ciudad", "país", "pais",  # es
        "localização", "localizacao", "cidade", "local",  # pt
        "posizione", "luogo", "città", "citta",  # it
        "locatie", "woonplaats", "plaats",  # nl
        "lokalizacja", "miejsce", "miasto",  # pl
        "konum", "şehir",  # tr
        "местоположение", "город",  # ru
        "場所", "所在地", "居住地", "住んでいる所",  # ja
        "위치", "지역",  # ko
        "位置", "所在", "地点",  # zh
    }
)  # fmt: skip


def parse_page(payload: dict[str, Any], tracked: Iterable[str], query_tag: str | None) -> FeedParsedPage:
    """Turn one timeline page into rows; statuses without an id, uri or account (and boosts) are skipped."""
    server = str(payload.get("server") or "")
    tracked_set = frozenset(t.lower() for t in tracked)
    return rows_of(payload.get("statuses"), lambda raw: parse_status(raw, server, tracked_set, query_tag))


def parse_status(
    raw: dict[str, Any], server: str, tracked: frozenset[str], query_tag: str | None
) -> tuple[FeedPost, FeedUser] | None:
    """One status and its author; None when it has no id, uri or account, or is a boost."""
    status_id, uri = raw.get("id"), raw.get("uri")
    user = parse_account(raw.get("account"), server)
    if not status_id or not uri or user is None or raw.get("reblog"):
        return None
    created = feed_time(raw.get("created_at"))
    if created is None:
        return None
    tags = tracked_tags((mapping(t).get("name") for t in items(raw.get("tags"))), tracked, query_tag)
    post = FeedPost(
        source=SOURCE,
        source_id=str(status_id),
        key=str(uri),
        origin=server,
        url=str(raw.get("url") or uri),
        created_at=created[0],
        created_ts=created[1],
        text=html_text(raw.get("content")),
        lang=primary_language(raw.get("language")),
        author_id=user.id,
        country=user.country,
        country_source="profile" if user.country else NO_COUNTRY,
        tags=tags,
    )
    return post, user


def parse_account(raw: Any, server: str) -> FeedUser | None:
    """An Account as a user keyed by `name@domain` (local accounts take the server's host)."""
    account = mapping(raw)
    acct = str(account.get("acct") or account.get("username") or "").strip().lstrip("@")
    if not acct:
        return None
    username = absolute_acct(acct, server)
    location = profile_location(account.get("fields"))
    return FeedUser(
        source=SOURCE,
        id=username,
        username=username,
        name=str(account.get("display_name") or "").strip() or None,
        followers=count(account.get("followers_count")),
        location=location,
        country=resolve_country(location),
    )


def absolute_acct(acct: str, server: str) -> str:
    """`name@domain` with the domain lower-cased; a local `name` gets the server's host."""
    name, _, domain = acct.partition("@")
    domain = domain or (urlsplit(server).hostname or "")
    return f"{name}@{domain.lower()}" if domain else name


def profile_location(fields: Any) -> str | None:
    """The plain-text value of the first profile field named like "Location", unless it is a link."""
    for entry in items(fields):
        entry = mapping(entry)
        if field_name(entry.get("name")) not in LOCATION_FIELDS:
            continue
        value = html_text(entry.get("value"))
        if value and not value.lower().startswith(("http://", "https://")):
            return value
    return None


def field_name(value: Any) -> str:
    """A field name reduced to its words: case-folded, with emoji, punctuation and extra spaces dropped."""
    kept = "".join(c if c.isalnum() or c.isspace() else " " for c in str(value or "").casefold())
    return " ".join(kept.split())


def html_text(html: Any) -> str:
    """Mastodon's HTML as plain text: a line break per <br>, a blank line between paragraphs, and
    links written out in full (the "invisible" spans that shorten them on screen are kept)."""
    if not isinstance(html, str) or not html.strip():
        return ""
    soup = BeautifulSoup(html, "html.parser")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    paragraphs = soup.find_all("p")
    if not paragraphs:
        return soup.get_text().strip()
    for paragraph in paragraphs[:-1]:
        paragraph.append("\n\n")
    return soup.get_text().strip()
