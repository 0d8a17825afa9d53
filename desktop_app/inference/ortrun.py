"""ONNX Runtime on the CPU without PyTorch: the sessions over a model's graphs (the forward pass,
and the LayerCAM heatmap graph of ``inference.graphs``), int8 quantization, the exactness
tolerance and the seeded probe and calibration inputs. Imports neither torch nor MONAI: this
is the app's CPU inference path.

Sessions run sequentially with ``threads`` intra-op threads. Spinning is off
(``session.intra_op.allow_spinning`` = 0): a spinning pool keeps the cores busy for a while
after each call, which slowed the GUI and other work on a 2-core machine and inflated the
timings of anything run beside it (benchmarks/README.md); the cost is a few hundred
microseconds of wake-up per call.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from desktop_app.infra.errors import InferenceError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "torch")
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
FEATURES_NAME = "features"
PENULTIMATE_NAME = "penultimate"
SELECT_NAME = "select"
MAPS_NAME = "maps"
EXACT_ATOL = 1e-4
EXACT_RTOL = 1e-4
CALIBRATION_IMAGES = 16
HEATMAP_METHODS: tuple[str, ...] = ("layercam", "cam")
"""``layercam``: ``gradcam.fine_cam`` (the default, stride-8 resolution); ``cam``: the last feature
map's Grad-CAM (= CAM; stride 32). Measured: benchmarks/README.md, "Localization"."""


class GraphUnavailable(InferenceError):
    """No graph of this kind for this model, and no PyTorch to make one."""


class UnsupportedLayers(InferenceError):
    """The network holds a layer whose backward pass the heatmap graph does not write out
    (raised by ``inference.graphs`` while making the graph)."""


@dataclass(frozen=True)
class ForwardOutputs:
    """One forward pass's outputs: logits (N, labels); the Grad-CAM layer's output
    (N, K, h, w) when the runner was built with a ``features_layer``; the head's input
    (N, d) when it was built with ``penultimate``. All float32."""

    logits: np.ndarray
    features: np.ndarray | None = None
    penultimate: np.ndarray | None = None


class ForwardRunner(Protocol):
    """Logits for a batch: float32 (N, C, S, S) → float32 (N, labels); with
    ``run_with_features`` also the Grad-CAM layer's output (N, K, h, w), or None when this
    runner was built without it; ``outputs`` gives everything the runner was built to return."""

    name: str

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def run_with_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...

    def outputs(self, x: np.ndarray) -> ForwardOutputs: ...


