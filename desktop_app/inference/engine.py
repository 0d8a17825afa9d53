"""The inference engine that the GUI and ``radassist predict`` share.

    engine = InferenceEngine("model.safetensors", device="auto")    # or None: the bundled one
    result = engine.run(stack_or_volume_or_path, progress=cb, stop=event)
    for finding in result.positives: ...

Loading goes through ``desktop_app.model.modelfile.load_model_file`` only (manifest, tensor shapes and
hash are checked; pickles are refused with the convert hint). Preprocessing is the model file's
``PreprocessSpec`` applied by ``desktop_app.model.preprocessing``, fed through
``desktop_app.model.imageio.image_from_frame``: the same code, on the same values, as training.

A run over a stack (one radiograph, or the slices of a series) decodes and preprocesses the
slices in batches of ``batch_size``, runs the network on each batch (on the CPU by the fastest
exact path of ``fastpath``), takes per label the maximum over the slices and the slice where it
occurs, decides positive against the operating threshold (the model file's, or the user's),
then computes Grad-CAM on that slice for each positive label (or every label, or none; see
``heatmaps``) and maps it back onto the original pixel grid (``Geometry.heatmap_to_original``),
where ``overlays.peak_region`` gives the box and the outline.

Progress: ``progress(done, total)`` with ``total = slices + 1``: one unit per slice, and the
last one for Grad-CAM and the findings. Stop: ``stop`` (a ``threading.Event`` or a callable) is
checked before every batch and before each Grad-CAM slice; when set, ``run`` raises
:class:`~desktop_app.infra.errors.Cancelled` (no partial result, so that a half-finished run is
never mistaken for a finished one). At most one batch runs after the flag is set.

Devices: see ``devices``. A CUDA/MPS failure at start or during a run (out of memory, a driver
error) moves the engine to the CPU and the run goes on; the warning is logged once and reported
in ``warnings`` and in every result. Every result names the device that produced it.

Threads: an engine may be built and run in any thread, and several engines may coexist (each
has its own network and session; nothing module-global but the process-wide torch thread count,
which every engine sets to the same value). Calls on one engine are serialised by a lock.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from desktop_app.inference.fastpath import BACKENDS, Runner, TorchRunner, build_cpu_path
from desktop_app.inference.findings import (
    Finding,
    ModelInfo,
    SeriesResult,
    SliceRef,
    Timings,
    model_info_from_manifest,
)
from desktop_app.inference.gradcam import (
    HEATMAP_METHODS,
    cam_from_features,
    fine_cam,
    fine_layers,
    grad_cam,
    head_weight,
)
from desktop_app.inference.overlays import peak_region
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import (
    Cancelled,
    ConfigError,
    DicomReadError,
    InferenceError,
    RadAssistError,
)
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.model.imageio import ImageForModel, image_from_frame, image_kind, read_image
from desktop_app.model.modelfile import LoadedModel, ModelManifest, load_model_file
from desktop_app.model.networks import gradcam_target_layer
from desktop_app.model.paths import default_model_path
from desktop_app.model.preprocessing import Geometry, preprocess_batch
from desktop_app.studies.series import SliceStack, instance_stack
from desktop_app.studies.volume import SeriesVolume

log = logging.getLogger(__name__)

HeatmapPolicy = Literal["positive", "all", "none"]
HEATMAP_POLICIES: tuple[str, ...] = ("positive", "all", "none")
GRADCAM_MODES: tuple[str, ...] = ("auto", "hooks")
Source = SeriesVolume | SliceStack | str | os.PathLike[str] | Sequence[ImageForModel | np.ndarray]

DEFAULT_BATCH_SIZE = 8
MAX_BATCH_SIZE = 256
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


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


@dataclass
class _Slices:
    """What a run iterates over: slice references and a loader for each slice's image."""

    refs: list[SliceRef]
    paths: list[str]
    load: Callable[[int], ImageForModel]
    series_uid: str = ""
    study_uid: str = ""
    modality: str = ""
    part: int = 1
    parts: int = 1


