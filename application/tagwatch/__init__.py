"""tagwatch: collect hashtag posts into SQLite (or PostgreSQL) and serve summaries over a REST API."""

__version__ = "0.1.0"
