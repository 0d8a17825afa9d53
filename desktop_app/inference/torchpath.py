"""The engine's PyTorch backend: the network on a GPU (CUDA, MPS) with its CPU fallback, eager
PyTorch on the CPU when asked for (``backend="torch"``), and models whose heatmap graph can't
be written out. Imported only when one of those is needed: the CPU path is ``onnxpath``.

A CUDA/MPS failure at start or during a run (out of memory, a driver error) moves the network
to the CPU, where the fastest exact path of ``fastpath`` runs it; the warning goes to ``warn``
once. Heatmaps: ``gradcam.fine_cam`` (LayerCAM fused with CAM) or Grad-CAM with hooks, on the
backend's device, with one PyTorch thread on the CPU (``HEATMAP_CPU_THREADS``). A segmentation
model's forward pass is its per-pixel logits (N, labels, S, S), handed whole to ``segrun``, with
its pooled encoder features when it has OOD statistics (``fastpath.EncoderFeatures``): no
Grad-CAM layer or feature map is captured, and it has no heatmaps.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from desktop_app.inference.devices import (
    choose_device,
    configure_cpu_threads,
    device_name,
    empty_cache,
    failure_summary,
    is_device_failure,
)
from desktop_app.inference.fastpath import (
    ForwardOutputs,
    ForwardRunner,
    TorchRunner,
    build_cpu_path,
)
from desktop_app.inference.gradcam import fine_cam, fine_layers, grad_cam, head_weight
from desktop_app.infra.errors import InferenceError
from desktop_app.model.archs import gradcam_target_layer
from desktop_app.model.modelfile import LoadedModel, load_model_file

log = logging.getLogger(__name__)

HEATMAP_CPU_THREADS = 1
"""PyTorch threads for the heatmap's forward and backward passes on the CPU. Eager PyTorch
with 2 OpenMP threads on a 2-core machine that is busy elsewhere (the GUI, another job) spends
most of its time waiting at barriers: LayerCAM took 4.5 s wall (1.45 s CPU) with 2 threads and
0.49 s wall (0.10 s CPU) with 1, interleaved, at load 7 (benchmarks/README.md). On an idle
machine 1 thread costs about 1.5x the wall time of 2. Under OpenMP the setting is per calling
thread, so other engines in other threads keep theirs."""


@contextlib.contextmanager
def _cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` PyTorch intra-op threads (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchBackend:
    """A loaded network on a device, with the CPU fallback.

    ``features``: the forward pass also returns the Grad-CAM layer's output (heatmap method
    "cam" from features); ``penultimate``: it also returns the head's input (OOD score).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        device: str,
        *,
        backend: str,
        int8: bool,
        threads: int | None,
        features: bool,
        penultimate: bool,
        heatmap_method: str,
        warn: Callable[[str], None],
    ) -> None:
        self.loaded = loaded
        self.loaded.network.eval()
        self.backend_requested = backend
        self.int8 = int8
        self.heatmap_method = heatmap_method
        self.penultimate = penultimate
        self._warn = warn
        arch = loaded.manifest.architecture
        self.segmentation = loaded.manifest.task == "segmentation"
        self.layer = gradcam_target_layer(arch)
        self.head_weight: np.ndarray | None = None
        if self.segmentation:  # per-pixel logits: no heatmaps, no CAM features
            self.fine_layers: tuple[str, ...] = ()
            self.features_layer: str | None = None
        else:
            self.fine_layers = fine_layers(arch)
            self.features_layer = self.layer if features else None
            self.head_weight = head_weight(loaded.network)
        self.threads = configure_cpu_threads(threads)
        self.notes: list[str] = []
        self._runner: ForwardRunner
        self._place(device)

    @property
    def device(self) -> str:
        return device_name(self._device)

    @property
    def name(self) -> str:
        return self._runner.name

    @property
    def network(self) -> torch.nn.Module:
        return self.loaded.network

    def _place(self, device: str) -> None:
        """Choose the device (the CPU for int8) and build the forward path on it; an
        accelerator that fails already here leaves the backend on the CPU."""
        choice = choose_device("cpu" if self.int8 else device)
        if self.int8 and str(device).strip().lower() not in ("auto", "cpu"):
            self._warn(f"int8 runs on the CPU (ONNX Runtime); device {device!r} is not used")
        if choice.warning:
            self._warn(choice.warning)
        self._device = choice.device
        if self._device.type == "cpu":
            self._setup_cpu()
            return
        try:
            self.loaded.network.to(self._device)
            self._runner = TorchRunner(
                self.loaded.network, self._device, self.features_layer, self.penultimate
            )
        except Exception as err:
            if not is_device_failure(err):
                raise
            self._fall_back(err, "at start")

    def _setup_cpu(self) -> None:
        spec = self.loaded.manifest.preprocessing
        modalities = tuple(self.loaded.manifest.intended_input.modalities)

        def calibration() -> np.ndarray:
            from desktop_app.inference.ortrun import calibration_inputs

            return calibration_inputs(spec, modalities=modalities)

        path = build_cpu_path(
            self.loaded.network,
            spec.image_size,
            spec.channels,
            backend=self.backend_requested,
            int8=self.int8,
            threads=self.threads,
            calibration=calibration,
            features_layer=self.features_layer,
            penultimate=self.penultimate,
        )
        self._runner = path.runner
        self.notes.extend(path.notes)
        for message in path.warnings:
            self._warn(message)
        log.info("CPU path %s built in %.2f s", path.runner.name, path.seconds)

    def _fall_back(self, err: BaseException, when: str) -> None:
        """Move to the CPU after an accelerator failure; warn once."""
        failed = self.device
        self._warn(f"{failed} failed {when} ({failure_summary(err)}); running on the CPU instead")
        log.debug("device failure", exc_info=err)
        old = self._device
        try:
            self.loaded.network.to("cpu")
        except Exception:  # a broken context can refuse even that: reload from the file
            log.debug("moving the network back failed; reloading it", exc_info=True)
            self.loaded = load_model_file(self.loaded.path)
        empty_cache(old)
        self._device = torch.device("cpu")
        self._setup_cpu()

    def _call_runner(self, x: np.ndarray) -> ForwardOutputs:
        if self.features_layer is None and not self.penultimate:
            return ForwardOutputs(self._runner(x))
        return self._runner.outputs(x)

    def forward(self, x: np.ndarray) -> ForwardOutputs:
        """Logits and the outputs this backend was built for; a GPU failure moves to the CPU
        and runs again there."""
        try:
            return self._call_runner(x)
        except Exception as err:
            if self._device.type == "cpu" or not is_device_failure(err):
                raise
            self._fall_back(err, "during a run")
            return self._call_runner(x)

    def heatmaps(self, x: np.ndarray, label_indices: Sequence[int]) -> dict[int, np.ndarray]:
        """The heatmap method's maps of one network input (C, S, S) for ``label_indices``."""

        if self.segmentation:
            raise InferenceError(
                "a segmentation model has no heatmaps: its output is the per-pixel mask"
            )

        def once() -> dict[int, np.ndarray]:
            t = torch.from_numpy(np.ascontiguousarray(x[None])).to(self._device)
            with _cpu_threads(HEATMAP_CPU_THREADS if self._device.type == "cpu" else None):
                network = self.loaded.network
                if self.heatmap_method == "layercam":
                    return fine_cam(network, self.fine_layers, self.layer, t, label_indices).maps
                return grad_cam(network, self.layer, t, label_indices).maps

        try:
            return once()
        except Exception as err:
            if self._device.type == "cpu" or not is_device_failure(err):
                raise
            self._fall_back(err, "during Grad-CAM")
            return once()
