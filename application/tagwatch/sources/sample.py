"""The built-in sample source: a deterministic, realistic world that speaks X API v2.

It is mounted as a requests transport adapter, so sample pages go through the same client,
pagination, parsing and storage code as the real API. Posts keep appearing as time passes
(with a day/night rhythm), a week of history is there on the first run, follower counts are
heavy-tailed, and profile locations come in many spellings, languages and jokes.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from tagwatch import timestamps
from tagwatch.parse import TWITTER_EPOCH_MS

SAMPLE_BASE_URL = "http://sample.tagwatch.invalid"
SLOT_SECONDS = 600
WINDOW_SECONDS = 7 * 86400
LIVE_WORKER, SEED_WORKER = 1, 2
TAG_WEIGHTS = {
    "devops": 22, "sre": 15, "microservices": 13, "observability": 12, "metrics": 10,
    "oauth": 8, "openbanking": 7, "remediation": 5, "opentracing": 4, "logmonitoring": 4,
}  # fmt: skip
OTHER_TAGS = ("kubernetes", "cloud", "python", "golang", "security", "fintech", "aws", "linux")
LANGS = {
    "en": 40, "es": 9, "pt": 8, "de": 7, "fr": 6, "ja": 6, "it": 3, "nl": 3, "hi": 3,
    "tr": 3, "ru": 3, "pl": 2, "ko": 2, "id": 2, "sv": 1, "und": 2,
}  # fmt: skip
LOCATIONS = {
    "en": ["London, England", "NYC", "San Francisco, CA", "Austin, TX", "Toronto, ON", "Sydney, Australia",
           "Bengaluru, India", "Dublin, Ireland", "Lagos, Nigeria", "Nairobi", "Seattle, WA", "Manchester, UK",
           "Earth", "the cloud ☁️", "localhost", "Remote", "", "", "he/him", "somewhere in the pipeline"],
    "es": ["Madrid, España", "Ciudad de México", "Buenos Aires", "Bogotá, Colombia", "Barcelona", "Santiago, Chile",
           "Lima, Perú", "en mi casa", ""],
    "pt": ["São Paulo, Brasil", "Lisboa", "Rio de Janeiro 🇧🇷", "Porto, Portugal", "Belo Horizonte", "Recife - PE", ""],
    "de": ["Berlin", "München", "Hamburg, Deutschland", "Wien", "Zürich", "Köln", ""],
    "fr": ["Paris, France", "Lyon", "Montréal, QC", "Bruxelles", "Toulouse", "quelque part", ""],
    "ja": ["東京", "大阪", "Tokyo, Japan", "日本", ""],
    "it": ["Roma", "Milano, Italia", "Torino", ""],
    "nl": ["Amsterdam, NL", "Rotterdam", "Utrecht, Nederland", ""],
    "hi": ["Mumbai", "New Delhi, India", "Bangalore", "Hyderabad", ""],
    "tr": ["İstanbul", "Ankara, Türkiye", ""],
    "ru": ["Москва", "Санкт-Петербург", ""],
    "pl": ["Warszawa", "Kraków, Polska", ""],
    "ko": ["서울", "Seoul, Korea", ""],
    "id": ["Jakarta", "Bandung, Indonesia", ""],
    "sv": ["Stockholm", "Göteborg, Sverige", ""],
    "und": ["🌍", "Mars", "in your dreams", ""],
}  # fmt: skip
PLACES = [
    ("01a9a39529b27f36", "Manhattan, NY", "US", "United States"),
    ("3a8b9c1d2e3f4a5b", "London, England", "GB", "United Kingdom"),
    ("5c1f0e7d9a2b3c4d", "Berlin, Germany", "DE", "Germany"),
    ("6d2e1f8a0b3c4d5e", "São Paulo, Brasil", "BR", "Brazil"),
    ("7e3f2a9b1c4d5e6f", "Paris, France", "FR", "France"),
    ("8f4a3b0c2d5e6f7a", "Madrid, España", "ES", "Spain"),
    ("9a5b4c1d3e6f7a8b", "Tokyo, Japan", "JP", "Japan"),
    ("ab6c5d2e4f7a8b9c", "Mumbai, India", "IN", "India"),
    ("bc7d6e3f5a8b9cad", "Toronto, Ontario", "CA", "Canada"),
    ("cd8e7f4a6b9cadbe", "Sydney, New South Wales", "AU", "Australia"),
    ("de9f8a5b7cadbecf", "Amsterdam, Nederland", "NL", "Netherlands"),
    ("ef0a9b6c8dbecfd0", "Lisboa, Portugal", "PT", "Portugal"),
    ("f01bac7d9ecfd0e1", "Ciudad de México", "MX", "Mexico"),
    ("0a2cbd8eafd0e1f2", "Milano, Italia", "IT", "Italy"),
    ("1b3dce9fb0e1f203", "Istanbul, Türkiye", "TR", "Türkiye"),
    ("2c4edfa0c1f20314", "Warszawa, Polska", "PL", "Poland"),
    ("3d5fe0b1d2031425", "Seoul, Korea", "KR", "South Korea"),
    ("4e60f1c2e3142536", "Jakarta, Indonesia", "ID", "Indonesia"),
    ("5f7102d3f4253647", "Stockholm, Sverige", "SE", "Sweden"),
    ("6082134e05364758", "Lagos, Nigeria", "NG", "Nigeria"),
]
PHRASES = {
    "en": ["Shipping a new dashboard today", "Postmortem notes are up", "Our on-call got quieter after this",
           "Hot take: alerts need runbooks", "Benchmarks before opinions", "Learned a lot at the meetup"],
    "es": ["Hoy publicamos el nuevo panel", "Notas del postmortem", "Las alertas necesitan runbooks"],
    "pt": ["Novo painel no ar hoje", "Notas do postmortem publicadas", "Alertas precisam de runbooks"],
    "de": ["Heute neues Dashboard ausgerollt", "Postmortem-Notizen sind online", "Alerts brauchen Runbooks"],
    "fr": ["Nouveau tableau de bord en prod", "Notes du postmortem publiées", "Les alertes ont besoin de runbooks"],
    "ja": ["新しいダッシュボードを公開しました", "ポストモーテムを書きました"],
    "it": ["Nuova dashboard in produzione", "Note del postmortem pubblicate"],
    "nl": ["Nieuw dashboard live", "Postmortem-notities staan online"],
    "hi": ["आज नया डैशबोर्ड लाइव है", "पोस्टमॉर्टम नोट्स तैयार"],
    "tr": ["Yeni pano yayında", "Postmortem notları hazır"],
    "ru": ["Сегодня выкатили новый дашборд", "Заметки постмортема готовы"],
    "pl": ["Nowy dashboard już działa", "Notatki z postmortem gotowe"],
    "ko": ["새 대시보드를 배포했습니다", "포스트모템 노트 공유"],
    "id": ["Dasbor baru sudah rilis", "Catatan postmortem sudah terbit"],
    "sv": ["Ny dashboard i produktion", "Postmortem-anteckningar publicerade"],
    "und": ["🚀🚀🚀", "👀", "✅ 📈"],
}  # fmt: skip
SYLLABLES = ("ka", "lo", "mi", "ra", "to", "ne", "su", "vi", "de", "po", "an", "el", "jo", "zu", "ba", "ri")


class SampleWorld:
    """A seeded universe of users and posts; what exists depends only on the seed and the clock."""

    def __init__(self, seed: int = 2026, users: int = 1500, posts_per_hour: float = 14.0) -> None:
        self.seed = seed
        self.posts_per_hour = posts_per_hour
        self.users = [make_user(seed, index) for index in range(users)]
        self._tags = tuple(TAG_WEIGHTS)
        self._cumulative = list(itertools.accumulate(TAG_WEIGHTS.values()))
        self.slot_posts = lru_cache(maxsize=2048)(self._slot_posts)

    def followers(self, user: dict[str, Any], now: float) -> int:
        """Heavy-tailed base count that grows slowly with time, so refreshes are visible."""
        days = max(0.0, (now - 1_767_225_600) / 86400)  # since 2026-01-01
        return int(user["base_followers"] * (1 + 0.002 * days))

    def _slot_posts(self, slot: int, worker: int = LIVE_WORKER, scale: float = 1.0) -> list[dict[str, Any]]:
        """The posts created in one 10-minute slot, oldest first."""
        rng = random.Random(f"{self.seed}:{worker}:{slot}")
        start = slot * SLOT_SECONDS
        expected = self.posts_per_hour * scale * rhythm(start) * SLOT_SECONDS / 3600
        count = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
        offsets = sorted(rng.random() * SLOT_SECONDS for _ in range(count))
        return [self._post(rng, start + offset, worker, seq) for seq, offset in enumerate(offsets)]

    def _post(self, rng: random.Random, created: float, worker: int, seq: int) -> dict[str, Any]:
        rand = rng.random
        user = self.users[int(len(self.users) * rand() ** 1.6)]
        lang = user["lang"] if rand() < 0.9 else ("en" if rand() < 0.7 else "und")
        tags = [self._pick_tag(rand())]
        if rand() < 0.25:
            second = self._pick_tag(rand())
            if second not in tags:
                tags.append(second)
        if rand() < 0.4:
            tags.append(OTHER_TAGS[int(rand() * len(OTHER_TAGS))])
        ms = int(created * 1000)
        post_id = ((ms - TWITTER_EPOCH_MS) << 22) | (worker << 12) | (seq & 0xFFF)
        phrases = PHRASES.get(lang, PHRASES["en"])
        text, hashtags = compose_text(phrases[int(rand() * len(phrases))], tags, rand)
        post: dict[str, Any] = {
            "id": str(post_id),
            "text": text,
            "created_at": _iso(ms),
            "lang": lang,
            "author_id": user["id"],
            "entities": {"hashtags": hashtags},
            "edit_history_tweet_ids": [str(post_id)],
        }
        if rand() < 0.03:
            post["geo"] = {"place_id": PLACES[int(len(PLACES) * rand() ** 1.3)][0]}
        return post

    def _pick_tag(self, draw: float) -> str:
        """A tracked tag by popularity weight (bisect on cumulative weights: fast for seeding)."""
        return self._tags[bisect.bisect(self._cumulative, draw * self._cumulative[-1])]

    def page_for(self, posts: list[dict[str, Any]], now: float, **meta: Any) -> dict[str, Any]:
        """Wrap posts as an X API v2 response with includes.users/places and meta."""
        if not posts:
            return {"meta": {"result_count": 0, **meta}}
        author_ids = {p["author_id"] for p in posts}
        users = [self.user_payload(u, now) for u in self.users if u["id"] in author_ids]
        place_ids = {p["geo"]["place_id"] for p in posts if "geo" in p}
        places = [
            {"id": pid, "full_name": full, "country_code": code, "country": name}
            for pid, full, code, name in PLACES
            if pid in place_ids
        ]
        includes: dict[str, Any] = {"users": users}
        if places:
            includes["places"] = places
        head = {"newest_id": posts[0]["id"], "oldest_id": posts[-1]["id"], "result_count": len(posts)}
        return {"data": posts, "includes": includes, "meta": {**head, **meta}}

    def user_payload(self, user: dict[str, Any], now: float) -> dict[str, Any]:
        """A user as X returns it with user.fields=username,name,location,public_metrics."""
        followers = self.followers(user, now)
        return {
            "id": user["id"],
            "username": user["username"],
            "name": user["name"],
            "location": user["location"],
            "public_metrics": {"followers_count": followers, "following_count": 180, "tweet_count": 4200},
        }

    def search(
        self, tag: str, now: float, since_id: int, until_id: int | None, max_results: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest-first posts carrying #tag in X's 7-day window; second value: are there more."""
        newest_slot = int(now - 30) // SLOT_SECONDS
        oldest_slot = int(now - WINDOW_SECONDS) // SLOT_SECONDS
        found: list[dict[str, Any]] = []
        for slot in range(newest_slot, oldest_slot - 1, -1):
            for post in reversed(self.slot_posts(slot)):
                post_id = int(post["id"])
                if post_id <= since_id:
                    return found, False
                if until_id is not None and post_id >= until_id:
                    continue
                if not now - WINDOW_SECONDS <= _seconds(post_id) <= now - 30:
                    continue
                if any(h["tag"].lower() == tag for h in post["entities"]["hashtags"]):
                    if len(found) == max_results:
                        return found, True
                    found.append(post)
        return found, False

    def seed_pages(self, count: int, now: float, page_size: int = 5000) -> Iterator[dict[str, Any]]:
        """Exactly `count` posts spread over the last seven days with the day/night rhythm, as X-shaped pages.

        A slot can hold more posts than the 12-bit sequence of an id: the excess moves to the next worker
        ids (3, 4, …; live posts use worker 1), so ids never collide and every post is stored.
        """
        first_slot = int(now - WINDOW_SECONDS) // SLOT_SECONDS
        slots = range(first_slot, first_slot + WINDOW_SECONDS // SLOT_SECONDS)
        weights = [rhythm(slot * SLOT_SECONDS) for slot in slots]
        total, cumulative, made = sum(weights), 0.0, 0
        batch: list[dict[str, Any]] = []
        for slot, weight in zip(slots, weights, strict=True):
            cumulative += weight
            n = round(cumulative / total * count) - made
            rng = random.Random(f"{self.seed}:{SEED_WORKER}:{slot}")
            for seq in range(n):
                created = slot * SLOT_SECONDS + seq * SLOT_SECONDS / n
                batch.append(self._post(rng, created, SEED_WORKER + (seq >> 12), seq))
            made += n
            if len(batch) >= page_size:
                yield self.page_for(batch[::-1], now)
                batch = []
        if batch:
            yield self.page_for(batch[::-1], now)


class SampleTransport(BaseAdapter):
    """A requests adapter answering GET /2/tweets/search/recent from a SampleWorld."""

    def __init__(self, world: SampleWorld, clock: Callable[[], float]) -> None:
        super().__init__()
        self.world = world
        self.clock = clock
        self.requests = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Serve one search request with X's headers (rate-limit window of 450 per 15 minutes)."""
        self.requests += 1
        url = urlsplit(request.url or "")
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path != "/2/tweets/search/recent":
            return self._response(request, 404, {"title": "Not Found", "type": "about:blank", "status": 404})
        tag = params.get("query", "").split()[0].lstrip("#").lower() if params.get("query") else ""
        now = self.clock()
        until = params.get("next_token", "")
        posts, more = self.world.search(
            tag,
            now,
            since_id=int(params.get("since_id") or 0),
            until_id=int(until[3:]) if until.startswith("nt_") else None,
            max_results=max(10, min(100, int(params.get("max_results") or 10))),
        )
        extra = {"next_token": f"nt_{posts[-1]['id']}"} if more and posts else {}
        return self._response(request, 200, self.world.page_for(posts, now, **extra))

    def _response(self, request: requests.PreparedRequest, status: int, body: Any) -> requests.Response:
        now = int(self.clock())
        window_end = now - now % 900 + 900
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(
            {
                "content-type": "application/json",
                "x-rate-limit-limit": "450",
                "x-rate-limit-remaining": str(max(0, 450 - self.requests % 450)),
                "x-rate-limit-reset": str(window_end),
            }
        )
        response._content = json.dumps(body).encode()
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        """Nothing to release."""


def sample_session(world: SampleWorld, clock: Callable[[], float]) -> requests.Session:
    """A session whose requests to SAMPLE_BASE_URL are answered by the sample world."""
    session = requests.Session()
    session.mount(SAMPLE_BASE_URL + "/", SampleTransport(world, clock))
    return session


def make_user(seed: int, index: int) -> dict[str, Any]:
    """One deterministic user: language, name, free-text location and a Pareto follower count."""
    rng = random.Random(f"user:{seed}:{index}")
    lang = rng.choices(list(LANGS), list(LANGS.values()))[0]
    first = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
    last = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
    suffix = rng.choice(("", "_dev", "ops", "_sre", str(rng.randint(1, 99)), "io"))
    return {
        "id": str(1_000_000_000 + index * 7919),
        "username": f"{first}{last}{suffix}"[:15],
        "name": f"{first.title()} {last.title()}",
        "location": rng.choice(LOCATIONS[lang]),
        "lang": lang,
        "base_followers": int(40 * rng.paretovariate(1.1)),
    }


def compose_text(phrase: str, tags: list[str], rand: Callable[[], float]) -> tuple[str, list[dict[str, Any]]]:
    """Post text with hashtags in mixed case, and the matching entities.hashtags spans."""
    text = phrase
    hashtags = []
    for tag in tags:
        shown = (tag, tag.upper(), tag.title(), tag)[int(rand() * 4)]
        start = len(text) + 1
        text += f" #{shown}"
        hashtags.append({"start": start, "end": start + len(shown) + 1, "tag": shown})
    return text, hashtags


def rhythm(epoch_seconds: float) -> float:
    """Day/night activity: busiest around 14:00 UTC, quietest around 02:00 UTC."""
    hour = (epoch_seconds % 86400) / 3600
    return 0.35 + 0.65 * max(0.0, 1 - abs(hour - 14) / 12) ** 1.5


def _seconds(post_id: int) -> float:
    return ((post_id >> 22) + TWITTER_EPOCH_MS) / 1000


def _iso(ms: int) -> str:
    return timestamps.utc(ms / 1000, millis=True)
