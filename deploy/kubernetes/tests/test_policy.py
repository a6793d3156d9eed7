"""checkov's Kubernetes policies on every rendered overlay: nothing fails, every skip says why."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from manifests import K8S, OVERLAYS, rendered_text

CONFIG = K8S / "checkov.yaml"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One checkov run over all overlays (it takes seconds to start); offline (--skip-download)."""
    folder = tmp_path_factory.mktemp("rendered")
    for overlay in OVERLAYS:
        (folder / f"{overlay}.yaml").write_text(rendered_text(overlay))
    checkov = Path(sys.executable).with_name("checkov")
    done = subprocess.run(
        [str(checkov), "--config-file", str(CONFIG), "--skip-download", "-d", str(folder), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_checkov_checked_every_overlay(report: dict) -> None:
    assert report["check_type"] == "kubernetes"
    assert report["summary"]["parsing_errors"] == 0
    files = {c["file_path"].lstrip("/") for c in report["results"]["passed_checks"]}
    assert files == {f"{o}.yaml" for o in OVERLAYS}
    resources = {c["resource"] for c in report["results"]["passed_checks"]}
    assert {
        "Deployment.tagwatch.tagwatch-api",
        "Deployment.tagwatch.tagwatch-collector",
        "Job.tagwatch.tagwatch-kibana-setup",
    } <= resources


def test_no_checkov_check_fails(report: dict) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in report["results"].get("failed_checks", [])
    ]
    assert failed == []


def test_every_resource_skip_gives_a_reason(report: dict) -> None:
    for check in report["results"].get("skipped_checks", []):
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason.split()) >= 5, (
            f"{check['check_id']} on {check['resource']} is skipped without a reason"
        )


def test_every_global_skip_is_commented() -> None:
    text = CONFIG.read_text()
    skips = re.findall(r"^  - (CKV_\w+)$", text, flags=re.M)
    assert skips, "checkov.yaml lists no skip-check"
    for check in skips:
        before = text.split(f"  - {check}\n", 1)[0].rstrip().splitlines()[-1]
        assert before.strip().startswith("#"), f"{check} has no comment saying why it is skipped"