def session_options(threads: int) -> Any:
    """CPU session options: ``threads`` intra-op threads, sequential, no spinning, all graph
    optimizations, errors only in the log."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings are not the user's business
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def cpu_session(onnx_model: bytes, threads: int) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(
        onnx_model, session_options(threads), providers=["CPUExecutionProvider"]
    )


class OrtRunner:
    """An ONNX Runtime session on the CPU over an in-memory model (its ``features`` output,
    when the model has one, feeds ``run_with_features``)."""

    def __init__(self, onnx_model: bytes, threads: int, name: str = "onnxruntime") -> None:
        self.session = cpu_session(onnx_model, threads)
        self.name = name
        self.threads = threads
        names = {o.name for o in self.session.get_outputs()}
        self.has_features = FEATURES_NAME in names
        self.has_penultimate = PENULTIMATE_NAME in names

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        return np.asarray(out, dtype=np.float32)

    def run_with_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.has_features:
            return self(x), None
        x = np.ascontiguousarray(x, dtype=np.float32)
        logits, features = self.session.run([OUTPUT_NAME, FEATURES_NAME], {INPUT_NAME: x})
        return np.asarray(logits, dtype=np.float32), np.asarray(features, dtype=np.float32)

    def outputs(
        self, x: np.ndarray, *, features: bool = True, penultimate: bool = True
    ) -> ForwardOutputs:
        """The logits, and the graph's other outputs unless left out (``features=False``: the
        (N, K, h, w) feature map is not copied out of the session)."""
        names = [OUTPUT_NAME]
        names += [FEATURES_NAME] if features and self.has_features else []
        names += [PENULTIMATE_NAME] if penultimate and self.has_penultimate else []
        x = np.ascontiguousarray(x, dtype=np.float32)
        values = dict(zip(names, self.session.run(names, {INPUT_NAME: x}), strict=True))
        found = {k: np.asarray(v, dtype=np.float32) for k, v in values.items()}
        return ForwardOutputs(
            found[OUTPUT_NAME], found.get(FEATURES_NAME), found.get(PENULTIMATE_NAME)
        )


class CamRunner:
    """An ONNX Runtime session on a LayerCAM graph (``inference.graphs.LayerCamGraph``): one
    image (C, S, S) and the labels wanted → their fused heatmaps (h, w) in [0, 1], as
    ``gradcam.fine_cam`` computes them with PyTorch."""

    def __init__(self, onnx_model: bytes, threads: int, labels: int) -> None:
        self.session = cpu_session(onnx_model, threads)
        self.labels = labels

    def maps(self, x: np.ndarray, class_indices: Sequence[int]) -> dict[int, np.ndarray]:
        wanted = list(dict.fromkeys(int(c) for c in class_indices))
        if not wanted:
            return {}
        select = np.zeros((len(wanted), self.labels), dtype=np.float32)
        select[np.arange(len(wanted)), wanted] = 1.0
        image = np.ascontiguousarray(np.asarray(x, dtype=np.float32)[None])
        maps = self.session.run([MAPS_NAME], {INPUT_NAME: image, SELECT_NAME: select})[0]
        return {c: np.asarray(maps[k], dtype=np.float32) for k, c in enumerate(wanted)}


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b| / (EXACT_ATOL + EXACT_RTOL |b|)``: ≤ 1 means "the same numbers".

    NaN or infinity anywhere in either gives infinity: NaN equals nothing, itself included
    (``equal_nan=False``), and ``np.max`` over a NaN is NaN, which ``> 1`` lets through.
    """
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape or nonfinite(a64) or nonfinite(b64):
        return float("inf")
    return float(np.max(np.abs(a64 - b64) / (EXACT_ATOL + EXACT_RTOL * np.abs(b64)), initial=0.0))


def nonfinite(values: np.ndarray) -> str | None:
    """None when every value is finite, else what is not ("2 NaN, 1 infinite of 6 values")."""
    values = np.asarray(values)
    if np.isfinite(values).all():
        return None
    nan = int(np.isnan(values).sum())
    return f"{nan} NaN, {int(np.isinf(values).sum())} infinite of {values.size} values"


