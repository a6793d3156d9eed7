#!/usr/bin/env python3
"""Create .env from .env.example with strong random secrets; never touch an existing .env.

`make env` and `make up` run this. Each password is 32 URL-safe characters and each Kibana key
64 hex digits, from Python's `secrets`. The new file is readable by its owner only. Secrets are
never printed: the script says where the elastic password is. When .env already exists it is
left as it is, and the script exits 1 naming any required secret there that is empty, still
"changeme", or shorter than the setup scripts accept.

    python3 scripts/generate-env.py [--example .env.example] [--output .env]
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
)
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
    """Names of required secrets that are missing, empty, "changeme" or too short."""
    values = dict(ASSIGNMENT.findall(env_text))
    return [
        name
        for name, length in MIN_LENGTH.items()
        if values.get(name, "").lower() in ("", "changeme") or len(values[name]) < length
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=REPO / ".env.example")
    parser.add_argument("--output", type=Path, default=REPO / ".env")
    args = parser.parse_args(argv)
    output = args.output.resolve()
    text = generate(args.example.read_text())
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        weak = weak_secrets(output.read_text())
        if weak:
            problem = f"has empty, 'changeme' or short {', '.join(weak)}"
            print(f"{output} (left unchanged) {problem}; see docs/deploy.md, Secrets.", file=sys.stderr)
            return 1
        print(f"{output} exists; left unchanged.")
        return 0
    with os.fdopen(fd, "w") as env_file:
        env_file.write(text)
    print(f"Wrote {output} with generated passwords and Kibana keys (readable by you only).")
    print(f"Kibana login: user elastic, password = the ELASTIC_PASSWORD line of {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
