"""The inference engine that the GUI and ``radassist predict`` share.

    engine = InferenceEngine("model.safetensors", device="auto")    # or None: the bundled one
    result = engine.run(stack_or_volume_or_path, progress=cb, stop=event)
    for finding in result.positives: ...

Loading goes through ``desktop_app.model.modelfile.load_model_file`` only (manifest, tensor
shapes and hash are checked; pickles are refused with the convert hint). Preprocessing is the
model file's ``PreprocessSpec`` applied by ``desktop_app.model.preprocessing``, fed through
``desktop_app.model.imageio.image_from_frame``: the same code, on the same values, as training.

A run over a stack (one radiograph, or the slices of a series) is three phases, each handing
the next frozen dataclasses:
- plan: ``sources.plan_slices`` names the slices and how to load each;
- batches: decode and preprocess ``batch_size`` slices at a time, run the network on them (on
  the CPU by the fastest exact path of ``fastpath``), and keep the probabilities and the slices
  that hold a label's maximum;
- findings: per label the maximum over the slices and its slice, positive or not against the
  operating threshold (the model file's, or the user's), then Grad-CAM on that slice for each
  positive label (or every label, or none; see ``heatmaps``), mapped back onto the original
  pixel grid (``Geometry.heatmap_to_original``), where ``overlays.peak_region`` gives the box
  and the outline.

Progress: ``progress(done, total)`` with ``total = slices + 1``: one unit per slice, and the
last one for Grad-CAM and the findings. Stop: ``stop`` (a ``threading.Event`` or a callable) is
checked before every batch and before each Grad-CAM slice; when set, ``run`` raises
:class:`~desktop_app.infra.errors.Cancelled` (no partial result, so that a half-finished run is
never mistaken for a finished one). At most one batch runs after the flag is set.

Before the plan: the input check (``inputcheck``). A series outside the model file's intended
input raises :class:`~desktop_app.inference.inputcheck.InputNotApplicable` unless ``force``;
a forced run marks every finding ``out_of_scope``. In the batches phase each image also gets
its out-of-distribution score (the model file's Mahalanobis statistics over the head's input,
taken from the same forward pass), and the logits are divided by the model file's per-label
temperatures before the sigmoid (its thresholds are on those calibrated probabilities). A run
with any image over the OOD threshold is out of distribution: ``input_check.in_distribution``
is False and every finding is ``unreliable`` (a finding's maximum, and a negative verdict, rest
on every image of the stack); ``Finding.out_of_distribution`` says whether its own image is.

Devices: see ``devices``. A CUDA/MPS failure at start or during a run (out of memory, a driver
error) moves the engine to the CPU and the run goes on; the warning is logged once and reported
in ``warnings`` and in every result. Every result names the device that produced it.

Threads: an engine may be built and run in any thread, and several engines may coexist (each
has its own network and session; nothing module-global but the process-wide torch thread count,
which every engine sets to the same value). Calls on one engine are serialised by a lock.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from desktop_app.inference.accel import decide_without_torch
from desktop_app.inference.findings import (
    Finding,
    ModelInfo,
    ResultSlice,
    SeriesResult,
    Timings,
    model_info_from_manifest,
)
from desktop_app.inference.inputcheck import (
    InputCheck,
    InputNotApplicable,
    RunMarks,
    check_input,
    headers_of,
)
from desktop_app.inference.ortrun import (
    BACKENDS,
    HEATMAP_METHODS,
    ForwardOutputs,
    cam_from_features,
)
from desktop_app.inference.overlays import PeakRegion, peak_region
from desktop_app.inference.sources import SlicePlan, Source, plan_slices
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import Cancelled, ConfigError, InferenceError, RadAssistError
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.model.applicability import OodModel, apply_temperatures
from desktop_app.model.archs import refuse_volume_model
from desktop_app.model.imageio import ImageForModel
from desktop_app.model.manifest import ModelManifest
from desktop_app.model.modeldata import ModelData, read_model_data
from desktop_app.model.paths import default_model_path
from desktop_app.model.preprocessing import Geometry, preprocess_batch

if TYPE_CHECKING:
    from desktop_app.model.modelfile import LoadedModel

log = logging.getLogger(__name__)

HeatmapPolicy = Literal["positive", "all", "none"]
HEATMAP_POLICIES: tuple[str, ...] = ("positive", "all", "none")
GRADCAM_MODES: tuple[str, ...] = ("auto", "hooks")

DEFAULT_BATCH_SIZE = 8
MAX_BATCH_SIZE = 256


class Backend(Protocol):
    """Where the network runs: ``onnxpath.OnnxBackend`` (the CPU, no torch) or
    ``torchpath.TorchBackend`` (GPUs, eager PyTorch, and their CPU fallback)."""

    notes: list[str]
    threads: int
    head_weight: np.ndarray | None

    @property
    def device(self) -> str: ...

    @property
    def name(self) -> str: ...

    def forward(self, x: np.ndarray) -> ForwardOutputs: ...

    def heatmaps(self, x: np.ndarray, label_indices: Sequence[int]) -> dict[int, np.ndarray]: ...


class _Model(Protocol):
    """What the engine reads from a model: ``ModelData`` or ``modelfile.LoadedModel``."""

    manifest: ModelManifest
    path: Path
    ood: OodModel | None

    @property
    def model_card(self) -> str: ...


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}", hint=f"choose one of: {', '.join(choices)}")


def _check_options(
    batch_size: int, backend: str, heatmaps: str, region_level: float, gradcam: str, method: str
) -> None:
    """ConfigError (one line, with the choices) for an option the engine can't take."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ConfigError(f"batch size {batch_size!r} must be a whole number")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"batch size {batch_size} must be between 1 and {MAX_BATCH_SIZE}")
    _check_choice("backend", backend, BACKENDS)
    _check_choice("heatmap policy", heatmaps, HEATMAP_POLICIES)
    if not 0.0 < region_level <= 1.0:
        raise ConfigError(f"region level {region_level} must be in (0, 1]")
    _check_choice("Grad-CAM mode", gradcam, GRADCAM_MODES)
    _check_choice("heatmap method", method, HEATMAP_METHODS)


