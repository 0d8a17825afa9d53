"""`radassist PATH --screenshot FILE.png`: load, optionally run inference, render, save, exit."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QEventLoop, QIODevice, QTimer
from PySide6.QtGui import QImageWriter
from PySide6.QtWidgets import QApplication

from desktop_app.infra.atomicio import atomic_write_bytes
from desktop_app.qt.main_window import MainWindow

log = logging.getLogger(__name__)

TIMEOUT_MS = 180_000


def _wait(loop: QEventLoop, timeout_ms: int) -> bool:
    """Run ``loop`` until it quits (True) or the timeout passes (False)."""
    timer = QTimer()
    timer.setSingleShot(True)
    expired = {"value": False}

    def on_timeout() -> None:
        expired["value"] = True
        loop.quit()

    timer.timeout.connect(on_timeout)
    timer.start(timeout_ms)
    loop.exec()
    timer.stop()
    return not expired["value"]


def take_screenshot(
    window: MainWindow, paths: list[Path], out: Path, size: tuple[int, int], run_inference: bool
) -> int:
    app = QApplication.instance()
    assert app is not None
    window.resize(*size)
    window.show()
    if paths:
        studies = window.studies
        loop = QEventLoop()
        studies.seriesShown.connect(lambda _key: loop.quit())
        studies.index_channel.failed.connect(lambda _msg: loop.quit())
        studies.indexReady.connect(lambda index: None if studies.entries else loop.quit())
        studies.open_paths(paths)
        if not _wait(loop, TIMEOUT_MS):
            print(f"radassist: error: {paths[0]}: timed out while opening", file=sys.stderr)
            return 1
        _wait_for_image(window)
        if run_inference and not window.runs.run_inference_and_wait(TIMEOUT_MS):
            reason = window.feedback.last_error or "it did not finish in time"
            print(f"radassist: error: inference failed: {reason}", file=sys.stderr)
            window.close()
            return 1
    for _ in range(5):
        app.processEvents()
    image = window.grab().toImage()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not QImageWriter(buffer, b"PNG").write(image):
        print(f"radassist: error: {out}: could not encode the screenshot", file=sys.stderr)
        return 1
    atomic_write_bytes(out, bytes(buffer.data().data()))
    print(f"screenshot written: {out}")
    window.close()
    return 0


def _wait_for_image(window: MainWindow) -> None:
    """The series is shown once its first slice is decoded; wait (briefly) for that."""
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)

    def check() -> None:
        if window.viewer.frame is not None:
            loop.quit()

    timer.timeout.connect(check)
    timer.start()
    _wait(loop, 30_000)
    timer.stop()
