"""The network's forward pass on the CPU, by the fastest path that gives the same numbers.

Candidates, EfficientNet-Lite0 at 224², medians of interleaved runs on the shared 2-core
machine (benchmarks/bench_inference.py; the numbers and the load are in benchmarks/README.md):

| path | batch 1, 1 thread | batch 16, 1 thread | batch 1, 2 threads under load |
| --- | --- | --- | --- |
| ONNX Runtime (in-memory export) | 26 ms | 445 ms | 43 ms |
| eager PyTorch, ``inference_mode`` | 87 ms | 2790 ms | 0.5-1 s |
| eager, channels_last | 64 ms | 1070 ms | 0.15-0.35 s |
| TorchScript trace + freeze + optimize_for_inference | 56 ms | 2270 ms | 0.2 s |

ONNX Runtime is the default CPU path: 3-6x faster than eager, equal to it within 1e-5, and far
less hurt by other processes competing for the cores (PyTorch's OpenMP threads wait on each
other). TorchScript is also deprecated in this PyTorch and takes 2-13 s to build.

"Exact" means: on a fixed probe input the fast path's logits (and features) match eager PyTorch
within ``EXACT_ATOL + EXACT_RTOL * |value|``; if the export fails or the check does not hold, the
engine keeps eager PyTorch and says why. The exported graph also outputs the Grad-CAM layer's
feature map (``features``), so heatmaps need no second pass (``gradcam.cam_from_features``),
and, for the out-of-distribution score, the classifier head's input (``penultimate``: the pooled
penultimate features, ``networks.PenultimateFeatures``), so that score needs no second pass
either (benchmarks/bench_ood_cost.py). A segmentation UNet has no such head: its ``penultimate``
is the encoder's deepest feature map (stride 32; 320 channels for the Lite0 encoder),
global-average-pooled (:class:`EncoderFeatures`), the same summary of the image that Lite0's
classifier pools before its head convolution.
int8 (``quantize_int8``: ONNX Runtime static QDQ quantization, per-channel weights, the stem
convolution kept in fp32, calibrated on seeded synthetic radiographs preprocessed as the model
file says) is never chosen automatically: it changes the outputs (see the AUC change in
benchmarks/README.md) and is an explicit option (``--int8``).
"""

from __future__ import annotations

import io
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from desktop_app.inference.ortrun import (  # noqa: F401  (the CPU runners' names, public here too)
    BACKENDS,
    CALIBRATION_IMAGES,
    EXACT_ATOL,
    EXACT_RTOL,
    FEATURES_NAME,
    INPUT_NAME,
    ONNX_OPSET,
    OUTPUT_NAME,
    PENULTIMATE_NAME,
    ForwardOutputs,
    ForwardRunner,
    OrtRunner,
    calibration_inputs,
    first_conv,
    max_difference,
    nonfinite,
    probe_input,
    quantize_int8,
)
from desktop_app.infra.errors import InferenceError
from desktop_app.model.capture import ForwardCapture

log = logging.getLogger(__name__)