# ---------------------------------------------------------------------- what the phases hand on
# A run is three phases: plan (``sources.plan_slices``: which slices, how to load each) ->
# batches (decode, preprocess, forward pass, probabilities; keep the slices that hold a maximum)
# -> findings (per label: the maximum, the decision, and the heatmap on its slice).


@dataclass(frozen=True)
class _Batch:
    """One batch's slices after decoding: the indices and images of those that could be read,
    and the (path, error) of those that could not."""

    indices: list[int]
    images: list[ImageForModel]
    errors: list[tuple[str, RadAssistError]]


@dataclass(frozen=True)
class _KeySlice:
    """A slice that holds some label's maximum, kept from its batch so that its heatmap needs
    no second decode or pass: the Grad-CAM layer's output (``from_features``) or the network
    input, and the slice's Geometry."""

    payload: np.ndarray
    from_features: bool
    geometry: Geometry


@dataclass(frozen=True)
class _Scores:
    """The batches' outcome: probabilities (slices, labels), NaN where a slice could not be
    read; the key slices by index; the unreadable slices; seconds spent; the OOD scores
    (slices,), NaN where not read, or None without OOD statistics."""

    probabilities: np.ndarray
    key_slices: Mapping[int, _KeySlice]
    unreadable: list[tuple[str, str]]
    preprocess_seconds: float
    network_seconds: float
    ood_scores: np.ndarray | None = None


@dataclass(frozen=True)
class _Decision:
    """One label before its heatmap: the maximum over the slices, where, and the verdict."""

    label: str
    probability: float
    threshold: float
    positive: bool
    slice_index: int
    threshold_source: str


@dataclass(frozen=True)
class _Location:
    """One label's heatmap on the original pixel grid (normalised by its maximum), the region
    around its peak (None for an empty heatmap) and its share of its slice's Grad-CAM time."""

    heatmap: np.ndarray
    region: PeakRegion | None
    gradcam_seconds: float
    region_level: float
    method: str

    def on(self, finding: Finding) -> Finding:
        """``finding`` located by this heatmap."""
        region = self.region
        return replace(
            finding,
            heatmap=self.heatmap,
            gradcam_seconds=self.gradcam_seconds,
            region_level=self.region_level,
            heatmap_method=self.method,
            box=None if region is None else region.box,
            outline=None if region is None else region.outline,
            peak=None if region is None else region.peak,
        )