def _from_volume(volume: SeriesVolume) -> _Slices:
    stack = volume.stack
    refs = [
        SliceRef(i, s.instance.sop_instance_uid, s.frame, s.instance.rows, s.instance.columns)
        for i, s in enumerate(stack.slices)
    ]
    first = stack.slices[0].instance
    return _Slices(
        refs=refs,
        paths=[str(s.instance.path) for s in stack.slices],
        load=lambda i: image_from_frame(volume.frame(i)),
        series_uid=stack.series_instance_uid,
        modality=first.modality,
        part=stack.part,
        parts=stack.parts,
    )


def _from_path(path: Path) -> _Slices:
    """One file: every frame of a DICOM instance, or a PNG/JPEG image."""
    from desktop_app.studies.index import index_paths

    if image_kind(path) != "dicom":
        image = read_image(path)
        rows, cols = image.values.shape[:2]
        return _Slices([SliceRef(0, "", 0, rows, cols)], [str(path)], lambda _i: image)
    index = index_paths([path], executor="serial")
    if index.problems:
        problem = index.problems[0]
        raise DicomReadError(problem.reason, problem.path)
    found = [
        (study, series, inst)
        for _, study, series in index.iter_series()
        for inst in series.instances
        if inst.has_pixels
    ]
    if not found:
        raise DicomReadError("has no image to run the model on (no pixel data)", path)
    study, series, inst = found[0]
    slices = _from_volume(SeriesVolume(instance_stack(inst), keep=False))
    slices.series_uid = series.series_instance_uid
    slices.study_uid = study.study_instance_uid
    return slices


def _from_images(images: Sequence[ImageForModel | np.ndarray]) -> _Slices:
    items = [
        im if isinstance(im, ImageForModel) else ImageForModel(np.asarray(im, np.float32))
        for im in images
    ]
    if not items:
        raise InferenceError("no images to run the model on")
    refs = []
    for i, item in enumerate(items):
        if item.values.ndim != 2:
            raise InferenceError(f"image {i} must be 2-D grey values, got {item.values.shape}")
        refs.append(SliceRef(i, "", 0, int(item.values.shape[0]), int(item.values.shape[1])))
    return _Slices(refs, [f"<image {i}>" for i in range(len(items))], lambda i: items[i])


def _as_slices(source: Source) -> _Slices:
    if isinstance(source, SeriesVolume):
        return _from_volume(source)
    if isinstance(source, SliceStack):
        return _from_volume(SeriesVolume(source, keep=False))
    if isinstance(source, str | os.PathLike):
        return _from_path(Path(source))
    if isinstance(source, Sequence | np.ndarray):
        return _from_images(list(source))  # type: ignore[arg-type]  # str was handled above
    raise TypeError(
        f"can't run the model on a {type(source).__name__}: pass a SeriesVolume, a SliceStack, "
        "a file path, or a sequence of 2-D images"
    )


