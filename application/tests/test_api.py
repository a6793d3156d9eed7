"""The REST API through Flask's test client: every endpoint, filter and error, on tests/dataset.py."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import dataset
import pytest
from backends import settings_on

from tagwatch import aggregates, store
from tagwatch.app import create_app
from tagwatch.config import SOURCE_NAMES, Settings
from tagwatch.parse import parse_page

PROBLEM_BASE = "https://github.com/tagwatch/tagwatch/blob/main/docs/api.md#"
TAG_ENDPOINTS = [
    "/api/v1/users/top",
    "/api/v1/posts/by-hour",
    "/api/v1/posts/by-hour-of-day",
    "/api/v1/tags/breakdown",
    "/api/v1/posts",
]
BEARER = {"Authorization": "Bearer test-admin-token"}


@pytest.fixture
def run_id(conn) -> int:
    """The dataset stored; the id of its run."""
    return dataset.seed(conn)


def get(client, url: str, status: int = 200) -> dict:
    """GET a JSON answer, asserting its status."""
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def data(client, url: str) -> list | dict:
    """The `data` of a 200 envelope."""
    return get(client, url)["data"]


def assert_problem(response, status: int, kind: str, param: str | None = None) -> dict:
    """An application/problem+json answer of a given kind; for 400s, naming `param`."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == PROBLEM_BASE + kind
    assert body["status"] == status
    assert body["title"] and body["detail"]
    if param is not None:
        assert [p["name"] for p in body["invalid_params"]] == [param]
        assert body["detail"].startswith(f"{param}: ")
    return body


def hours(series: list[dict]) -> dict[str, int]:
    """Non-zero hours of a series."""
    return {point["hour"]: point["count"] for point in series if point["count"]}


# users/top


def test_top_users_by_latest_followers_ties_by_username(client, run_id):
    assert data(client, "/api/v1/users/top") == [
        {
            "username": "dave",
            "name": "Dave",
            "source": "sample",
            "followers": 1000,
            "posts": 1,
            "tags": ["devops", "observability"],
        },
        {
            "username": "bob",
            "name": "Bob",
            "source": "sample",
            "followers": 900,
            "posts": 1,
            "tags": ["devops"],
        },
        {
            "username": "carol",
            "name": "Carol",
            "source": "sample",
            "followers": 900,
            "posts": 2,
            "tags": ["devops", "sre"],
        },
        {
            "username": "alice",
            "name": "Alice",
            "source": "sample",
            "followers": 500,
            "posts": 2,
            "tags": ["devops", "sre"],
        },
    ]


def test_top_users_tag_counts_posts_for_that_tag(client, run_id):
    body = get(client, "/api/v1/users/top?tag=sre&limit=1")
    assert [(u["username"], u["posts"]) for u in body["data"]] == [("carol", 1)]
    assert body["meta"]["tag"] == "sre" and body["meta"]["limit"] == 1
    assert [u["username"] for u in data(client, "/api/v1/users/top?tag=sre")] == ["carol", "alice"]


def test_top_users_limit_and_meta(client, run_id):
    body = get(client, "/api/v1/users/top?limit=2")
    assert [u["username"] for u in body["data"]] == ["dave", "bob"]
    assert set(body["meta"]) == {"tag", "source", "limit", "generated_at"}
    assert body["meta"]["tag"] is None and body["meta"]["source"] is None


@pytest.mark.parametrize("given", ["devops", "#devops", "DevOps", "#DEVOPS"])
def test_tag_accepts_hash_and_any_case(client, run_id, given):
    response = client.get("/api/v1/users/top", query_string={"tag": given})
    assert response.status_code == 200
    body = response.get_json()
    assert body["meta"]["tag"] == "devops"
    assert [u["username"] for u in body["data"]] == ["dave", "bob", "carol", "alice"]


def test_empty_database_answers_empty_summaries(client):
    assert data(client, "/api/v1/users/top") == []
    assert data(client, "/api/v1/posts/by-hour") == []
    assert data(client, "/api/v1/posts/by-hour-of-day") == [{"hour": h, "count": 0} for h in range(24)]
    assert data(client, "/api/v1/tags/breakdown") == []
    assert data(client, "/api/v1/posts") == []
    assert data(client, "/api/v1/runs") == []


# posts/by-hour and by-hour-of-day


