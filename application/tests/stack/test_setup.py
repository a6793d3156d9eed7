"""setup/elasticsearch.sh and setup/kibana.sh, run for real (bash + curl) against scripted fakes.

The fakes (elastic_fakes.py) replay the documented start-up sequences: connection refused, 503
"state not recovered", 401 while `.security` recovers, an incomplete user list, a 5xx on one
write; Kibana 503, then a long "degraded". Deadlines and the poll interval come from the
environment, so every run takes well under a second or two. A `curl` wrapper on PATH records each
command line, so the tests also see that no password is ever passed as an argument.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from elastic_fakes import Fake, FakeElasticsearch, FakeKibana

REPO = Path(__file__).resolve().parents[3]
ES_SCRIPT = REPO / "setup" / "elasticsearch.sh"
KIBANA_SCRIPT = REPO / "setup" / "kibana.sh"
ROLES_DIR = REPO / "setup" / "roles"
KIBANA_DIR = REPO / "kibana"

PASSWORDS = {
    "ELASTIC_PASSWORD": "elastic-Secret-0123456789",
    "KIBANA_SYSTEM_PASSWORD": 'kibana "quoted" \\ Secret-0123',
    "FILEBEAT_INTERNAL_PASSWORD": "filebeat-Secret-0123456789",
    "METRICBEAT_INTERNAL_PASSWORD": "metricbeat-Secret-012345678",
}
ES_PASSWORDS = tuple(PASSWORDS)
FAST = {"SETUP_POLL_SECONDS": "0.05", "ES_SETUP_TIMEOUT_SECONDS": "20", "KIBANA_SETUP_TIMEOUT_SECONDS": "20"}
# Documented writer privileges ("Grant privileges and roles needed for publishing", Beats 8.19).
WRITER_CLUSTER = ["monitor", "read_ilm"]
WRITER_INDICES = ["create_doc", "auto_configure"]

pytestmark = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl"
)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    curl_argv: str
    seconds: float


@pytest.fixture
def fakes():
    started: list[Fake] = []

    def make(kind: type[Fake], *args, **kwargs) -> Fake:
        fake = kind(*args, **kwargs)
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., Run]:
    """run(script, fake, start_on=...) runs a setup script pointed at `fake`.

    The fake starts listening before the script, or, with `start_on`, once the script has logged a
    line containing that text (so the script first meets a refused connection)."""
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    argv_log = tmp_path / "curl-argv.log"
    wrapper = wrapper_dir / "curl"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>"{argv_log}"\nexec {shutil.which("curl")} "$@"\n')
    wrapper.chmod(0o755)

    def run_script(script: Path, fake: Fake, start_on: str | None = None, **overrides: str) -> Run:
        env = {
            "PATH": f"{wrapper_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ELASTICSEARCH_URL": fake.url,
            "KIBANA_URL": fake.url,
            "SAVED_OBJECTS_DIR": str(KIBANA_DIR),
            **FAST,
            **PASSWORDS,
            **overrides,
        }
        argv_log.write_text("")
        if start_on is None:
            fake.start()
        began = time.monotonic()
        proc = subprocess.Popen(
            ["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        watchdog = threading.Timer(60, proc.kill)
        watchdog.start()
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if start_on is not None and start_on in line and fake.server is None:
                fake.start()
        stderr = proc.stderr.read()
        returncode = proc.wait()
        watchdog.cancel()
        result = Run(returncode, "".join(lines), stderr, argv_log.read_text(), time.monotonic() - began)
        secrets = [value for name, value in env.items() if name in PASSWORDS and len(value) >= 16]
        for secret in secrets:
            assert secret not in result.stdout + result.stderr, "a password was printed"
            assert secret not in result.curl_argv, "a password was passed on curl's command line"
        return result

    return run_script


def writes(fake: Fake) -> list[tuple[str, str, bytes]]:
    return [(c.method, c.path, c.body) for c in fake.calls if c.method != "GET"]


def wait_lines(result: Run) -> list[tuple[str, str]]:
    """(what, reason) of each "waiting for WHAT: REASON" line the script logged."""
    return re.findall(r"waiting for ([^:]+): (.*)", result.stdout)


def error_line(result: Run) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one error line, got {lines!r}"
    return lines[0]


# ---- Elasticsearch -------------------------------------------------------------------------------


def test_elasticsearch_setup_converges_through_the_start_up_sequence(fakes, run) -> None:
    es = fakes(
        FakeElasticsearch,
        PASSWORDS["ELASTIC_PASSWORD"],
        not_recovered=2,
        security_recovering=3,
        users_unlisted=2,
        fail_writes={"PUT /_security/role/filebeat_writer": 1},
    )
    result = run(ES_SCRIPT, es, start_on="no answer")

    assert result.returncode == 0, result.stderr
    waits = wait_lines(result)
    assert [reason[:8] for _, reason in waits] == ["no answe", "HTTP 503", "HTTP 401", "the buil", "HTTP 503"]
    assert "state not recovered" in waits[1][1]
    assert waits[4][0] == "role filebeat_writer"
    assert es.builtin_passwords == {"kibana_system": PASSWORDS["KIBANA_SYSTEM_PASSWORD"]}
    assert es.roles == {path.stem: json.loads(path.read_text()) for path in ROLES_DIR.glob("*.json")}
    assert [c.path for c in es.calls].count("/_security/role/filebeat_writer") == 2
    for beat in ("filebeat", "metricbeat"):
        user = es.users[f"{beat}_internal"]
        assert user["roles"] == [f"{beat}_writer"]
        assert user["password"] == PASSWORDS[f"{beat.upper()}_INTERNAL_PASSWORD"]
    assert set(es.users) == {"filebeat_internal", "metricbeat_internal"}
    assert result.stdout.rstrip().endswith("[setup-elasticsearch] done")


def test_elasticsearch_setup_waits_for_health_and_users_before_any_write(fakes, run) -> None:
    es = fakes(FakeElasticsearch, PASSWORDS["ELASTIC_PASSWORD"], users_unlisted=3)
    assert run(ES_SCRIPT, es).returncode == 0
    paths = [(c.method, c.path.split("?")[0]) for c in es.calls]
    first_write = next(i for i, (method, _) in enumerate(paths) if method != "GET")
    assert paths[0] == ("GET", "/_cluster/health")
    assert "wait_for_status=yellow" in es.calls[0].path
    assert paths[first_write - 1] == ("GET", "/_security/user")
    assert paths[:first_write].count(("GET", "/_security/user")) == 4


def test_elasticsearch_setup_is_idempotent(fakes, run) -> None:
    es = fakes(FakeElasticsearch, PASSWORDS["ELASTIC_PASSWORD"])
    assert run(ES_SCRIPT, es).returncode == 0
    state = (dict(es.roles), dict(es.users), dict(es.builtin_passwords))
    first = writes(es)
    es.calls.clear()

    second_run = run(ES_SCRIPT, es)

    assert second_run.returncode == 0, second_run.stderr
    assert (es.roles, es.users, es.builtin_passwords) == state
    assert writes(es) == first


def test_writer_roles_hold_only_the_documented_publishing_privileges() -> None:
    for beat in ("filebeat", "metricbeat"):
        role = json.loads((ROLES_DIR / f"{beat}_writer.json").read_text())
        assert role == {
            "cluster": WRITER_CLUSTER,
            "indices": [{"names": [f"{beat}-*"], "privileges": WRITER_INDICES}],
        }


def test_elasticsearch_setup_gives_up_at_its_deadline_with_one_line(fakes, run) -> None:
    es = fakes(FakeElasticsearch, PASSWORDS["ELASTIC_PASSWORD"], not_recovered=10**9)
    result = run(ES_SCRIPT, es, ES_SETUP_TIMEOUT_SECONDS="1")

    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith("[setup-elasticsearch] ERROR: gave up on a yellow or green cluster after 1s")
    assert "HTTP 503" in line and "state not recovered" in line
    assert result.seconds < 5
    assert not writes(es)


def test_elasticsearch_setup_blames_the_password_when_401_lasts(fakes, run) -> None:
    es = fakes(FakeElasticsearch, "the-password-the-data-volume-kept")
    result = run(ES_SCRIPT, es, ES_SETUP_TIMEOUT_SECONDS="1")

    assert result.returncode == 1
    line = error_line(result)
    assert "HTTP 401" in line
    assert "ELASTIC_PASSWORD in .env is not the password stored in the elasticsearch-data volume" in line


def test_elasticsearch_setup_gives_up_when_nothing_listens(fakes, run) -> None:
    es = fakes(FakeElasticsearch, PASSWORDS["ELASTIC_PASSWORD"])
    result = run(ES_SCRIPT, es, start_on="never logged", ES_SETUP_TIMEOUT_SECONDS="1")

    assert result.returncode == 1
    assert "no answer (connection refused or timed out)" in error_line(result)


def test_elasticsearch_setup_stops_at_once_on_an_answer_no_retry_fixes(fakes, run) -> None:
    es = fakes(
        FakeElasticsearch, PASSWORDS["ELASTIC_PASSWORD"], reject={"PUT /_security/role/metricbeat_writer"}
    )
    result = run(ES_SCRIPT, es)

    assert result.returncode == 1
    line = error_line(result)
    assert "PUT" in line and "/_security/role/metricbeat_writer failed: HTTP 400" in line
    assert [c.path for c in es.calls].count("/_security/role/metricbeat_writer") == 1


@pytest.mark.parametrize("variable", ES_PASSWORDS)
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("changeme", "is 'changeme'"),
        ("ChangeMe", "is 'changeme'"),
        ("fifteen-chars-x", "is shorter than 16 characters"),
    ],
)
def test_elasticsearch_setup_refuses_weak_passwords(
    fakes, run, variable: str, value: str, reason: str
) -> None:
    es = fakes(FakeElasticsearch, PASSWORDS["ELASTIC_PASSWORD"])
    result = run(ES_SCRIPT, es, **{variable: value})

    assert result.returncode == 1
    assert error_line(result).startswith(f"[setup-elasticsearch] ERROR: {variable} {reason}")
    assert es.calls == []


def test_elasticsearch_setup_accepts_a_password_of_exactly_16_characters(fakes, run) -> None:
    es = fakes(FakeElasticsearch, PASSWORDS["ELASTIC_PASSWORD"])
    assert run(ES_SCRIPT, es, FILEBEAT_INTERNAL_PASSWORD="sixteen-chars-xy").returncode == 0
    assert es.users["filebeat_internal"]["password"] == "sixteen-chars-xy"


# ---- Kibana ------------------------------------------------------------------------------------


def saved_objects() -> dict[tuple[str, str], dict]:
    objects = {}
    for path in sorted(KIBANA_DIR.glob("*.ndjson")):
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            objects[obj["type"], obj["id"]] = obj
    return objects


def test_kibana_setup_imports_while_kibana_stays_degraded(fakes, run) -> None:
    kibana = fakes(
        FakeKibana,
        PASSWORDS["ELASTIC_PASSWORD"],
        levels=["unavailable", "unavailable"],
        then="degraded",
        fail_writes={"POST /api/saved_objects/_import": 1},
    )
    result = run(KIBANA_SCRIPT, kibana, start_on="no answer")

    assert result.returncode == 0, result.stderr
    waits = wait_lines(result)
    assert [(what, reason[:8]) for what, reason in waits] == [
        ("Kibana", "no answe"),
        ("Kibana", "HTTP 503"),
        ("the import of tagwatch-logs.ndjson", "HTTP 503"),
    ]
    assert "Kibana answers (level degraded)" in result.stdout
    assert kibana.objects == saved_objects()
    assert kibana.imported_while == ["degraded"] * len(list(KIBANA_DIR.glob("*.ndjson")))
    assert any(c.path.startswith("/api/saved_objects/_find") for c in kibana.calls)
    assert result.stdout.rstrip().endswith("[setup-kibana] done")


def test_kibana_setup_imports_each_file_with_overwrite(fakes, run) -> None:
    kibana = fakes(FakeKibana, PASSWORDS["ELASTIC_PASSWORD"], levels=["unavailable", "degraded"])
    assert run(KIBANA_SCRIPT, kibana).returncode == 0
    imports = [c for c in kibana.calls if c.path.startswith("/api/saved_objects/_import")]
    ndjson_files = sorted(KIBANA_DIR.glob("*.ndjson"))
    assert [c.path for c in imports] == ["/api/saved_objects/_import?overwrite=true"] * len(ndjson_files)
    for path in ndjson_files:
        assert any(path.read_bytes() in c.body for c in imports), path.name


def test_kibana_setup_is_idempotent(fakes, run) -> None:
    kibana = fakes(FakeKibana, PASSWORDS["ELASTIC_PASSWORD"])
    assert run(KIBANA_SCRIPT, kibana).returncode == 0
    first = dict(kibana.objects)
    result = run(KIBANA_SCRIPT, kibana)
    assert result.returncode == 0, result.stderr
    assert kibana.objects == first == saved_objects()


def test_kibana_setup_gives_up_at_its_deadline_with_one_line(fakes, run) -> None:
    kibana = fakes(FakeKibana, PASSWORDS["ELASTIC_PASSWORD"], then="unavailable")
    result = run(KIBANA_SCRIPT, kibana, KIBANA_SETUP_TIMEOUT_SECONDS="1")

    assert result.returncode == 1
    line = error_line(result)
    assert line.startswith("[setup-kibana] ERROR: gave up on Kibana after 1s; last answer: HTTP 503")
    assert result.seconds < 5
    assert not any(c.path.startswith("/api/saved_objects") for c in kibana.calls)


def test_kibana_setup_fails_when_the_import_reports_errors(fakes, run) -> None:
    kibana = fakes(FakeKibana, PASSWORDS["ELASTIC_PASSWORD"], import_errors=True)
    result = run(KIBANA_SCRIPT, kibana)

    assert result.returncode == 1
    assert "reported errors" in error_line(result)


@pytest.mark.parametrize("value", ["", "changeme", "short-password"])
def test_kibana_setup_refuses_a_weak_elastic_password(fakes, run, value: str) -> None:
    kibana = fakes(FakeKibana, PASSWORDS["ELASTIC_PASSWORD"])
    result = run(KIBANA_SCRIPT, kibana, ELASTIC_PASSWORD=value)

    assert result.returncode == 1
    assert error_line(result).startswith("[setup-kibana] ERROR: ELASTIC_PASSWORD ")
    assert kibana.calls == []


def test_kibana_setup_needs_only_the_elastic_password(fakes, run) -> None:
    kibana = fakes(FakeKibana, PASSWORDS["ELASTIC_PASSWORD"])
    others = {name: "" for name in PASSWORDS if name != "ELASTIC_PASSWORD"}
    assert run(KIBANA_SCRIPT, kibana, **others).returncode == 0
