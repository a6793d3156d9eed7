"""The shape every JSON answer shares: `{"data": …, "meta": {…, "generated_at": …}}`."""

from __future__ import annotations

from typing import Any

from tagwatch import timestamps


def envelope(data: Any, *, generated_at: float | None = None, **meta: Any) -> dict[str, Any]:
    """`data` with `meta` echoing the applied filters; `generated_at` is when the data was read."""
    return {"data": data, "meta": {**meta, "generated_at": timestamps.utc(generated_at)}}
