"""The hashed locks agree with pyproject.toml, and the runtime lock is all the package needs (offline).

`make lock` (scripts/lock.sh) writes the locks from pyproject.toml's ranges; these tests fail, naming the
package, when someone edits pyproject.toml without re-locking, or when the package starts importing a
distribution that only the dev lock installs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

APP = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((APP / "pyproject.toml").read_text())
RUNTIME_LOCK = APP / "requirements.lock"
DEV_LOCK = APP / "requirements-dev.lock"
BUILD_LOCK = APP / "requirements-build.lock"
RELOCK = "pyproject.toml and the locks disagree: run `make lock`"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?: ; (.+?))? \\$")
_HASH = re.compile(r"^ +--hash=sha256:([0-9a-f]{64})(?: \\)?$")
_VIA = re.compile(r"^ +# +(?:via\b)? *(.*)$")


@dataclass
class Pin:
    """One locked package: `name==version ; marker`, its hashes and what it is there for (`# via`)."""

    version: str
    marker: str | None
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a lock written by `uv pip compile --generate-hashes`, by canonical name."""
    pins: dict[str, Pin] = {}
    pin = None
    for line in path.read_text().splitlines():
        if match := _PIN.match(line):
            pin = pins[canonicalize_name(match[1])] = Pin(match[2], match[3])
        elif pin and (match := _HASH.match(line)):
            pin.hashes.append(match[1])
        elif pin and (match := _VIA.match(line)):
            pin.via += [match[1]] if match[1] else []
        elif line and not line.startswith("#"):
            raise AssertionError(f"{path.name}: unexpected line {line!r}")
    return pins


def direct(pins: dict[str, Pin]) -> set[str]:
    """Names the lock holds because pyproject.toml asks for them (`# via tagwatch (pyproject.toml…)`)."""
    return {
        name for name, pin in pins.items() if any(v.startswith("tagwatch (pyproject.toml") for v in pin.via)
    }


PROJECT = PYPROJECT["project"]
WANTED = {
    RUNTIME_LOCK: PROJECT["dependencies"],
    DEV_LOCK: PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"],
    BUILD_LOCK: PYPROJECT["dependency-groups"]["build"],
}


@pytest.mark.parametrize("lock", WANTED, ids=lambda path: path.name)
def test_lock_pins_every_pyproject_requirement_within_its_range(lock: Path) -> None:
    pins = read_lock(lock)
    wanted = [Requirement(text) for text in WANTED[lock]]
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock.name} lacks {name}; {RELOCK}"
        version = pins[name].version
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock.name}: {name}=={version}; {RELOCK}"
        )
    assert direct(pins) == {canonicalize_name(r.name) for r in wanted}, RELOCK


@pytest.mark.parametrize("lock", WANTED, ids=lambda path: path.name)
def test_lock_has_hashes_for_every_pin_and_says_how_to_remake_it(lock: Path) -> None:
    pins = read_lock(lock)
    assert pins
    assert not [name for name, pin in pins.items() if not pin.hashes]
    assert "#    make lock" in lock.read_text().splitlines()[:3]


def test_runtime_lock_pins_exactly_what_the_dev_lock_pins() -> None:
    dev = read_lock(DEV_LOCK)
    for name, pin in read_lock(RUNTIME_LOCK).items():
        assert name in dev, f"{name} is in requirements.lock only; {RELOCK}"
        assert (pin.version, sorted(pin.hashes)) == (dev[name].version, sorted(dev[name].hashes)), name


def test_build_lock_has_the_build_backend_pyproject_asks_for() -> None:
    pins = read_lock(BUILD_LOCK)
    for requirement in map(Requirement, PYPROJECT["build-system"]["requires"]):
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin and requirement.specifier.contains(pin.version), f"{requirement}; {RELOCK}"


# Import every module as the service does, with the dev-only distributions' modules made unimportable (as in
# the runtime venv, so optional imports such as flask-smorest's `yaml` take their fallback), then name the
# distributions that brought new top-level modules.
_IMPORT_ALL = """
import importlib, importlib.metadata, json, pkgutil, sys
runtime = set(json.loads(sys.argv[1]))
blocked = {top for top, dists in importlib.metadata.packages_distributions().items()
           if not {d.lower().replace("_", "-") for d in dists} & runtime}
class DevOnly:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked and name.partition(".")[0] != "tagwatch":
            raise ImportError(f"{name} is not in the runtime lock")
sys.meta_path.insert(0, DevOnly())
import tagwatch
before = set(sys.modules)
for module in pkgutil.walk_packages(tagwatch.__path__, "tagwatch."):
    if module.name != "tagwatch.__main__":
        importlib.import_module(module.name)
from tagwatch.geo import resolve_country
resolve_country("Berlin")
tops = {name.partition(".")[0] for name in set(sys.modules) - before}
owners = importlib.metadata.packages_distributions()
print(json.dumps(sorted({dist for top in tops for dist in owners.get(top, ())})))
"""


def test_package_imports_only_what_the_runtime_lock_installs(tmp_path: Path) -> None:
    env = {"TAGWATCH_DB": str(tmp_path / "tagwatch.db"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, json.dumps([*read_lock(RUNTIME_LOCK), "tagwatch"])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    used = {canonicalize_name(dist) for dist in json.loads(result.stdout)} - {"tagwatch"}
    assert used, "the import found no third-party distribution at all"
    assert used <= set(read_lock(RUNTIME_LOCK)), (
        f"only in the dev lock: {used - set(read_lock(RUNTIME_LOCK))}"
    )