def test_by_hour_utc_includes_zero_hours_and_counts_each_post_once(client, run_id):
    series = data(client, "/api/v1/posts/by-hour")
    assert len(series) == 18  # 09:00 on the 18th to 02:00 on the 19th
    assert series[0] == {"hour": "2026-11-18T09:00:00Z", "count": 2}
    assert series[-1] == {"hour": "2026-11-19T02:00:00Z", "count": 1}
    assert hours(series) == {
        "2026-11-18T09:00:00Z": 2,
        "2026-11-18T11:00:00Z": 2,
        "2026-11-18T14:00:00Z": 1,
        "2026-11-19T02:00:00Z": 1,
    }
    assert sum(p["count"] for p in series) == 6  # post 101 has two tracked tags, counted once


def test_by_hour_tag(client, run_id):
    assert hours(data(client, "/api/v1/posts/by-hour?tag=SRE")) == {
        "2026-11-18T09:00:00Z": 1,
        "2026-11-18T11:00:00Z": 1,
        "2026-11-19T02:00:00Z": 1,
    }


def test_by_hour_half_hour_zone(client, run_id):
    series = data(client, "/api/v1/posts/by-hour?tz=Asia/Kolkata")
    assert len(series) == 18
    assert hours(series) == {
        "2026-11-18T14:00:00+05:30": 1,
        "2026-11-18T15:00:00+05:30": 1,
        "2026-11-18T16:00:00+05:30": 2,
        "2026-11-18T20:00:00+05:30": 1,
        "2026-11-19T07:00:00+05:30": 1,
    }


def test_by_hour_since_until_bound_the_series(client, run_id):
    body = get(
        client, "/api/v1/posts/by-hour?since=2026-11-18T10:00:00Z&until=2026-11-18T15:00:00Z&tag=devops"
    )
    assert body["data"] == [
        {"hour": "2026-11-18T10:00:00Z", "count": 0},
        {"hour": "2026-11-18T11:00:00Z", "count": 1},
        {"hour": "2026-11-18T12:00:00Z", "count": 0},
        {"hour": "2026-11-18T13:00:00Z", "count": 0},
        {"hour": "2026-11-18T14:00:00Z", "count": 1},
    ]
    assert body["meta"] == {
        "tag": "devops",
        "source": None,
        "tz": "UTC",
        "since": "2026-11-18T10:00:00Z",
        "until": "2026-11-18T15:00:00Z",
        "generated_at": body["meta"]["generated_at"],
    }


def test_by_hour_naive_bounds_are_read_in_tz(client, run_id):
    url = "/api/v1/posts/by-hour?since=2026-11-18T15:00&until=2026-11-18T17:00&tz=Asia/Kolkata"
    assert data(client, url) == [
        {"hour": "2026-11-18T15:00:00+05:30", "count": 1},
        {"hour": "2026-11-18T16:00:00+05:30", "count": 2},
    ]


def test_by_hour_bounds_beyond_the_data_give_zero_hours(client, run_id):
    series = data(client, "/api/v1/posts/by-hour?since=2026-01-01&until=2026-01-02")
    assert len(series) == 24 and not hours(series)
    assert data(client, "/api/v1/posts/by-hour?since=2027-01-01") == []


def test_by_hour_one_bound_is_capped_at_366_days(client, run_id):
    series = data(client, "/api/v1/posts/by-hour?since=2006-01-01")
    assert len(series) == 366 * 24
    assert series[0]["hour"] == "2006-01-01T00:00:00Z"


def test_by_hour_of_day(client, run_id):
    utc = data(client, "/api/v1/posts/by-hour-of-day")
    assert [p["hour"] for p in utc] == list(range(24))
    assert {p["hour"]: p["count"] for p in utc if p["count"]} == {2: 1, 9: 2, 11: 2, 14: 1}
    body = get(client, "/api/v1/posts/by-hour-of-day?tz=Asia/Kolkata&tag=%23devops")
    assert {p["hour"]: p["count"] for p in body["data"] if p["count"]} == {14: 1, 15: 1, 16: 1, 20: 1}
    assert body["meta"]["tz"] == "Asia/Kolkata" and body["meta"]["tag"] == "devops"


