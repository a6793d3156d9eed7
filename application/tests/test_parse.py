"""The pure page parser against JSON page fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagwatch.config import DEFAULT_TAGS
from tagwatch.parse import parse_page, post_time

PAGES = Path(__file__).parent / "pages"


def load(name: str) -> dict:
    return json.loads((PAGES / f"{name}.json").read_text())


def test_parse_page_multi_tag_post_belongs_to_every_tracked_tag():
    page = parse_page(load("multi_tag"), DEFAULT_TAGS, "devops")
    first = page.posts[0]
    assert first.id == 1860000000000000003
    assert first.tags == ("devops", "sre")  # kubernetes is not tracked; case folded
    assert [p.tags for p in page.posts[1:]] == [("devops",), ("devops",)]


def test_parse_page_country_from_place_then_profile_then_none():
    page = parse_page(load("multi_tag"), DEFAULT_TAGS, "devops")
    assert [(p.country, p.country_source) for p in page.posts] == [
        ("US", "place"),
        ("DE", "profile"),
        (None, None),
    ]


def test_parse_page_users_and_places():
    page = parse_page(load("multi_tag"), DEFAULT_TAGS, "devops")
    assert {(u.id, u.username, u.followers) for u in page.users} == {
        ("100", "alice", 507902),
        ("200", "bernd", 1200),
        ("300", "zed", 7),
    }
    assert [(p.id, p.country_code) for p in page.places] == [("01a9a39529b27f36", "US")]


def test_parse_page_keeps_und_language():
    page = parse_page(load("multi_tag"), DEFAULT_TAGS, "devops")
    assert [p.lang for p in page.posts] == ["en", "de", "und"]


def test_parse_page_missing_includes_keeps_posts():
    page = parse_page(load("missing_includes"), DEFAULT_TAGS, "sre")
    assert [p.id for p in page.posts] == [1860000000000000010, 1860000000000000009]
    assert page.posts[0].author_id == "999"
    assert page.posts[0].country is None
    assert page.posts[1].author_id is None
    assert page.posts[1].tags == ("sre",)  # no entities: it still belongs to the tag it was found by
    assert page.users == [] and page.places == []


def test_parse_page_without_data_is_empty():
    page = parse_page(load("no_data"), DEFAULT_TAGS, "sre")
    assert page.posts == [] and page.users == [] and page.places == []


def test_parse_page_with_an_unknown_place_leaves_the_country_to_the_store():
    page = parse_page(load("partial_errors"), DEFAULT_TAGS, "observability")
    post = page.posts[0]
    assert post.tags == ("observability",)
    # the place may already be stored from an earlier page: the store decides (place, else profile PT)
    assert (post.country, post.country_source, post.country_pending) == (None, None, True)
    assert (page.missing_places, page.missing_authors) == (1, 0)
    assert page.users[0].country == "PT"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-18T10:30:00.000Z", "2026-11-18T10:30:00.000Z"),
        ("2026-11-18T12:30:00+02:00", "2026-11-18T10:30:00.000Z"),
        ("garbage", "2024-11-22T16:38:51.785Z"),
        (None, "2024-11-22T16:38:51.785Z"),
    ],
)
def test_post_time_normalises_or_falls_back_to_snowflake(raw, expected):
    assert post_time(raw, 1860000000000000003)[0] == expected


def test_parse_page_skips_posts_without_id():
    payload = {"data": [{"text": "no id"}, {"id": "x1"}, {"id": "5", "text": "ok"}]}
    assert [p.id for p in parse_page(payload, DEFAULT_TAGS, "sre").posts] == [5]


@pytest.mark.parametrize(
    "includes",
    [[], None, "oops", {"users": {"not": "a list"}, "places": [None, 7]}],
    ids=["list", "null", "string", "wrong-shapes"],
)
def test_parse_page_tolerates_malformed_includes_and_marks_the_posts_pending(includes):
    payload = {
        "data": [
            {"id": "9", "text": "#sre", "author_id": "u1", "geo": [], "entities": {"hashtags": "x"}},
            "junk",
        ],
        "includes": includes,
    }
    page = parse_page(payload, DEFAULT_TAGS, "sre")
    assert [(p.id, p.tags, p.country, p.country_pending) for p in page.posts] == [(9, ("sre",), None, True)]
    assert (page.missing_authors, page.missing_places, page.users, page.places) == (1, 0, [], [])


def test_parse_page_country_of_a_post_with_a_present_place_needs_no_author():
    payload = {
        "data": [{"id": "3", "text": "#sre", "author_id": "ghost", "geo": {"place_id": "p"}}],
        "includes": {"places": [{"id": "p", "country_code": "fr"}]},
    }
    post = parse_page(payload, DEFAULT_TAGS, "sre").posts[0]
    assert (post.country, post.country_source, post.country_pending) == ("FR", "place", False)
