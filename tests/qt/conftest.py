"""Qt test fixtures: offscreen app, temporary settings and data folder, leak check, fakes.

Every test gets a temporary QSettings (an INI file) and a temporary RADASSIST_DATA_DIR, so
nothing touches the user's real settings, reviews or audit trail. A test fails when it leaves
a top-level widget alive (napari/superqt's habit).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QSettings
from PySide6.QtWidgets import QApplication

from desktop_app.review.runner import LoadedModelInfo, RunOutput
from desktop_app.review.state import FindingReview
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import SeriesVolume

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CT = ROOT / "resources" / "sample" / "ct_phantom"
SAMPLE_XR = ROOT / "resources" / "sample" / "chest_xr"
IGNORED_TOP_LEVEL = {"QTipLabel"}


def flush_deletes() -> None:
    app = QApplication.instance()
    assert app is not None
    for _ in range(3):
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _pointer(widget: object) -> int:
    return int(shiboken6.getCppPointer(widget)[0])


@pytest.fixture(autouse=True)
def no_leaked_widgets(qapp: QApplication) -> Iterator[None]:
    before = {_pointer(w) for w in qapp.topLevelWidgets()}
    yield
    flush_deletes()
    leaked = [
        w
        for w in qapp.topLevelWidgets()
        if _pointer(w) not in before and type(w).__name__ not in IGNORED_TOP_LEVEL
    ]
    names = [f"{type(w).__name__}({w.objectName()!r})" for w in leaked]
    for w in leaked:  # don't let one leak cascade into the next test
        w.close()
        w.deleteLater()
    flush_deletes()
    assert not leaked, f"top-level widgets leaked: {names}"


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture
def qsettings(settings_path: Path) -> QSettings:
    """The test's settings, with a reader's name set so that the first verdict does not ask
    for one (tests of that dialog remove it)."""
    settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
    settings.setValue("review/reviewer", "Dr Test")
    return settings


class FakeRunner:
    """A model stand-in behind the controller's SeriesRunner seam: deterministic, fast, and
    controllable (``gate`` holds each batch until set; ``fail`` raises a given error)."""

    labels = ("nodule", "effusion")

    def __init__(
        self,
        model_path: str | None = None,
        device: str = "auto",
        *,
        gate: threading.Event | None = None,
        fail: Exception | None = None,
        load_error: Exception | None = None,
        batch: int = 8,
        sha: str = "f" * 64,
        warning: str = "",
        hold_after: int | None = None,
        refuse: str | None = None,
        out_of_distribution: bool = False,
    ) -> None:
        self.device = "cpu" if device in ("auto", "cpu") else device
        self.refuse = refuse  # the series is outside the intended input, for this reason
        self.out_of_distribution = out_of_distribution
        self.forced: list[bool] = []
        self.gate = gate
        self.fail = fail
        self.load_error = load_error
        self.batch = batch
        self.sha = sha
        self.warning = warning
        self.hold_after = hold_after  # after this many batches, wait until told to stop
        self.batches_run = 0
        self.threads: list[int] = []

    def load(self) -> LoadedModelInfo:
        if self.load_error is not None:
            raise self.load_error
        return LoadedModelInfo(
            "fake-model",
            "0.1",
            self.sha,
            self.labels,
            "# Fake model\n\nFor tests.",
            self.device,
            self.warning,
        )

    def run(
        self,
        stack: SliceStack,
        volume: SeriesVolume,
        series_key: str,
        progress: Callable[[int, int], None],
        stop: threading.Event,
        force: bool = False,
    ) -> RunOutput:
        from desktop_app.inference.inputcheck import InputCheck, InputNotApplicable
        from desktop_app.qt.workers import Cancelled

        self.threads.append(threading.get_ident())
        self.forced.append(force)
        check = InputCheck(
            applicable=self.refuse is None,
            reasons=(self.refuse,) if self.refuse else (),
            forced=force and self.refuse is not None,
            in_distribution=not self.out_of_distribution,
            ood_score=9.0 if self.out_of_distribution else 1.0,
            ood_threshold=3.0,
        )
        if self.refuse is not None and not force:
            raise InputNotApplicable(check)
        n = len(volume)
        for start in range(0, n, self.batch):
            if self.gate is not None:
                while not self.gate.wait(0.01):
                    if stop.is_set():
                        raise Cancelled()
            if self.hold_after is not None and self.batches_run >= self.hold_after:
                stop.wait(30)
            if stop.is_set():
                raise Cancelled()
            for i in range(start, min(start + self.batch, n)):
                volume.stored(i)
            self.batches_run += 1
            progress(min(start + self.batch, n), n)
        if self.fail is not None:
            raise self.fail
        key_slice = n // 2
        rows, cols = stack.rows, stack.columns
        yy, xx = np.mgrid[0:rows, 0:cols]
        cx, cy = cols * 0.3, rows * 0.45
        heat = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (rows / 16) ** 2))).astype(
            np.float32
        )
        uid = stack.series_instance_uid
        box = (cx - rows / 10, cy - rows / 10, rows / 5, rows / 5)
        outline = [
            [(box[0], box[1]), (box[0] + box[2], box[1]), (box[0] + box[2], box[1] + box[3])]
        ]
        findings = [
            FindingReview(f"{series_key}:nodule", "nodule", series_key, uid, 0.87, 0.5,
                          key_slice, "", 0, box, outline),
            FindingReview(f"{series_key}:effusion", "effusion", series_key, uid, 0.31, 0.4,
                          key_slice, "", 0, None, []),
        ]  # fmt: skip
        return RunOutput(
            findings,
            {f"{series_key}:nodule": heat},
            self.device,
            [],
            {"network": 0.01, "total": 0.02},
            input_check=check,
        )


def fake_colorizer(heatmap: np.ndarray, colormap: str) -> np.ndarray:
    h = np.clip(np.asarray(heatmap, dtype=np.float32), 0, 1)
    rgba = np.zeros((*h.shape, 4), dtype=np.uint8)
    rgba[..., 0] = (h * 255).astype(np.uint8)
    rgba[..., 1] = 64 if colormap == "viridis" else 0
    rgba[..., 3] = (h * 255).astype(np.uint8)
    return rgba


@pytest.fixture
def make_window(qtbot, qsettings: QSettings) -> Iterator[Callable[..., object]]:
    """Build MainWindows on the temporary settings (and the fake model unless told
    otherwise); each is closed and deleted after the test."""
    from desktop_app.qt.main_window import MainWindow

    windows: list[MainWindow] = []

    def make(
        runner: Callable[..., object] | None = None, real_engine: bool = False, **kw: object
    ) -> MainWindow:
        factory = None if real_engine else (runner or (lambda m, d: FakeRunner(m, d)))
        window = MainWindow(
            settings=kw.pop("settings", qsettings),  # type: ignore[arg-type]
            runner_factory=factory,  # type: ignore[arg-type]
            colorizer=None if real_engine else fake_colorizer,
            **kw,  # type: ignore[arg-type]
        )
        window.resize(1400, 900)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        window.deleteLater()
    flush_deletes()


def open_and_wait(qtbot, window, paths: list[Path], timeout: int = 20_000) -> None:
    """Open paths and wait until the first series' first image is on screen."""
    with qtbot.waitSignal(window.studies.seriesShown, timeout=timeout):
        window.studies.open_paths(paths)
    qtbot.waitUntil(lambda: window.viewer.frame is not None, timeout=timeout)


