"""`radassist predict`: outputs per series, the findings JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from desktop_app.cli import main
from desktop_app.inference.findings import SCHEMA_VERSION, SeriesResult
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.model.applicability import IntendedInput
from desktop_app.model.paths import resources_dir
from desktop_app.phantoms.studies import write_chest_xr, write_ct_series
from desktop_app.studies.index import index_paths
from tests.helpers.applicability import FLAG_ALL, make_applicability_model
from tests.helpers.engine import LABELS, bundled_model_or_skip, make_model_file

CHEST = resources_dir() / "sample" / "chest_xr" / "chest_pa.dcm"
SCHEMA_DOC = Path(__file__).resolve().parents[2] / "docs" / "findings-json-schema.md"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_file(tmp_path_factory.mktemp("model") / "m.safetensors")


@pytest.fixture(scope="module")
def ct_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose intended input is CT slices."""
    return make_model_file(
        tmp_path_factory.mktemp("ct_model") / "ct.safetensors",
        intended_input=IntendedInput(["CT"], [], [], "slice", 0, "test"),
    )


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    """predict --threads 1 sets the process-wide torch thread count: put it back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def predict(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["predict", "--backend", "torch", "--threads", "1", "--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _uids(path: Path) -> tuple[str, str]:
    ((_, study, series),) = list(index_paths([path]).iter_series())
    return study.study_instance_uid, series.series_instance_uid


class TestOutputs:
    def test_one_radiograph(
        self, capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path
    ) -> None:
        out_dir = tmp_path / "out"
        code, out, err = predict(
            capsys, str(CHEST), "--out", str(out_dir), "--model", str(model),
            "--threshold", "nodule=0", "--threshold", "effusion = 1",
        )  # fmt: skip
        assert code == 0, err
        study_uid, series_uid = _uids(CHEST)
        folder = out_dir / uid_hash(series_uid)
        assert sorted(p.name for p in out_dir.iterdir()) == [folder.name]
        assert err.splitlines()[-1] == (
            f"radassist predict: 1 stack(s) written to {out_dir} (<hashed series UID>/findings.json)"
        )
        doc = json.loads((folder / "findings.json").read_text())
        assert doc["schema"] == "radassist-findings" and doc["schema_version"] == SCHEMA_VERSION
        result = SeriesResult.from_json(doc)
        assert result.series_instance_uid == series_uid
        assert result.study_instance_uid == study_uid
        assert [f.label for f in result.findings] == list(LABELS)
        nodule, effusion, cardiomegaly = result.findings
        assert nodule.positive and not effusion.positive
        files = sorted(p.name for p in folder.iterdir())
        heatmaps = [n for n in files if n.startswith("heatmap_")]
        assert "overlay.png" in files and "findings.json" in files
        assert "heatmap_0_nodule.png" in heatmaps and "heatmap_1_effusion.png" not in heatmaps
        assert len(heatmaps) == 1 + cardiomegaly.positive
        assert doc["findings"][0]["heatmap"]["file"] == "heatmap_0_nodule.png"
        with Image.open(folder / "heatmap_0_nodule.png") as im:
            assert im.mode == "L" and im.size == (1024, 1024)
            assert np.asarray(im).max() == 255
        with Image.open(folder / "overlay.png") as im:
            assert im.mode == "RGB" and im.size == (1024, 1024)
        lines = out.splitlines()
        assert lines[0].split() == ["series", "label", "probability", "threshold", "positive"]
        assert lines[1].split()[:2] == [folder.name, "nodule"]
        assert lines[1].split()[3:] == ["0.000", "yes"]
        assert lines[2].split()[3:] == ["1.000", "no"]
        assert len(lines) == 4

    def test_a_series_and_all_heatmaps(
        self, capsys: pytest.CaptureFixture[str], ct_model: Path, tmp_path: Path
    ) -> None:
        series = write_ct_series(tmp_path / "ct", 3, slices=5, rows=32)
        code, _out, err = predict(
            capsys, str(tmp_path / "ct"), "--out", str(tmp_path / "o"), "--model", str(ct_model),
            "--all-heatmaps", "--batch-size", "2",
        )  # fmt: skip
        assert code == 0, err
        folder = tmp_path / "o" / uid_hash(_uids(series.paths[0])[1])
        result = SeriesResult.from_json(json.loads((folder / "findings.json").read_text()))
        assert result.slice_count == 5 and result.probabilities.shape == (5, 3)
        names = {p.name for p in folder.iterdir()}
        assert {f"heatmap_{k}_{label}.png" for k, label in enumerate(LABELS)} <= names

    def test_folders_are_named_by_hash_never_by_tag_values(
        self, capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path
    ) -> None:
        import pydicom

        path, _ = write_chest_xr(tmp_path / "in" / "x.dcm", 5, rows=64)
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = "../../escaped"
        ds.PatientName = "EVIL^../../x"
        ds.save_as(path)
        out_dir = tmp_path / "out"
        code, _, err = predict(capsys, str(path), "--out", str(out_dir), "--model", str(model))
        assert code == 0, err
        made = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_dir()]
        assert sorted(made) == ["in", "out", f"out/{uid_hash(ds.SeriesInstanceUID)}"]
        assert "escaped" not in json.dumps(
            json.loads((out_dir / made[-1][4:] / "findings.json").read_text())
        )


class TestExitCodes:
    def test_unreadable_inputs_exit_1_each_named_once(
        self, capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path
    ) -> None:
        missing = tmp_path / "nowhere.dcm"
        junk = tmp_path / "junk.dcm"
        junk.write_bytes(b"not dicom at all")
        code, out, err = predict(
            capsys, str(CHEST), str(missing), str(junk), "--out", str(tmp_path / "o"),
            "--model", str(model),
        )  # fmt: skip
        assert code == 1
        named = [line for line in err.splitlines() if line.startswith(str(tmp_path))]
        assert len(named) == 2
        assert any(line.startswith(f"{missing}: ") for line in named)
        assert any(line.startswith(f"{junk}: ") for line in named)
        assert "Traceback" not in err
        assert len(out.splitlines()) == 1 + len(LABELS)  # the good input still ran
        assert len(list((tmp_path / "o").iterdir())) == 1

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--threshold", "nodule"], "'nodule' is not LABEL=VALUE"),
            (["--threshold", "nodule=high"], "'high' is not a number"),
            (["--threshold", "nodule=1.5"], "the threshold must be between 0 and 1"),
            (["--threshold", "edema=0.3"], "unknown label 'edema' in the thresholds"),
            (["--threshold", "nodule=0.1", "--threshold", "nodule=0.2"], "names 'nodule' twice"),
            (["--device", "tpu"], "'tpu' is not one of auto, cpu, cuda, mps"),
            (["--batch-size", "0"], "0 should be between 1 and 256"),
        ],
    )
    def test_usage_errors_exit_2(
        self,
        capsys: pytest.CaptureFixture[str],
        model: Path,
        tmp_path: Path,
        args: list[str],
        message: str,
    ) -> None:
        try:
            code, _, err = predict(
                capsys, str(CHEST), "--out", str(tmp_path / "o"), "--model", str(model), *args
            )
        except SystemExit as exit_:  # argparse's usage errors end the parse
            code, err = int(str(exit_.code)), capsys.readouterr().err
        assert code == 2
        assert message in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not (tmp_path / "o").exists()

    def test_a_refused_model_is_one_line_and_exit_1(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        bad = tmp_path / "model.safetensors"
        bad.write_bytes(pickle.dumps({"weights": [1, 2]}, protocol=4))
        code, out, err = predict(
            capsys, str(CHEST), "--out", str(tmp_path / "o"), "--model", str(bad)
        )
        assert code == 1 and out == ""
        assert err.strip() == (
            f"radassist predict: error: {bad}: is a Python pickle (a torch.save file?), not a "
            "safetensors model file; RadAssist never unpickles because a pickle can run code "
            "(convert a state dict with: radassist-train convert IN.pth --arch NAME --labels "
            "a,b,c --out model.safetensors)"
        )
        assert not (tmp_path / "o").exists()


class TestIntendedInput:
    def test_a_ct_series_is_refused_in_one_line_and_the_others_run(
        self, capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path
    ) -> None:
        series = write_ct_series(tmp_path / "ct", 3, slices=4, rows=32)
        code, out, err = predict(
            capsys, str(CHEST), str(tmp_path / "ct"), "--out", str(tmp_path / "o"),
            "--model", str(model),
        )  # fmt: skip
        assert code == 1 and "Traceback" not in err
        refused = [line for line in err.splitlines() if "not run:" in line]
        assert len(refused) == 1
        assert refused[0].startswith(f"{series.paths[0].parent}")
        assert "This model is for CR/DX radiographs; this series is CT" in refused[0]
        assert "--force" in refused[0]
        assert "1 outside the model's intended input; 1 stack(s) written" in err
        assert len(out.splitlines()) == 1 + len(LABELS)  # the radiograph still ran
        assert [p.name for p in (tmp_path / "o").iterdir()] == [uid_hash(_uids(CHEST)[1])]

    def test_force_runs_it_and_marks_every_output(
        self, capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path
    ) -> None:
        series = write_ct_series(tmp_path / "ct", 3, slices=4, rows=32)
        code, out, err = predict(
            capsys, str(tmp_path / "ct"), "--out", str(tmp_path / "o"), "--model", str(model),
            "--force",
        )  # fmt: skip
        assert code == 0, err
        folder = tmp_path / "o" / uid_hash(_uids(series.paths[0])[1])
        doc = json.loads((folder / "findings.json").read_text())
        check = doc["series"]["input_check"]
        assert check["forced"] is True and check["applicable"] is False
        assert check["reasons"][0] == "This model is for CR/DX radiographs; this series is CT"
        assert all(f["out_of_scope"] and f["unreliable"] for f in doc["findings"])
        assert "Outside the model's intended input (run anyway)" in err
        assert all(line.split()[-1] == "unreliable" for line in out.splitlines()[1:])
        assert out.splitlines()[0].split()[-1] == "note"

    def test_out_of_distribution_is_written_flagged_with_one_warning(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        flagged = make_applicability_model(tmp_path / "m.safetensors", ood_threshold=FLAG_ALL)
        code, _out, err = predict(
            capsys, str(CHEST), "--out", str(tmp_path / "o"), "--model", str(flagged)
        )
        assert code == 0, err
        warnings = [line for line in err.splitlines() if "Out of distribution" in line]
        assert len(warnings) == 1 and warnings[0].startswith("radassist predict: warning: ")
        doc = json.loads(next((tmp_path / "o").glob("*/findings.json")).read_text())
        check = doc["series"]["input_check"]
        assert check["in_distribution"] is False and check["ood_threshold"] == FLAG_ALL
        assert check["ood_score"] > FLAG_ALL and doc["slice_ood_scores"][0] == check["ood_score"]
        assert all(f["unreliable"] and f["out_of_distribution"] for f in doc["findings"])

    def test_the_bundled_model_refuses_the_ct_sample_and_force_marks_it(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        # the chest classifier named: without --model the CT sample gets the CT model
        demo = str(bundled_model_or_skip())
        ct = resources_dir() / "sample" / "ct_phantom"
        code, out, err = predict(capsys, str(ct), "--out", str(tmp_path / "o"), "--model", demo)
        assert code == 1 and out.splitlines()[1:] == []
        (line,) = [line for line in err.splitlines() if "not run:" in line]
        assert "this series is CT" in line and not (tmp_path / "o").exists()
        code, out, err = predict(
            capsys, str(ct), "--out", str(tmp_path / "o"), "--model", demo, "--force",
            "--heatmap-method", "cam",
        )  # fmt: skip
        assert code == 0, err
        doc = json.loads(next((tmp_path / "o").glob("*/findings.json")).read_text())
        assert doc["series"]["input_check"]["forced"] is True
        assert all(f["unreliable"] for f in doc["findings"])


def test_the_schema_doc_names_every_field() -> None:
    text = SCHEMA_DOC.read_text()
    doc = SeriesResult.from_json(
        json.loads(json.dumps(_example_result().to_json({"nodule": "heatmap_0_nodule.png"})))
    ).to_json({"nodule": "heatmap_0_nodule.png"})
    keys = set(doc) | set(doc["series"]) | set(doc["findings"][0]) | set(doc["model"])
    keys |= set(doc["timings_s"]) | set(doc["slices"][0]) | set(doc["series"]["input_check"])
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert missing == []
    assert f"`{SCHEMA_VERSION}`" in text


def _example_result() -> SeriesResult:
    from desktop_app.inference.findings import Finding, ModelInfo, ResultSlice

    info = ModelInfo("m", "1", "efficientnet-lite0", "0" * 64, ("nodule",))
    return SeriesResult(
        findings=[
            Finding(
                "nodule",
                0.9,
                0.5,
                True,
                0,
                "1.2",
                0,
                box=(1, 2, 3, 4),
                outline=((1, 2), (3, 2), (3, 4)),
                peak=(2, 3),
            )
        ],
        model=info,
        device="cpu",
        backend="torch",
        slices=[ResultSlice(0, "1.2", 0, 8, 8)],
        probabilities=np.array([[0.9]], np.float32),
    )
