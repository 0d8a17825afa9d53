"""Reviewed lesions through a real Orthanc: the export's SEG and lesion SR are C-STOREd, found
back by a series-level C-FIND on modality SEG and SR, and the SEG comes back by C-GET intact,
referencing every image of its series.

Runs ``tests/e2e/lesion_orthanc_scenario.py`` in a private network namespace, like
``test_pacs_orthanc``; skipped, with the reason, only where Orthanc or ``unshare`` is missing
(a failure under RADASSIST_REQUIRE_ORTHANC=1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.orthanc import ROOT, namespace_prefix, unavailable_reason

pytestmark = pytest.mark.slow
SCENARIO = Path(__file__).with_name("lesion_orthanc_scenario.py")


@pytest.fixture(scope="module")
def steps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("RADASSIST_REQUIRE_ORTHANC"):
            pytest.fail(f"the Orthanc tests can't run: {reason}")
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("lesion-orthanc")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["RADASSIST_DATA_DIR"] = str(workdir / "radassist-data")
    with open(workdir / "driver.log", "wb") as log:
        subprocess.run(
            [*namespace_prefix(), sys.executable, str(SCENARIO), str(workdir)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=300,  # a bound on a hung Orthanc, not a benchmark
        )
    path = workdir / "results.json"
    if not path.exists():
        tail = (workdir / "driver.log").read_text("utf-8", "replace")[-3000:]
        pytest.fail(f"the namespaced scenario wrote no results:\n{tail}")
    report: dict[str, Any] = json.loads(path.read_text("utf-8"))
    assert "fatal" not in report, report.get("fatal")
    assert report["interfaces"] == ["lo"]
    out: dict[str, Any] = report["steps"]
    return out


def _ok(steps: dict[str, Any], name: str) -> dict[str, Any]:
    step: dict[str, Any] = steps[name]
    assert step["ok"], f"{name}: {step.get('error')}\n{step.get('tb', '')}"
    return step


def test_the_export_holds_one_seg_and_two_srs(steps: dict[str, Any]) -> None:
    export = _ok(steps, "export")
    assert (export["segs"], export["lesions"], export["dicom"]) == (1, 2, 3)


def test_everything_is_stored(steps: dict[str, Any]) -> None:
    send = _ok(steps, "send")
    assert send["failed"] == [] and send["sent"] == 8 + 3


def test_the_seg_series_is_found_by_modality(steps: dict[str, Any]) -> None:
    found = _ok(steps, "find_seg")
    assert found["series"] == [steps["expected"]["seg_series"]]
    assert found["modalities"] == ["SEG"]


def test_the_lesion_sr_series_is_found_by_modality(steps: dict[str, Any]) -> None:
    found = _ok(steps, "find_sr")
    assert steps["expected"]["lesion_sr_series"] in found["series"]
    assert set(found["modalities"]) == {"SR"} and len(found["series"]) == 2  # findings + lesions


def test_the_seg_comes_back_intact(steps: dict[str, Any]) -> None:
    got = _ok(steps, "get_seg")
    assert got["stored"] == 1 and got["sop"] == steps["expected"]["seg_sop"]
    assert got["segments"] == ["L1 nodule", "L3 nodule"]
    assert got["referenced"] == steps["expected"]["source_sops"]
