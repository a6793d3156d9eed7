"""Schema 2: a data_version counter every write transaction bumps (PostgreSQL has no PRAGMA data_version),
and case-insensitive indexes both backends use (lower() instead of SQLite's COLLATE NOCASE).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    counter = "INTEGER" if sqlite else "BIGINT"
    op.execute(
        f"CREATE TABLE data_version(id INTEGER PRIMARY KEY CHECK (id = 1), version {counter} NOT NULL)"
    )
    op.execute("INSERT INTO data_version(id, version) VALUES (1, 0)")
    if sqlite:
        op.execute("DROP INDEX IF EXISTS users_by_username")
        op.execute("DROP INDEX IF EXISTS posts_by_lang")
        op.execute("CREATE INDEX users_by_username ON users(lower(username))")
        op.execute("CREATE INDEX posts_by_lang ON posts(lower(lang), id)")


def downgrade() -> None:
    raise NotImplementedError("migrations only go forward (they never drop data)")
