"""tagwatch: collect hashtag posts into SQLite and serve summaries."""
