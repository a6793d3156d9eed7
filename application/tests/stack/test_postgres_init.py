"""postgres/init/10-app-role.sh, run for real against the local PostgreSQL server.

The official image runs the script once, on an empty volume, as the superuser with the service's
environment. Here it runs with psql against the server on 127.0.0.1 (trust authentication) in a
database made for the test, which is dropped afterwards with the role. The test checks that the
app's role exists with the generated password, is no superuser and owns its database and schema.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest
from compose_model import REPO

SCRIPT = REPO / "postgres" / "init" / "10-app-role.sh"
HOST = "127.0.0.1"


def psql(sql: str, user: str = "postgres", database: str = "postgres") -> subprocess.CompletedProcess:
    args = ["psql", "--no-psqlrc", "-X", "-At", "-h", HOST, "-U", user, "-d", database, "-c", sql]
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def server() -> None:
    if shutil.which("psql") is None or psql("select 1").returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no PostgreSQL server answers on {HOST}:5432 as postgres")
        pytest.skip(f"no PostgreSQL server on {HOST}:5432 (the postgres profile's init script is not run)")


@pytest.fixture
def database(server: None):
    name, role = f"tw_init_{secrets.token_hex(4)}", f"tw_app_{secrets.token_hex(4)}"
    assert psql(f'create database "{name}"').returncode == 0
    yield name, role
    psql(f'drop database if exists "{name}" with (force)')
    psql(f'drop role if exists "{role}"')


def run_script(database: str, role: str, password: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PGHOST": HOST,
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": database,
        "POSTGRES_APP_USER": role,
        "POSTGRES_APP_PASSWORD": password,
    }
    return subprocess.run(
        ["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_creates_the_app_role_owning_its_database_and_no_superuser(database: tuple[str, str]) -> None:
    name, role = database
    password = secrets.token_urlsafe(24)

    result = run_script(name, role, password)

    assert result.returncode == 0, result.stderr
    attributes = psql(
        f"select rolsuper, rolcreatedb, rolcreaterole, rolcanlogin from pg_roles where rolname = '{role}'"
    )
    assert attributes.stdout.strip() == "f|f|f|t"
    assert (
        psql(f"select pg_get_userbyid(datdba) from pg_database where datname = '{name}'").stdout.strip()
        == role
    )
    stored = psql(f"select rolpassword from pg_authid where rolname = '{role}'").stdout.strip()
    assert stored.startswith("SCRAM-SHA-256$") and password not in stored
    # The role can create its tables (the migrations) in its own database.
    created = psql("create table schema_probe (id int); select 'ok'", user=role, database=name)
    assert created.stdout.strip().endswith("ok"), created.stderr
    assert password not in result.stdout + result.stderr


def test_refuses_to_run_without_the_app_password(database: tuple[str, str]) -> None:
    name, role = database
    result = run_script(name, role, "")
    assert result.returncode != 0
    assert psql(f"select count(*) from pg_roles where rolname = '{role}'").stdout.strip() == "0"


def test_passes_no_secret_on_a_command_line() -> None:
    # psql reads the names and the password with \getenv; only the superuser's name is an argument.
    text = SCRIPT.read_text()
    (command,) = [line for line in text.splitlines() if line.startswith("psql ")]
    assert "PASSWORD" not in command
    assert "\\getenv app_password POSTGRES_APP_PASSWORD" in text
