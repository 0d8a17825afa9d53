"""InferenceController: runs a model over a series in a worker, behind ``review.runner``'s seam.

One request at a time is delivered: a newer request supersedes an older one (its result is
dropped, ``workers.TaskChannel``), and Cancel stops the engine between batches (the engine
checks the stop event). The model is loaded once, in the worker, and reused; a lock keeps two
requests from using the same network at once (the superseded one stops within a batch).
Heatmaps are coloured into RGBA in the worker too, so the GUI thread only wraps arrays.

Which model: a model file in the settings (``model_path``) runs on every series. Without one,
each run picks its series' model in the worker (``inference.modelchoice`` over the catalog of
bundled and installed models, ``model.catalog``): the first whose intended input fits the
series' headers; a series no model fits comes back as :class:`RefusedRun` with the one-line
reason, and "Run anyway" runs the bundled default model on it. The last two runners loaded are
kept, so going back and forth between a CT and a radiograph does not reload either model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from desktop_app.inference.colormaps import heatmap_rgba
from desktop_app.infra.cancel import Progress
from desktop_app.model.catalog import ModelCatalog, load_catalog
from desktop_app.qt.workers import Cancelled, TaskChannel, lower_thread_priority, make_pool
from desktop_app.review.lesionfiles import pack_labels
from desktop_app.review.runner import EngineRunner, LoadedModelInfo, RunnerFactory, SeriesRunner
from desktop_app.review.state import FindingReview, ModelRef
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import SeriesVolume

log = logging.getLogger(__name__)


@dataclass
class InferenceOutcome:
    """What reaches the GUI thread: findings, heatmaps raw and coloured, provenance."""

    series_key: str
    findings: list[FindingReview]
    heatmaps: dict[str, np.ndarray]
    overlays: dict[str, np.ndarray]
    model: ModelRef
    device: str
    warnings: list[str]
    timings: dict[str, float]
    input_check: Any = None  # inference.inputcheck.InputCheck, or None from a runner without
    lesions: Any = None  # review.lesionreview.SeriesLesions of a segmentation run, else None


@dataclass(frozen=True)
class RefusedRun:
    """The series is outside the model's intended input and was not run (``reason``: one
    line); the reader may run it anyway (``force``), every output then marked."""

    series_key: str
    reason: str


Colorizer = Callable[[np.ndarray, str], np.ndarray]
"""(heatmap in [0, 1], colour map name) -> straight-alpha RGBA uint8 at full opacity."""

CatalogSource = Callable[[], ModelCatalog]
"""Lists the models to choose from (``model.catalog.load_catalog``), called in the worker."""

KEPT_RUNNERS = 2  # a chest classifier and a CT segmenter, say: each holds its network


def choose_for_series(
    stack: SliceStack, catalog: CatalogSource, force: bool
) -> tuple[str | None, str] | str:
    """(model path, what it was chosen for) for ``stack``, or the one-line reason no model
    fits it. ``force`` (Run anyway) takes the bundled default model where none fits."""
    from desktop_app.inference.inputcheck import headers_of_stack
    from desktop_app.inference.modelchoice import choose_model

    choice = choose_model(headers_of_stack(stack), catalog())
    if choice.entry is not None:
        return str(choice.entry.path), choice.entry.input_text
    if force:
        return default_model_key(), ""
    return choice.reason


def default_model_key() -> str | None:
    """The bundled default model's path as the runners are keyed by it (so that the warm-up's
    runner is the one a radiograph's choice finds), or None to let loading name the problem."""
    from desktop_app.infra.errors import RadAssistError
    from desktop_app.model.paths import default_model_path

    try:
        return str(default_model_path())
    except RadAssistError:
        return None