@pytest.mark.parametrize(
    ("day", "until", "rows", "one_am"),
    [
        # fall back: 01:00 happens twice, at -04:00 then at -05:00
        ("2026-11-01", "2026-11-02", 25, ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"]),
        # spring forward: 02:00 never happens
        ("2026-03-08", "2026-03-09", 23, ["2026-03-08T01:00:00-05:00"]),
    ],
)
def test_by_hour_across_a_dst_change(client, conn, day, until, rows, one_am):
    first = datetime.fromisoformat(f"{day}T00:30:00Z")
    times = [(first + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S.000Z") for h in range(48)]
    page = {"data": [dataset.post(1000 + h, t, ["devops"], "u1", "en") for h, t in enumerate(times)]}
    with store.transaction(conn):
        store.write_rows(conn, parse_page(page, ("devops",), None))
    series = data(client, f"/api/v1/posts/by-hour?tz=America/New_York&since={day}&until={until}")
    assert len(series) == rows and len({p["hour"] for p in series}) == rows
    assert [p["count"] for p in series] == [1] * rows  # one post in every real hour
    assert series[0]["hour"][:19] == f"{day}T00:00:00" and series[-1]["hour"][:19] == f"{day}T23:00:00"
    assert [p["hour"] for p in series if p["hour"][11:13] == "01"] == one_am
    assert [p["hour"][11:13] for p in series].count("02") == (rows == 25)


# tags/breakdown and tags


def test_breakdown_by_lang_and_country(client, run_id):
    body = get(client, "/api/v1/tags/breakdown")
    assert body["data"] == [
        {"tag": "devops", "lang": "en", "country": None, "count": 1},
        {"tag": "devops", "lang": "en", "country": "DE", "count": 1},
        {"tag": "devops", "lang": "en", "country": "US", "count": 1},
        {"tag": "devops", "lang": "pt", "country": "BR", "count": 1},
        {"tag": "observability", "lang": "en", "country": "US", "count": 1},
        {"tag": "sre", "lang": "de", "country": "DE", "count": 1},
        {"tag": "sre", "lang": "en", "country": "DE", "count": 1},
        {"tag": "sre", "lang": "pt", "country": "BR", "count": 1},
    ]
    assert body["meta"]["by"] == ["lang", "country"]
    assert body["meta"]["totals"] == {
        "openbanking": 0,
        "remediation": 0,
        "devops": 4,
        "sre": 3,
        "microservices": 0,
        "observability": 1,
        "oauth": 0,
        "metrics": 0,
        "logmonitoring": 0,
        "opentracing": 0,
    }


def test_breakdown_by_lang_collapses_country(client, run_id):
    assert data(client, "/api/v1/tags/breakdown?by=lang") == [
        {"tag": "devops", "lang": "en", "count": 3},
        {"tag": "devops", "lang": "pt", "count": 1},
        {"tag": "observability", "lang": "en", "count": 1},
        {"tag": "sre", "lang": "de", "count": 1},
        {"tag": "sre", "lang": "en", "count": 1},
        {"tag": "sre", "lang": "pt", "count": 1},
    ]


def test_breakdown_by_country_collapses_lang_with_null_country(client, run_id):
    assert data(client, "/api/v1/tags/breakdown?by=country") == [
        {"tag": "devops", "country": None, "count": 1},
        {"tag": "devops", "country": "BR", "count": 1},
        {"tag": "devops", "country": "DE", "count": 1},
        {"tag": "devops", "country": "US", "count": 1},
        {"tag": "observability", "country": "US", "count": 1},
        {"tag": "sre", "country": "DE", "count": 2},
        {"tag": "sre", "country": "BR", "count": 1},
    ]


def test_breakdown_tag_and_reordered_by(client, run_id):
    body = get(client, "/api/v1/tags/breakdown?tag=sre&by=country,LANG")
    assert body["meta"]["by"] == ["lang", "country"] and body["meta"]["totals"] == {"sre": 3}
    assert [row["tag"] for row in body["data"]] == ["sre"] * 3


def test_tags_overview(client, run_id):
    body = get(client, "/api/v1/tags")
    overview = {row["tag"]: row for row in body["data"]}
    assert list(overview) == list(Settings().tags)
    assert (body["meta"]["source"], body["meta"]["sources"]) == (None, ["sample"])
    devops, sre = overview["devops"], overview["sre"]
    assert (devops["posts"], devops["newest_post_at"]) == (4, "2026-11-18T14:30:00Z")
    assert (devops["last_run"]["id"], devops["last_run"]["status"]) == (run_id, "success")
    assert (sre["posts"], sre["newest_post_at"], sre["last_run"]["status"]) == (
        3,
        "2026-11-19T02:00:00Z",
        "failed",
    )
    observability = {"posts": 1, "newest_post_at": "2026-11-18T14:30:00Z", "last_run": None}
    assert overview["observability"] == {
        "tag": "observability",
        **observability,
        "sources": [{"source": "sample", **observability}],
    }
    nothing = {"posts": 0, "newest_post_at": None, "last_run": None}
    assert overview["oauth"] == {"tag": "oauth", **nothing, "sources": [{"source": "sample", **nothing}]}
    assert devops["sources"] == [{"source": "sample", **{k: devops[k] for k in nothing}}]


# posts


def test_posts_newest_first_with_every_field(client, run_id):
    posts = data(client, "/api/v1/posts")
    assert [p["id"] for p in posts] == ["106", "105", "104", "103", "102", "101"]
    assert posts[1] == {
        "id": "105",
        "source": "sample",
        "source_key": "105",
        "created_at": "2026-11-18T14:30:00.000Z",
        "text": "hello #devops #Observability",
        "lang": "en",
        "country": "US",
        "country_source": "place",
        "author": {"username": "dave", "followers": 1000},
        "tags": ["devops", "observability"],
    }
    assert posts[4]["country"] is None and posts[4]["country_source"] is None
    assert posts[0]["tags"] == ["sre"]  # untracked hashtags are not tags


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("tag=sre", ["106", "103", "101"]),
        ("tag=%23Observability", ["105"]),
        ("lang=pt", ["104", "103"]),
        ("lang=EN", ["105", "102", "101"]),
        ("country=de", ["106", "101"]),
        ("username=%40Carol", ["104", "103"]),
        ("tag=devops&lang=en&country=US", ["105"]),
        ("username=nobody", []),
    ],
)
def test_posts_filters(client, run_id, query, ids):
    assert [p["id"] for p in data(client, f"/api/v1/posts?{query}")] == ids


def test_posts_meta_echoes_the_applied_filters(client, run_id):
    meta = get(client, "/api/v1/posts?lang=EN&country=us&username=%40Dave&tag=%23DevOps")["meta"]
    assert {k: meta[k] for k in ("tag", "lang", "country", "username")} == {
        "tag": "devops",
        "lang": "en",
        "country": "US",
        "username": "@Dave",
    }


@pytest.mark.parametrize("query", ["", "tag=devops&"])
def test_posts_cursor_walks_every_post_exactly_once(client, run_id, query):
    seen, cursor, pages = [], None, 0
    while True:
        body = get(client, f"/api/v1/posts?{query}limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [p["id"] for p in body["data"]]
        pages += 1
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    expected = data(client, f"/api/v1/posts?{query}limit=100")
    assert seen == [p["id"] for p in expected] and len(set(seen)) == len(seen)
    assert pages == -(-len(seen) // 2)


# runs and collect


def test_runs_list_and_one_run(client, run_id):
    runs = data(client, "/api/v1/runs?limit=1")
    run = data(client, f"/api/v1/runs/{run_id}")
    assert runs == [run]
    assert {k: run[k] for k in ("id", "status", "source", "trigger", "error", "posts_read", "posts_new")} == {
        "id": run_id,
        "status": "failed",
        "source": "sample",
        "trigger": "schedule",
        "error": "sre: source_unavailable",
        "posts_read": 7,
        "posts_new": 6,
    }
    assert run["sources"] == [
        {
            "source": "sample",
            "status": "failed",
            "error": "sre: source_unavailable",
            "requests": 2,
            "posts_read": 7,
            "posts_new": 6,
        }
    ]
    assert run["tags"] == [
        {
            "source": "sample",
            "tag": "devops",
            "status": "success",
            "requests": 1,
            "posts_read": 4,
            "posts_new": 4,
            "error": None,
        },
        {
            "source": "sample",
            "tag": "sre",
            "status": "failed",
            "requests": 1,
            "posts_read": 3,
            "posts_new": 2,
            "error": "source_unavailable",
        },
    ]
    assert run["started_at"].endswith("Z") and run["finished_at"].endswith("Z")


@pytest.mark.parametrize("run", ["999", "0", "99999999999999999999999"])
def test_unknown_run_is_404(client, run_id, run):
    assert_problem(client.get(f"/api/v1/runs/{run}"), 404, "not-found")


def test_collect_needs_a_bearer_token(client):
    response = client.post("/api/v1/collect")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(client.post("/api/v1/collect", headers={"Authorization": "Basic x"}), 401, "unauthorized")


def test_collect_rejects_a_wrong_token(client):
    assert_problem(client.post("/api/v1/collect", headers={"Authorization": "Bearer nope"}), 403, "forbidden")


def test_collect_disabled_without_admin_token(db_path):
    client = create_app(settings_on(db_path)).test_client()
    assert_problem(client.post("/api/v1/collect", headers=BEARER), 503, "admin-disabled")


def test_collect_conflicts_with_a_running_run(client, conn):
    running = store.begin_run(conn, source="sample", trigger="schedule", tags=("devops",), holder="other")
    response = client.post("/api/v1/collect", headers=BEARER)
    body = assert_problem(response, 409, "conflict")
    assert body["run_id"] == running.run_id
    assert response.headers["Location"] == f"/api/v1/runs/{running.run_id}"


# bad input: 400 naming the parameter


@pytest.mark.parametrize("endpoint", TAG_ENDPOINTS)
@pytest.mark.parametrize("value", ["nope", "devops2", "%23", "%23%23", "dev%00ops"])
def test_unknown_tag_is_400(client, endpoint, value):
    assert_problem(client.get(f"{endpoint}?tag={value}"), 400, "invalid-parameter", "tag")


@pytest.mark.parametrize("endpoint", ["/api/v1/posts/by-hour", "/api/v1/posts/by-hour-of-day"])
@pytest.mark.parametrize("value", ["Mars/Olympus", "../../etc/passwd", "America", "+05:30", "a%00b"])
def test_bad_tz_is_400(client, endpoint, value):
    assert_problem(client.get(f"{endpoint}?tz={value}"), 400, "invalid-parameter", "tz")


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("since=2026-11-18T25:00", "since"),
        ("since=1999-01-01", "since"),
        ("until=2101-01-01", "until"),
        ("since=0001-01-01T00:00:00%2B01:00", "since"),
        ("until=9999-12-31T23:59:59-05:00", "until"),
        ("since=0001-01-01&tz=Asia/Kolkata", "since"),
        ("since=2026-02-30", "since"),
        ("since=2026-11-18T10:00:00%2B24:00", "since"),
        ("since=20261118", "since"),
        ("since=2026-W47-3", "since"),
        ("until=%202026-11-18", "until"),
    ],
)
def test_bad_dates_are_400(client, query, param):
    assert_problem(client.get(f"/api/v1/posts/by-hour?{query}"), 400, "invalid-parameter", param)


@pytest.mark.parametrize(
    ("query", "hours", "first"),
    [
        ("since=2026-11-19&until=2026-11-18", 0, None),  # an empty interval: an empty series
        ("since=2026-11-18T10:00Z&until=2026-11-18T10:00Z", 0, None),
        ("since=2025-01-01&until=2026-01-03", 366 * 24, "2025-01-01T00:00:00Z"),  # 366 days from since
        ("since=2026-11-18T10:00:00.5z&until=2026-11-18T11:00", 1, "2026-11-18T10:00:00Z"),
        ("since=2016-12-31T23:59:60Z&until=2017-01-01T01:00Z", 2, "2016-12-31T23:00:00Z"),  # leap second
        ("since=2100-12-31T23:00:00-05:00&until=2100-12-31T23:00:00-04:00", 0, None),  # UTC year 2101 is fine
    ],
)
def test_any_dates_the_document_allows_are_answered(client, run_id, query, hours, first):
    series = data(client, f"/api/v1/posts/by-hour?{query}")
    assert len(series) == hours
    assert (series[0]["hour"] if series else None) == first


@pytest.mark.parametrize("endpoint", ["/api/v1/users/top", "/api/v1/posts", "/api/v1/runs"])
@pytest.mark.parametrize("value", ["0", "101", "-1", "abc", "1.5", "1e2", "99999999999999999999999"])
def test_bad_limit_is_400(client, endpoint, value):
    assert_problem(client.get(f"{endpoint}?limit={value}"), 400, "invalid-parameter", "limit")


def _cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "value",
    [
        "zzz",
        "!!!",
        "é",
        _cursor({"before": -1}),
        _cursor({"before": 0}),
        _cursor({"before": "5"}),
        _cursor({"after": 5}),
        _cursor([5]),
        _cursor({"before": 10**30}),
        base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode(),  # deep nesting
    ],
)
def test_bad_cursor_is_400(client, value):
    assert_problem(client.get(f"/api/v1/posts?cursor={value}"), 400, "invalid-parameter", "cursor")


