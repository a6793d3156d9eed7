"""Schema 1: the schema of the release before Alembic, exactly.

On SQLite that release numbered its migrations in `PRAGMA user_version` (1, then 2); this revision applies
those of its statements a database does not have yet, so a database made by that release (user_version 2,
no alembic_version table) passes through unchanged and is recorded at 0001. PostgreSQL gets the same tables
with its own types (64-bit integers, identity columns, a plpgsql trigger) and byte-order ("C") collation,
so that text sorts as in SQLite.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LEGACY: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE users(id TEXT PRIMARY KEY, username TEXT, name TEXT, location TEXT,
            followers INTEGER NOT NULL DEFAULT 0, updated_at TEXT)""",
        """CREATE TABLE places(id TEXT PRIMARY KEY, full_name TEXT, country_code TEXT,
            country TEXT)""",
        """CREATE TABLE posts(id INTEGER PRIMARY KEY, created_at TEXT NOT NULL,
            created_ts INTEGER NOT NULL, text TEXT NOT NULL, lang TEXT, author_id TEXT,
            place_id TEXT, country TEXT, country_source TEXT, collected_at TEXT NOT NULL)""",
        "CREATE INDEX posts_by_author ON posts(author_id, id)",
        """CREATE TABLE post_tags(tag TEXT NOT NULL, post_id INTEGER NOT NULL,
            PRIMARY KEY(tag, post_id)) WITHOUT ROWID""",
        "CREATE INDEX post_tags_by_post ON post_tags(post_id)",
        """CREATE TABLE agg_quarter(tag TEXT NOT NULL, bucket INTEGER NOT NULL,
            posts INTEGER NOT NULL, PRIMARY KEY(tag, bucket)) WITHOUT ROWID""",
        """CREATE TABLE agg_breakdown(tag TEXT NOT NULL, lang TEXT NOT NULL, country TEXT NOT NULL,
            posts INTEGER NOT NULL, PRIMARY KEY(tag, lang, country)) WITHOUT ROWID""",
        """CREATE TABLE agg_user(user_id TEXT NOT NULL, tag TEXT NOT NULL, posts INTEGER NOT NULL,
            followers INTEGER NOT NULL, username TEXT, PRIMARY KEY(user_id, tag)) WITHOUT ROWID""",
        "CREATE INDEX agg_user_top ON agg_user(tag, followers DESC, username)",
        """CREATE TABLE agg_tag(tag TEXT PRIMARY KEY, posts INTEGER NOT NULL,
            newest_ts INTEGER NOT NULL)""",
        """CREATE TABLE tag_state(tag TEXT PRIMARY KEY, since_id TEXT, pending_since_id TEXT,
            pending_next_token TEXT, pending_newest_id TEXT, updated_at TEXT)""",
        """CREATE TABLE runs(id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL,
            finished_at TEXT, source TEXT NOT NULL, trigger TEXT NOT NULL, status TEXT NOT NULL,
            error TEXT)""",
        """CREATE TABLE run_tags(run_id INTEGER NOT NULL, tag TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0, posts_read INTEGER NOT NULL DEFAULT 0,
            posts_new INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending',
            error TEXT, PRIMARY KEY(run_id, tag))""",
        """CREATE TABLE lease(name TEXT PRIMARY KEY, run_id INTEGER, holder TEXT NOT NULL,
            expires_at REAL NOT NULL)""",
    ),
    (  # schema 2: lease holder process (fencing), posts waiting for their author or place,
        # run requests (POST /api/v1/collect) and the heartbeat of long-running collectors
        "ALTER TABLE lease ADD COLUMN host TEXT",
        "ALTER TABLE lease ADD COLUMN pid INTEGER",
        "ALTER TABLE posts ADD COLUMN country_pending INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX posts_country_pending ON posts(author_id, place_id) WHERE country_pending = 1",
        """CREATE TABLE run_requests(id INTEGER PRIMARY KEY AUTOINCREMENT, requested_at TEXT NOT NULL,
            requested_ts REAL NOT NULL, status TEXT NOT NULL DEFAULT 'pending', claimed_by TEXT,
            claimed_at TEXT, run_id INTEGER)""",
        # at most one open request: every open row has the same indexed value (1)
        """CREATE UNIQUE INDEX run_requests_one_open ON run_requests(status IN ('pending', 'claimed'))
            WHERE status IN ('pending', 'claimed')""",
        # the claimed request learns its run id in the transaction that creates the run
        """CREATE TRIGGER run_requests_link_run AFTER INSERT ON runs WHEN NEW.trigger = 'api' BEGIN
            UPDATE run_requests SET status = 'started', run_id = NEW.id WHERE status = 'claimed'; END""",
        """CREATE TABLE collectors(holder TEXT PRIMARY KEY, started_at TEXT NOT NULL,
            beat_ts REAL NOT NULL)""",
        # the post list's filters (GET /api/v1/posts) each use an index, newest first
        "CREATE INDEX IF NOT EXISTS users_by_username ON users(username COLLATE NOCASE)",
        "CREATE INDEX IF NOT EXISTS posts_by_lang ON posts(lang COLLATE NOCASE, id)",
        "CREATE INDEX IF NOT EXISTS posts_by_country ON posts(country, id)",
    ),
)