@dataclass(frozen=True)
class _Locations:
    """The heatmaps phase's outcome: a location per label index that got a heatmap."""

    by_label: Mapping[int, _Location]
    gradcam_seconds: float
    postprocess_seconds: float


def _load_batch(plan: SlicePlan, indices: Sequence[int]) -> _Batch:
    ok: list[int] = []
    images: list[ImageForModel] = []
    errors: list[tuple[str, RadAssistError]] = []
    for i in indices:
        try:
            images.append(plan.load(i))
            ok.append(i)
        except RadAssistError as err:
            errors.append((plan.paths[i], err))
            log.info("slice %d unreadable: %s", i, err.reason)
    return _Batch(ok, images, errors)


def _keep_key_slices(
    probs: np.ndarray,
    batch: Sequence[int],
    payload: np.ndarray,
    from_features: bool,
    geometries: Sequence[Geometry],
    kept: dict[int, _KeySlice],
) -> None:
    """Keep the features (or inputs) of the slices that currently hold a label's maximum,
    for Grad-CAM without another pass or decode; drop the rest."""
    argmax = {int(np.nanargmax(probs[:, j])) for j in range(probs.shape[1])}
    position = {i: k for k, i in enumerate(batch)}
    for i in argmax:
        if i in position and i not in kept:
            k = position[i]
            kept[i] = _KeySlice(payload[k].copy(), from_features, geometries[k])
    for i in list(kept):
        if i not in argmax:
            del kept[i]


def _finding(
    decision: _Decision,
    ref: ResultSlice,
    location: _Location | None,
    model: ModelInfo,
    device: str,
    timings: Timings,
    flags: RunMarks,
) -> Finding:
    """One label's Finding: its decision on its slice, located where it got a heatmap, with
    the run's out-of-scope and out-of-distribution marks."""
    i = decision.slice_index
    finding = Finding(
        label=decision.label,
        probability=decision.probability,
        threshold=decision.threshold,
        positive=decision.positive,
        slice_index=ref.index,  # the stack position (a capped plan skips some, sources.py)
        sop_instance_uid=ref.sop_instance_uid,
        frame=ref.frame,
        threshold_source=decision.threshold_source,
        model=model,
        device=device,
        timings=timings,
        ood_score=flags.score(i),
        out_of_distribution=flags.flagged(i),
        out_of_scope=flags.check.out_of_scope,
        unreliable=flags.check.flagged,
    )
    return finding if location is None else location.on(finding)


def at_widest_lesion(decisions: list[_Decision], table: Any) -> list[_Decision]:
    """A one-class segmentation's positive finding sits on its largest lesion's widest slice
    (where the reader measures it, and where the viewer opens after the run), not on the slice
    of the single most probable pixel; its probability stays the series' highest."""
    lesions = getattr(table, "lesions", ())
    if len(decisions) != 1 or not lesions or not decisions[0].positive:
        return decisions
    return [replace(decisions[0], slice_index=int(lesions[0].diameter_slice))]


def series_warnings(
    notes: Sequence[str], unreadable: int, images: int, lesions: int | None
) -> list[str]:
    """A run's warnings: the engine's and the stack's ``notes``, the images that could not be
    read, and a segmentation's ``lesions`` when more than a reader expects (the GUI's banner
    and ``predict``'s stderr and findings.json say the same line)."""
    from desktop_app.inference.lesiontext import crowd_warning

    out = list(notes)
    if unreadable:
        out.append(f"{unreadable} of {images} image(s) could not be read and were skipped")
    crowded = None if lesions is None else crowd_warning(lesions)
    if crowded is not None:
        out.append(crowded)
    return out