@pytest.mark.parametrize("value", ["foo", "lang,lang", "lang,foo", ",", "tag"])
def test_unknown_by_is_400(client, value):
    assert_problem(client.get(f"/api/v1/tags/breakdown?by={value}"), 400, "invalid-parameter", "by")


@pytest.mark.parametrize(("param", "value"), [("country", "DEU"), ("lang", "x" * 17), ("username", "u" * 51)])
def test_too_long_text_filter_is_400(client, param, value):
    assert_problem(client.get(f"/api/v1/posts?{param}={value}"), 400, "invalid-parameter", param)


def test_empty_parameters_count_as_absent(client, run_id):
    body = get(client, "/api/v1/posts?tag=&limit=&cursor=&lang=&username=&country=")
    assert len(body["data"]) == 6 and body["meta"]["limit"] == 20


# 404, 405, 500, 503


@pytest.mark.parametrize("path", ["/nope", "/api/v1/nope", "/api/v1/runs/abc", "/api/v1/runs/-1"])
def test_unknown_path_is_404_problem(client, path):
    assert_problem(client.get(path), 404, "not-found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("post", "/api/v1/tags", "GET"), ("get", "/api/v1/collect", "POST"), ("delete", "/healthz", "GET")],
)
def test_wrong_method_is_405_problem(client, method, path, allow):
    response = getattr(client, method)(path)
    assert_problem(response, 405, "method-not-allowed")
    assert allow in response.headers["Allow"]