class EncoderFeatures(ForwardCapture):
    """A segmentation UNet's pooled encoder features, captured during a forward pass (the
    out-of-distribution score of a segmentation model; ``penultimate`` of its outputs)::

        with EncoderFeatures(unet) as feats:
            logits = unet(x)
        features = feats.value  # (n, 320) for unet-lite0, detached

    The encoder's last (deepest, stride-32) feature map averaged over its pixels: what the
    image looks like to the network, whatever the decoder then draws. ``pool(unet.encoder(x))``
    gives the same numbers without the decoder (training fits the statistics that way).
    """

    def __init__(self, model: nn.Module) -> None:
        from desktop_app.model.networks import unwrap

        encoder = unwrap(model).encoder
        assert isinstance(encoder, nn.Module)
        super().__init__(encoder, pre=False)

    @staticmethod
    def pool(maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, C) from the encoder's feature maps: the last one's mean over its pixels."""
        return maps[-1].mean(dim=(2, 3))

    def _hook(self, module: nn.Module, args: Any, out: Any = None) -> None:
        self.value = self.pool(out).detach()


def pooled_features(model: nn.Module) -> Any:
    """The capture of ``model``'s out-of-distribution features: the pooled encoder features of
    a segmentation UNet (:class:`EncoderFeatures`), else the classifier head's input
    (``networks.PenultimateFeatures``)."""
    from desktop_app.model.networks import PenultimateFeatures, head_name

    if head_name(model) == "segmentation_head":  # networks' FlexibleUNet
        return EncoderFeatures(model)
    return PenultimateFeatures(model)


class TorchRunner:
    """Eager PyTorch under ``inference_mode`` on ``device`` (the reference path).

    ``features_layer``: a module name whose output ``run_with_features`` also returns;
    ``penultimate``: ``outputs`` also returns the head's input.
    """

    def __init__(
        self,
        network: nn.Module,
        device: torch.device | str = "cpu",
        features_layer: str | None = None,
        penultimate: bool = False,
    ) -> None:
        self.network = network
        self.device = torch.device(device)
        self.features_layer = features_layer
        self.penultimate = penultimate
        self.name = "torch" if self.device.type == "cpu" else f"torch-{self.device.type}"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = self.network(torch.from_numpy(np.ascontiguousarray(x)).to(self.device))
            return out.float().cpu().numpy()

    def run_with_features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.outputs(x)
        return out.logits, out.features

    def outputs(self, x: np.ndarray) -> ForwardOutputs:
        captured: list[torch.Tensor] = []
        handle = None
        if self.features_layer is not None:
            layer = dict(self.network.named_modules())[self.features_layer]
            handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        pooled = pooled_features(self.network) if self.penultimate else None
        try:
            if pooled is None:
                logits = self(x)
            else:
                with pooled:
                    logits = self(x)
        finally:
            if handle is not None:
                handle.remove()
        return ForwardOutputs(
            logits,
            captured[-1].float().cpu().numpy() if captured else None,
            None if pooled is None or pooled.value is None else pooled.value.float().cpu().numpy(),
        )


class _WithFeatures(nn.Module):
    """``network`` returning ``(logits, output of layer?, head input?)``: for an export with
    the extra outputs."""

    def __init__(self, network: nn.Module, layer: str | None, penultimate: bool = False) -> None:
        super().__init__()
        self.network = network
        self.layer = None if layer is None else dict(network.named_modules())[layer]
        self.penultimate = penultimate

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        captured: list[torch.Tensor] = []
        handle = None
        if self.layer is not None:
            handle = self.layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        pooled = pooled_features(self.network)
        try:
            with pooled:
                logits = self.network(x)
        finally:
            if handle is not None:
                handle.remove()
        out = [logits, *captured[-1:]]
        if self.penultimate:
            assert pooled.value is not None
            out.append(pooled.value)
        return tuple(out)


def export_onnx(
    network: nn.Module,
    image_size: int,
    channels: int,
    *,
    opset: int = ONNX_OPSET,
    features_layer: str | None = None,
    penultimate: bool = False,
) -> bytes:
    """The network as an ONNX model (bytes) with a dynamic batch axis; CPU, fp32.

    Output ``logits``; with ``features_layer`` also ``features``, that layer's output (what
    Grad-CAM needs, so the heatmaps cost no second pass); with ``penultimate`` also
    ``penultimate``, the head's input (the out-of-distribution score's features; a
    segmentation UNet's pooled encoder features). Uses the TorchScript-based exporter
    (``dynamo=False``), which matches eager to ~1e-6 on EfficientNet-Lite; its constant-folding
    notes are silenced here (they are about slices the exporter leaves for ONNX Runtime to
    fold). The network must be on the CPU.
    """
    if next(network.parameters()).device.type != "cpu":
        raise InferenceError("the ONNX export needs the network on the CPU")
    dummy = torch.zeros(1, channels, image_size, image_size)
    buffer = io.BytesIO()
    plain = features_layer is None and not penultimate
    module = network if plain else _WithFeatures(network, features_layer, penultimate)
    outputs = [OUTPUT_NAME]
    outputs += [] if features_layer is None else [FEATURES_NAME]
    outputs += [PENULTIMATE_NAME] if penultimate else []
    was_training = network.training
    network.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (dummy,),
                buffer,  # type: ignore[arg-type]  # a file object works too
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in [INPUT_NAME, *outputs]},
                opset_version=opset,
                do_constant_folding=True,
            )
    finally:
        network.train(was_training)
    return buffer.getvalue()


@dataclass
class CpuPath:
    """The runner chosen for the CPU and what the choice found (for warnings and reports)."""

    runner: ForwardRunner
    notes: list[str]
    warnings: list[str]
    seconds: float
    max_difference: float | None = None


def build_cpu_path(
    network: nn.Module,
    image_size: int,
    channels: int,
    *,
    backend: str = "auto",
    int8: bool = False,
    threads: int = 1,
    calibration: Callable[[], np.ndarray] | None = None,
    features_layer: str | None = None,
    penultimate: bool = False,
) -> CpuPath:
    """Choose and build the CPU runner.

    ``backend``: "auto" (ONNX Runtime if it exports and matches eager, else eager), "torch",
    or "onnxruntime" (as auto, but a failed export or check is reported as a warning).
    ``int8``: quantize the ONNX model (needs ``calibration``, a callable giving preprocessed
    calibration inputs); falls back to fp32 ONNX Runtime, with a warning, if that fails.
    ``features_layer``/``penultimate``: the extra outputs (see :func:`export_onnx`), checked
    against eager PyTorch like the logits.
    """
    if backend not in BACKENDS:
        raise InferenceError(
            f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}"
        )
    start = time.perf_counter()
    eager = TorchRunner(network, "cpu", features_layer, penultimate)
    notes: list[str] = []
    warns: list[str] = []
    if backend == "torch" and not int8:
        return CpuPath(eager, ["eager PyTorch (asked for)"], warns, time.perf_counter() - start)
    try:
        fp32 = export_onnx(
            network, image_size, channels, features_layer=features_layer, penultimate=penultimate
        )
        runner = OrtRunner(fp32, threads)
        probe = probe_input(image_size, channels)
        got, ref = runner.outputs(probe), eager.outputs(probe)
        broken = nonfinite(ref.logits)
        diff = max_difference(got.logits, ref.logits)
        for mine, theirs in ((got.features, ref.features), (got.penultimate, ref.penultimate)):
            if theirs is not None:
                diff = max(diff, max_difference(mine, theirs) if mine is not None else 1e9)
    except Exception as err:  # an export or runtime failure: eager still works
        log.debug("ONNX export failed", exc_info=True)
        message = (
            f"ONNX Runtime path unavailable ({type(err).__name__}: {err}); using eager PyTorch"
        )
        (warns if backend == "onnxruntime" or int8 else notes).append(message)
        return CpuPath(eager, notes, warns, time.perf_counter() - start)
    if broken:  # nothing to check ONNX Runtime against; a warning whatever was asked
        warns.append(
            f"the network's outputs on the check input are not finite ({broken}); "
            "the model file's weights may be broken"
        )
        return CpuPath(eager, notes, warns, time.perf_counter() - start, diff)
    if diff > 1.0:
        how = f"by {diff:.1f}x the tolerance" if np.isfinite(diff) else "(NaN or infinite outputs)"
        message = f"ONNX Runtime differs from eager PyTorch {how}; using eager PyTorch"
        (warns if backend == "onnxruntime" else notes).append(message)
        return CpuPath(eager, notes, warns, time.perf_counter() - start, diff)
    notes.append(f"ONNX Runtime fp32, matches eager within tolerance ({diff:.3f})")
    if not int8:
        return CpuPath(runner, notes, warns, time.perf_counter() - start, diff)
    try:
        if calibration is None:
            raise InferenceError("int8 needs calibration inputs")
        quantized = OrtRunner(quantize_int8(fp32, calibration()), threads, name="onnxruntime-int8")
        probe = probe_input(image_size, channels)
        q_out = quantized(probe)
        if bad := nonfinite(q_out):
            raise InferenceError(f"the int8 model's outputs are not finite ({bad})")
        q_diff = float(np.max(np.abs(q_out - eager(probe))))
    except Exception as err:
        log.debug("int8 quantization failed", exc_info=True)
        warns.append(
            f"int8 quantization failed ({type(err).__name__}: {err}); running fp32 ONNX Runtime"
        )
        return CpuPath(runner, notes, warns, time.perf_counter() - start, diff)
    notes.append(f"int8 (static QDQ), largest logit change on the probe {q_diff:.3f}")
    return CpuPath(quantized, notes, warns, time.perf_counter() - start, diff)
