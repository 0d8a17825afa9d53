"""A segmentation model on every backend: eager PyTorch (``--backend torch``) gives the ONNX
Runtime lesions, the CUDA→CPU fallback gives them too with its one-line note, the CPU path
(engine and ``radassist predict``) imports no torch in a child process, and int8 stays close
to fp32."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from desktop_app.cli import main as cli_main
from desktop_app.inference.engine import InferenceEngine
from desktop_app.inference.graphs import build_for_file, exporter_version
from desktop_app.inference.ortrun import ONNX_OPSET, calibration_inputs
from desktop_app.inference.sources import plan_slices
from desktop_app.infra.errors import InferenceError
from desktop_app.model import modelfile as MF
from desktop_app.model.modeldata import embed_graphs
from desktop_app.model.networks import build_network
from desktop_app.model.preprocessing import preprocess_batch
from desktop_app.phantoms.studies import write_ct_series
from desktop_app.studies.index import index_paths
from desktop_app.studies.series import assemble
from desktop_app.studies.volume import SeriesVolume
from tests.helpers.cuda import fail_moving_to_cuda, out_of_memory_on_cuda, pretend_cuda
from tests.helpers.modelchoice import CT_SLICES

SIZE = 64
SLICES, ROWS = 5, 48
FOREGROUND = 0.07
"""The fraction of the test series' pixels the test model marks: several separate lesions."""
T = 1
REPO = Path(__file__).resolve().parents[2]
NO_TORCH = "sorted(m for m in ('torch', 'monai', 'torchvision') if m in sys.modules)"
PEAK_RSS = "next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))"


def _volume(folder: Path) -> SeriesVolume:
    index = index_paths([str(folder)])
    (_, _, series), *_ = list(index.iter_series())
    return SeriesVolume(assemble(series).stacks[0], keep=True)


def make_patchy_segmenter(path: Path, folder: Path, foreground: float = FOREGROUND) -> Path:
    """A seeded random unet-lite0 for CT whose head is rescaled so that its logits on the
    series in ``folder`` span about ±4 and ``foreground`` of the pixels are positive: a mask
    of several lesions of different sizes that depends on the image (unlike a constant head),
    with no pixel so close to the threshold that float rounding decides it."""
    torch.manual_seed(0)
    network = build_network("unet-lite0", 1, pretrained=False, image_size=SIZE).eval()
    manifest = MF.default_manifest(
        name="patchy ct segmenter", architecture="unet-lite0", labels=("nodule",),
        image_size=SIZE, task="segmentation", intended_input=CT_SLICES,
    )  # fmt: skip
    plan = plan_slices(_volume(folder))
    x, _ = preprocess_batch([plan.load(i) for i in range(len(plan))], manifest.preprocessing)
    with torch.no_grad():
        z = network(torch.from_numpy(x)).numpy()
    low, cut, high = np.percentile(z, [1, 100 * (1 - foreground), 99])
    scale = 8.0 / float(high - low)
    convs = network.get_submodule("segmentation_head").modules()
    head = [m for m in convs if isinstance(m, torch.nn.Conv2d)][-1]
    assert head.bias is not None
    with torch.no_grad():
        head.weight.mul_(scale)
        head.bias.sub_(float(cut)).mul_(scale)
    MF.save_model_file(path, network, manifest)
    return path


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, 3, slices=SLICES, rows=ROWS, lesions=1)
    return folder


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory: pytest.TempPathFactory, ct_folder: Path) -> Path:
    return make_patchy_segmenter(tmp_path_factory.mktemp("seg") / "seg.safetensors", ct_folder)


@pytest.fixture(scope="module")
def onnx_result(seg_model: Path, ct_folder: Path) -> Any:
    engine = InferenceEngine(seg_model, device="cpu", threads=T)
    assert engine.backend == "onnxruntime"
    return engine.run(_volume(ct_folder))


def _assert_same_lesions(got: Any, ref: Any, volume_rtol: float = 0.01) -> None:
    """Same lesion count, and each lesion's volume within ``volume_rtol`` of the reference's."""
    assert got.lesions is not None and ref.lesions is not None
    assert got.mask is not None and ref.mask is not None
    assert got.mask.shape == ref.mask.shape == (SLICES, ROWS, ROWS)
    assert len(got.lesions) == len(ref.lesions) >= 3
    for mine, theirs in zip(got.lesions.lesions, ref.lesions.lesions, strict=True):
        assert mine.volume_mm3 == pytest.approx(theirs.volume_mm3, rel=volume_rtol)
        assert (mine.first_slice, mine.last_slice) == (theirs.first_slice, theirs.last_slice)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * float((a & b).sum()) / max(1, int(a.sum() + b.sum()))


