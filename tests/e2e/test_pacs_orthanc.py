"""Round trip against a real Orthanc (Debian's package) in a private network namespace.

One namespaced subprocess runs Orthanc and the client scenario (``tests/e2e/pacs_scenario.py``,
RadAssist's real PACS API) once per module; the tests below assert on its JSON report. Skipped,
with the reason, only where Orthanc or ``unshare`` is missing; ``.ci/run`` installs both and
sets RADASSIST_REQUIRE_ORTHANC=1, which turns that skip into a failure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.orthanc import unavailable_reason

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("RADASSIST_REQUIRE_ORTHANC"):  # CI: never skip silently
            pytest.fail(f"the Orthanc tests can't run: {reason}")
        pytest.skip(reason)
    from tests.e2e.orthanc import run_in_namespace

    workdir = tmp_path_factory.mktemp("orthanc")
    results = run_in_namespace(workdir, timeout_s=300)
    results["workdir"] = str(workdir)
    assert "fatal" not in results, results.get("fatal")
    return results


@pytest.fixture(scope="module")
def steps(report: dict[str, Any]) -> dict[str, Any]:
    steps: dict[str, Any] = report["steps"]
    return steps


def _ok(steps: dict[str, Any], name: str) -> dict[str, Any]:
    step: dict[str, Any] = steps[name]
    assert step["ok"], f"{name}: {step.get('error')}\n{step.get('tb', '')}"
    return step


def test_namespace_holds_only_loopback(report: dict[str, Any]) -> None:
    assert report["interfaces"] == ["lo"]
    assert report["driver_returncode"] == 0


def test_orthanc_keeps_its_files_in_the_temp_folder(report: dict[str, Any]) -> None:
    workdir = Path(report["workdir"])
    assert (workdir / "orthanc.json").is_file()
    assert (workdir / "orthanc.log").is_file()
    assert report["steps"]["storage_files"] > 0  # index and the stored instances


def test_echo(steps: dict[str, Any]) -> None:
    _ok(steps, "echo")


def test_store_study(steps: dict[str, Any]) -> None:
    step = _ok(steps, "store")
    assert step["sent"] == 5
    assert step["failed"] == []
    assert step["progress"] == [[i, 5] for i in range(1, 6)]
    assert step["orthanc_instances"] == 5


def test_find_patient(steps: dict[str, Any]) -> None:
    [match] = _ok(steps, "find_patient")["matches"]
    assert match["PatientID"] == "RA-E2E-0001"
    assert match["PatientName"] == "E2E^Round^Trip"
    assert match["NumberOfPatientRelatedStudies"] == "1"
    assert _ok(steps, "find_patient_wildcard")["ids"] == ["RA-E2E-0001"]


def test_find_study(steps: dict[str, Any]) -> None:
    step = _ok(steps, "find_study")
    [match] = step["matches"]
    assert match["StudyInstanceUID"] == step["expected_study"]
    assert match["NumberOfStudyRelatedInstances"] == "5"
    assert match["NumberOfStudyRelatedSeries"] == "3"
    assert set(match["ModalitiesInStudy"].split("\\")) == {"CT", "MR"}


def test_find_series(steps: dict[str, Any]) -> None:
    step = _ok(steps, "find_series")
    assert step["series"] == step["expected"]
    assert step["counts"] == ["1", "1", "3"]


@pytest.mark.parametrize("name", ["get", "move"])
def test_retrieve_whole_study(steps: dict[str, Any], name: str) -> None:
    step = _ok(steps, name)
    assert step["stored"] == 5
    assert step["completed"] == 5
    assert step["status"] == 0
    assert step["problems"] == []
    assert step["sops"] == step["expected_sops"]
    assert step["all_placed_by_hash"]
    assert step["pixels_equal"]  # including the JPEG 2000 instance, sent as stored


def test_get_reports_progress(steps: dict[str, Any]) -> None:
    progress = steps["get"]["progress"]
    assert progress[-1] == [5, 5]
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_get_one_series(steps: dict[str, Any]) -> None:
    step = _ok(steps, "get_series")
    assert step["stored"] == 3
    assert step["all_placed_by_hash"]


def test_get_can_be_stopped(steps: dict[str, Any]) -> None:
    step = _ok(steps, "get_stop")
    assert step["cancelled"]
    assert step["stored"] < step["total"]


def test_send_back_and_find_it(steps: dict[str, Any]) -> None:
    step = _ok(steps, "send_back")
    assert (step["sent"], step["failed"]) == (1, [])
    assert step["found_returned"]
    assert step["n_series"] == 4
    assert step["orthanc_instances"] == 6


def test_unreadable_file_is_reported_not_sent(steps: dict[str, Any]) -> None:
    step = _ok(steps, "send_unreadable")
    assert step["sent"] == 0
    assert len(step["failed"]) == 1 and "DICM" in step["failed"][0]


def test_unknown_study_is_a_one_line_error(steps: dict[str, Any]) -> None:
    step = steps["get_unknown_study"]
    assert not step["ok"]
    assert "\n" not in step["error"]
    assert step["error"].startswith("C-GET failed on ORTHANC@127.0.0.1:4242: status 0x")


def test_move_to_a_destination_orthanc_does_not_know(steps: dict[str, Any]) -> None:
    step = steps["move_unknown_destination"]
    assert not step["ok"]
    assert step["error"].startswith("C-MOVE failed on ORTHANC@127.0.0.1:4242: status 0x")
    assert "knows our AE title 'STRANGER'" in step["error"]


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("fail_refused", r"^connection refused by 127\.0\.0\.1:4243 \(check that the PACS"),
        (
            "fail_rejected",
            r"^NOT_ORTHANC@127\.0\.0\.1:4242 rejected the association \(Called AE title not "
            r"recognised",
        ),
        (
            "fail_silent",
            r"^SILENT@127\.0\.0\.1:\d+ accepted the connection but did not answer the "
            r"association request within 2 s",
        ),
    ],
)
def test_association_failures_are_one_line_and_return(
    steps: dict[str, Any], name: str, pattern: str
) -> None:
    step = _ok(steps, name)
    assert step["returned"], f"{name} did not return (hung)"
    assert step["error"] is not None and "\n" not in step["error"]
    assert re.match(pattern, step["error"]), step["error"]


# ---------------------------------------------------------------------- predict, export, send


def test_sample_study_is_stored_found_and_retrieved(steps: dict[str, Any]) -> None:
    stored = _ok(steps, "xr_store")
    assert (stored["sent"], stored["failed"]) == (1, [])
    found = _ok(steps, "xr_find")
    assert found["found"] == found["expected"]
    got = _ok(steps, "xr_get")
    assert (got["stored"], got["status"]) == (1, 0)


def test_the_model_runs_on_the_retrieved_file(steps: dict[str, Any]) -> None:
    step = _ok(steps, "xr_predict")
    assert step["positives"] == ["nodule"]  # its threshold is 0 in the test model
    assert step["sop"] == step["expected_sop"]
    assert step["device"] == "cpu"


def test_sr_and_sc_are_exported_into_the_same_study(steps: dict[str, Any]) -> None:
    step = _ok(steps, "xr_export")
    assert (step["sr"], step["sc"]) == (1, 1)
    assert step["study_uids"] == [steps["xr_find"]["expected"]]
    expected_sop = steps["xr_predict"]["expected_sop"]
    assert step["sr_evidence"] == expected_sop
    assert step["sc_sources"] == [expected_sop]


def test_exports_are_sent_and_found_as_new_series_of_the_study(steps: dict[str, Any]) -> None:
    sent = _ok(steps, "xr_send_exports")
    assert (sent["sent"], sent["failed"]) == (2, [])
    step = _ok(steps, "xr_find_series")
    by_modality = {modality: (uid, count, desc) for modality, uid, count, desc in step["series"]}
    assert set(by_modality) == {"DX", "SR", "OT"}
    assert by_modality["SR"][:2] == (step["sr_series"], "1")
    assert [by_modality["OT"][0]] == step["sc_series"] and by_modality["OT"][1] == "1"
    assert by_modality["SR"][2] == "RadAssist AI findings - research use only"
    assert by_modality["OT"][2] == "RadAssist AI overlay - research use only"
