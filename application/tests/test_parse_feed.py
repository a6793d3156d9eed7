"""The pure Mastodon and Bluesky parsers on hand-written payloads: odd data is handled once, here."""

from __future__ import annotations

import pytest

from tagwatch import parse_bluesky, parse_mastodon
from tagwatch.parse_feed import feed_time, primary_language, tracked_tags
from tagwatch.parse_mastodon import absolute_acct, html_text, profile_location

SERVER = "https://mastodon.example"
TRACKED = ("devops", "sre")


def status(**extra) -> dict:
    base = {
        "id": "109",
        "uri": "https://other.example/users/ann/statuses/1",
        "url": "https://other.example/@ann/1",
        "created_at": "2026-11-18T10:00:00.500+01:00",
        "language": "en",
        "content": "<p>hi</p>",
        "reblog": None,
        "tags": [{"name": "devops"}],
        "account": {"acct": "ann@Other.Example", "display_name": "Ann", "followers_count": 3, "fields": []},
    }
    return {**base, **extra}


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>&quot;I lost&quot; it</p>", '"I lost" it'),
        ("<p>one<br>two<br/>three</p><p>four</p>", "one\ntwo\nthree\n\nfour"),
        (
            '<p><a href="https://example.com/very/long/path"><span class="invisible">https://</span>'
            '<span class="ellipsis">example.com/very</span><span class="invisible">/long/path</span></a></p>',
            "https://example.com/very/long/path",
        ),
        ('<p><span class="h-card"><a href="https://x/@b">@<span>b</span></a></span> ok</p>', "@b ok"),
        ("plain &amp; simple", "plain & simple"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("", ""),
        (None, ""),
    ],
    ids=[
        "entities",
        "breaks-and-paragraphs",
        "shortened-link",
        "mention",
        "no-paragraph",
        "broken",
        "empty",
        "none",
    ],
)
def test_mastodon_html_becomes_plain_text(html, text):
    assert html_text(html) == text


@pytest.mark.parametrize(
    ("fields", "location", "country"),
    [
        ([{"name": "Location", "value": "Lisboa, Portugal"}], "Lisboa, Portugal", "PT"),
        ([{"name": "📍 location:", "value": "<p>São Paulo</p>"}], "São Paulo", "BR"),
        ([{"name": "Standort", "value": "München"}], "München", "DE"),
        ([{"name": "Website", "value": "Berlin"}], None, None),  # only location-like names count
        ([{"name": "Location", "value": '<a href="https://x.example">https://x.example</a>'}], None, None),
        ([{"name": "Location", "value": "the internet"}], "the internet", None),  # stated, not resolved
        ("not a list", None, None),
    ],
)
def test_mastodon_country_only_from_a_location_field_the_gazetteer_resolves(fields, location, country):
    assert profile_location(fields) == location
    user = parse_mastodon.parse_account({"acct": "a", "fields": fields}, SERVER)
    assert (user.location, user.country) == (location, country)


def test_mastodon_acct_is_made_absolute_with_a_lower_case_domain():
    assert absolute_acct("ann", SERVER) == "ann@mastodon.example"
    assert absolute_acct("Ann@Other.Example", SERVER) == "Ann@other.example"


def test_mastodon_page_skips_boosts_and_statuses_without_identity():
    payload = {
        "server": SERVER,
        "statuses": [
            status(),
            status(id="110", reblog={"id": "1"}),
            status(id=None),
            status(id="111", uri=None),
            status(id="112", account=None),
            status(id="113", created_at="yesterday"),
            "not an object",
        ],
    }
    parsed = parse_mastodon.parse_page(payload, TRACKED, "devops")
    assert [p.source_id for p in parsed.posts] == ["109"] and parsed.skipped == 6
    post = parsed.posts[0]
    assert (post.created_at, post.created_ts, post.author_id) == (
        "2026-11-18T09:00:00.500Z",
        1_794_992_400,
        "ann@other.example",
    )
    assert (post.source, post.origin, post.key) == (
        "mastodon",
        SERVER,
        "https://other.example/users/ann/statuses/1",
    )


def test_mastodon_tags_keep_only_tracked_ones_plus_the_query_tag():
    payload = {"server": SERVER, "statuses": [status(tags=[{"name": "SRE"}, {"name": "cats"}, "bad"])]}
    assert parse_mastodon.parse_page(payload, TRACKED, "devops").posts[0].tags == ("devops", "sre")


def test_mastodon_page_with_nothing_usable_is_empty():
    assert parse_mastodon.parse_page({"statuses": {"not": "a list"}}, TRACKED, "devops").posts == []


def view(**record) -> dict:
    return {
        "uri": "at://did:plc:a/app.bsky.feed.post/3k1",
        "author": {"did": "did:plc:a", "handle": "a.bsky.social", "displayName": " A "},
        "record": {"text": "t", "createdAt": "2026-11-18T10:00:00Z", **record},
        "indexedAt": "2026-11-18T10:00:02Z",
    }


def test_bluesky_tags_come_from_tag_facets_and_the_tags_field():
    record = {
        "facets": [
            {"features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "DevOps"}]},
            {"features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://sre.example"}]},
            {"features": "broken"},
        ],
        "tags": ["SRE", 7],
    }
    assert list(parse_bluesky.hashtags(record)) == ["DevOps", "SRE"]
    post = parse_bluesky.parse_page({"posts": [view(**record)]}, TRACKED, None).posts[0]
    assert post.tags == ("devops", "sre")


def test_bluesky_author_without_a_profile_has_unknown_followers():
    parsed = parse_bluesky.parse_page({"posts": [view()], "profiles": "broken"}, TRACKED, "devops")
    assert [(u.username, u.name, u.followers) for u in parsed.users] == [("a.bsky.social", "A", None)]
    assert parsed.notes == ["1 authors without a profile (followers unknown)"]


def test_bluesky_skips_posts_without_uri_or_author_and_falls_back_to_indexed_at():
    posts = [view(createdAt="not a date"), {**view(), "uri": None}, {**view(), "author": {}}, []]
    parsed = parse_bluesky.parse_page({"posts": posts}, TRACKED, "devops")
    assert [p.created_at for p in parsed.posts] == ["2026-11-18T10:00:02.000Z"] and parsed.skipped == 3


def test_bluesky_sort_at_is_created_at_unless_that_is_after_indexed_at():
    assert parse_bluesky.sort_at(view()) == 1_794_996_000.0
    assert parse_bluesky.sort_at(view(createdAt="2030-01-01T00:00:00Z")) == 1_794_996_002.0
    assert parse_bluesky.sort_at({"record": {}}) is None


@pytest.mark.parametrize(
    ("value", "lang"), [("pt-BR", "pt"), ("EN", "en"), ("zh_Hant", "zh"), ("", None), (None, None)]
)
def test_primary_language(value, lang):
    assert primary_language(value) == lang


def test_feed_helpers():
    assert feed_time(None, "bad", "2026-11-18T10:00:00") == ("2026-11-18T10:00:00.000Z", 1_794_996_000)
    assert feed_time("nope") is None
    assert tracked_tags(["#DevOps", None], frozenset(TRACKED), None) == ("devops",)
