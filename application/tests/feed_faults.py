"""What every feed-source fault test checks about the log: actions, no traceback, no secret anywhere.

A secret is looked for in each record's whole `__dict__` (message, arguments, `extra` fields), not
only in the formatted line, so a token passed as a field would be caught too.
"""

from __future__ import annotations

import logging


def actions(records: list[logging.LogRecord]) -> list[str | None]:
    """The `event.action` of each record."""
    return [getattr(r, "event.action", None) for r in records]


def assert_clean(records: list[logging.LogRecord], *secrets: str, errors: tuple[BaseException, ...] = ()):
    """No record carries a traceback; no secret is in any record, any error message or its repr."""
    assert not [r.getMessage() for r in records if r.exc_info], "a source fault must not log a traceback"
    texts = [f"{r.getMessage()} {vars(r)!r}" for r in records]
    texts += [f"{e} {e!r} {e.args!r}" for e in errors]
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"a secret leaked: {leaks[:1]}"