class InferenceController(QObject):
    """Owns the model and the inference worker; emits what the window shows."""

    started = Signal(str)  # series key
    progressed = Signal(int, int)
    finished = Signal(object)  # InferenceOutcome
    failed = Signal(str)
    cancelled = Signal()
    refused = Signal(object)  # RefusedRun
    overlaysReady = Signal(object)  # {finding id: RGBA} after a colormap change
    modelLoaded = Signal(object)  # LoadedModelInfo
    deviceChanged = Signal(str, str)  # badge text, fallback warning ("" if none)
    warmUpFailed = Signal(str)  # one-line reason the model could not be loaded ahead of use

    def __init__(
        self,
        model_path: str | None,
        device: str,
        parent: QObject | None = None,
        *,
        runner_factory: RunnerFactory | None = None,
        colorizer: Colorizer | None = None,
        model_catalog: CatalogSource | None = None,
    ) -> None:
        super().__init__(parent)
        # the per-series choice lists model files: on for the real engine, and for a stand-in
        # runner only when a test hands it a catalog
        self.model_catalog: CatalogSource | None = (
            model_catalog if model_catalog is not None or runner_factory else load_catalog
        )
        self.chosen_for = ""  # the intended input the shown model was chosen for, "" if forced
        self.model_path = model_path
        self.device = device or "auto"
        self.runner_factory: RunnerFactory = runner_factory or EngineRunner
        self.colorizer: Colorizer = colorizer or heatmap_rgba
        self.info: LoadedModelInfo | None = None
        self._runners: dict[tuple[str | None, str], tuple[SeriesRunner, LoadedModelInfo]] = {}
        self._shown_key: tuple[str | None, str, str] | None = None
        self._lock = threading.Lock()
        self._pool = make_pool(2, self)
        self.channel = TaskChannel("inference", self, pool=self._pool)
        self.channel.progressed.connect(self.progressed)
        self.channel.finished.connect(self._on_finished)
        self.channel.failed.connect(self.failed)
        self.channel.cancelled.connect(self.cancelled)
        self._recolor = TaskChannel("recolor", self, pool=self._pool)
        self._recolor.finished.connect(self.overlaysReady)
        self._recolor.failed.connect(self.failed)
        self._warm = TaskChannel("warm-up", self, pool=self._pool)
        self._warm.failed.connect(self.warmUpFailed)
        self.work_threads: list[int] = []  # thread ids that ran inference (for tests)

    # ------------------------------------------------------------------ configuration
    def configure(self, model_path: str | None, device: str) -> None:
        """Use another model or device from the next run on."""
        self.model_path = model_path or None
        self.device = device or "auto"

    @property
    def running(self) -> bool:
        return self.channel.running

    def device_label(self) -> str:
        """The status bar badge: the device in use once the model is loaded, else the choice."""
        if self.info is not None:
            return self.info.device.upper()
        return f"Device: {self.device}"

    def model_text(self) -> str:
        if self.info is None:
            if self.model_path:
                where = Path(self.model_path).name
            else:
                where = "chosen per series" if self.model_catalog else "bundled demo model"
            return f"Model: {where} (loads on first run)"
        text = f"Model: {self.info.name} {self.info.version} · sha {self.info.sha256[:8]}"
        return text + (f" · chosen for {self.chosen_for}" if self.chosen_for else "")

    def model_card(self) -> str | None:
        return self.info.card if self.info is not None else None

    # ------------------------------------------------------------------ running
    def _runner_for(
        self, model_path: str | None, device: str, chosen_for: str = ""
    ) -> SeriesRunner:
        """Load (once per model and device; the last KEPT_RUNNERS are kept) the runner; called
        in the worker, under the lock. A runner other than the last one used is announced."""
        key = (model_path, device)
        kept = self._runners.pop(key, None)
        if kept is None:
            runner = self.runner_factory(model_path, device)
            kept = (runner, runner.load())
            self._shown_key = None
        self._runners[key] = kept  # the most recently used last
        while len(self._runners) > KEPT_RUNNERS:
            del self._runners[next(iter(self._runners))]
        runner, info = kept
        if self._shown_key != (*key, chosen_for):
            self._shown_key = (*key, chosen_for)
            self.info, self.chosen_for = info, chosen_for
            self.modelLoaded.emit(info)
            self.deviceChanged.emit(info.device.upper(), info.warning)
        return runner

    def run(
        self,
        series_key: str,
        stack: SliceStack,
        volume: SeriesVolume,
        study_uid: str,
        colormap: str,
        force: bool = False,
    ) -> int:
        """Start inference over ``stack``; returns the request's generation number. A series
        outside the model's intended input comes back as :class:`RefusedRun` unless
        ``force``."""
        model_path, device = self.model_path, self.device
        catalog = self.model_catalog if model_path is None else None
        colorize = self.colorizer

        def work(progress: Progress, stop: threading.Event) -> InferenceOutcome | RefusedRun:
            from desktop_app.inference.inputcheck import InputNotApplicable

            self.work_threads.append(threading.get_ident())
            lower_thread_priority()
            path, chosen_for = model_path, ""
            if catalog is not None:  # no model forced: the series' own
                picked = choose_for_series(stack, catalog, force)
                if isinstance(picked, str):
                    return RefusedRun(series_key, picked)
                path, chosen_for = picked
            with self._lock:  # a superseded run stops within one batch and frees this
                if stop.is_set():
                    raise Cancelled()
                runner = self._runner_for(path, device, chosen_for)
                info = self.info
                assert info is not None
                try:
                    out = runner.run(stack, volume, series_key, progress, stop, force)
                except InputNotApplicable as err:
                    return RefusedRun(series_key, err.check.refusal or err.reason)
            if stop.is_set():
                raise Cancelled()
            overlays = {fid: colorize(h, colormap) for fid, h in out.heatmaps.items()}
            found = getattr(out, "lesions", None)
            if found is not None:
                # saving the review packs the label volume (compressed, cached per edit
                # count): 10-50 ms that would stall the GUI thread at the run's end
                pack_labels(found)
            warnings = list(out.warnings)
            if info.warning and info.warning not in warnings:
                warnings.append(info.warning)
            return InferenceOutcome(
                series_key=series_key,
                findings=out.findings,
                heatmaps=out.heatmaps,
                overlays=overlays,
                model=ModelRef(info.name, info.version, info.sha256),
                device=out.device,
                warnings=warnings,
                timings=out.timings,
                input_check=out.input_check,
                lesions=getattr(out, "lesions", None),
            )

        generation = self.channel.submit(work)
        self.started.emit(series_key)
        return generation

    def _on_finished(self, outcome: Any) -> None:
        if isinstance(outcome, RefusedRun):
            self.refused.emit(outcome)
            return
        if self.info is not None and outcome.device.upper() != self.info.device.upper():
            self.deviceChanged.emit(outcome.device.upper(), "; ".join(outcome.warnings))
        self.finished.emit(outcome)

    def cancel(self) -> None:
        self.channel.cancel()

    def warm_up(self) -> None:
        """Import the engine and load the model in the worker now, ahead of the first run.

        Importing torch holds Python's GIL for a few hundred milliseconds in one piece (C
        extension set-up), which would freeze the window if it happened when the reader first
        asks for inference; done right after start-up, the first run starts at once.
        """
        model_path, device = self.model_path, self.device
        choosing = model_path is None and self.model_catalog is not None

        def work(progress: Progress, stop: threading.Event) -> None:
            lower_thread_priority()  # ONNX Runtime's threads, made here, inherit it
            with self._lock:
                if not stop.is_set():
                    path = default_model_key() if choosing else model_path
                    runner = self._runner_for(path, device)
                    warm = getattr(runner, "warm", None)
                    if warm is not None and not stop.is_set():
                        warm()

        self._warm.submit(work)

    def recolor(self, heatmaps: dict[str, np.ndarray], colormap: str) -> None:
        """Re-colour heatmaps with another colormap, in the worker pool."""
        colorize = self.colorizer
        items = dict(heatmaps)

        def work(progress: Progress, stop: threading.Event) -> dict[str, np.ndarray]:
            return {fid: colorize(h, colormap) for fid, h in items.items()}

        self._recolor.submit(work)

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        for channel in (self.channel, self._recolor, self._warm):
            channel.cancel()
        for channel in (self.channel, self._recolor, self._warm):
            channel.wait_idle(timeout_ms)