def test_unexpected_error_is_500_problem(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(aggregates, "top_users", broken)
    body = assert_problem(client.get("/api/v1/users/top"), 500, "internal")
    assert "boom" not in json.dumps(body)


def test_missing_database_is_503(tmp_path):
    client = create_app(Settings(db_path=str(tmp_path / "absent.db"))).test_client()
    assert_problem(client.get("/api/v1/tags"), 503, "database-not-ready")
    assert_problem(client.get("/readyz"), 503, "not-ready")


# health, readiness, metrics, the page, the document


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def _readyz(path: Path) -> tuple[int, dict]:
    response = create_app(settings_on(path)).test_client().get("/readyz")
    return response.status_code, response.get_json()


def test_readyz_empty_file_then_initialised(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    status, body = _readyz(path)
    assert status == 503 and body["type"] == PROBLEM_BASE + "not-ready"
    assert body["schema_version"] == 0 and body["expected_schema_version"] == store.SCHEMA_VERSION
    store.init_db(path)
    assert _readyz(path) == (
        200,
        {
            "status": "ready",
            "backend": "sqlite",
            "schema_version": store.SCHEMA_VERSION,
            "expected_schema_version": store.SCHEMA_VERSION,
            "last_successful_run_at": None,
            "last_successful_run_age_seconds": None,
        },
    )


def test_readyz_old_schema_is_503(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE posts(id INTEGER PRIMARY KEY)")
    old.close()
    status, body = _readyz(path)
    assert status == 503 and "version 0" in body["detail"]


def test_readyz_not_a_database_is_503(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"not a database" * 100)
    status, body = _readyz(path)
    assert status == 503 and body["type"] == PROBLEM_BASE + "not-ready"


def test_readyz_reports_the_last_successful_run(db_path, conn):
    run = store.begin_run(conn, source="sample", trigger="schedule", tags=("devops",), holder="t")
    store.finish_run(conn, run.run_id, "success")
    status, body = _readyz(db_path)
    assert status == 200 and body["last_successful_run_at"].endswith("Z")
    assert 0 <= body["last_successful_run_age_seconds"] < 60


def test_metrics_are_prometheus_text(client):
    client.get("/api/v1/tags")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert 'http_requests_total{method="GET",route="/api/v1/tags",status="200"}' in response.get_data(
        as_text=True
    )


def test_page_and_its_assets(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    for asset in ("/static/app.css", "/static/app.js"):
        assert client.get(asset).status_code == 200, asset


def test_openapi_document_is_served(client):
    body = get(client, "/api/openapi.json")
    assert body["openapi"] == "3.1.0" and "/api/v1/users/top" in body["paths"]


def test_every_answer_has_a_request_id(client):
    response = client.get("/api/v1/nope", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


# source: one source or a comma list, on every endpoint

SOURCE_ENDPOINTS = (*TAG_ENDPOINTS, "/api/v1/tags", "/api/v1/runs")


@pytest.mark.parametrize("endpoint", SOURCE_ENDPOINTS)
@pytest.mark.parametrize("value", ["rss", "x,rss", "x,", ",x", "x;sample", "m%C3%A4stodon", "%00"])
def test_unknown_source_is_400(client, endpoint, value):
    body = assert_problem(client.get(f"{endpoint}?source={value}"), 400, "invalid-parameter", "source")
    assert body["invalid_params"][0]["reason"].startswith("unknown source")


def store_x_post(conn) -> None:
    """One X post by a new author (the dataset's posts are all from the sample)."""
    page = {"data": [dataset.post(2001, "2026-11-19T03:00:00.000Z", ["devops"], "u9", "fr")]}
    page["includes"] = {"users": [{"id": "u9", "username": "xena", "name": "Xena", "public_metrics": {}}]}
    with store.transaction(conn):
        store.write_rows(conn, parse_page(page, dataset.DEFAULT_TAGS, "devops", "x"))


@pytest.mark.parametrize(
    ("source", "devops", "users"),
    [
        (None, 5, ["dave", "bob", "carol", "alice", "xena"]),
        ("x", 1, ["xena"]),
        ("sample", 4, ["dave", "bob", "carol", "alice"]),
        ("SAMPLE,x", 5, ["dave", "bob", "carol", "alice", "xena"]),
        ("x,x,mastodon", 1, ["xena"]),
        ("bluesky", 0, []),
    ],
)
def test_source_filter_is_answered_per_source(client, conn, run_id, source, devops, users):
    store_x_post(conn)
    query = f"?source={source}" if source else ""
    assert get(client, f"/api/v1/tags/breakdown{query}")["meta"]["totals"]["devops"] == devops
    assert [u["username"] for u in data(client, f"/api/v1/users/top{query}")] == users
    assert (
        sum(h["count"] for h in data(client, f"/api/v1/posts/by-hour-of-day?tag=devops&{query[1:]}"))
        == devops
    )
    assert len(data(client, f"/api/v1/posts?tag=devops&{query[1:]}")) == devops
    assert {row["tag"]: row["posts"] for row in data(client, f"/api/v1/tags{query}")}["devops"] == devops
    echoed = get(client, f"/api/v1/users/top{query}")["meta"]["source"]
    assert echoed == (
        None if source is None else sorted({s.lower() for s in source.split(",")}, key=SOURCE_NAMES.index)
    )


def test_tags_report_each_source(client, conn, run_id):
    store_x_post(conn)
    devops = {row["tag"]: row for row in data(client, "/api/v1/tags")}["devops"]
    assert [(s["source"], s["posts"]) for s in devops["sources"]] == [("sample", 4), ("x", 1)]
    assert devops["sources"][1]["newest_post_at"] == "2026-11-19T03:00:00Z" == devops["newest_post_at"]
    only_x = {row["tag"]: row for row in data(client, "/api/v1/tags?source=x")}["devops"]
    assert (only_x["posts"], [s["source"] for s in only_x["sources"]]) == (1, ["x"])


def test_runs_filter_by_source(client, conn, run_id):
    other = store.begin_run(conn, source=("x", "mastodon"), trigger="manual", tags=("devops",), holder="t")
    store.finish_run(conn, other.run_id, "success")
    assert [r["id"] for r in data(client, "/api/v1/runs")] == [other.run_id, run_id]
    assert [r["id"] for r in data(client, "/api/v1/runs?source=sample")] == [run_id]
    assert [r["id"] for r in data(client, "/api/v1/runs?source=mastodon,sample")] == [other.run_id, run_id]
    run = data(client, f"/api/v1/runs/{other.run_id}")
    assert (run["source"], [(s["source"], s["status"]) for s in run["sources"]]) == (
        "x,mastodon",
        [("mastodon", "success"), ("x", "success")],
    )
    assert [(t["source"], t["status"]) for t in run["tags"]] == [("mastodon", "skipped"), ("x", "skipped")]
