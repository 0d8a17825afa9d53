"""`radassist inspect`: exit codes, one line per problem file, the JSON schema, privacy."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from desktop_app.cli import main
from desktop_app.phantoms.studies import write_ct_series
from desktop_app.studies import volume as volume_module
from desktop_app.studies.inspection import SCHEMA_VERSION, inspect_paths
from tests.helpers.dicomfiles import image_dataset, pydicom_test_file, save

SCHEMA_DOC = Path(__file__).resolve().parents[2] / "docs" / "inspect-json-schema.md"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["inspect", *args])
    out, err = capsys.readouterr()
    return code, out, err


def problem_lines(err: str) -> list[str]:
    return [
        line
        for line in err.splitlines()
        if not line.startswith(("inspect: ", "indexing", "decoding"))
    ]


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, 11, slices=5, rows=24, shuffle_names=True)
    return folder


class TestExitCodes:
    def test_all_good_exits_0(self, capsys: pytest.CaptureFixture[str], ct_folder: Path) -> None:
        code, out, err = run_cli(capsys, str(ct_folder))
        assert code == 0
        assert 'Series #2 CT "CHEST CT PHANTOM (synthetic)": 5 image(s) in 5 file(s)' in out
        assert "5 slices, 24x24, axial" in out and "ordered by position" in out
        assert problem_lines(err) == []
        assert "5 of 5 image(s) decoded; 0 problem file(s)" in err

    def test_refused_files_exit_1_with_one_line_each(
        self, capsys: pytest.CaptureFixture[str], ct_folder: Path, tmp_path: Path
    ) -> None:
        truncated = pydicom_test_file("MR_truncated.dcm")
        missing = tmp_path / "nowhere.dcm"
        code, out, err = run_cli(capsys, str(ct_folder), str(truncated), str(missing))
        assert code == 1
        assert sorted(problem_lines(err)) == sorted(
            [
                f"{missing}: no such file or folder",
                f"{truncated}: element (7FE0,0010) at byte 1500 declares 8192 bytes but only "
                "8130 remain (the file is truncated or corrupt; re-export or re-transfer it)",
            ]
        )
        assert "Traceback" not in err + out
        assert "2 problem file(s)" in err

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ([], "the following arguments are required: PATH"),
            (["x.dcm", "--bogus"], "unrecognized arguments: --bogus"),
            (["x.dcm", "--workers", "0"], "0 should be at least 1"),
        ],
    )
    def test_usage_errors_exit_2(
        self, capsys: pytest.CaptureFixture[str], args: list[str], message: str
    ) -> None:
        with pytest.raises(SystemExit) as exc:
            main(["inspect", *args])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert message in err
        assert len(err.strip().splitlines()) == 1

    def test_an_unexpected_error_is_one_line_and_the_run_goes_on(
        self,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        ct_folder: Path,
    ) -> None:
        victim = sorted(ct_folder.iterdir())[2]
        real = volume_module.SeriesVolume.stored

        def flaky(self: volume_module.SeriesVolume, index: int) -> Any:
            if self.stack.slices[index].instance.path == victim:
                raise RuntimeError("boom\nsecond line")
            return real(self, index)

        monkeypatch.setattr(volume_module.SeriesVolume, "stored", flaky)
        code, _, err = run_cli(capsys, str(ct_folder))
        assert code == 1
        assert problem_lines(err) == [f"{victim}: unexpected error: RuntimeError: boom second line"]
        assert "4 of 5 image(s) decoded" in err
        assert "Traceback" not in err

    def test_non_dicom_files_are_skipped_quietly(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        save(image_dataset(), tmp_path / "one.dcm")
        (tmp_path / "README.txt").write_text("notes")
        (tmp_path / "thumbs.db").write_bytes(bytes(300))
        code, _, err = run_cli(capsys, str(tmp_path))
        assert code == 0
        assert problem_lines(err) == []
        assert "2 non-DICOM file(s) skipped" in err

    def test_no_decode_reads_headers_only(self, capsys: pytest.CaptureFixture[str]) -> None:
        lossy = pydicom_test_file("JPEG-lossy.dcm")  # its pixels can't be decoded
        assert run_cli(capsys, str(lossy))[0] == 1
        code, _, err = run_cli(capsys, "--no-decode", str(lossy))
        assert code == 0
        assert "pixels not decoded (--no-decode)" in err


class TestJson:
    def test_schema_fields(self, capsys: pytest.CaptureFixture[str], ct_folder: Path) -> None:
        truncated = pydicom_test_file("MR_truncated.dcm")
        code, out, err = run_cli(capsys, "--json", str(ct_folder), str(truncated))
        doc = json.loads(out)
        assert code == doc["exit_code"] == 1
        assert (doc["schema"], doc["schema_version"]) == ("radassist-inspect", SCHEMA_VERSION)
        assert doc["summary"]["images"] == 5 and doc["summary"]["images_decoded"] == 5
        assert doc["summary"]["problem_files"] == 1
        (patient,) = doc["patients"]
        (series,) = patient["studies"][0]["series"]
        (stack,) = series["stacks"]
        assert (stack["rows"], stack["columns"], stack["images"]) == (24, 24, 5)
        assert stack["ordered_by"] == "position" and stack["plane"] == "axial"
        assert stack["slice_spacing_mm"] == pytest.approx(2.5)
        by_status = {f["status"] for f in doc["files"]}
        assert by_status == {"ok", "refused"}
        (problem,) = doc["problems"]
        assert problem["path"] == str(truncated) and problem["kind"] == "DicomReadError"
        assert problem_lines(err) == [f"{truncated}: {problem['reason']}"]

    def test_every_field_is_documented(
        self, capsys: pytest.CaptureFixture[str], ct_folder: Path
    ) -> None:
        _, out, _ = run_cli(capsys, "--json", str(ct_folder))
        doc = json.loads(out)
        documented = set(re.findall(r"`([a-z_]+)`", SCHEMA_DOC.read_text()))
        patient = doc["patients"][0]
        study = patient["studies"][0]
        series = study["series"][0]
        objects = [
            doc,
            doc["summary"],
            patient,
            study,
            series,
            series["stacks"][0],
            doc["files"][0],
        ]
        keys = {k for obj in objects for k in obj}
        assert keys - documented == set()
        assert f'`"{SCHEMA_VERSION}"`' in SCHEMA_DOC.read_text()

    def test_hide_patient(self, capsys: pytest.CaptureFixture[str], ct_folder: Path) -> None:
        _, shown, _ = run_cli(capsys, str(ct_folder))
        assert "PHANTOM^0011" in shown
        _, hidden_json, _ = run_cli(capsys, "--json", "--hide-patient", str(ct_folder))
        _, hidden_text, _ = run_cli(capsys, "--hide-patient", str(ct_folder))
        for text in (hidden_json, hidden_text):
            assert "PHANTOM^0011" not in text and "PH000011" not in text
        assert json.loads(hidden_json)["patients"][0]["name"] is None


class TestRealProcess:
    @pytest.mark.parametrize(
        ("args", "code"),
        [(["CT_small.dcm"], 0), (["CT_small.dcm", "no_meta.dcm"], 1), (["--nope"], 2)],
    )
    def test_exit_codes(self, args: list[str], code: int) -> None:
        folder = pydicom_test_file("CT_small.dcm").parent
        argv = [str(folder / a) if a.endswith(".dcm") else a for a in args]
        proc = subprocess.run(
            [sys.executable, "-m", "desktop_app", "inspect", "--progress", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == code, proc.stderr
        assert "Traceback" not in proc.stderr
        if code == 1:
            assert f"{folder / 'no_meta.dcm'}: has no 'DICM' marker" in proc.stderr
        if code != 2:
            assert "indexing: " in proc.stderr  # --progress on a pipe: a line per 10 %


class TestDamagedFiles:
    @pytest.mark.parametrize("seed", [0, 1])
    def test_truncated_and_bit_flipped_files_give_one_line_each(
        self, tmp_path: Path, seed: int
    ) -> None:
        """Seeded damage to real files: whatever happens, each file ends in one result and
        every refusal is one line (the run never dies on a file)."""
        rng = random.Random(seed)
        names = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "rtdose.dcm"]
        damaged = []
        for n, name in enumerate(names):
            data = bytearray(pydicom_test_file(name).read_bytes())
            for k in range(4):
                copy = bytearray(data)
                if k % 2:
                    copy = copy[: rng.randrange(132, len(copy))]
                else:
                    for _ in range(12):
                        copy[rng.randrange(132, len(copy))] = rng.randrange(256)
                target = tmp_path / f"{n}_{k}_{name}"
                target.write_bytes(bytes(copy))
                damaged.append(target)
        report = inspect_paths(damaged)
        assert sorted(f.path for f in report.files) == sorted(damaged)
        for f in report.files:
            assert f.status in ("ok", "no pixels", "refused")
            if f.status == "refused":
                assert f.reason and "\n" not in f.reason and "Traceback" not in f.reason
