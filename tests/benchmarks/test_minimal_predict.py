"""benchmarks/minimal_predict.py, bench_e2e.py's baseline, does the engine's job: its numpy
preprocessing gives the app's network input, and on the chest sample its probabilities are the
engine's (`radassist predict`) within 1e-4. Nothing here is timed."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from desktop_app.model.modelfile import read_manifest
from desktop_app.model.paths import resources_dir
from desktop_app.model.preprocessing import PreprocessSpec, preprocess_gray
from tests.helpers.engine import bundled_model_or_skip

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "minimal_predict.py"
SAMPLE = resources_dir() / "sample" / "chest_xr"


@pytest.fixture(scope="module")
def minimal() -> ModuleType:
    spec = importlib.util.spec_from_file_location("minimal_predict_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def image(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A seeded smooth-plus-noise image of CT-like values, with a bright square (edges matter
    for the resampling)."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols]
    img = 1000 + 800 * np.sin(x / 17.0) * np.cos(y / 23.0) + rng.normal(0, 60, shape)
    img[rows // 3 : rows // 2, cols // 4 : cols // 2] += 1500
    return img.astype(np.float32)


class TestNetworkInput:
    @pytest.mark.parametrize(
        ("shape", "spec", "photometric", "window"),
        [
            ((1024, 1024), PreprocessSpec(image_size=320), "MONOCHROME2", None),
            ((300, 517), PreprocessSpec(image_size=224), "MONOCHROME1", None),
            (
                (517, 300),
                PreprocessSpec(image_size=128, interpolation="bicubic"),
                "MONOCHROME2",
                None,
            ),
            ((90, 60), PreprocessSpec(image_size=224), "MONOCHROME2", None),  # upscaling
            ((64, 64), PreprocessSpec(image_size=64), "MONOCHROME2", None),  # no resize
            (
                (400, 333),
                PreprocessSpec(image_size=160, normalization="minmax"),
                "MONOCHROME2",
                None,
            ),
            (
                (400, 333),
                PreprocessSpec(image_size=160, normalization="window"),
                "MONOCHROME2",
                (1200.0, 1800.0, "LINEAR"),
            ),
            (
                (333, 400),
                PreprocessSpec(image_size=160, normalization="window", pad_value=0.25),
                "MONOCHROME1",
                (1200.0, 1800.0, "SIGMOID"),
            ),
            (
                (256, 200),
                PreprocessSpec(image_size=96, channels=1, output_scaling="imagenet"),
                "MONOCHROME2",
                None,
            ),
            (
                (256, 200),
                PreprocessSpec(image_size=96, output_scaling="imagenet", percentiles=(2.0, 98.0)),
                "MONOCHROME2",
                None,
            ),
            ((256, 200), PreprocessSpec(image_size=96, output_scaling="none"), "MONOCHROME2", None),
        ],
    )
    def test_equals_the_apps_preprocessing(
        self,
        minimal: ModuleType,
        shape: tuple[int, int],
        spec: PreprocessSpec,
        photometric: str,
        window: tuple[float, float, str] | None,
    ) -> None:
        values = image(shape, seed=shape[0])
        expected, _ = preprocess_gray(values, spec, photometric=photometric, file_window=window)
        unit = minimal.normalize(values, spec.to_dict(), window, photometric)
        got = minimal.network_input(unit, spec.to_dict())
        assert got.shape == (1, *expected.shape)
        np.testing.assert_allclose(got[0], expected, rtol=0, atol=2e-5)

    def test_reads_the_manifest_from_the_header_alone(self, minimal: ModuleType) -> None:
        model = bundled_model_or_skip()
        manifest = minimal.read_manifest(model)
        assert manifest["labels"] == list(read_manifest(model).labels)
        assert PreprocessSpec.from_dict(manifest["preprocessing"]) == (
            read_manifest(model).preprocessing
        )


@pytest.mark.slow
def test_probabilities_equal_the_engines_on_the_sample(tmp_path: Path) -> None:
    """The script as bench_e2e runs it (a child process, on the graph of `radassist-train
    export-onnx`) against `radassist predict` of the same folder."""
    from desktop_app.cli import main as radassist
    from training.cli import main as radassist_train

    model = bundled_model_or_skip()
    onnx = tmp_path / "model.onnx"
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        assert radassist_train(["export-onnx", "--model", str(model), "--out", str(onnx)]) == 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = radassist(["predict", str(SAMPLE), "--model", str(model), "--out",
                          str(tmp_path / "app"), "--quiet"])  # fmt: skip
    assert code == 0
    (findings,) = (tmp_path / "app").rglob("findings.json")
    app: dict[str, Any] = json.loads(findings.read_text())
    argv = [sys.executable, str(SCRIPT), str(SAMPLE), "--model", str(model), "--onnx", str(onnx),
            "--out", str(tmp_path / "script")]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (script,) = json.loads((tmp_path / "script" / "findings.json").read_text())["images"]
    assert script["sop_instance_uid"] == app["slices"][0]["sop_instance_uid"]
    expected = {f["label"]: f for f in app["findings"]}
    assert [f["label"] for f in script["findings"]] == list(expected)
    for f in script["findings"]:
        assert f["probability"] == pytest.approx(expected[f["label"]]["probability"], abs=1e-4)
        assert f["threshold"] == pytest.approx(expected[f["label"]]["threshold"])
        assert f["positive"] == expected[f["label"]]["positive"]