class TestTorchBackend:
    @pytest.mark.parametrize("method", ["layercam", "cam"])
    def test_eager_pytorch_gives_the_onnx_runtime_lesions(
        self, seg_model: Path, ct_folder: Path, onnx_result: Any, method: str
    ) -> None:
        """With either heatmap method (``cam`` would capture a feature map for a classifier):
        the per-pixel logits go to segrun whole."""
        engine = InferenceEngine(
            seg_model, device="cpu", backend="torch", heatmaps="all", heatmap_method=method,
            threads=T,
        )  # fmt: skip
        assert engine.backend == "torch" and engine.notes == ["eager PyTorch (asked for)"]
        result = engine.run(_volume(ct_folder))
        assert result.backend == "torch" and result.device == "cpu"
        _assert_same_lesions(result, onnx_result)
        assert result.mask is not None and onnx_result.mask is not None
        assert _dice(result.mask, onnx_result.mask) > 0.999
        assert result.findings[0].positive and result.findings[0].heatmap is None
        assert result.warnings == []

    def test_predict_with_backend_torch_writes_the_same_lesions(
        self, seg_model: Path, ct_folder: Path, onnx_result: Any, tmp_path: Path
    ) -> None:
        out = tmp_path / "out"
        args = ["predict", str(ct_folder), "--out", str(out), "--model", str(seg_model)]
        assert cli_main([*args, "--backend", "torch", "--threads", str(T), "--quiet"]) == 0
        (folder,) = [p for p in out.iterdir() if p.is_dir()]
        doc = json.loads((folder / "findings.json").read_text())
        assert doc["backend"] == "torch"
        volumes = [lesion["volume_mm3"] for lesion in doc["lesions"]["lesions"]]
        expected = [lesion.volume_mm3 for lesion in onnx_result.lesions.lesions]
        assert volumes == pytest.approx(expected, rel=0.01)
        assert (folder / "segmentation.dcm").is_file()

    def test_a_segmentation_backend_has_no_heatmaps(self, seg_model: Path) -> None:
        engine = InferenceEngine(seg_model, device="cpu", backend="torch", threads=T)
        x = np.zeros((3, SIZE, SIZE), np.float32)
        with pytest.raises(InferenceError, match="segmentation model has no heatmaps"):
            engine._backend.heatmaps(x, [0])


def _warned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine warning")]


