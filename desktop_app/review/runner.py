"""The core inference engine behind the controller's Runner seam.

Imported only when the first inference starts (torch, MONAI and ONNX Runtime take seconds to
import), and only ever called from the inference worker thread.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from desktop_app.inference.colormaps import heatmap_rgba
from desktop_app.qt.inference import ModelInfo, RunOutput
from desktop_app.review.state import findings_from_result
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import SeriesVolume

if TYPE_CHECKING:
    from desktop_app.inference.engine import InferenceEngine


def colorize(heatmap: np.ndarray, colormap: str) -> np.ndarray:
    return heatmap_rgba(heatmap, colormap)


def gui_cpu_threads(cores: int) -> int:
    """CPU threads for inference inside the GUI: every physical core but one, which is left
    to the GUI thread (scrolling, painting) so that it never waits for a core; at least one.
    The headless CLI uses every core."""
    return max(1, cores - 1)


class EngineRunner:
    """One loaded ``core.engine.InferenceEngine``. Heatmaps are made for every label, not
    only the positive ones, so that lowering a threshold in the GUI shows where the network
    looked without running it again."""

    def __init__(self, model_path: str | None, device: str, threads: int | None = None) -> None:
        self.model_path = model_path
        self.device = device or "auto"
        self.threads = threads
        self.engine: InferenceEngine | None = None

    def load(self) -> ModelInfo:
        from desktop_app.inference.engine import InferenceEngine
        from desktop_app.infra.cpus import physical_cores

        threads = self.threads or gui_cpu_threads(physical_cores())
        engine = InferenceEngine(
            self.model_path, device=self.device, heatmaps="all", threads=threads
        )
        self.engine = engine
        from desktop_app.inference.firststart import try_estimate_for_engine

        try_estimate_for_engine(engine)  # once per machine: ms/image for the device badge
        # One run on a blank image now: the first forward and Grad-CAM passes set up lazily
        # (kernels, autograd), holding the GIL in long pieces; better here, in the warm-up,
        # than in the reader's first run.
        with contextlib.suppress(Exception):
            engine.run([np.zeros((256, 256), dtype=np.float32)], heatmaps="all")
        # torch, MONAI and ONNX Runtime leave ~500k long-lived objects; a full collection then
        # holds the GIL for ~0.5 s, freezing the window whenever one triggers. Freezing them
        # (they live as long as the process) keeps later collections to what came after.
        gc.freeze()
        info = engine.model_info
        return ModelInfo(
            name=info.name,
            version=info.version,
            sha256=info.tensor_sha256,
            labels=tuple(info.labels),
            card=engine.model_card,
            device=engine.device,
            warning="; ".join(engine.warnings),
        )

    def run(
        self,
        stack: SliceStack,
        volume: SeriesVolume,
        series_key: str,
        progress: Callable[[int, int], None],
        stop: threading.Event,
    ) -> RunOutput:
        assert self.engine is not None, "load() first"
        result = self.engine.run(volume, progress=progress, stop=stop)
        findings, heatmaps = findings_from_result(result, series_key)
        return RunOutput(
            findings=findings,
            heatmaps=heatmaps,
            device=result.device,
            warnings=list(result.warnings),
            timings=result.timings.to_json(),
        )