class InferenceEngine:
    """A verified model, ready to run on stacks of images, on a device, with Grad-CAM.

    ``model``: a model file path, an already loaded ``LoadedModel``, or None for the bundled
    demo model (``desktop_app.model.paths.default_model_path``). Loading refuses (ModelFileError, one line)
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
        _check_options(batch_size, backend, heatmaps, region_level, gradcam, heatmap_method)
        self.heatmap_method = heatmap_method
        self._lock = threading.RLock()
        self._warnings: list[str] = []
        self.batch_size = batch_size
        self.backend_requested = backend
        self.int8 = bool(int8)
        self.heatmaps: HeatmapPolicy = heatmaps
        self.region_level = float(region_level)
        self._features = gradcam == "auto" and heatmap_method == "cam"
        self._torch_network: Any = None
        self._first_notes: list[str] = []
        self._model: _Model
        self._backend: Backend = self._open(model, device, threads)
        manifest = self._model.manifest
        self._thresholds = self._checked_thresholds(manifest, thresholds)
        self._user_thresholds = frozenset(thresholds or {})
        self._ood = self._model.ood
        self._temperatures = manifest.temperatures
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

    def _open(self, model: Any, device: str, threads: int | None) -> Backend:
        """The backend: ONNX Runtime without torch when the CPU is certain and the model's
        graphs can be had (stored, cached, or made once); else PyTorch."""
        if not _is_loaded_model(model) and self.backend_requested != "torch":
            decision = decide_without_torch("cpu" if self.int8 else device)
            if self.int8 and str(device).strip().lower() not in ("auto", "cpu"):
                self._warn(f"int8 runs on the CPU (ONNX Runtime); device {device!r} is not used")
            if decision.cpu:
                if decision.warning:
                    self._warn(decision.warning)
                data = read_model_data(default_model_path() if model is None else Path(model))
                refuse_volume_model(data.manifest.architecture, data.path)
                self._model = data
                backend = self._onnx_backend(data, threads)
                if backend is not None:
                    return backend
                model = data.path  # no graph could be made: PyTorch on the CPU
                device = "cpu"
        return self._torch_backend(model, device, threads)

    def _onnx_backend(self, data: ModelData, threads: int | None) -> Backend | None:
        from desktop_app.inference.onnxcache import GraphUnavailable, torch_installed
        from desktop_app.inference.onnxpath import OnnxBackend

        try:
            backend = OnnxBackend(
                data,
                int8=self.int8,
                threads=threads,
                features=self._features,
                penultimate=data.ood is not None,
                heatmap_method=self.heatmap_method,
                warn=self._warn,
            )
        except GraphUnavailable:
            raise
        except Exception as err:  # an export or check that fails: eager PyTorch still works
            if not torch_installed():
                raise
            log.debug("ONNX Runtime path unavailable", exc_info=True)
            message = f"ONNX Runtime path unavailable ({type(err).__name__}: {err}); using PyTorch"
            if self.backend_requested == "onnxruntime" or self.int8:
                self._warn(message)
            self._first_notes.append(message)
            return None
        segmentation = data.manifest.task == "segmentation"  # per-pixel logits: no heatmaps
        if self.heatmaps != "none" and self.heatmap_method == "layercam" and not segmentation:
            backend.prepare_heatmaps()  # overlaps the first run's decoding and forward pass
        return backend

    def _torch_backend(self, model: Any, device: str, threads: int | None) -> Backend:
        from desktop_app.inference.onnxcache import torch_installed

        if not torch_installed():
            raise InferenceError(
                "this installation has no PyTorch (the CPU build): it runs models on the CPU "
                "with ONNX Runtime only",
                hint="leave --backend at auto, or install the full build for a GPU",
            )
        from desktop_app.inference.torchpath import TorchBackend
        from desktop_app.model.modelfile import load_model_file

        loaded = (
            model
            if _is_loaded_model(model)
            else load_model_file(default_model_path() if model is None else Path(model))
        )
        refuse_volume_model(loaded.manifest.architecture, getattr(loaded, "path", None))
        self._model = loaded
        self._torch_network = loaded.network
        return TorchBackend(
            loaded,
            device,
            backend=self.backend_requested,
            int8=self.int8,
            threads=threads,
            features=self._features,
            penultimate=loaded.ood is not None,
            heatmap_method=self.heatmap_method,
            warn=self._warn,
        )

    # ------------------------------------------------------------------ what the GUI reads
    @property
    def manifest(self) -> ModelManifest:
        return self._model.manifest

    @property
    def model_path(self) -> Path:
        return self._model.path

    @property
    def model_info(self) -> ModelInfo:
        return model_info_from_manifest(self.manifest, self._model.path.name)

    @property
    def model_card(self) -> str:
        """The model card (markdown): the file's own, else generated from its manifest."""
        return self._model.model_card

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
        return self._backend.device

    @property
    def backend(self) -> str:
        """The forward path: "onnxruntime", "onnxruntime-int8", "torch" or "torch-cuda"..."""
        return self._backend.name

    @property
    def threads(self) -> int:
        return self._backend.threads

    @property
    def notes(self) -> list[str]:
        """How the forward path was chosen (for reports and the log)."""
        return [*self._first_notes, *self._backend.notes]

    @property
    def warnings(self) -> list[str]:
        """What the user should know about this engine (fallbacks), each once."""
        return list(self._warnings)

    @property
    def network(self) -> Any:
        """The PyTorch network (eval mode): the backend's, or loaded from the model file on
        first use (imports torch; the CPU path never needs it)."""
        if self._torch_network is None:
            from desktop_app.model.modelfile import load_model_file

            self._torch_network = load_model_file(self.model_path).network
        return self._torch_network

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
            # into the log file only: the callers show ``warnings`` themselves (the CLI one line
            # each, the GUI in the device badge), so the terminal would say it twice
            log.info("engine warning: %s", message)

    @property
    def gradcam_mode(self) -> str:
        """ "features" (Grad-CAM from the forward pass's feature map), "hooks" (hook-based
        Grad-CAM) or "layercam" (``gradcam.fine_cam``)."""
        if self.heatmap_method == "layercam":
            return "layercam"
        return "features" if self._features else "hooks"

    # ------------------------------------------------------------------ network calls
    def _forward(self, x: np.ndarray) -> ForwardOutputs:
        """Logits and, in "features" mode, the Grad-CAM layer's output; with OOD statistics,
        the head's input."""
        return self._backend.forward(x)

    def _grad_cam(self, x: np.ndarray, label_indices: Sequence[int]) -> dict[int, np.ndarray]:
        return self._backend.heatmaps(x, label_indices)

    # ------------------------------------------------------------------ running
    def preprocess(
        self, source: Source, indices: Sequence[int] | None = None
    ) -> tuple[np.ndarray, list[Geometry]]:
        """The network input for ``source``'s slices (all, or ``indices``): (N, C, S, S)
        float32 and one Geometry each, exactly as ``run`` feeds the network."""
        plan = plan_slices(source)
        chosen = range(len(plan)) if indices is None else indices
        return preprocess_batch([plan.load(i) for i in chosen], self.manifest.preprocessing)

    def run(
        self,
        source: Source,
        *,
        progress: Progress | None = None,
        stop: StopFlag = None,
        heatmaps: HeatmapPolicy | None = None,
        study_instance_uid: str = "",
        force: bool = False,
        input_check: InputCheck | None = None,
    ) -> SeriesResult:
        """Run the model over ``source`` and return its findings.

        First the input check (:meth:`check`, or ``input_check`` when the caller already made
        it): a series outside the model's intended input raises InputNotApplicable (carrying
        the check) unless ``force``, which runs it and marks every output out of scope.

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
        check = input_check if input_check is not None else self.check(source)
        if not check.applicable and not force:
            path = Path(source) if isinstance(source, str | os.PathLike) else None
            raise InputNotApplicable(check, path)
        check = replace(check, forced=bool(force and not check.applicable))
        with self._lock:
            return self._run(source, progress, stop, policy, study_instance_uid, check)

    def check(self, source: Source) -> InputCheck:
        """The input check of ``source`` against the model file's intended input: headers
        only, no pixels (the GUI calls it before offering to run)."""
        return check_input(headers_of(source), self.manifest.intended_input)

    def _run(
        self,
        source: Source,
        progress: Progress | None,
        stop: StopFlag,
        policy: str,
        study_uid: str,
        check: InputCheck,
    ) -> SeriesResult:
        started = time.perf_counter()
        if stop_requested(stop):
            raise Cancelled("stopped before the run began")
        plan = plan_slices(source)
        plan_seconds = time.perf_counter() - started
        seg = None
        if self.manifest.task == "segmentation":  # per-pixel masks and lesions (segrun)
            seg = self._segment(source, plan, progress, stop)
            scores = _Scores(seg.probabilities, {}, seg.unreadable, seg.preprocess_seconds,
                             seg.network_seconds, seg.ood_scores)  # fmt: skip
            decisions = at_widest_lesion(self._decide(scores.probabilities), seg.table)
            located = _Locations({}, 0.0, seg.postprocess_seconds)
        else:
            scores = self._score(plan, progress, stop)
            decisions = self._decide(scores.probabilities)
            located = self._locate(decisions, scores.key_slices, policy, stop)
        timings = Timings(
            preprocess=plan_seconds + scores.preprocess_seconds,
            network=scores.network_seconds,
            gradcam=located.gradcam_seconds,
            postprocess=located.postprocess_seconds,
            total=time.perf_counter() - started,
        )
        model, device = self.model_info, self.device
        read = np.isfinite(scores.probabilities).any(axis=1)
        flags = RunMarks.of(check, self._ood, scores.ood_scores, read, seg is not None)
        findings = [
            _finding(
                d, plan.refs[d.slice_index], located.by_label.get(j), model, device, timings, flags
            )
            for j, d in enumerate(decisions)
        ]
        warnings = series_warnings(
            [*self._warnings, *plan.notes],  # e.g. a long stack sampled down (MAX_RUN_IMAGES)
            len(scores.unreadable),
            len(plan),
            None if seg is None else len(seg.table.lesions),
        )
        if progress is not None:
            progress(len(plan) + 1, len(plan) + 1)
        result = SeriesResult(
            findings=findings,
            model=model,
            device=device,
            backend=self.backend,
            slices=plan.refs,
            probabilities=scores.probabilities,
            timings=timings,
            study_instance_uid=study_uid or plan.study_uid,
            series_instance_uid=plan.series_uid,
            modality=plan.modality,
            part=plan.part,
            parts=plan.parts,
            warnings=warnings,
            unreadable=scores.unreadable,
            input_check=flags.check,
            ood_scores=flags.scores,
        )
        if seg is not None:
            labels = seg.table.labels
            mask = None if labels is None else (labels[None] if labels.ndim == 2 else labels)
            result = replace(result, lesions=seg.table, mask=mask)
        log.info(
            "series %s: %d slices, %d positive, %.2f s (network %.2f, Grad-CAM %.2f) on %s",
            uid_hash(plan.series_uid) if plan.series_uid else "-",
            len(plan),
            len(result.positives),
            timings.total,
            timings.network,
            timings.gradcam,
            device,
        )
        return result

    def _score(self, plan: SlicePlan, progress: Progress | None, stop: StopFlag) -> _Scores:
        """The batches phase: decode, preprocess and run the network on ``batch_size`` slices
        at a time; progress after each batch (out of slices + 1)."""
        n, total = len(plan), len(plan) + 1
        probs = np.full((n, len(self.labels)), np.nan, dtype=np.float32)
        ood = None if self._ood is None else np.full(n, np.nan, dtype=np.float64)
        kept: dict[int, _KeySlice] = {}
        unreadable: list[tuple[str, str]] = []
        first_error: RadAssistError | None = None
        t_pre = t_net = 0.0
        if progress is not None:
            progress(0, total)
        for start in range(0, n, self.batch_size):
            if stop_requested(stop):
                raise Cancelled(f"stopped after {start} of {n} slices")
            indices = range(start, min(start + self.batch_size, n))
            t0 = time.perf_counter()
            batch = _load_batch(plan, indices)
            for path, err in batch.errors:
                first_error = first_error or err
                unreadable.append((path, err.one_line()))
            if batch.images:
                x, geometries = self._preprocess(batch.images)
                t_pre += time.perf_counter() - t0
                t0 = time.perf_counter()
                batch_probs, features, batch_ood = self._probabilities(x)
                probs[batch.indices] = batch_probs
                if ood is not None and batch_ood is not None:
                    ood[batch.indices] = batch_ood
                t_net += time.perf_counter() - t0
                payload = x if features is None else features
                _keep_key_slices(
                    probs, batch.indices, payload, features is not None, geometries, kept
                )
            else:
                t_pre += time.perf_counter() - t0
            if progress is not None:
                progress(indices[-1] + 1, total)
        if not np.isfinite(probs).any(axis=1).any():
            assert first_error is not None
            raise first_error
        return _Scores(probs, kept, unreadable, t_pre, t_net, ood)

    def _segment(
        self, source: Source, plan: SlicePlan, progress: Progress | None, stop: StopFlag
    ) -> Any:
        from desktop_app.inference.segrun import segment

        return segment(
            source, plan, preprocess=self._preprocess, forward=self._forward,
            batch_size=self.batch_size, thresholds=self._thresholds, labels=self.labels,
            progress=progress, stop=stop, ood=None if self._ood is None else self._ood.score,
        )  # fmt: skip

    def _preprocess(self, images: Sequence[ImageForModel]) -> tuple[np.ndarray, list[Geometry]]:
        try:
            return preprocess_batch(images, self.manifest.preprocessing)
        except ValueError as err:
            raise InferenceError(f"can't be preprocessed: {err}") from None

    def _probabilities(
        self, x: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Sigmoid probabilities (N, labels) for a batch, of the logits divided by the model's
        temperatures; the Grad-CAM layer's output in "features" mode; the OOD scores (N,)
        from the head's input of the same pass, when the model has OOD statistics."""
        out = self._forward(x)
        logits = out.logits
        expected = (x.shape[0], len(self.labels))
        if logits.shape != expected:
            raise InferenceError(
                f"the network gave logits of shape {logits.shape}, expected {expected}"
            )
        ood = None
        if self._ood is not None and out.penultimate is not None:
            with np.errstate(all="ignore"):  # non-finite features score NaN: flagged
                ood = self._ood.score(out.penultimate)
        calibrated = apply_temperatures(logits, self.labels, self._temperatures)
        return _sigmoid(calibrated), out.features, ood

    def _decide(self, probs: np.ndarray) -> list[_Decision]:
        """Per label: the maximum over the slices, where it is, and positive or not."""
        decisions = []
        for j, label in enumerate(self.labels):
            column = probs[:, j]
            i = int(np.nanargmax(column))
            p = float(column[i])
            threshold = self._thresholds[label]
            source = "user" if label in self._user_thresholds else "model"
            decisions.append(_Decision(label, p, threshold, p >= threshold, i, source))
        return decisions

    def _locate(
        self,
        decisions: Sequence[_Decision],
        key_slices: Mapping[int, _KeySlice],
        policy: str,
        stop: StopFlag,
    ) -> _Locations:
        """The heatmaps phase: Grad-CAM once per key slice for the labels that ``policy``
        wants, each map back on the original grid with the region around its peak."""
        by_slice: dict[int, list[int]] = {}
        for j, d in enumerate(decisions):
            if policy == "all" or (policy == "positive" and d.positive):
                by_slice.setdefault(d.slice_index, []).append(j)
        located: dict[int, _Location] = {}
        t_cam = t_post = 0.0
        for i, label_indices in by_slice.items():
            if stop_requested(stop):
                raise Cancelled("stopped before Grad-CAM")
            key = key_slices[i]
            t0 = time.perf_counter()
            if key.from_features:
                weight = self._backend.head_weight
                if weight is None:
                    raise InferenceError("the model file has no head weight for CAM heatmaps")
                maps = cam_from_features(key.payload, weight, label_indices)
            else:
                maps = self._grad_cam(key.payload, label_indices)
            cam_seconds = time.perf_counter() - t0
            t_cam += cam_seconds
            t0 = time.perf_counter()
            share = cam_seconds / len(label_indices)
            for j in label_indices:
                located[j] = self._location(maps[j], key.geometry, share)
            t_post += time.perf_counter() - t0
        return _Locations(located, t_cam, t_post)

    def _location(self, cam: np.ndarray, geometry: Geometry, seconds: float) -> _Location:
        heatmap = geometry.heatmap_to_original(cam)
        peak = float(heatmap.max()) if heatmap.size else 0.0
        if peak > 0:
            heatmap = heatmap / np.float32(peak)  # resampling moves the maximum
        return _Location(
            heatmap=heatmap.astype(np.float32, copy=False),
            region=peak_region(heatmap, self.region_level),
            gradcam_seconds=seconds,
            region_level=self.region_level,
            method=self.heatmap_method,
        )


def _is_loaded_model(model: Any) -> bool:
    """A ``modelfile.LoadedModel`` (already in PyTorch), without importing torch to ask."""
    return hasattr(model, "network") and hasattr(model, "manifest")
