"""Every public test file goes through `radassist inspect`: decoded with its shape checked, or
refused with a one-line reason. pydicom's bundled test_files (listed, never downloaded) and the
pydicom-data wheel's data_store/data. Zero tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pydicom
import pytest

from desktop_app.studies.inspection import (
    STATUS_NO_PIXELS,
    STATUS_OK,
    STATUS_REFUSED,
    FileResult,
    InspectionReport,
    inspect_paths,
)
from tests.helpers.dicomfiles import pydicom_data_files, pydicom_test_files

PYDICOM_FILES = pydicom_test_files()
DATA_FILES = pydicom_data_files()

# Files that are broken on purpose (or unsupported), and why they are refused.
EXPECTED_REFUSED = {
    "JPEG-lossy.dcm": "pixel data can't be decoded",  # 12-bit lossy JPEG: no decoder
    "JPEG2000-embedded-sequence-delimiter.dcm": "compressed frame declares",
    "MR_truncated.dcm": "declares 8192 bytes but only 8130 remain",
    "meta_missing_tsyntax.dcm": "no readable Rows",
    "nested_priv_SQ.dcm": "no readable Rows",
    "no_meta.dcm": "does not start with a DICOM element",
    "rtplan_truncated.dcm": "declares 976 bytes but only 711 remain",
}


@pytest.fixture(scope="module")
def pydicom_report() -> InspectionReport:
    return inspect_paths(PYDICOM_FILES)


@pytest.fixture(scope="module")
def data_report() -> InspectionReport:
    if not DATA_FILES:
        pytest.skip("pydicom-data is not installed")
    return inspect_paths(DATA_FILES)


def _result(report: InspectionReport, path: Path) -> FileResult:
    result = report.file_result(path)
    assert result is not None, f"{path.name} is missing from the report"
    return result


def _header(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's notes on odd files; not under test here
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def _frames(ds: pydicom.Dataset) -> int:
    """Number of Frames as the core reads it: absent, 0 or unparsable ("1A") means 1."""
    raw = ds.get_item(0x00280008)
    try:
        value = int(str(ds.NumberOfFrames)) if raw is not None else 1
    except (ValueError, TypeError):
        value = 1
    return value if value >= 1 else 1


def _check(result: FileResult, path: Path) -> None:
    expected_refusal = EXPECTED_REFUSED.get(path.name)
    if expected_refusal is not None:
        assert result.status == STATUS_REFUSED, f"{path.name} should be refused"
        assert result.reason is not None and expected_refusal in result.reason
        return
    if result.status == STATUS_REFUSED:
        pytest.fail(f"{path.name} was refused: {result.reason}")
    ds = _header(path)
    if result.status == STATUS_NO_PIXELS:
        assert not any(tag in ds for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)) or (
            "Rows" not in ds
        )
        return
    assert result.status == STATUS_OK
    frames = _frames(ds)
    assert result.frames == frames
    assert result.frames_decoded == frames
    assert result.shape is not None
    assert result.shape[:2] == (ds.Rows, ds.Columns)
    colour = ds.get("SamplesPerPixel", 1) == 3 or ds.PhotometricInterpretation == "PALETTE COLOR"
    assert result.shape[2:] == ((3,) if colour else ())


@pytest.mark.parametrize("path", PYDICOM_FILES, ids=lambda p: p.name)
def test_pydicom_test_file(pydicom_report: InspectionReport, path: Path) -> None:
    _check(_result(pydicom_report, path), path)


@pytest.mark.slow  # the module's report takes ~3-6 s (J2K and a 120-frame JPEG)
@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_pydicom_data_file(data_report: InspectionReport, path: Path) -> None:
    _check(_result(data_report, path), path)


@pytest.mark.slow
def test_at_least_125_decode(
    pydicom_report: InspectionReport, data_report: InspectionReport
) -> None:
    decoded = sum(
        1 for r in (pydicom_report, data_report) for f in r.files if f.status == STATUS_OK
    )
    assert decoded >= 125, decoded


@pytest.mark.slow
def test_every_refusal_is_one_line(
    pydicom_report: InspectionReport, data_report: InspectionReport
) -> None:
    for report in (pydicom_report, data_report):
        for problem in report.problems:
            line = problem.one_line()
            assert "\n" not in line and "Traceback" not in line
            assert line.startswith(f"{problem.path}: ")
    assert {p.path.name for p in pydicom_report.problems} == set(EXPECTED_REFUSED)
    assert pydicom_report.exit_code == 1
    assert data_report.exit_code == 0


def test_the_real_cli_agrees(pydicom_report: InspectionReport) -> None:
    picks = [
        p for p in PYDICOM_FILES if p.name in ("CT_small.dcm", "MR_truncated.dcm", "no_meta.dcm")
    ]
    picks += DATA_FILES[:3]
    proc = subprocess.run(
        [sys.executable, "-m", "desktop_app", "inspect", "--json", *map(str, picks)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    statuses = {Path(f["path"]).name: f["status"] for f in doc["files"]}
    for p in picks[:3]:
        assert statuses[p.name] == _result(pydicom_report, p).status
    refused = [line for line in proc.stderr.splitlines() if not line.startswith("inspect: ")]
    assert sorted(refused) == sorted(f"{p.path}: {p.reason}" for p in inspect_paths(picks).problems)
