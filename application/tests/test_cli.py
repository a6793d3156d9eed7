"""The command line: init-db and seed through the normal store path."""

from __future__ import annotations

import subprocess
import sys

from tagwatch import store


def run(*args: str, db) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "TAGWATCH_DB": str(db), "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "tagwatch", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_seed_stores_exactly_n_posts_with_matching_aggregates(tmp_path):
    db = tmp_path / "seed.db"
    done = run("seed", "--posts", "3000", db=db)
    assert done.returncode == 0, done.stderr
    conn = store.connect(db)
    assert conn.execute("SELECT count(*) FROM posts").fetchone()[0] == 3000
    assert conn.execute("SELECT posts FROM agg_tag WHERE tag = ''").fetchone()[0] == 3000
    assert conn.execute("SELECT sum(posts) FROM agg_quarter WHERE tag = ''").fetchone()[0] == 3000
    per_tag = dict(conn.execute("SELECT tag, count(*) FROM post_tags GROUP BY tag").fetchall())
    assert per_tag == dict(conn.execute("SELECT tag, posts FROM agg_tag WHERE tag != ''").fetchall())
    assert conn.execute("SELECT count(*) FROM users WHERE username IS NULL").fetchone()[0] == 0


def test_cli_init_db_is_idempotent(tmp_path):
    db = tmp_path / "nested" / "t.db"
    assert run("init-db", db=db).returncode == 0
    assert run("init-db", db=db).returncode == 0
    assert store.schema_version(store.connect(db)) == store.SCHEMA_VERSION
