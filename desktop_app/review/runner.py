"""The GUI's inference seam, Qt-free: the SeriesRunner protocol, its types, and EngineRunner.

The inference controller (``desktop_app.qt.inference``) runs a :class:`SeriesRunner` in its
worker: ``load()`` once per model and device, then ``run()`` per series, which returns the
findings to review and their raw heatmaps. :class:`EngineRunner` puts the inference engine
behind it; tests pass their own runner. It lives here, above ``inference``, because what it
returns is ``state.FindingReview``s.

The engine is imported only when ``load()`` first runs (torch, MONAI and ONNX Runtime take
seconds to import), and only ever called from the inference worker thread.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from desktop_app.infra.cancel import Progress
from desktop_app.review.lesionreview import SeriesLesions, ValueSource, lesions_from_result
from desktop_app.review.state import FindingReview, findings_from_result
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import SeriesVolume

if TYPE_CHECKING:
    from desktop_app.inference.engine import InferenceEngine
    from desktop_app.inference.inputcheck import InputCheck


@dataclass(frozen=True)
class LoadedModelInfo:
    """What the GUI shows about the model a runner has loaded, and where it runs."""

    name: str
    version: str
    sha256: str
    labels: tuple[str, ...]
    card: str
    device: str
    warning: str = ""
    site_calibration: dict[str, Any] | None = None  # the manifest's block, when a site has one


@dataclass
class RunOutput:
    """A runner's result for one series: findings and their raw heatmaps (0..1 floats) by
    finding id.

    ``input_check``: the check against the model's intended input and the run's
    out-of-distribution verdict (``inference.inputcheck.InputCheck``; None from a runner that
    does not check); when it is ``flagged`` every finding of the run is shown greyed, and
    ``input_check.warnings()`` gives the banner's lines. ``lesions``: a segmentation run's
    lesions to review (pending model lesions over a copy of its mask), else None."""

    findings: list[FindingReview]
    heatmaps: dict[str, np.ndarray]
    device: str
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    input_check: InputCheck | None = None
    lesions: SeriesLesions | None = None


def stack_lesions_inputs(stack: SliceStack, volume: SeriesVolume) -> tuple[Any, ValueSource]:
    """The stack's mask geometry (None without pixel spacing) and where its slices' modality
    values come from, for measuring a lesion again after the reader edits it."""
    from desktop_app.inference.lesions import MaskGeometry
    from desktop_app.infra.errors import RadAssistError

    try:
        geometry: MaskGeometry | None = MaskGeometry.from_stack(stack)
    except RadAssistError:
        geometry = None

    def values(index: int) -> np.ndarray | None:
        try:
            frame = volume.frame(index)
        except RadAssistError:
            return None
        return None if frame.is_color else frame.values

    return geometry, values


class SeriesRunner(Protocol):
    """The seam between the inference controller and a model (tests may pass their own)."""

    def load(self) -> LoadedModelInfo: ...

    def run(
        self,
        stack: SliceStack,
        volume: SeriesVolume,
        series_key: str,
        progress: Progress,
        stop: threading.Event,
        force: bool = False,
    ) -> RunOutput: ...


RunnerFactory = Callable[[str | None, str], SeriesRunner]
"""(model path or None for the bundled model, device) -> a runner, not loaded yet."""


def gui_cpu_threads(cores: int) -> int:
    """CPU threads for inference inside the GUI: every physical core but one, which is left
    to the GUI thread (scrolling, painting) so that it never waits for a core; at least one.
    The headless CLI uses every core."""
    return max(1, cores - 1)


class EngineRunner:
    """One loaded ``inference.engine.InferenceEngine``. Heatmaps are made for every label, not
    only the positive ones, so that lowering a threshold in the GUI shows where the network
    looked without running it again."""

    def __init__(self, model_path: str | None, device: str, threads: int | None = None) -> None:
        self.model_path = model_path
        self.device = device or "auto"
        self.threads = threads
        self.engine: InferenceEngine | None = None

    def load(self) -> LoadedModelInfo:
        from desktop_app.inference.engine import InferenceEngine
        from desktop_app.infra.cpus import physical_cores

        threads = self.threads or gui_cpu_threads(physical_cores())
        engine = InferenceEngine(
            self.model_path, device=self.device, heatmaps="all", threads=threads
        )
        self.engine = engine
        # torch, MONAI and ONNX Runtime leave ~500k long-lived objects; a full collection then
        # holds the GIL for ~0.5 s, freezing the window whenever one triggers. Freezing them
        # (they live as long as the process) keeps later collections to what came after.
        gc.freeze()
        info = engine.model_info
        return LoadedModelInfo(
            name=info.name,
            version=info.version,
            sha256=info.tensor_sha256,
            labels=tuple(info.labels),
            card=engine.model_card,
            device=engine.device,
            warning="; ".join(engine.warnings),
            site_calibration=engine.manifest.site_calibration,
        )

    def warm(self) -> None:
        """Ahead of the reader's first run (the GUI's warm-up, in its worker): one run on a
        blank image, which opens the heatmap session and sets up what the first passes set
        up lazily, and the once-per-machine time per image for the device badge. A run asked
        for before the warm-up needs neither and does not wait for them."""
        from desktop_app.inference.firststart import try_estimate_for_engine

        engine = self.engine
        if engine is None:
            return
        with contextlib.suppress(Exception):
            engine.run([np.zeros((256, 256), dtype=np.float32)], heatmaps="all")
        try_estimate_for_engine(engine)  # once per machine: ms/image for the device badge

    def run(
        self,
        stack: SliceStack,
        volume: SeriesVolume,
        series_key: str,
        progress: Progress,
        stop: threading.Event,
        force: bool = False,
    ) -> RunOutput:
        """Raises ``inference.inputcheck.InputNotApplicable`` (its ``check`` says why, in one
        line) for a series outside the model's intended input unless ``force`` ("Run
        anyway"), which runs it with every output marked."""
        assert self.engine is not None, "load() first"
        result = self.engine.run(volume, progress=progress, stop=stop, force=force)
        findings, heatmaps = findings_from_result(result, series_key)
        lesions = None
        if result.mask is not None:
            geometry, values = stack_lesions_inputs(stack, volume)
            lesions = lesions_from_result(result, series_key, geometry, values)
        return RunOutput(
            findings=findings,
            heatmaps=heatmaps,
            device=result.device,
            warnings=list(result.warnings),
            timings=result.timings.to_json(),
            input_check=result.input_check,
            lesions=lesions,
        )
