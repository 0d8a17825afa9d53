"""The engine's CPU backend without PyTorch: ONNX Runtime sessions over the model's graphs
(``onnxcache``: stored in the model file, cached, or made once), for the forward pass (logits,
the last feature map, the head's input for the OOD score) and for the LayerCAM heatmaps.

The heatmap session is opened on the first heatmap, so a run with no positive finding never
pays for it. int8 quantizes the forward graph (``ortrun.quantize_int8``, calibrated on seeded
synthetic radiographs); heatmaps stay fp32.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from desktop_app.inference.onnxcache import obtain
from desktop_app.inference.ortrun import (
    CamRunner,
    ForwardOutputs,
    OrtRunner,
    calibration_inputs,
    cam_from_features,
    nonfinite,
    probe_input,
    quantize_int8,
)
from desktop_app.infra.cpus import physical_cores
from desktop_app.infra.errors import InferenceError, ModelFileError, RadAssistError
from desktop_app.model.modeldata import ModelData

log = logging.getLogger(__name__)


class OnnxBackend:
    """ONNX Runtime on the CPU for a model read by ``model.modeldata``.

    ``features``: keep the last feature map of each forward pass (heatmap method "cam");
    ``penultimate``: keep the head's input (the OOD score).
    """

    device = "cpu"

    def __init__(
        self,
        model: ModelData,
        *,
        int8: bool,
        threads: int | None,
        features: bool,
        penultimate: bool,
        heatmap_method: str,
        warn: Callable[[str], None],
    ) -> None:
        start = time.perf_counter()
        self.model = model
        self.threads = max(1, int(threads) if threads else physical_cores())
        self.features = features
        self.penultimate = penultimate
        self.heatmap_method = heatmap_method
        self._warn = warn
        self._cam: Callable[[np.ndarray, Sequence[int]], dict[int, np.ndarray]] | None = None
        self._cam_lock = threading.Lock()
        forward = obtain(model, "forward")
        self.notes = [f"ONNX Runtime fp32 (graph from the {forward.source})"]
        try:
            self._runner = OrtRunner(forward.data, self.threads)
        except Exception as err:
            # a damaged or hostile stored graph (ONNX Runtime refuses, e.g., any external
            # data path in a graph loaded from memory): one line, never a traceback
            reason = " ".join(str(err).split())[:200]
            raise ModelFileError(
                f"its {forward.source} forward graph can't be opened by ONNX Runtime ({reason})",
                model.path,
                "store the graphs again: radassist-train export-onnx --model FILE --embed",
            ) from None
        if int8:
            self._runner = self._quantized(forward.data)
        self.head_weight = model.head_weight
        log.info("ONNX Runtime path ready in %.2f s", time.perf_counter() - start)

    @property
    def name(self) -> str:
        return self._runner.name

    def _quantized(self, graph: bytes) -> OrtRunner:
        spec = self.model.manifest.preprocessing
        try:
            runner = OrtRunner(
                quantize_int8(graph, calibration_inputs(spec, modalities=self._modalities())),
                self.threads,
                "onnxruntime-int8",
            )
            probe = probe_input(spec.image_size, spec.channels)
            q_out, ref = runner(probe), self._runner(probe)
            if bad := nonfinite(q_out):
                raise ValueError(f"the int8 model's outputs are not finite ({bad})")
        except Exception as err:
            log.debug("int8 quantization failed", exc_info=True)
            self._warn(
                f"int8 quantization failed ({type(err).__name__}: {err}); running fp32 ONNX Runtime"
            )
            return self._runner
        change = float(np.max(np.abs(q_out - ref)))
        self.notes.append(f"int8 (static QDQ), largest logit change on the probe {change:.3f}")
        return runner

    def _modalities(self) -> tuple[str, ...]:
        return tuple(self.model.manifest.intended_input.modalities)

    def forward(self, x: np.ndarray) -> ForwardOutputs:
        return self._runner.outputs(x, features=self.features, penultimate=self.penultimate)

    def prepare_heatmaps(self) -> None:
        """Open the heatmap session now, in a background thread, so that a run's first
        heatmap does not wait for it: ONNX Runtime builds a session with the GIL released
        (measured: 0.16 s for a session build beside 0.10 s of Python, against 0.24 s one
        after the other), so it overlaps the run's decoding and forward pass. A failure here
        is raised again, in the run, by :meth:`heatmaps`.

        Only a graph stored in the model file or cached is opened ahead: making one traces the
        network with ``torch.fx``, which patches ``nn.Module.__call__`` for the whole process
        while it runs, so eager PyTorch in another thread (another engine, training) would
        fail with "module is not installed as a submodule". The first heatmap makes it, in the
        run's thread."""

        def open_now() -> None:
            with self._cam_lock:
                if self._cam is None:
                    try:
                        self._cam = self._open_cam(make=False)
                    except Exception:
                        log.debug("opening the heatmap session ahead failed", exc_info=True)

        threading.Thread(target=open_now, name="radassist-heatmap-session", daemon=True).start()

    def heatmaps(self, x: np.ndarray, label_indices: Sequence[int]) -> dict[int, np.ndarray]:
        """LayerCAM maps of one network input (C, S, S), from the heatmap graph; for a network
        whose heatmap graph can't be written out, PyTorch's LayerCAM when PyTorch is installed,
        else CAM from the forward graph's last feature map (coarser; said in the notes)."""
        with self._cam_lock:
            if self._cam is None:
                self._cam = self._open_cam()
            cam = self._cam
        return cam(x, label_indices)

    def _open_cam(
        self, *, make: bool = True
    ) -> Callable[[np.ndarray, Sequence[int]], dict[int, np.ndarray]]:
        """The heatmap function; ``make=False``: only from a stored or cached graph (raises
        GraphUnavailable otherwise, choosing nothing)."""
        from desktop_app.inference.onnxcache import (
            GraphUnavailable,
            UnsupportedLayers,
            torch_installed,
        )

        try:
            graph = obtain(self.model, "layercam", make=make)
        except (GraphUnavailable, UnsupportedLayers) as err:
            if not make:
                raise
            reason = err.reason if isinstance(err, RadAssistError) else str(err)
            if torch_installed() and not isinstance(err, GraphUnavailable):
                self.notes.append(f"heatmaps: PyTorch LayerCAM ({reason})")
                return self._torch_cam()
            self.notes.append(f"heatmaps: CAM from the last feature map ({reason})")
            return self._features_cam
        runner = CamRunner(graph.data, self.threads, len(self.model.manifest.labels))
        self.notes.append(f"heatmaps: ONNX Runtime LayerCAM (graph from the {graph.source})")
        return runner.maps

    def _features_cam(self, x: np.ndarray, label_indices: Sequence[int]) -> dict[int, np.ndarray]:
        features = self._runner.outputs(np.asarray(x, dtype=np.float32)[None]).features
        if features is None or self.head_weight is None:
            raise InferenceError("the forward graph gives no feature map for heatmaps")
        return cam_from_features(features[0], self.head_weight, label_indices)

    def _torch_cam(self) -> Callable[[np.ndarray, Sequence[int]], dict[int, np.ndarray]]:
        import torch

        from desktop_app.inference.gradcam import fine_cam, fine_layers
        from desktop_app.model.archs import gradcam_target_layer
        from desktop_app.model.modelfile import load_model_file

        network = load_model_file(self.model.path).network
        arch = self.model.manifest.architecture
        fine, last = fine_layers(arch), gradcam_target_layer(arch)

        def maps(x: np.ndarray, label_indices: Sequence[int]) -> dict[int, np.ndarray]:
            t = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float32)[None]))
            return fine_cam(network, fine, last, t, label_indices).maps

        return maps
