"""Schema 3: every post, user, cursor, run figure and aggregate row belongs to a source.

A post's identity becomes (source, source_key): X's post id, Mastodon's status `uri`, Bluesky's at:// URI;
`posts.id` stays the stored id the post list pages by. Users are keyed by (source, id). Tag cursors and
run figures are kept per (source, tag); `run_sources` says how each source's part of a run ended; every
aggregate table gains a `source` column, so a `source` filter is answered from aggregates too.

Existing rows move in place (nothing is dropped): a post takes the source of the run whose window holds
its `collected_at` (the last run started at or before it); a post collected before any run took the
latest run's source, or `sample` when there never was a run (only `tagwatch seed` writes outside runs,
and it writes sample posts). A user is kept once per source that has posts by them (else the latest
run's source); cursors take the latest run's source; run figures take their run's source. The
aggregates are rebuilt from the posts with a plain GROUP BY (they equal it by construction). Tables
whose primary key changes are rebuilt (copy, drop the old, rename: SQLite cannot alter a primary key).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: the source of data that no run wrote: sample when there never was a run, else the latest run's
FALLBACK = "coalesce((SELECT source FROM runs ORDER BY id DESC LIMIT 1), 'sample')"
POST_SOURCE = (
    "coalesce((SELECT r.source FROM runs r WHERE r.started_at <= posts.collected_at"
    f" ORDER BY r.id DESC LIMIT 1), {FALLBACK})"
)
#: each post once under every tag it has and once under '' (all tags), as the write path counts them
POST_TAG_ROWS = (
    "SELECT p.source, pt.tag, p.created_ts, p.author_id, p.lang, p.country FROM posts p"
    " JOIN post_tags pt ON pt.post_id = p.id"
    " UNION ALL SELECT source, '', created_ts, author_id, lang, country FROM posts"
)


def tables(t: str, i: str, wr: str) -> tuple[tuple[str, str, str], ...]:
    """(table, new definition, how its rows are filled) for the tables rebuilt with a source column."""
    return (
        (
            "users",
            f"""(source {t} NOT NULL, id {t} NOT NULL, username {t}, name {t}, location {t},
                followers {i} NOT NULL DEFAULT 0, updated_at {t}, PRIMARY KEY(source, id))""",
            "SELECT DISTINCT p.source, u.id, u.username, u.name, u.location, u.followers, u.updated_at"
            " FROM users u JOIN posts p ON p.author_id = u.id"
            f" UNION SELECT {FALLBACK}, u.id, u.username, u.name, u.location, u.followers, u.updated_at"
            " FROM users u WHERE NOT EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id)",
        ),
        (
            "agg_quarter",
            f"""(tag {t} NOT NULL, bucket {i} NOT NULL, source {t} NOT NULL, posts {i} NOT NULL,
                PRIMARY KEY(tag, bucket, source)){wr}""",
            f"SELECT tag, created_ts / 900, source, count(*) FROM ({POST_TAG_ROWS}) x"
            " GROUP BY tag, created_ts / 900, source",
        ),
        (
            "agg_breakdown",
            f"""(tag {t} NOT NULL, lang {t} NOT NULL, country {t} NOT NULL, source {t} NOT NULL,
                posts {i} NOT NULL, PRIMARY KEY(tag, lang, country, source)){wr}""",
            "SELECT tag, coalesce(lang, ''), coalesce(country, ''), source, count(*)"
            f" FROM ({POST_TAG_ROWS}) x WHERE tag != ''"
            " GROUP BY tag, coalesce(lang, ''), coalesce(country, ''), source",
        ),
        (
            "agg_user",
            f"""(source {t} NOT NULL, user_id {t} NOT NULL, tag {t} NOT NULL, posts {i} NOT NULL,
                followers {i} NOT NULL, username {t}, PRIMARY KEY(source, user_id, tag)){wr}""",
            "SELECT x.source, x.author_id, x.tag, count(*), max(u.followers), max(u.username)"
            f" FROM ({POST_TAG_ROWS}) x JOIN users_v3 u ON u.source = x.source AND u.id = x.author_id"
            " GROUP BY x.source, x.author_id, x.tag",
        ),
        (
            "agg_tag",
            f"""(tag {t} NOT NULL, source {t} NOT NULL, posts {i} NOT NULL, newest_ts {i} NOT NULL,
                PRIMARY KEY(tag, source))""",
            f"SELECT tag, source, count(*), max(created_ts) FROM ({POST_TAG_ROWS}) x GROUP BY tag, source",
        ),
        (
            "tag_state",
            f"""(source {t} NOT NULL, tag {t} NOT NULL, since_id {t}, pending_since_id {t},
                pending_next_token {t}, pending_newest_id {t}, cursor {t}, updated_at {t},
                PRIMARY KEY(source, tag))""",
            f"SELECT {FALLBACK}, tag, since_id, pending_since_id, pending_next_token, pending_newest_id,"
            " NULL, updated_at FROM tag_state",
        ),
        (
            "run_tags",
            f"""(run_id {i} NOT NULL, source {t} NOT NULL, tag {t} NOT NULL,
                requests {i} NOT NULL DEFAULT 0, posts_read {i} NOT NULL DEFAULT 0,
                posts_new {i} NOT NULL DEFAULT 0, status {t} NOT NULL DEFAULT 'pending', error {t},
                PRIMARY KEY(run_id, source, tag))""",
            "SELECT rt.run_id, r.source, rt.tag, rt.requests, rt.posts_read, rt.posts_new, rt.status,"
            " rt.error FROM run_tags rt JOIN runs r ON r.id = rt.run_id",
        ),
    )


INDEXES = (
    "CREATE INDEX users_by_username ON users(lower(username))",
    "CREATE INDEX agg_user_top ON agg_user(tag, followers DESC, username)",
    "CREATE UNIQUE INDEX posts_identity ON posts(source, source_key)",
    "CREATE INDEX posts_by_source ON posts(source, id)",
    "DROP INDEX posts_by_author",
    "CREATE INDEX posts_by_author ON posts(author_id, source, id)",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    t, i, wr = ("TEXT", "INTEGER", " WITHOUT ROWID") if sqlite else ('TEXT COLLATE "C"', "BIGINT", "")
    # posts keep their primary key (the stored id): only new columns, filled in place
    op.execute(f"ALTER TABLE posts ADD COLUMN source {t} NOT NULL DEFAULT 'x'")
    op.execute(f"ALTER TABLE posts ADD COLUMN source_key {t}")
    op.execute(f"UPDATE posts SET source = {POST_SOURCE}, source_key = CAST(id AS TEXT)")
    op.execute(
        f"""CREATE TABLE run_sources(run_id {i} NOT NULL, source {t} NOT NULL, status {t} NOT NULL,
            error {t}, PRIMARY KEY(run_id, source))"""
    )
    op.execute(
        "INSERT INTO run_sources(run_id, source, status, error) SELECT id, source, status, error FROM runs"
    )
    for table, definition, rows in tables(t, i, wr):
        op.execute(f"CREATE TABLE {table}_v3{definition}")
        op.execute(f"INSERT INTO {table}_v3 {rows}")
    for table, _, _ in tables(t, i, wr):
        op.execute(f"DROP TABLE {table}")
        op.execute(f"ALTER TABLE {table}_v3 RENAME TO {table}")
    for statement in INDEXES:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward (they never drop data)")
