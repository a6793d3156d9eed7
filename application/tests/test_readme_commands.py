"""Every curl command in README.md runs against a real tagwatch, so the docs cannot drift from the code.

What counts as a command: each line of a fenced code block that starts with `curl ` (a `$ ` prompt and
backslash line continuations are allowed), and each inline code span that starts with `curl `. Only the curl
part runs (a `| jq .` or `&& …` after it is dropped); the command is split with shlex, never run by a shell.
Commands call tagwatch at `http://localhost:8000`, which is rewritten to the test server's port; they must be
literal (no `$VARIABLES`). The admin examples use the token README tells readers to set,
`TAGWATCH_ADMIN_TOKEN=change-me-admin-token`.

The `# …` comment right under a command is its answer, abbreviated: it is compared with the live answer, the
shape always and the values where the request determines them (tests/readme_examples.py says how).

The convention for examples that fail on purpose: a trailing comment on the same line,

    curl -s 'http://localhost:8000/api/v1/users/top?tag=nosuchtag'   # expect: 4xx

`# expect: 4xx` accepts any 4xx status, `# expect: 404` exactly that one, and `# expect: skip` marks a command
that needs more than tagwatch (e.g. the Docker stack) and is not run. A command without a marker must answer
2xx; one that does not call localhost:8000 and is not marked `skip` fails.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from processes import free_port, get, running, tagwatch_env, wait_for
from readme_examples import mismatches, parse_example

README = Path(__file__).resolve().parents[2] / "README.md"
README_ADMIN_TOKEN = "change-me-admin-token"  # README: `TAGWATCH_ADMIN_TOKEN=change-me-admin-token make run`
MIN_COMMANDS = 8  # README documents every endpoint with a curl example; fewer means they went missing
DOCUMENTED_BASE = re.compile(r"(?:https?://)?(?:localhost|127\.0\.0\.1):8000")
EXPECT = re.compile(r"#\s*expect:\s*(\S+)\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"`(curl\s[^`]+)`")
CURL_OPTIONS = ("--silent", "--show-error", "--max-time", "30", "--output", "body")
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<"}


@dataclass(frozen=True)
class Command:
    """One curl example: where it is, its text and the status it should get ("2xx", "4xx", "404", "skip")."""

    line: int
    text: str
    expect: str
    example: str = ""

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def readme_commands(text: str) -> list[Command]:
    """The curl commands in fenced code blocks and inline code spans of a Markdown text."""
    commands: list[Command] = []
    in_block, pending, start, answer = False, "", 0, False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            in_block, pending, answer = not in_block, "", False
            continue
        if not in_block:
            commands += [command(number, span) for span in INLINE.findall(line)]
            continue
        stripped = line.strip().removeprefix("$ ")
        if answer and stripped.startswith("#"):  # the command's answer, as README shows it
            last = commands[-1]
            commands[-1] = Command(
                last.line, last.text, last.expect, f"{last.example} {stripped[1:].strip()}"
            )
            continue
        answer = False
        if not pending and not stripped.startswith("curl "):
            continue
        start = start if pending else number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        commands.append(command(start, pending + stripped))
        pending, answer = "", True
    return commands


def command(line: int, text: str) -> Command:
    """A Command with its `# expect:` marker read (default 2xx)."""
    marker = EXPECT.search(text)
    return Command(line, text, marker.group(1).lower() if marker else "2xx")


def curl_args(text: str) -> list[str]:
    """The curl part of a command line as argv: shlex-split, comment and any pipeline after it dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    args = []
    for token in lexer:
        if token in SHELL_OPERATORS:
            break
        args.append(token)
    return args


def status_matches(status: int, expect: str) -> bool:
    """Whether `status` is what a marker ("2xx", "4xx", "409", …) expects."""
    pattern = expect.replace("x", "[0-9]")
    return re.fullmatch(pattern, str(status)) is not None


COMMANDS = readme_commands(README.read_text(encoding="utf-8")) if README.exists() else []


def test_readme_answers_parse():
    shown = [c for c in COMMANDS if c.example]
    assert len(shown) >= MIN_COMMANDS
    for example in shown:
        assert parse_example(example.example) is not None, f"{example}: cannot read its answer"


def test_readme_has_curl_examples_for_the_api():
    assert README.exists(), "README.md is missing"
    assert len(COMMANDS) >= MIN_COMMANDS, (
        f"README.md has {len(COMMANDS)} curl commands, expected ≥ {MIN_COMMANDS}"
    )
    markers = {c.expect for c in COMMANDS}
    assert all(re.fullmatch(r"[1-5][0-9x]{2}|skip", m) for m in markers), markers


def newest_run_status(base: str) -> str | None:
    """Status of the newest collection run, None when there is none."""
    status, body = get(base + "/api/v1/runs?limit=1")
    runs = json.loads(body)["data"] if status == 200 else []
    return runs[0]["status"] if runs else None


def wait_while_running(base: str, timeout: float = 60.0) -> None:
    """Until the newest run has finished (bounded)."""
    deadline = time.monotonic() + timeout
    while newest_run_status(base) in (None, "running"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no finished collection run within {timeout} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def tagwatch_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`tagwatch run` (API + collector, sample data, README's admin token) after its first finished run."""
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed; the README examples need it")
    tmp = tmp_path_factory.mktemp("readme")
    port = free_port()
    env = tagwatch_env(
        tmp / "tagwatch.db",
        TAGWATCH_SOURCE="sample",
        TAGWATCH_ADMIN_TOKEN=README_ADMIN_TOKEN,
        PORT=str(port),
        TAGWATCH_METRICS_PORT="0",
    )
    with running([sys.executable, "-m", "tagwatch", "run"], env, tmp / "tagwatch.log"):
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/readyz", timeout=40)
        wait_while_running(base)  # else README's POST /api/v1/collect would meet the first run (409)
        yield base
        # a run the README's POST started lives in its own session: let it finish before the DB goes
        wait_while_running(base)


@pytest.mark.slow
@pytest.mark.parametrize("example", COMMANDS, ids=str)
def test_readme_curl_command_answers_as_documented(example: Command, tagwatch_base: str, tmp_path: Path):
    if example.expect == "skip":
        pytest.skip(f"{example} is marked `# expect: skip`")
    assert DOCUMENTED_BASE.search(example.text), (
        f"{example} does not call http://localhost:8000: {example.text}"
    )
    args = curl_args(DOCUMENTED_BASE.sub(tagwatch_base, example.text))
    assert args[0] == "curl", example.text
    result = subprocess.run(
        [shutil.which("curl") or "curl", *args[1:], *CURL_OPTIONS, "--write-out", "\n%{http_code}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    status = int(result.stdout.rsplit("\n", 1)[-1] or 0)
    hint = " (mark an intended error with `# expect: 4xx`)" if example.expect == "2xx" else ""
    assert status_matches(status, example.expect), (
        f"{example}: `{example.text}` answered {status}, expected {example.expect}{hint} {result.stderr}"
    )
    shown = parse_example(example.example) if example.example else None
    if shown is not None:
        shown_status, shown_body = shown
        assert shown_status in (None, status), f"{example}: README shows status {shown_status}, got {status}"
        differences = mismatches(shown_body, json.loads((tmp_path / "body").read_text()))
        assert differences == [], f"{example}: README's answer differs from the live one: {differences}"
