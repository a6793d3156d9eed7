"""pytest plugin (loaded from pyproject's addopts): `--dist loadgroup` that works on pytest 9.2.

`make test` runs the suite in xdist workers, and the tests marked `slow` (real processes that are timed:
signals, kill -9, trickling clients, gunicorn, Chromium) in one group, so they run one after another and
never compete with each other for the two cores. xdist 3.8 passes a test's group to its controller by
appending "@group" to the node id, which pytest 9.2's structured node ids silently ignore
(pytest-xdist#1386): every test was scheduled on its own. Here each worker writes the groups it collected
to a file of its own, and the controller's scheduler reads them before it splits the work. Without
xdist, or with another `--dist`, nothing changes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

SLOW_GROUP = "slow"
GROUPS_DIR = pytest.StashKey[Path]()
INPUT_KEY = "tagwatch_groups_dir"


def pytest_itemcollected(item: pytest.Item) -> None:
    """A slow test joins the slow group (marked as it is collected, before any scheduling)."""
    if item.get_closest_marker("slow"):
        item.add_marker(pytest.mark.xdist_group(SLOW_GROUP))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a worker: write {node id: group} of the tests it will run (after any deselection)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or INPUT_KEY not in workerinput:
        return
    groups = {}
    for item in items:
        marks = [mark.args[0] if mark.args else mark.kwargs.get("name", "default") for mark in
                 item.iter_markers("xdist_group")]  # fmt: skip
        if marks:
            groups[item.nodeid] = "_".join(sorted(map(str, set(marks))))
    path = Path(workerinput[INPUT_KEY]) / f"{workerinput['workerid']}.json"
    path.write_text(json.dumps(groups))


def _loadgroup(config: pytest.Config) -> bool:
    return config.pluginmanager.hasplugin("xdist") and config.getoption("dist", None) == "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """In the controller: tell each worker where to write its groups."""
    config = node.config
    if not _loadgroup(config):
        return
    if GROUPS_DIR not in config.stash:
        config.stash[GROUPS_DIR] = Path(tempfile.mkdtemp(prefix="tagwatch-xdist-groups-"))
    node.workerinput[INPUT_KEY] = str(config.stash[GROUPS_DIR])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """loadgroup's scheduler, with the groups from the workers' files (a group is sent first: it is the
    largest unit, and starting it at once keeps it off the end of the run)."""
    if not _loadgroup(config):
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FileGroupScheduling(LoadGroupScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # every worker has collected (and written its file) by now
                self.groups = {}
                for path in sorted(config.stash[GROUPS_DIR].glob("*.json")):
                    self.groups.update(json.loads(path.read_text()))
            if nodeid in self.groups:
                return self.groups[nodeid]
            return super()._split_scope(nodeid)

    return FileGroupScheduling(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    if GROUPS_DIR in config.stash:
        shutil.rmtree(config.stash[GROUPS_DIR], ignore_errors=True)
