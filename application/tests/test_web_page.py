"""The human page at / driven in Debian's Chromium through Playwright, against fake API endpoints."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from tagwatch.config import DEFAULT_TAGS, Settings
from tagwatch.web import bp as web_bp

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
EMPTY_TEXT = "No posts collected yet — the collector is running; this page refreshes itself."
SAMPLE_BANNER = "sample data — generated, not real posts"
# The sources the fake site's settings name (real posts: no sample banner).
FEED_SETTINGS = Settings(
    sources=("mastodon", "bluesky"), mastodon_servers=("https://a.example", "http://b.example:8080")
)

TAGS = list(DEFAULT_TAGS)
LANGS = ["en", "de", "fr", "es", "ja", "pt", "it", "nl", "sv", "pl"]
COUNTRIES = ["US", "DE", "GB", "FR", "IN", "JP", "BR", "CA", "ES", None]
HOURS = 168
FIRST_HOUR = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
# Ranked by followers, as the real /users/top is; one user has no display name.
USERS = [
    {
        "username": f"user{i:02d}",
        "name": None if i == 5 else f"User Number {i}",
        "followers": 240_000 // (i + 1) + 37 * i,
        "posts": (i * 7) % 13 + 1,
        "tags": [TAGS[i % 10], TAGS[(i * 3) % 10]] if i % 3 else [TAGS[i % 10]],
    }
    for i in range(12)
]
DATA_ENDPOINTS = ["/users/top", "/posts/by-hour", "/posts/by-hour-of-day", "/tags/breakdown"]


def _cell_count(tag: str, lang: str, country: str | None) -> int:
    """Deterministic post count for one (tag, language, country) cell; about a third are zero."""
    t, lang_i, c = TAGS.index(tag), LANGS.index(lang), COUNTRIES.index(country)
    value = (t * 7 + lang_i * 5 + c * 3) % 9 - 2
    return max(0, value) * (10 - lang_i)


def _problem(status: int, title: str, detail: str, name: str, reason: str) -> Response:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "invalid_params": [{"name": name, "reason": reason}],
    }
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def make_fake_app(variant: str, settings: Settings = FEED_SETTINGS) -> Flask:
    """A tiny app with the page blueprint and canned API answers: "full" data, or "empty"/"zeros"."""
    # static_folder=None: the app's own /static rule would otherwise shadow the blueprint's.
    app = Flask(__name__, static_folder=None)
    app.config["SETTINGS"] = settings
    app.register_blueprint(web_bp)
    full = variant == "full"

    def selected_tags() -> list[str]:
        tag = request.args.get("tag")
        return [tag] if tag else TAGS

    def tag_total(tag: str) -> int:
        if not full:
            return 0
        return sum(_cell_count(tag, lang, c) for lang in LANGS for c in COUNTRIES)

    @app.before_request
    def validate():
        if not request.path.startswith("/api/"):
            return None
        tag = request.args.get("tag")
        if tag is not None and tag not in TAGS:
            return _problem(400, "Invalid parameter", "Unknown tag.", "tag", "not a tracked tag")
        source = request.args.get("source")
        if source is not None and source not in FEED_SETTINGS.sources:
            return _problem(400, "Invalid parameter", "Unknown source.", "source", "not a source")
        try:
            ZoneInfo(request.args.get("tz", "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            return _problem(400, "Invalid parameter", "Unknown time zone.", "tz", "not an IANA zone")
        return None

    @app.get("/api/v1/tags")
    def tags():
        if variant == "empty":
            return jsonify(data=[], meta={})
        rows = []
        for i, tag in enumerate(TAGS):
            run = {"id": 40 + i, "status": "failed" if i == 3 else "success"}
            run["finished_at"] = "2026-11-23T10:00:00Z"
            figures = {
                "posts": tag_total(tag),
                "newest_post_at": "2026-11-23T09:58:00Z" if full else None,
                "last_run": run if full else None,
            }
            # Mastodon holds a third of each tag's posts, Bluesky the rest
            mastodon = {**figures, "posts": figures["posts"] // 3}
            bluesky = {**figures, "posts": figures["posts"] - mastodon["posts"]}
            parts = [{"source": "mastodon", **mastodon}, {"source": "bluesky", **bluesky}]
            rows.append({"tag": tag, **figures, "sources": parts})
        return jsonify(data=rows, meta={"source": None, "sources": list(FEED_SETTINGS.sources)})

    @app.get("/api/v1/users/top")
    def users_top():
        limit = int(request.args.get("limit", 5))
        wanted = set(selected_tags())
        rows = [u for u in USERS if wanted & set(u["tags"])] if full else []
        if request.args.get("source"):  # the even users post on Mastodon, the odd ones on Bluesky
            parity = 0 if request.args["source"] == "mastodon" else 1
            rows = [u for u in rows if USERS.index(u) % 2 == parity]
        return jsonify(data=rows[:limit], meta={"limit": limit})

    @app.get("/api/v1/posts/by-hour")
    def by_hour():
        if variant == "empty":
            return jsonify(data=[], meta={})
        zone = ZoneInfo(request.args.get("tz", "UTC"))
        weight = len(selected_tags())
        rows = []
        for i in range(HOURS):
            hour = (FIRST_HOUR + timedelta(hours=i)).astimezone(zone)
            count = (((i * 7) % 11) + (6 if 8 <= i % 24 <= 18 else 0)) * weight if full else 0
            rows.append({"hour": hour.isoformat().replace("+00:00", "Z"), "count": count})
        return jsonify(data=rows, meta={})

    @app.get("/api/v1/posts/by-hour-of-day")
    def by_hour_of_day():
        if variant == "empty":
            return jsonify(data=[], meta={})
        weight = len(selected_tags())
        rows = [{"hour": h, "count": ((h * 5) % 13 + 2) * weight if full else 0} for h in range(24)]
        return jsonify(data=rows, meta={})

    @app.get("/api/v1/tags/breakdown")
    def breakdown():
        by = request.args.get("by", "lang,country").split(",")
        if not set(by) <= {"lang", "country"}:
            return _problem(400, "Invalid parameter", "Unknown breakdown.", "by", "lang or country")
        tags = selected_tags() if full else []
        rows = []
        for tag in tags:
            counts: dict[tuple, int] = {}
            for lang in LANGS:
                for country in COUNTRIES:
                    key = tuple(v for d, v in (("lang", lang), ("country", country)) if d in by)
                    counts[key] = counts.get(key, 0) + _cell_count(tag, lang, country)
            for key, count in sorted(counts.items(), key=lambda kv: -kv[1]):
                if count:
                    rows.append({"tag": tag, **dict(zip(by, key, strict=True)), "count": count})
        return jsonify(data=rows, meta={"totals": {tag: tag_total(tag) for tag in tags}})

    return app


@pytest.fixture
def site(request: pytest.FixtureRequest) -> Iterator[str]:
    """Serve the page and the API on a free port; `request.param` picks the data variant."""
    yield from serve(make_fake_app(getattr(request, "param", "full")))


def serve(app: Flask) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port until the generator is closed."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright; never downloads a browser."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A page plus everything it reported: console errors, uncaught errors and request URLs."""

    page: object
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def api_calls(self, path: str) -> list[dict[str, list[str]]]:
        """Query parameters of every request made to /api/v1<path>, oldest first."""
        split = [urlsplit(url) for url in self.urls]
        return [parse_qs(s.query) for s in split if s.path == f"/api/v1{path}"]

    def assert_clean(self) -> None:
        assert self.console_errors == []
        assert self.page_errors == []


