"""Settings on a test database of either backend: a SQLite file path or a PostgreSQL URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tagwatch.config import Settings


def settings_on(db: Path | str, **kwargs: Any) -> Settings:
    """Settings whose store is `db` (a file path, or a postgresql:// URL as the db_path fixture gives)."""
    if str(db).startswith("postgresql"):
        return Settings(database_url=str(db), **kwargs)
    return Settings(db_path=str(db), **kwargs)