class InferenceEngine:
    """A verified model, ready to run on stacks of images, on a device, with Grad-CAM.

    ``model``: a model file path, an already loaded ``LoadedModel``, or None for the bundled
    demo model (``modelpaths.default_model_path``). Loading refuses (ModelFileError, one line)
    pickles, tampered, truncated and mismatched files.
    ``device``: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps"; an
    unavailable or failing accelerator falls back to the CPU with one warning.
    ``batch_size``: slices per forward pass (1..256).
    ``backend``: the CPU forward path: "auto" (fastest exact: ONNX Runtime when it matches eager
    PyTorch), "onnxruntime" or "torch"; accelerators always use PyTorch.
    ``int8``: run the CPU forward pass int8-quantized (ONNX Runtime; outputs change slightly,
    see benchmarks/README.md); forces the CPU.
    ``thresholds``: per-label operating thresholds overriding the model file's.
    ``heatmaps``: which labels get Grad-CAM heatmaps: "positive" (default), "all" (every label,
    e.g. for a GUI whose threshold slider may make a negative finding positive) or "none".
    ``region_level``: the fraction of a heatmap's peak that bounds the box and the outline.
    ``threads``: CPU threads (default: the physical cores).
    ``heatmap_method``: "layercam" (default) fuses LayerCAM at the stride-8 and stride-16 stages
    with the last layer's CAM (``gradcam.fine_cam``: one PyTorch forward pass per key slice and
    one partial backward pass per label; a 40 x 40 map at 320 px); "cam" is the last feature
    map's Grad-CAM alone (10 x 10 at 320 px; the method before LayerCAM, much coarser:
    benchmarks/README.md, "Localization").
    ``gradcam`` (method "cam" only): "auto" computes Grad-CAM from the target layer's output
    that the forward pass already returns (exact for these networks' pooling + linear heads,
    see ``gradcam.cam_from_features``; no extra pass); "hooks" runs the general hook-based
    Grad-CAM (a forward and a backward pass on the slice).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | LoadedModel | None = None,
        *,
        device: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        backend: str = "auto",
        int8: bool = False,
        thresholds: Mapping[str, float] | None = None,
        heatmaps: HeatmapPolicy = "positive",
        region_level: float = 0.5,
        threads: int | None = None,
        gradcam: str = "auto",
        heatmap_method: str = "layercam",
    ) -> None:
        start = time.perf_counter()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise ConfigError(f"batch size {batch_size!r} must be a whole number")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ConfigError(f"batch size {batch_size} must be between 1 and {MAX_BATCH_SIZE}")
        if backend not in BACKENDS:
            raise ConfigError(
                f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}"
            )
        if heatmaps not in HEATMAP_POLICIES:
            raise ConfigError(
                f"unknown heatmap policy {heatmaps!r}",
                hint=f"choose one of: {', '.join(HEATMAP_POLICIES)}",
            )
        if not 0.0 < region_level <= 1.0:
            raise ConfigError(f"region level {region_level} must be in (0, 1]")
        if gradcam not in GRADCAM_MODES:
            raise ConfigError(
                f"unknown Grad-CAM mode {gradcam!r}",
                hint=f"choose one of: {', '.join(GRADCAM_MODES)}",
            )
        if heatmap_method not in HEATMAP_METHODS:
            raise ConfigError(
                f"unknown heatmap method {heatmap_method!r}",
                hint=f"choose one of: {', '.join(HEATMAP_METHODS)}",
            )
        self.heatmap_method = heatmap_method
        self._lock = threading.RLock()
        self._warnings: list[str] = []
        self.notes: list[str] = []
        self.batch_size = batch_size
        self.backend_requested = backend
        self.int8 = bool(int8)
        self.heatmaps: HeatmapPolicy = heatmaps
        self.region_level = float(region_level)

        if isinstance(model, LoadedModel):
            self._loaded = model
        else:
            path = default_model_path() if model is None else Path(model)
            self._loaded = load_model_file(path)
        self._loaded.network.eval()
        manifest = self._loaded.manifest
        self._thresholds = self._checked_thresholds(manifest, thresholds)
        self._user_thresholds = frozenset(thresholds or {})
        self._layer = gradcam_target_layer(manifest.architecture)
        self._fine_layers = fine_layers(manifest.architecture)
        use_features = gradcam == "auto" and heatmap_method == "cam"
        self._features_layer = self._layer if use_features else None
        self._head_weight = head_weight(self._loaded.network)
        self.threads = configure_cpu_threads(threads)

        choice = choose_device("cpu" if self.int8 else device)
        if self.int8 and str(device).strip().lower() not in ("auto", "cpu"):
            self._warn(f"int8 runs on the CPU (ONNX Runtime); device {device!r} is not used")
        if choice.warning:
            self._warn(choice.warning)
        self._device = choice.device
        self._runner: Runner
        if self._device.type == "cpu":
            self._setup_cpu()
        else:
            try:
                self._loaded.network.to(self._device)
                self._runner = TorchRunner(self._loaded.network, self._device, self._features_layer)
            except Exception as err:
                if not is_device_failure(err):
                    raise
                self._fall_back(err, "at start")
        self.load_seconds = time.perf_counter() - start
        log.info(
            "engine ready: model %s %s (%s) on %s via %s in %.2f s",
            manifest.name,
            manifest.version,
            manifest.tensor_sha256[:12],
            self.device,
            self.backend,
            self.load_seconds,
        )

    # ------------------------------------------------------------------ what the GUI reads
    @property
    def manifest(self) -> ModelManifest:
        return self._loaded.manifest

    @property
    def model_path(self) -> Path:
        return self._loaded.path

    @property
    def model_info(self) -> ModelInfo:
        return model_info_from_manifest(self.manifest, self._loaded.path.name)

    @property
    def model_card(self) -> str:
        """The model card (markdown): the file's own, else generated from its manifest."""
        return self._loaded.model_card

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def thresholds(self) -> dict[str, float]:
        """The operating thresholds in use (the model file's, overridden by the user's)."""
        return dict(self._thresholds)

    @property
    def device(self) -> str:
        """Where the network runs now: "cpu", "cuda:0" or "mps" (changes after a fallback)."""
        return device_name(self._device)

    @property
    def backend(self) -> str:
        """The forward path: "onnxruntime", "onnxruntime-int8", "torch" or "torch-cuda"..."""
        return self._runner.name

    @property
    def warnings(self) -> list[str]:
        """What the user should know about this engine (fallbacks), each once."""
        return list(self._warnings)

    @property
    def network(self) -> torch.nn.Module:
        """The PyTorch network (eval mode) on the engine's device; used for Grad-CAM."""
        return self._loaded.network

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _checked_thresholds(
        manifest: ModelManifest, overrides: Mapping[str, float] | None
    ) -> dict[str, float]:
        out = {label: float(manifest.thresholds[label]) for label in manifest.labels}
        for label, value in (overrides or {}).items():
            if label not in out:
                raise ConfigError(
                    f"unknown label {label!r} in the thresholds",
                    hint=f"the model's labels are: {', '.join(manifest.labels)}",
                )
            v = float(value)
            if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise ConfigError(f"threshold {value!r} for {label!r} must be a number in [0, 1]")
            out[label] = v
        return out

    def _warn(self, message: str) -> None:
        if message not in self._warnings:
            self._warnings.append(message)
            log.warning("%s", message)

    def _setup_cpu(self) -> None:
        spec = self.manifest.preprocessing

        def calibration() -> np.ndarray:
            from desktop_app.inference.fastpath import calibration_inputs

            return calibration_inputs(spec)

        path = build_cpu_path(
            self._loaded.network,
            spec.image_size,
            spec.channels,
            backend=self.backend_requested,
            int8=self.int8,
            threads=self.threads,
            calibration=calibration,
            features_layer=self._features_layer,
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
            self._loaded.network.to("cpu")
        except Exception:  # a broken context can refuse even that: reload from the file
            log.debug("moving the network back failed; reloading it", exc_info=True)
            self._loaded = load_model_file(self._loaded.path)
        empty_cache(old)
        self._device = torch.device("cpu")
        self._setup_cpu()

    @property
    def gradcam_mode(self) -> str:
        """ "features" (Grad-CAM from the forward pass's feature map), "hooks" (hook-based
        Grad-CAM) or "layercam" (``gradcam.fine_cam``)."""
        if self.heatmap_method == "layercam":
            return "layercam"
        return "features" if self._features_layer is not None else "hooks"

    # ------------------------------------------------------------------ network calls
    def _call_runner(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self._features_layer is None:
            return self._runner(x), None
        return self._runner.run_with_features(x)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and, in "features" mode, the Grad-CAM layer's output."""
        try:
            return self._call_runner(x)
        except Exception as err:
            if self._device.type == "cpu" or not is_device_failure(err):
                raise
            self._fall_back(err, "during a run")
            return self._call_runner(x)

    def _grad_cam(self, x: np.ndarray, label_indices: Sequence[int]) -> dict[int, np.ndarray]:
        def once() -> dict[int, np.ndarray]:
            t = torch.from_numpy(np.ascontiguousarray(x[None])).to(self._device)
            with _cpu_threads(HEATMAP_CPU_THREADS if self._device.type == "cpu" else None):
                if self.heatmap_method == "layercam":
                    network = self._loaded.network
                    return fine_cam(network, self._fine_layers, self._layer, t, label_indices).maps
                return grad_cam(self._loaded.network, self._layer, t, label_indices).maps

        try:
            return once()
        except Exception as err:
            if self._device.type == "cpu" or not is_device_failure(err):
                raise
            self._fall_back(err, "during Grad-CAM")
            return once()

    # ------------------------------------------------------------------ running
    def preprocess(
        self, source: Source, indices: Sequence[int] | None = None
    ) -> tuple[np.ndarray, list[Geometry]]:
        """The network input for ``source``'s slices (all, or ``indices``): (N, C, S, S)
        float32 and one Geometry each, exactly as ``run`` feeds the network."""
        slices = _as_slices(source)
        chosen = range(len(slices.refs)) if indices is None else indices
        return preprocess_batch([slices.load(i) for i in chosen], self.manifest.preprocessing)

    def run(
        self,
        source: Source,
        *,
        progress: Progress | None = None,
        stop: StopFlag = None,
        heatmaps: HeatmapPolicy | None = None,
        study_instance_uid: str = "",
    ) -> SeriesResult:
        """Run the model over ``source`` and return its findings.

        ``source``: a ``volume.SeriesVolume`` (its decoded slices are reused), a
        ``series.SliceStack``, a file path (every frame of a DICOM instance, or a PNG/JPEG), or
        a sequence of 2-D grey images (``desktop_app.model.imageio.ImageForModel`` or arrays of
        modality values). ``study_instance_uid`` labels the result (a stack does not know its
        study; a file path fills it in).

        Raises Cancelled when ``stop`` is set (checked before each batch and Grad-CAM slice),
        the first slice's DicomReadError when no slice could be read, InferenceError on a
        failure the CPU fallback can't recover from. Slices that fail while others succeed are
        listed in the result's ``unreadable`` and left out of the maxima.
        """
        policy = self.heatmaps if heatmaps is None else heatmaps
        if policy not in HEATMAP_POLICIES:
            raise ConfigError(f"unknown heatmap policy {policy!r}")
        with self._lock:
            return self._run(source, progress, stop, policy, study_instance_uid)

    def _run(
        self,
        source: Source,
        progress: Progress | None,
        stop: StopFlag,
        policy: str,
        study_uid: str,
    ) -> SeriesResult:
        started = time.perf_counter()
        if stop_requested(stop):
            raise Cancelled("stopped before the run began")
        t0 = time.perf_counter()
        slices = _as_slices(source)
        t_pre = time.perf_counter() - t0
        spec = self.manifest.preprocessing
        labels = self.labels
        n, n_labels = len(slices.refs), len(labels)
        total = n + 1
        probs = np.full((n, n_labels), np.nan, dtype=np.float32)
        # per slice holding a label's maximum: its features (or its input) and Geometry
        best: dict[int, tuple[str, np.ndarray, Geometry]] = {}
        unreadable: list[tuple[str, str]] = []
        first_error: RadAssistError | None = None
        t_net = 0.0
        if progress is not None:
            progress(0, total)
        for start in range(0, n, self.batch_size):
            if stop_requested(stop):
                raise Cancelled(f"stopped after {start} of {n} slices")
            indices = list(range(start, min(start + self.batch_size, n)))
            t0 = time.perf_counter()
            images, ok = [], []
            for i in indices:
                try:
                    images.append(slices.load(i))
                    ok.append(i)
                except RadAssistError as err:
                    first_error = first_error or err
                    unreadable.append((slices.paths[i], err.one_line()))
                    log.info("slice %d unreadable: %s", i, err.reason)
            if images:
                try:
                    x, geometries = preprocess_batch(images, spec)
                except ValueError as err:
                    raise InferenceError(f"can't be preprocessed: {err}") from None
                t_pre += time.perf_counter() - t0
                t0 = time.perf_counter()
                logits, features = self._forward(x)
                t_net += time.perf_counter() - t0
                if logits.shape != (len(ok), n_labels):
                    raise InferenceError(
                        f"the network gave logits of shape {logits.shape}, expected "
                        f"{(len(ok), n_labels)}"
                    )
                probs[ok] = _sigmoid(logits)
                kind, payload = ("input", x) if features is None else ("features", features)
                self._keep_best(probs, ok, kind, payload, geometries, best)
            else:
                t_pre += time.perf_counter() - t0
            if progress is not None:
                progress(indices[-1] + 1, total)
        if not np.isfinite(probs).any(axis=1).any():
            assert first_error is not None
            raise first_error

        t_cam = t_post = 0.0
        findings_args: list[dict[str, Any]] = []
        for j, label in enumerate(labels):
            column = probs[:, j]
            i = int(np.nanargmax(column))
            p = float(column[i])
            threshold = self._thresholds[label]
            findings_args.append(
                {
                    "label": label,
                    "probability": p,
                    "threshold": threshold,
                    "positive": p >= threshold,
                    "slice_index": i,
                    "sop_instance_uid": slices.refs[i].sop_instance_uid,
                    "frame": slices.refs[i].frame,
                    "threshold_source": "user" if label in self._user_thresholds else "model",
                }
            )
        wanted = [
            j
            for j, a in enumerate(findings_args)
            if policy == "all" or (policy == "positive" and a["positive"])
        ]
        by_slice: dict[int, list[int]] = {}
        for j in wanted:
            by_slice.setdefault(findings_args[j]["slice_index"], []).append(j)
        for i, label_indices in by_slice.items():
            if stop_requested(stop):
                raise Cancelled("stopped before Grad-CAM")
            kind, payload, geometry = best[i]
            t0 = time.perf_counter()
            if kind == "features":
                maps = cam_from_features(payload, self._head_weight, label_indices)
            else:
                maps = self._grad_cam(payload, label_indices)
            cam_seconds = time.perf_counter() - t0
            t_cam += cam_seconds
            t0 = time.perf_counter()
            for j in label_indices:
                heatmap = geometry.heatmap_to_original(maps[j])
                peak = float(heatmap.max()) if heatmap.size else 0.0
                if peak > 0:
                    heatmap = heatmap / np.float32(peak)  # resampling moves the maximum
                region = peak_region(heatmap, self.region_level)
                findings_args[j].update(
                    heatmap=heatmap.astype(np.float32, copy=False),
                    gradcam_seconds=cam_seconds / len(label_indices),
                    region_level=self.region_level,
                    heatmap_method=self.heatmap_method,
                )
                if region is not None:
                    findings_args[j].update(
                        box=region.box, outline=region.outline, peak=region.peak
                    )
            t_post += time.perf_counter() - t0
        timings = Timings(
            preprocess=t_pre,
            network=t_net,
            gradcam=t_cam,
            postprocess=t_post,
            total=time.perf_counter() - started,
        )
        model = self.model_info
        device = self.device
        findings = [
            Finding(**a, model=model, device=device, timings=timings) for a in findings_args
        ]
        warnings = list(self._warnings)
        if unreadable:
            warnings.append(f"{len(unreadable)} of {n} image(s) could not be read and were skipped")
        if progress is not None:
            progress(total, total)
        result = SeriesResult(
            findings=findings,
            model=model,
            device=device,
            backend=self.backend,
            slices=slices.refs,
            probabilities=probs,
            timings=timings,
            study_instance_uid=study_uid or slices.study_uid,
            series_instance_uid=slices.series_uid,
            modality=slices.modality,
            part=slices.part,
            parts=slices.parts,
            warnings=warnings,
            unreadable=unreadable,
        )
        log.info(
            "series %s: %d slices, %d positive, %.2f s (network %.2f, Grad-CAM %.2f) on %s",
            uid_hash(slices.series_uid) if slices.series_uid else "-",
            n,
            len(result.positives),
            timings.total,
            timings.network,
            timings.gradcam,
            device,
        )
        return result

    @staticmethod
    def _keep_best(
        probs: np.ndarray,
        batch: Sequence[int],
        kind: str,
        payload: np.ndarray,
        geometries: Sequence[Geometry],
        best: dict[int, tuple[str, np.ndarray, Geometry]],
    ) -> None:
        """Keep the features (or inputs) of the slices that currently hold a label's maximum,
        for Grad-CAM without another pass or decode; drop the rest."""
        argmax = {int(np.nanargmax(probs[:, j])) for j in range(probs.shape[1])}
        position = {i: k for k, i in enumerate(batch)}
        for i in argmax:
            if i in position and i not in best:
                best[i] = (kind, payload[position[i]].copy(), geometries[position[i]])
        for i in list(best):
            if i not in argmax:
                del best[i]
