"""`radassist predict` without --model: each series runs the catalog model whose intended input
fits it (CT -> the CT segmenter, chest DX -> the classifier), says which, and names a series no
model fits; --model still forces one model on every series."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from desktop_app.cli import main
from desktop_app.model.catalog import MODELS_DIR_ENV
from tests.helpers.modelchoice import (
    CLASSIFIER,
    SEGMENTER,
    chest_dx,
    ct_series,
    models_folder,
    mr_series,
)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models_folder(tmp_path_factory.mktemp("bundled"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    return {
        "ct": ct_series(root / "ct"),
        "dx": chest_dx(root / "dx"),
        "mr": mr_series(root / "mr"),
    }


@pytest.fixture(autouse=True)
def catalog_here(bundled: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The bundled folder is the test's; no installed models; torch's threads put back."""
    monkeypatch.setattr("desktop_app.model.paths.bundled_models_dir", lambda: bundled)
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "installed"))
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def predict(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["predict", "--device", "cpu", "--threads", "1", "--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


def documents(out_dir: Path) -> dict[str, dict[str, Any]]:
    """findings.json by the modality of its series."""
    docs = [json.loads(p.read_text()) for p in out_dir.glob("*/findings.json")]
    return {str(d["series"]["modality"]): d for d in docs}


class TestPerSeriesChoice:
    def test_ct_runs_the_segmenter_and_dx_the_classifier(
        self, capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
    ) -> None:
        out_dir = tmp_path / "out"
        code, out, err = predict(
            capsys, str(inputs["ct"]), str(inputs["dx"]), "--out", str(out_dir)
        )
        assert code == 0, err
        docs = documents(out_dir)
        assert sorted(docs) == ["CT", "DX"]
        assert docs["CT"]["model"]["file_name"] == SEGMENTER
        assert docs["CT"]["lesions"] is not None
        assert docs["DX"]["model"]["file_name"] == CLASSIFIER
        assert "lesion 1:" in out  # the CT lesion table line
        said = [line for line in err.splitlines() if ": model " in line]
        assert len(said) == 2
        assert any(SEGMENTER in line and line.endswith("for CT slices") for line in said)
        assert any(CLASSIFIER in line and "chest CR/DX radiographs" in line for line in said)
        assert "Traceback" not in err

    def test_a_series_no_model_fits_is_one_line_and_exit_1(
        self, capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
    ) -> None:
        out_dir = tmp_path / "out"
        code, _out, err = predict(
            capsys, str(inputs["mr"]), str(inputs["dx"]), "--out", str(out_dir)
        )
        assert code == 1
        (line,) = [line for line in err.splitlines() if "not run:" in line]
        assert line.startswith(str(inputs["mr"]))
        assert "no model fits this MR series (3 slices)" in line
        assert f"{SEGMENTER} is for CT slices" in line and "--model FILE" in line
        assert sorted(documents(out_dir)) == ["DX"]  # the radiograph still ran
        assert err.splitlines()[-1] == (
            f"radassist predict: 1 outside every model's intended input; 1 stack(s) written "
            f"to {out_dir}"
        )

    def test_force_runs_the_default_model_on_it_marked(
        self, capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
    ) -> None:
        code, _out, err = predict(
            capsys, str(inputs["mr"]), "--out", str(tmp_path / "o"), "--force",
            "--heatmap-method", "cam",
        )  # fmt: skip
        assert code == 0, err
        doc = documents(tmp_path / "o")["MR"]
        assert doc["model"]["file_name"] == CLASSIFIER
        assert doc["series"]["input_check"]["forced"] is True
        assert f"model {CLASSIFIER} (forced)" in err

    def test_a_threshold_for_a_label_no_model_has_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str], inputs: dict[str, Path], tmp_path: Path
    ) -> None:
        code, _out, err = predict(
            capsys, str(inputs["dx"]), "--out", str(tmp_path / "o"), "--threshold", "xyz=0.5"
        )
        assert code == 2
        assert err.strip().startswith("radassist predict: error: --threshold names 'xyz'")
        assert len(err.strip().splitlines()) == 1


class TestForcedModel:
    def test_model_runs_on_every_series_and_refuses_what_it_does_not_fit(
        self,
        capsys: pytest.CaptureFixture[str],
        inputs: dict[str, Path],
        bundled: Path,
        tmp_path: Path,
    ) -> None:
        out_dir = tmp_path / "out"
        code, _out, err = predict(
            capsys, str(inputs["ct"]), str(inputs["dx"]), "--out", str(out_dir),
            "--model", str(bundled / CLASSIFIER), "--heatmap-method", "cam",
        )  # fmt: skip
        assert code == 1
        (line,) = [line for line in err.splitlines() if "not run:" in line]
        assert "this series is CT" in line and "--force" in line
        assert sorted(documents(out_dir)) == ["DX"]
        assert documents(out_dir)["DX"]["model"]["file_name"] == CLASSIFIER
        assert ": model " not in err  # a forced model is not a choice
        assert "1 outside the model's intended input" in err.splitlines()[-1]


class TestInfoListsTheCatalog:
    def test_json_and_text(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from desktop_app.commands.info import render_text
        from desktop_app.inference import firststart
        from desktop_app.infra.errors import ModelFileError

        def no_measure(*_args: object, **_kw: object) -> None:
            raise ModelFileError("not measured in this test")

        monkeypatch.setattr(firststart, "first_start", no_measure)
        installed = tmp_path / "installed"
        installed.mkdir()
        (installed / "broken.safetensors").write_bytes(b"")  # the fixture's MODELS_DIR_ENV
        assert main(["info", "--json", "--device", "cpu", "--refresh"]) == 1
        report = json.loads(capsys.readouterr().out)
        models = report["models"]["models"]
        assert [m["file_name"] for m in models] == [CLASSIFIER, "broken.safetensors", SEGMENTER]
        assert models[2]["task"] == "segmentation" and models[2]["intended_input"] == "CT slices"
        assert models[1]["usable"] is False and models[1]["problem"]
        lines = render_text(report).splitlines()
        (head,) = [line for line in lines if line.startswith("models:")]
        assert head.startswith("models:      2 usable of 3 (bundled: ")
        assert any(
            SEGMENTER in line and "segmentation, for CT slices (bundled)" in line for line in lines
        )
        assert any("broken.safetensors — unusable: " in line for line in lines)
