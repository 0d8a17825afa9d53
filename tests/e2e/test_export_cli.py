"""`radassist export`: saved review or a model run, format flags, de-identification, exit
codes and one-line errors (run in-process through the real CLI entry point)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
import pytest

from desktop_app.cli import main
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.privacy.audit import AuditLog
from desktop_app.review.store import ReviewStore
from tests.helpers.exports import CHEST, PATIENT_ID, chest_study, copy_study


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["export", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def reviewed(tmp_path: Path) -> tuple[Path, Any, Any]:
    files, result, review = chest_study(tmp_path)
    ReviewStore().save(review)
    return files[0].parent, result, review


def test_exports_the_saved_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reviewed: tuple[Path, Any, Any]
) -> None:
    study, result, _ = reviewed
    code, out, err = _run(capsys, study, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    assert (
        "using the saved review (3 findings: 1 present, 1 absent, 0 uncertain, 1 not reviewed)"
        in err
    )
    folder = tmp_path / "out" / uid_hash(result.study_instance_uid)
    lines = out.splitlines()
    assert lines[0] == str(folder)
    assert sorted(line.strip().split("/")[0] for line in lines[1:]) == [
        "findings.json",
        "report.pdf",
        "sc",
        "sr",
    ]
    doc = json.loads((folder / "findings.json").read_text("utf-8"))
    nodule = doc["series"][0]["findings"][0]
    assert (nodule["reader"]["truth"], nodule["reader"]["agreement"]) == ("present", "TP")
    kinds = [r["kind"] for r in AuditLog().records()]
    assert kinds == ["export"]


def test_a_missed_finding_of_the_saved_review_is_exported_as_a_false_negative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files, result, review = chest_study(tmp_path)
    key = f"{result.series_instance_uid}#{result.part}"
    review.add_missed(key, "cardiomegaly", (100, 600, 300, 200), slice_index=0)
    ReviewStore().save(review)
    code, _out, err = _run(capsys, files[0].parent, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    assert (
        "(3 findings: 2 present, 1 absent, 0 uncertain, 0 not reviewed; 1 drawn by the reader)"
        in err
    )
    folder = tmp_path / "out" / uid_hash(result.study_instance_uid)
    doc = json.loads((folder / "findings.json").read_text("utf-8"))
    cardio = doc["series"][0]["findings"][2]
    assert (cardio["label"], cardio["positive"]) == ("cardiomegaly", False)
    assert (cardio["reader"]["agreement"], cardio["reader"]["added"]) == ("FN", True)
    [sr_path] = (folder / "sr").iterdir()
    sr = pydicom.dcmread(sr_path)
    assert sr.CompletionFlag == "COMPLETE"


def test_format_flags_pick_the_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reviewed: tuple[Path, Any, Any]
) -> None:
    study, result, _ = reviewed
    code, _out, err = _run(capsys, study, "--out", tmp_path / "out", "--sr", "--json", "--quiet")
    assert code == 0, err
    folder = tmp_path / "out" / uid_hash(result.study_instance_uid)
    assert sorted(p.name for p in folder.iterdir()) == ["findings.json", "sr"]


def test_deidentify_leaves_no_patient_identifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reviewed: tuple[Path, Any, Any]
) -> None:
    study, result, _ = reviewed
    code, out, err = _run(capsys, study, "--out", tmp_path / "out", "--deidentify", "--quiet")
    assert code == 0, err
    folder = Path(out.splitlines()[0])
    assert folder.name != uid_hash(result.study_instance_uid)
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for text in ("Testperson", "Jolene", PATIENT_ID, result.study_instance_uid):
                assert text.encode() not in data, (text, path.name)


@pytest.mark.slow
def test_without_a_review_the_model_runs_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.engine import make_model_file  # torch: only for this test

    files = copy_study(CHEST, tmp_path / "study")
    model = make_model_file(
        tmp_path / "m.safetensors", thresholds={"nodule": 0.0, "effusion": 1.0, "cardiomegaly": 1.0}
    )
    code, out, err = _run(
        capsys,
        files[0],
        "--out",
        tmp_path / "out",
        "--model",
        model,
        "--device",
        "cpu",
        "--quiet",
    )
    assert code == 0, err
    assert "no saved review; running the model (findings not reviewed)" in err
    folder = Path(out.splitlines()[0])
    doc = json.loads((folder / "findings.json").read_text("utf-8"))
    findings = doc["series"][0]["findings"]
    assert [f["reader"]["truth"] for f in findings] == ["pending"] * 3
    assert [f["positive"] for f in findings] == [True, False, False]
    assert doc["model"]["device"] == "cpu"
    [sc] = (folder / "sc").iterdir()
    assert pydicom.dcmread(sc).BurnedInAnnotation == "YES"
    kinds = [r["kind"] for r in AuditLog().records()]
    assert kinds == ["inference", "export"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "tpu"], r"'tpu' is not one of auto, cpu, cuda"),
        (["--sr", "--bogus"], r"unrecognized arguments: --bogus"),
        (["--remove-dates", "--keep-dates"], r"not allowed with argument"),
        ([], r"the following arguments are required: --out"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str],
    reviewed: tuple[Path, Any, Any],
    argv: list[str],
    message: str,
) -> None:
    import re

    study, _, _ = reviewed
    out = [] if not argv else ["--out", str(study.parent / "o")]
    with pytest.raises(SystemExit) as info:
        main(["export", str(study), *out, *argv])
    _, err = capsys.readouterr()
    assert info.value.code == 2
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err


def test_out_is_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reviewed: tuple[Path, Any, Any]
) -> None:
    (tmp_path / "file").write_text("x")
    study, _, _ = reviewed
    code, _, err = _run(capsys, study, "--out", tmp_path / "file")
    assert code == 2
    assert err.strip().endswith("is not a folder (choose a folder for --out)")


def test_unreadable_and_missing_inputs_exit_1_and_the_rest_is_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reviewed: tuple[Path, Any, Any]
) -> None:
    study, _, _ = reviewed
    bad = study / "broken.dcm"
    bad.write_bytes(b"not DICOM at all")
    code, out, err = _run(capsys, study, tmp_path / "nope", "--out", tmp_path / "out", "--quiet")
    assert code == 1
    assert f"{tmp_path / 'nope'}: no such file or folder" in err
    assert f"{bad}:" in err
    assert "2 input(s) could not be read" in err
    assert (Path(out.splitlines()[0]) / "report.pdf").is_file()


def test_no_study_and_no_model_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, tmp_path / "empty", "--out", tmp_path / "out")
    assert (
        code == 1 and err.strip() == "radassist export: error: no DICOM study found in the inputs"
    )
    files = copy_study(CHEST, tmp_path / "study")
    code, _, err = _run(
        capsys, files[0], "--out", tmp_path / "out", "--model", tmp_path / "missing.safetensors"
    )
    assert code == 1
    assert "running the model" in err
    error = [line for line in err.splitlines() if "error" in line]
    assert len(error) == 1 and "missing.safetensors" in error[0]
