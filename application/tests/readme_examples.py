"""README answer examples, checked against live answers: the shape always, the values where they are
deterministic.

An example is the `# …` comment right under a curl command: an optional status (`202 {…}`) and an
abbreviated JSON body where `…` stands for "more of the same" (array items, object members, or part of a
string). Keys shown must exist (and be all the keys unless the object has `…`); array items shown first
and last are matched against the answer's first and last items. A value is compared exactly where the
request alone determines it (DETERMINISTIC: echoed filters, hour labels, statuses, problem details; a `…`
inside such a string matches anything); elsewhere only its JSON type, null matching anything.
"""

from __future__ import annotations

import json
import re
from typing import Any

MORE = "\u2026"  # the ellipsis as written in README
MORE_MARK = "__readme_more__"
DETERMINISTIC = [
    re.compile(p)
    for p in (
        r"^meta\.(?!generated_at$|next_cursor$|totals\.).*",
        r"^data\.\*\.(hour|tag)$",
        r"^data\.\*\.status$",  # not POST /collect's data.status: a fast run may be over by the answer
        r"^(status|schema_version|expected_schema_version|type|title|detail)$",
        r"^invalid_params\.\*\.name$",
    )
]
EXAMPLE = re.compile(r"^\s*(?:(\d{3})\s+)?(\{.*\})[^{}]*$", re.DOTALL)


def parse_example(text: str) -> tuple[int | None, Any] | None:
    """(status or None, body with MORE_MARK where README elides) of an example; None if it has no JSON."""
    match = EXAMPLE.match(text)
    if match is None:
        return None
    status = int(match.group(1)) if match.group(1) else None
    return status, json.loads(_mark_elisions(match.group(2)))


def _mark_elisions(text: str) -> str:
    """`…` outside strings becomes an array item or an object member MORE_MARK, so the text is JSON."""
    out, stack, in_string, escaped = [], [], False, False
    for char in text:
        if in_string:
            in_string = not (char == '"' and not escaped)
            escaped = char == "\\" and not escaped
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}":
            stack.pop()
        elif char == MORE:
            char = f'"{MORE_MARK}"' + (":null" if stack and stack[-1] == "{" else "")
        out.append(char)
    return "".join(out)


def mismatches(example: Any, actual: Any, path: str = "") -> list[str]:
    """How `actual` differs from the README `example` (empty when it matches)."""
    if isinstance(example, dict):
        return _object(example, actual, path)
    if isinstance(example, list):
        return _array(example, actual, path)
    if any(p.match(path) for p in DETERMINISTIC):
        return (
            []
            if _same(example, actual)
            else [f"{path}: README shows {example!r}, the API answers {actual!r}"]
        )
    if example is None or actual is None or type(example) is type(actual):
        return []
    return [f"{path}: README shows a {type(example).__name__}, the API answers {actual!r}"]


def _object(example: dict, actual: Any, path: str) -> list[str]:
    if not isinstance(actual, dict):
        return [f"{path}: README shows an object, the API answers {actual!r}"]
    keys = [k for k in example if k != MORE_MARK]
    found = [f"{_join(path, k)}: missing from the answer" for k in keys if k not in actual]
    if MORE_MARK not in example and set(actual) - set(keys):
        found.append(
            f"{path}: README lists only {keys} (add … for the others: {sorted(set(actual) - set(keys))})"
        )
    for key in keys:
        if key in actual:
            found += mismatches(example[key], actual[key], _join(path, key))
    return found


def _array(example: list, actual: Any, path: str) -> list[str]:
    if not isinstance(actual, list):
        return [f"{path}: README shows an array, the API answers {actual!r}"]
    if MORE_MARK in example:
        cut = example.index(MORE_MARK)
        head, tail = example[:cut], example[cut + 1 :]
        if len(actual) < len(head) + len(tail):
            return [
                f"{path}: README shows at least {len(head) + len(tail)} items, the API answers {len(actual)}"
            ]
        pairs = list(zip(head, actual, strict=False)) + list(
            zip(tail, actual[len(actual) - len(tail) :], strict=True)
        )
    elif len(example) != len(actual):
        return [f"{path}: README shows {len(example)} items, the API answers {len(actual)}"]
    else:
        pairs = list(zip(example, actual, strict=True))
    item = _join(path, "*")
    return [problem for shown, answered in pairs for problem in mismatches(shown, answered, item)]


def _same(example: Any, actual: Any) -> bool:
    """Equal, or for a string with `…`, the shown parts in order."""
    if not (isinstance(example, str) and MORE in example and isinstance(actual, str)):
        return example == actual
    pattern = ".*".join(re.escape(part) for part in example.split(MORE))
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