def probe_input(image_size: int, channels: int, n: int = 2, seed: int = 1234) -> np.ndarray:
    """A fixed input batch for the exactness check (seeded, same on every machine)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, size=(n, channels, image_size, image_size)).astype(np.float32)


def calibration_inputs(
    spec: Any,
    n: int = CALIBRATION_IMAGES,
    seed: int = 20240601,
    modalities: Sequence[str] = (),
) -> np.ndarray:
    """``n`` seeded synthetic images preprocessed by ``spec`` (a
    ``desktop_app.model.preprocessing.PreprocessSpec``): int8 calibration data that needs no
    patient images and is the same on every machine. Chest radiographs (with and without
    findings), or, for a model whose intended input is CT only (``modalities``), the slices of
    a chest CT phantom with lung nodules in HU: a CT model calibrated on radiographs clips
    the activation ranges that CT slices reach."""
    from desktop_app.model.preprocessing import preprocess_batch

    if modalities and all(m.upper() == "CT" for m in modalities):
        return preprocess_batch(_ct_calibration_slices(n, seed), spec)[0]
    from desktop_app.phantoms.chest_xr import DEMO_FINDINGS, make_chest_xr

    images = []
    for i in range(n):
        findings = [f for k, f in enumerate(DEMO_FINDINGS) if (i >> k) & 1]
        rows = 256 if i % 4 else 320
        cols = rows if i % 3 else rows - 64
        image, _ = make_chest_xr(seed + i, rows=rows, cols=cols, findings=findings)
        images.append(image.astype(np.float32))
    x, _ = preprocess_batch(images, spec)
    return x


def _ct_calibration_slices(n: int, seed: int) -> list[np.ndarray]:
    """``n`` slices (HU, float32) spread over a seeded 256² chest CT phantom with three
    nodules, every other one through a nodule where the phantom has enough."""
    from desktop_app.phantoms.ct import make_ct_volume

    hu, _geometry, truth = make_ct_volume(seed, slices=max(n, 8), rows=256, lesions=3)
    with_lesion = sorted({i for t in truth for i in range(t.first_slice, t.last_slice + 1)})
    picked = list(np.linspace(0, len(hu) - 1, n).round().astype(int))
    for k, i in enumerate(with_lesion[: n // 2]):
        picked[2 * k] = i
    return [hu[i].astype(np.float32) for i in picked]


def first_conv(onnx_model: bytes) -> list[str]:
    """The name of the graph's first Conv node (the stem), as a list (empty if none)."""
    import onnx

    graph = onnx.load_from_string(onnx_model).graph
    return next(([n.name] for n in graph.node if n.op_type == "Conv" and n.name), [])


def quantize_int8(onnx_model: bytes, calibration: np.ndarray, *, batch: int = 4) -> bytes:
    """Static int8 quantization (QDQ, per-channel weights, uint8 activations, MinMax
    calibration on ``calibration``) of an fp32 ONNX model; returns the int8 model.

    The stem convolution stays fp32: quantizing it doubled the probability changes on the demo
    test split (mean |Δp| 0.051 → 0.025 with it excluded, at a small cost in speed).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(
                [
                    {INPUT_NAME: calibration[i : i + batch]}
                    for i in range(0, len(calibration), batch)
                ]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="radassist-int8-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(tmp)
        fp32, prepared, int8 = folder / "fp32.onnx", folder / "pre.onnx", folder / "int8.onnx"
        fp32.write_bytes(onnx_model)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=first_conv(onnx_model),
        )
        return int8.read_bytes()


# --------------------------------------------------------------------------- CAM from features


def cam_from_features(
    features: np.ndarray, weight: np.ndarray, class_indices: Sequence[int]
) -> dict[int, np.ndarray]:
    """Grad-CAM maps from the target layer's output alone, for networks whose target layer
    feeds global average pooling and one linear layer (every network of ``desktop_app.model.networks``:
    EfficientNet-Lite, ResNet, DenseNet; dropout is the identity in eval mode).

    Then ``dy_c / dA_k(i, j) = w_ck / (h w)`` everywhere, so Grad-CAM's weights are the head's
    weights up to a constant that the normalisation removes: the map is
    ``ReLU(sum_k w_ck A_k) / max`` (Zhou et al.'s CAM, which Grad-CAM generalises). No backward
    pass, and the features come with the forward pass that computed the probabilities.
    ``features``: (K, h, w) of one image; ``weight``: (labels, K).
    """
    a = np.asarray(features, dtype=np.float32)
    w = np.asarray(weight, dtype=np.float32)
    if a.ndim != 3 or w.ndim != 2 or w.shape[1] != a.shape[0]:
        raise ValueError(f"features {a.shape} and head weight {w.shape} do not fit")
    maps: dict[int, np.ndarray] = {}
    for c in dict.fromkeys(int(c) for c in class_indices):
        cam = np.maximum(np.tensordot(w[c], a, axes=(0, 0)), np.float32(0.0))
        peak = float(cam.max()) if cam.size else 0.0
        maps[c] = (cam / np.float32(peak) if peak > 0 else cam).astype(np.float32, copy=False)
    return maps