@pytest.fixture
def watched(browser) -> Iterator[Watched]:
    """A laptop-sized page in Europe/Berlin whose errors and requests are recorded."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id="Europe/Berlin"
    )
    page = context.new_page()
    result = Watched(page)
    page.on("console", lambda m: m.type == "error" and result.console_errors.append(m.text))
    page.on("pageerror", lambda e: result.page_errors.append(str(e)))
    page.on("request", lambda r: result.urls.append(r.url))
    yield result
    context.close()


def _open(watched: Watched, url: str) -> None:
    watched.page.goto(url)
    watched.page.wait_for_selector("#charts:not([hidden]), #empty:not([hidden]), #error:not([hidden])")


def _shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def _expected_heat_columns(dim: str) -> int:
    """Header cells of the heat map: Tag, top 8 values, "other", "unknown" if any, Total."""
    values = LANGS if dim == "lang" else [c for c in COUNTRIES if c]
    unknown = dim == "country" and any(_cell_count(t, g, None) for t in TAGS for g in LANGS)
    return 1 + min(8, len(values)) + (len(values) > 8) + unknown + 1


def test_web_index_serves_the_shell_and_assets():
    client = make_fake_app("full").test_client()
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-api="/api/v1"' in html
    assert "/static/app.js" in html
    assert "/static/app.css" in html
    assert "http://" not in html
    assert "https://" not in html
    for asset in ("/static/app.js", "/static/app.css"):
        assert client.get(asset).status_code == 200


@pytest.mark.parametrize(
    ("sources", "line", "banner"),
    [
        (("sample",), "Sources: built-in sample", True),
        (("x",), "Sources: X", False),
        (("x", "sample"), "Sources: X, built-in sample", True),
        (("mastodon", "bluesky"), "Sources: Mastodon (a.example, b.example:8080), Bluesky", False),
    ],
)
def test_web_index_names_its_sources_and_flags_sample_data(sources, line, banner):
    settings = Settings(sources=sources, mastodon_servers=FEED_SETTINGS.mastodon_servers)
    html = make_fake_app("full", settings).test_client().get("/").get_data(as_text=True)
    assert f'<p class="sub" id="sources">{line}</p>' in html
    assert (SAMPLE_BANNER in html) is banner


@pytest.mark.slow
def test_web_page_draws_every_chart(site: str, watched: Watched):
    page = watched.page
    _open(watched, site + "/")

    assert page.locator("#users-chart rect.bar").count() == 10
    labels = page.locator("#users-chart text.label").all_text_contents()
    assert labels == [f"@{u['username']}" for u in USERS[:10]]
    assert page.locator("#hod-chart rect.bar").count() == 24
    points = page.locator("#hourly-chart polyline.line").get_attribute("points")
    assert len(points.split()) == HOURS
    assert page.locator("#heat-table tbody tr").count() == len(TAGS)
    assert page.locator("#heat-table thead th").count() == _expected_heat_columns("lang")
    assert page.locator("#tags-status tbody tr").count() == len(TAGS)
    assert page.locator("#tag-select option").count() == 1 + len(TAGS)
    assert page.locator("#tz-select option").all_inner_texts() == [
        "UTC",
        "Local time (Europe/Berlin)",
    ]
    assert page.locator("#updated time").count() == 1

    for svg in page.locator("svg.chart-svg").all():
        assert svg.get_attribute("role") == "img"
        assert svg.locator("title").first.text_content().strip()
        assert svg.locator("desc").text_content().strip()
        assert svg.locator("text.axis-title").count() == 2

    (by_hour,) = watched.api_calls("/posts/by-hour")
    since = datetime.fromisoformat(by_hour["since"][0])
    assert by_hour["since"][0].endswith("Z")
    assert timedelta(days=7) <= datetime.now(UTC) - since < timedelta(days=7, hours=1)
    assert by_hour["tz"] == ["UTC"]
    assert "tag" not in by_hour
    assert watched.api_calls("/users/top") == [{"limit": ["10"]}]
    assert sorted(c["by"][0] for c in watched.api_calls("/tags/breakdown")) == ["country", "lang"]
    assert all(url.startswith((site, "data:")) for url in watched.urls)
    assert page.locator("#sources").inner_text() == "Sources: Mastodon (a.example, b.example:8080), Bluesky"
    assert page.get_by_text(SAMPLE_BANNER).count() == 0
    _shoot(page, "page.png")

    page.get_by_label("Country").check()
    assert page.locator("#heat-table thead th").count() == _expected_heat_columns("country")
    assert page.locator("#heat-table thead th", has_text="unknown").count() == 1
    watched.assert_clean()


@pytest.mark.slow
def test_web_page_tag_filter_changes_requests(site: str, watched: Watched):
    page = watched.page
    _open(watched, site + "/")
    before = len(watched.urls)

    with page.expect_response(lambda r: "/api/v1/users/top" in r.url and "tag=devops" in r.url):
        page.select_option("#tag-select", "devops")
    page.wait_for_function("document.querySelectorAll('#heat-table tbody tr').length === 1")

    new_calls = [urlsplit(u) for u in watched.urls[before:]]
    for path in DATA_ENDPOINTS:
        queries = [parse_qs(s.query) for s in new_calls if s.path == f"/api/v1{path}"]
        assert queries, path
        assert all(q["tag"] == ["devops"] for q in queries), path
    devops_users = [u for u in USERS if "devops" in u["tags"]]
    assert page.locator("#users-chart rect.bar").count() == len(devops_users)
    assert page.evaluate("location.search") == "?tag=devops"

    with page.expect_response(lambda r: "/api/v1/users/top" in r.url and "tag=" not in r.url):
        page.select_option("#tag-select", "")
    page.wait_for_function("document.querySelectorAll('#heat-table tbody tr').length === 10")
    watched.assert_clean()


@pytest.mark.slow
def test_web_page_source_filter_lists_the_sources_and_changes_requests(site: str, watched: Watched):
    page = watched.page
    _open(watched, site + "/")
    options = page.locator("#source-select option")
    assert options.all_inner_texts() == ["All sources", "Mastodon", "Bluesky"]
    before = len(watched.urls)

    with page.expect_response(lambda r: "/api/v1/users/top" in r.url and "source=mastodon" in r.url):
        page.select_option("#source-select", "mastodon")
    mastodon_users = USERS[::2][:10]
    page.wait_for_function(
        f"document.querySelectorAll('#users-chart rect.bar').length === {len(mastodon_users)}"
    )

    new_calls = [urlsplit(u) for u in watched.urls[before:]]
    for path in DATA_ENDPOINTS:
        queries = [parse_qs(s.query) for s in new_calls if s.path == f"/api/v1{path}"]
        assert queries and all(q["source"] == ["mastodon"] for q in queries), path
    assert page.evaluate("location.search") == "?source=mastodon"
    first = page.locator("#tags-status tbody tr").first.locator("td").first.inner_text()
    assert first == f"{sum(_cell_count(TAGS[0], g, c) for g in LANGS for c in COUNTRIES) // 3:,}"

    with page.expect_response(lambda r: "/api/v1/users/top" in r.url and "source=" not in r.url):
        page.select_option("#source-select", "")
    assert page.evaluate("location.search") == ""
    watched.assert_clean()


@pytest.mark.slow
def test_web_page_drops_an_unknown_source_from_the_url(site: str, watched: Watched):
    page = watched.page
    page.goto(site + "/?source=rss")
    page.wait_for_selector("#charts:not([hidden])")
    assert page.evaluate("location.search") == ""
    assert page.locator("#source-select").input_value() == ""
    assert page.locator("#error").is_hidden()
    assert "source" not in watched.api_calls("/users/top")[-1]
    assert watched.page_errors == []


@pytest.mark.slow
def test_web_page_timezone_select_changes_requests(site: str, watched: Watched):
    page = watched.page
    _open(watched, site + "/")

    with page.expect_response(lambda r: "/posts/by-hour-of-day" in r.url and "Berlin" in r.url):
        page.select_option("#tz-select", "Europe/Berlin")
    page.wait_for_selector("#hod-chart svg title:text('Europe/Berlin')", state="attached")

    assert watched.api_calls("/posts/by-hour")[-1]["tz"] == ["Europe/Berlin"]
    assert watched.api_calls("/posts/by-hour-of-day")[-1]["tz"] == ["Europe/Berlin"]
    watched.assert_clean()


@pytest.mark.slow
@pytest.mark.parametrize("site", ["empty", "zeros"], indirect=True)
def test_web_page_shows_empty_state(site: str, watched: Watched, request: pytest.FixtureRequest):
    page = watched.page
    _open(watched, site + "/")

    assert page.locator("#empty").is_visible()
    assert page.get_by_text(EMPTY_TEXT).is_visible()
    assert page.locator("#charts").is_hidden()
    assert page.locator("#error").is_hidden()
    if request.node.callspec.params["site"] == "empty":
        _shoot(page, "page-empty.png")
    watched.assert_clean()


@pytest.mark.slow
def test_web_page_shows_api_errors_and_recovers(site: str, watched: Watched):
    page = watched.page
    problem = {
        "type": "about:blank",
        "title": "Database unavailable",
        "status": 503,
        "detail": "The store could not be opened.",
    }
    route = "**/api/v1/users/top*"
    page.route(
        route,
        lambda r: r.fulfill(status=503, content_type="application/problem+json", body=json.dumps(problem)),
    )
    _open(watched, site + "/")

    error = page.locator("#error")
    assert error.is_visible()
    assert "Database unavailable" in error.inner_text()
    assert "The store could not be opened." in error.inner_text()
    assert "HTTP 503" in error.inner_text()
    assert page.locator("#charts").is_hidden()
    assert page.locator("#empty").is_hidden()
    _shoot(page, "page-error.png")

    page.unroute(route)
    page.click("#retry-btn")
    page.wait_for_selector("#charts:not([hidden])")
    assert error.is_hidden()
    assert watched.page_errors == []


@pytest.mark.slow
def test_web_page_refreshes_every_30s_until_paused(site: str, watched: Watched):
    page = watched.page
    page.clock.install()
    _open(watched, site + "/")
    assert len(watched.api_calls("/tags")) == 1

    with page.expect_response(lambda r: urlsplit(r.url).path == "/api/v1/tags"):
        page.clock.fast_forward(31_000)
    page.wait_for_function("!document.querySelector('#updated').textContent.includes('Loading')")
    assert len(watched.api_calls("/tags")) == 2

    page.click("#pause-btn")
    assert page.locator("#pause-btn").get_attribute("aria-pressed") == "true"
    assert "paused" in page.locator("#updated").inner_text()
    page.clock.fast_forward(120_000)
    page.wait_for_timeout(300)
    assert len(watched.api_calls("/tags")) == 2

    with page.expect_response(lambda r: urlsplit(r.url).path == "/api/v1/tags"):
        page.click("#pause-btn")
    assert page.locator("#pause-btn").get_attribute("aria-pressed") == "false"
    watched.assert_clean()


@pytest.mark.slow
def test_web_page_drops_an_unknown_tag_from_the_url(site: str, watched: Watched):
    page = watched.page
    page.goto(site + "/?tag=nosuchtag")
    page.wait_for_selector("#charts:not([hidden])")

    assert page.evaluate("location.search") == ""
    assert page.locator("#tag-select").input_value() == ""
    assert page.locator("#error").is_hidden()
    assert watched.api_calls("/users/top")[-1] == {"limit": ["10"]}
    assert watched.page_errors == []


@pytest.fixture
def real_site(tmp_path) -> Iterator[str]:
    """The real app (create_app) on a database filled by one real collection run on the sample source."""
    from fakes import FixedClock, RecordedSleep

    from tagwatch import store
    from tagwatch.app import create_app
    from tagwatch.collector import Collector
    from tagwatch.config import Settings
    from tagwatch.sources.sample import SAMPLE_BASE_URL, SampleWorld, sample_session
    from tagwatch.sources.x import XClient

    path = tmp_path / "page.db"
    store.init_db(path)
    settings = Settings(db_path=str(path), sources=("sample",), max_posts_per_tag=300)
    clock = FixedClock(datetime.now(UTC).timestamp())
    client = XClient(
        SAMPLE_BASE_URL, "sample", source="sample", session=sample_session(SampleWorld(), clock), clock=clock,
        sleep=RecordedSleep(),
    )  # fmt: skip
    assert Collector(settings, client).run_once().status == "success"
    yield from serve(create_app(settings))


@pytest.mark.slow
def test_web_page_with_the_real_api_and_sample_data(real_site: str, watched: Watched):
    page = watched.page
    _open(watched, real_site + "/")
    assert page.locator("#charts").is_visible()
    assert page.locator("#users-chart rect.bar").count() == 10
    assert page.locator("#hod-chart rect.bar").count() == 24
    points = page.locator("#hourly-chart polyline.line").get_attribute("points")
    assert len(points.split()) >= 24 * 6  # a week of hours, zero hours included
    assert page.locator("#heat-table tbody tr").count() == 10
    assert page.locator("#tags-status tbody tr").count() == 10
    assert page.get_by_role("note").inner_text() == SAMPLE_BANNER
    assert page.get_by_text(SAMPLE_BANNER).is_visible()
    assert page.locator("#sources").inner_text() == "Sources: built-in sample"
    _shoot(page, "page-real.png")
    watched.assert_clean()


@pytest.mark.slow
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_web_page_at_420px_hourly_labels_do_not_overlap(site: str, browser, tz: str):
    """On a phone the hourly chart's date labels thin out: no two rendered label boxes touch."""
    context = browser.new_context(viewport={"width": 420, "height": 900}, locale="en-US", timezone_id=tz)
    try:
        page = context.new_page()
        page.goto(site + "/")
        page.wait_for_selector("#hourly-chart svg")
        boxes = [label.bounding_box() for label in page.locator("#hourly-chart text.x-tick").all()]
        assert len(boxes) >= 2, "at least two dates are labelled"
        boxes.sort(key=lambda b: b["x"])
        for left, right in pairwise(boxes):
            assert left["x"] + left["width"] <= right["x"], f"labels overlap: {left} {right}"
        chart = page.locator("#hourly-chart svg").bounding_box()
        assert all(chart["x"] <= b["x"] and b["x"] + b["width"] <= chart["x"] + chart["width"] for b in boxes)
        _shoot(page, f"page-420px-{tz.replace('/', '-')}.png")
    finally:
        context.close()