T = 'TEXT COLLATE "C"'
POSTGRESQL: tuple[str, ...] = (
    f"""CREATE TABLE users(id {T} PRIMARY KEY, username {T}, name {T}, location {T},
        followers BIGINT NOT NULL DEFAULT 0, updated_at {T})""",
    f"CREATE TABLE places(id {T} PRIMARY KEY, full_name {T}, country_code {T}, country {T})",
    f"""CREATE TABLE posts(id BIGINT PRIMARY KEY, created_at {T} NOT NULL, created_ts BIGINT NOT NULL,
        text {T} NOT NULL, lang {T}, author_id {T}, place_id {T}, country {T}, country_source {T},
        collected_at {T} NOT NULL, country_pending INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX posts_by_author ON posts(author_id, id)",
    f"CREATE TABLE post_tags(tag {T} NOT NULL, post_id BIGINT NOT NULL, PRIMARY KEY(tag, post_id))",
    "CREATE INDEX post_tags_by_post ON post_tags(post_id)",
    f"""CREATE TABLE agg_quarter(tag {T} NOT NULL, bucket BIGINT NOT NULL, posts BIGINT NOT NULL,
        PRIMARY KEY(tag, bucket))""",
    f"""CREATE TABLE agg_breakdown(tag {T} NOT NULL, lang {T} NOT NULL, country {T} NOT NULL,
        posts BIGINT NOT NULL, PRIMARY KEY(tag, lang, country))""",
    f"""CREATE TABLE agg_user(user_id {T} NOT NULL, tag {T} NOT NULL, posts BIGINT NOT NULL,
        followers BIGINT NOT NULL, username {T}, PRIMARY KEY(user_id, tag))""",
    "CREATE INDEX agg_user_top ON agg_user(tag, followers DESC, username)",
    f"CREATE TABLE agg_tag(tag {T} PRIMARY KEY, posts BIGINT NOT NULL, newest_ts BIGINT NOT NULL)",
    f"""CREATE TABLE tag_state(tag {T} PRIMARY KEY, since_id {T}, pending_since_id {T},
        pending_next_token {T}, pending_newest_id {T}, updated_at {T})""",
    f"""CREATE TABLE runs(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, started_at {T} NOT NULL,
        finished_at {T}, source {T} NOT NULL, trigger {T} NOT NULL, status {T} NOT NULL, error {T})""",
    f"""CREATE TABLE run_tags(run_id BIGINT NOT NULL, tag {T} NOT NULL, requests BIGINT NOT NULL DEFAULT 0,
        posts_read BIGINT NOT NULL DEFAULT 0, posts_new BIGINT NOT NULL DEFAULT 0,
        status {T} NOT NULL DEFAULT 'pending', error {T}, PRIMARY KEY(run_id, tag))""",
    f"""CREATE TABLE lease(name {T} PRIMARY KEY, run_id BIGINT, holder {T} NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL, host {T}, pid INTEGER)""",
    "CREATE INDEX posts_country_pending ON posts(author_id, place_id) WHERE country_pending = 1",
    f"""CREATE TABLE run_requests(id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        requested_at {T} NOT NULL, requested_ts DOUBLE PRECISION NOT NULL,
        status {T} NOT NULL DEFAULT 'pending', claimed_by {T}, claimed_at {T}, run_id BIGINT)""",
    """CREATE UNIQUE INDEX run_requests_one_open ON run_requests((status IN ('pending', 'claimed')))
        WHERE status IN ('pending', 'claimed')""",
    """CREATE FUNCTION run_requests_link_run() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE run_requests SET status = 'started', run_id = NEW.id WHERE status = 'claimed';
        RETURN NULL; END $$""",
    """CREATE TRIGGER run_requests_link_run AFTER INSERT ON runs FOR EACH ROW WHEN (NEW.trigger = 'api')
        EXECUTE FUNCTION run_requests_link_run()""",
    f"""CREATE TABLE collectors(holder {T} PRIMARY KEY, started_at {T} NOT NULL,
        beat_ts DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX users_by_username ON users(lower(username))",
    "CREATE INDEX posts_by_lang ON posts(lower(lang), id)",
    "CREATE INDEX posts_by_country ON posts(country, id)",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        for statement in POSTGRESQL:
            op.execute(statement)
        return
    version = bind.exec_driver_sql("PRAGMA user_version").scalar()
    for number, statements in enumerate(LEGACY[version:], start=version + 1):
        for statement in statements:
            op.execute(statement)
        op.execute(f"PRAGMA user_version = {number}")


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward (they never drop data)")