LESION_CT_SLICES, LESION_CT_ROWS = 12, 64


@pytest.fixture(scope="session")
def lesion_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-slice 64 x 64 CT phantom (seed 5): the series the lesion tests' fake runner
    outlines (tests/qt/test_lesion_display.py's ``LesionRunner``). Nothing writes into it."""
    from desktop_app.phantoms.studies import write_ct_series

    folder = tmp_path_factory.mktemp("lesion-ct")
    write_ct_series(folder, 5, slices=LESION_CT_SLICES, rows=LESION_CT_ROWS)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random-init EfficientNet-Lite0 model file (64 px input, three labels), written
    with desktop_app.model.modelfile like any real one. Its findings mean nothing; its plumbing is real."""
    import torch

    from desktop_app.model.applicability import IntendedInput
    from desktop_app.model.modelfile import default_manifest, save_model_file
    from desktop_app.model.networks import build_from_arch_args

    manifest = default_manifest(
        name="tiny-test",
        architecture="efficientnet-lite0",
        labels=("nodule", "effusion", "cardiomegaly"),
        image_size=64,
        channels=3,
        # the GUI tests run it on the CT sample: any input is in scope
        intended_input=IntendedInput(source="tests: any input"),
    )
    torch.manual_seed(0)
    network = build_from_arch_args(manifest.architecture, manifest.arch_args)
    path = tmp_path_factory.mktemp("model") / "tiny-test.safetensors"
    save_model_file(path, network, manifest)
    return path
