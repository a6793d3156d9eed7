#!/usr/bin/env python3
"""Create .env from .env.example with strong random secrets; never overwrite an existing .env.

`make env` and `make up` run this. Each password is 32 URL-safe characters and each Kibana key
64 hex digits, from Python's `secrets`. The new file is readable by its owner only. Secrets are
never printed: the script says where the elastic password is. When .env already exists it is
left as it is, and the script exits 1 naming any required setting there that is missing (an
.env made before the setting was added to .env.example), empty, still "changeme", shorter than
the setup scripts accept, or, for a password that goes into a URL, not URL-safe. With
--add-missing it appends the settings the existing .env lacks (generated secrets, the example's
other values) and changes no line it already has.

    python3 scripts/generate-env.py [--example .env.example] [--output .env] [--add-missing]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASSWORDS = (
    "ELASTIC_PASSWORD",
    "KIBANA_SYSTEM_PASSWORD",
    "FILEBEAT_INTERNAL_PASSWORD",
    "METRICBEAT_INTERNAL_PASSWORD",
    "POSTGRES_PASSWORD",
    "POSTGRES_APP_PASSWORD",
)
# Written into TAGWATCH_DATABASE_URL by docker-compose.yml, so only RFC 3986 unreserved characters.
URL_PASSWORDS = ("POSTGRES_APP_PASSWORD",)
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
# Settings without a secret that compose still requires (it names them when they are missing).
REQUIRED_SETTINGS = ("COMPOSE_PROFILES",)
KIBANA_KEYS = (
    "KIBANA_SECURITY_ENCRYPTION_KEY",
    "KIBANA_SAVED_OBJECTS_ENCRYPTION_KEY",
    "KIBANA_REPORTING_ENCRYPTION_KEY",
)
MIN_LENGTH = {**dict.fromkeys(PASSWORDS, 16), **dict.fromkeys(KIBANA_KEYS, 32)}  # setup/lib.sh, Kibana
ASSIGNMENT = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$", re.M)


def new_secret(name: str) -> str:
    return secrets.token_hex(32) if name in KIBANA_KEYS else secrets.token_urlsafe(24)


def generate(example: str) -> str:
    """The example's text with every secret filled in; all other lines unchanged."""

    def fill(match: re.Match) -> str:
        name = match.group(1)
        return f"{name}={new_secret(name)}" if name in MIN_LENGTH else match.group(0)

    text = ASSIGNMENT.sub(fill, example)
    missing = set(MIN_LENGTH) - {name for name, _ in ASSIGNMENT.findall(text)}
    if missing:
        raise SystemExit(f".env.example lacks {', '.join(sorted(missing))}")
    return text


def weak_secrets(env_text: str) -> list[str]:
    """Names of required settings that are missing or empty, and of secrets that are weak.

    A secret is weak when it is "changeme", too short, or, in a URL, not URL-safe.
    """
    values = dict(ASSIGNMENT.findall(env_text))
    weak = [name for name in REQUIRED_SETTINGS if not values.get(name)]
    for name, length in MIN_LENGTH.items():
        value = values.get(name, "")
        unsafe_in_url = name in URL_PASSWORDS and not URL_SAFE.fullmatch(value)
        if value.lower() in ("", "changeme") or len(value) < length or unsafe_in_url:
            weak.append(name)
    return weak


def missing_lines(example: str, env_text: str) -> list[str]:
    """Assignments of the example (secrets generated) whose names the existing .env lacks."""
    present = {name for name, _ in ASSIGNMENT.findall(env_text)}
    return [
        line
        for line in generate(example).splitlines()
        if (m := ASSIGNMENT.match(line)) and m.group(1) not in present
    ]


def add_missing(example: str, output: Path) -> int:
    """Append the settings `output` lacks; existing lines stay exactly as they are."""
    lines = missing_lines(example, output.read_text())
    if lines:
        with output.open("a") as env_file:
            env_file.write(
                "\n# Added by scripts/generate-env.py --add-missing; .env.example explains each.\n"
            )
            env_file.write("\n".join(lines) + "\n")
        names = ", ".join(line.split("=", 1)[0] for line in lines)
        print(f"Added {names} to {output} (secrets generated, not printed).")
    weak = weak_secrets(output.read_text())
    if weak:
        print(
            f"{output} still has empty, 'changeme' or weak {', '.join(weak)}; see docs/deploy.md, Secrets.",
            file=sys.stderr,
        )
        return 1
    return 0


def refuse_existing(example: str, output: Path) -> int:
    """Exit status for an existing .env: 0 when usable, else 1 with one line saying what to do."""
    text = output.read_text()
    weak = weak_secrets(text)
    if not weak:
        print(f"{output} exists; left unchanged.")
        return 0
    lacking = [line.split("=", 1)[0] for line in missing_lines(example, text)]
    problems = []
    if missing := [name for name in weak if name in lacking]:
        problems.append(
            f"lacks {', '.join(missing)}, added to .env.example since it was made "
            "(`python3 scripts/generate-env.py --add-missing` appends them with generated values)"
        )
    if bad := [name for name in weak if name not in lacking]:
        problems.append(f"has empty, 'changeme' or weak {', '.join(bad)}")
    print(f"{output} (left unchanged) {'; '.join(problems)}; see docs/deploy.md, Secrets.", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=REPO / ".env.example")
    parser.add_argument("--output", type=Path, default=REPO / ".env")
    parser.add_argument("--add-missing", action="store_true", help="append what an existing .env lacks")
    args = parser.parse_args(argv)
    output = args.output.resolve()
    example = args.example.read_text()
    text = generate(example)
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return add_missing(example, output) if args.add_missing else refuse_existing(example, output)
    with os.fdopen(fd, "w") as env_file:
        env_file.write(text)
    print(f"Wrote {output} with generated passwords and Kibana keys (readable by you only).")
    print(f"Kibana login: user elastic, password = the ELASTIC_PASSWORD line of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