class TestCpuFallback:
    """The CUDA failures of tests/inference/test_engine.py, with a segmentation model."""

    def test_cuda_failing_at_start_runs_onnx_runtime_on_the_cpu(
        self,
        seg_model: Path,
        ct_folder: Path,
        onnx_result: Any,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        pretend_cuda(monkeypatch)
        loaded = MF.load_model_file(seg_model)
        fail_moving_to_cuda(monkeypatch, loaded.network)
        with caplog.at_level(logging.INFO, logger="desktop_app.inference.engine"):
            engine = InferenceEngine(loaded, device="cuda", threads=T)
            result = engine.run(_volume(ct_folder))
        expected = (
            "cuda:0 failed at start (CUDA error: no kernel image is available for execution); "
            "running on the CPU instead"
        )
        # backend "auto": the fallback exports the UNet and checks it against eager PyTorch
        assert engine.backend == "onnxruntime" and result.device == "cpu"
        assert any("matches eager within tolerance" in n for n in engine.notes)
        assert result.warnings == [expected]
        assert _warned(caplog) == [f"engine warning: {expected}"]
        _assert_same_lesions(result, onnx_result)

    def test_out_of_memory_during_a_run_reruns_the_batch_on_the_cpu(
        self,
        seg_model: Path,
        ct_folder: Path,
        onnx_result: Any,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        pretend_cuda(monkeypatch)
        loaded = MF.load_model_file(seg_model)
        calls = out_of_memory_on_cuda(monkeypatch, loaded.network)
        with caplog.at_level(logging.INFO, logger="desktop_app.inference.engine"):
            engine = InferenceEngine(
                loaded, device="cuda", backend="torch", batch_size=2, threads=T
            )
            assert engine.device == "cuda:0"
            result = engine.run(_volume(ct_folder))
        expected = "cuda:0 failed during a run (out of memory); running on the CPU instead"
        assert calls == ["cuda", "cpu", "cpu", "cpu"]  # 5 slices in batches of 2, first again
        assert engine.backend == "torch" and result.device == "cpu"
        assert result.warnings == [expected]
        assert _warned(caplog) == [f"engine warning: {expected}"]
        _assert_same_lesions(result, onnx_result)


# --------------------------------------------------------------------------- without torch


def _child(code: str, env: dict[str, str]) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter from the repository root; its last stdout line is
    JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, timeout=600, cwd=REPO, env={**os.environ, **env},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    parsed: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return parsed


class TestWithoutTorch:
    def test_the_engine_segments_a_ct_series_without_torch(
        self, seg_model: Path, ct_folder: Path, onnx_result: Any, tmp_path: Path
    ) -> None:
        """The graph cache is filled here (by the module's ONNX engine); the child reads it."""
        cache = os.environ.get("RADASSIST_CACHE_DIR")
        env = {} if cache is None else {"RADASSIST_CACHE_DIR": cache}
        code = (
            "import json, sys\n"
            "from desktop_app.inference.engine import InferenceEngine\n"
            "from desktop_app.studies.index import index_paths\n"
            "from desktop_app.studies.series import assemble\n"
            "from desktop_app.studies.volume import SeriesVolume\n"
            f"(_, _, series), *_ = list(index_paths([{str(ct_folder)!r}]).iter_series())\n"
            "volume = SeriesVolume(assemble(series).stacks[0], keep=True)\n"
            f"e = InferenceEngine({str(seg_model)!r}, device='auto', threads={T})\n"
            "r = e.run(volume)\n"
            "print(json.dumps({'backend': e.backend, 'note': e.notes[0],\n"
            "    'volumes': [l.volume_mm3 for l in r.lesions.lesions],\n"
            f"    'heavy': {NO_TORCH}, 'peak_kib': {PEAK_RSS}}}))\n"
        )
        got = _child(code, env)
        assert got["heavy"] == [], f"the CPU path imported {got['heavy']}"
        assert got["backend"] == "onnxruntime" and "graph from the cache" in got["note"]
        assert got["volumes"] == [lesion.volume_mm3 for lesion in onnx_result.lesions.lesions]
        print(f"child engine peak RSS {got['peak_kib'] / 1024:.0f} MiB")

    def test_predict_writes_lesions_and_a_seg_without_torch(
        self, seg_model: Path, ct_folder: Path, onnx_result: Any, tmp_path: Path
    ) -> None:
        """The forward graph is stored in the model file (as ``export-onnx --embed`` does) and
        the child's graph cache is empty: with no torch to make one, it must use the stored."""
        import highdicom as hd
        import pydicom

        model = embed_graphs(
            seg_model, {"forward": build_for_file("forward", seg_model)},
            exporter=exporter_version(), opset=ONNX_OPSET, out=tmp_path / "embedded.safetensors",
        )  # fmt: skip
        out = tmp_path / "out"
        code = (
            "import json, sys\n"
            "from desktop_app.cli import main\n"
            f"rc = main(['predict', {str(ct_folder)!r}, '--out', {str(out)!r}, '--model',\n"
            f"    {str(model)!r}, '--device', 'cpu', '--threads', '{T}', '--quiet'])\n"
            f"print(json.dumps({{'rc': rc, 'heavy': {NO_TORCH}, 'peak_kib': {PEAK_RSS}}}))\n"
        )
        got = _child(code, {"RADASSIST_CACHE_DIR": str(tmp_path / "empty-cache")})
        assert got["rc"] == 0
        assert got["heavy"] == [], f"predict imported {got['heavy']}"
        (folder,) = [p for p in out.iterdir() if p.is_dir()]
        doc = json.loads((folder / "findings.json").read_text())
        volumes = [lesion["volume_mm3"] for lesion in doc["lesions"]["lesions"]]
        assert volumes == pytest.approx([x.volume_mm3 for x in onnx_result.lesions.lesions])
        seg = hd.seg.segread(folder / "segmentation.dcm")
        assert seg.number_of_segments == len(volumes)
        sources = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                   for p in ct_folder.glob("*.dcm")}  # fmt: skip
        referenced = {
            str(item.ReferencedSOPInstanceUID)
            for series in seg.ReferencedSeriesSequence
            for item in series.ReferencedInstanceSequence
        }
        assert referenced == sources
        print(f"child predict peak RSS {got['peak_kib'] / 1024:.0f} MiB")


# --------------------------------------------------------------------------- int8


class TestInt8:
    def test_int8_lesions_stay_close_to_fp32(
        self, seg_model: Path, ct_folder: Path, onnx_result: Any
    ) -> None:
        engine = InferenceEngine(seg_model, device="cpu", int8=True, threads=T)
        assert engine.backend == "onnxruntime-int8" and engine.warnings == []
        assert any(n.startswith("int8 (static QDQ)") for n in engine.notes)
        result = engine.run(_volume(ct_folder))
        assert result.lesions is not None and result.mask is not None
        assert _dice(result.mask, onnx_result.mask) > 0.9
        fp32 = sorted(x.volume_mm3 for x in onnx_result.lesions.lesions)
        int8 = sorted(x.volume_mm3 for x in result.lesions.lesions)
        assert sum(int8) == pytest.approx(sum(fp32), rel=0.1)
        assert int8[-1] == pytest.approx(fp32[-1], rel=0.1)  # the largest lesion
        assert abs(len(int8) - len(fp32)) <= max(2, len(fp32) // 4)  # specks may come and go

    def test_a_ct_model_is_calibrated_on_ct_slices(self) -> None:
        spec = MF.default_manifest(
            name="c", architecture="unet-lite0", labels=("nodule",), image_size=SIZE,
            task="segmentation", intended_input=CT_SLICES,
        ).preprocessing  # fmt: skip
        ct = calibration_inputs(spec, n=4, modalities=("CT",))
        radiographs = calibration_inputs(spec, n=4)
        assert ct.shape == radiographs.shape == (4, spec.channels, SIZE, SIZE)
        assert np.isfinite(ct).all() and not np.allclose(ct, radiographs)
        assert np.array_equal(ct, calibration_inputs(spec, n=4, modalities=("ct",)))
