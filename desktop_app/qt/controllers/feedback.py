"""Feedback: the status bar — messages, errors, the task progress bar, Cancel, the device badge."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QToolButton, QWidget

from desktop_app import RESEARCH_USE_NOTICE
from desktop_app.inference.firststart import badge_tooltip

log = logging.getLogger(__name__)


class Feedback(QObject):
    """Owns the status bar's permanent widgets; nothing modal ever blocks the reading.

    A QObject child of the window, so that connections to its slots (the global error relay)
    end when the window is destroyed instead of calling into deleted widgets."""

    def __init__(self, bar: QStatusBar, parent: QWidget) -> None:
        super().__init__(parent)
        self.bar = bar
        self.last_error: str | None = None
        self.readout = QLabel("", parent)
        self.readout.setObjectName("readout")
        self.readout.setMinimumWidth(230)
        self.progress = QProgressBar(parent)
        self.progress.setObjectName("taskProgress")
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.cancel_button = QToolButton(parent)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel the running inference (Esc)")
        self.cancel_button.hide()
        self.device_badge = QLabel("", parent)
        self.device_badge.setObjectName("deviceBadge")
        self.notice = QLabel(f"⚠ {RESEARCH_USE_NOTICE}", parent)
        self.notice.setObjectName("researchNotice")
        self.notice.setToolTip(
            "RadAssist is research software. It is not a certified medical device; "
            "its output must not be used to make or support a diagnosis."
        )
        bar.addPermanentWidget(self.readout)  # permanent: messages never hide the readout
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.device_badge)
        bar.addPermanentWidget(self.notice)

    def message(self, text: str, timeout_ms: int = 0) -> None:
        self.bar.showMessage(text, timeout_ms)

    def show_error(self, message: str) -> None:
        """Errors go to the status bar (and the log)."""
        log.warning("%s", message)
        self.bar.showMessage(f"✖ {message}", 15000)
        self.last_error = message

    def begin(self, message: str, fmt: str = "%v/%m") -> None:
        """A busy bar (no total yet) for a task that starts now."""
        if message:
            self.bar.showMessage(message)
        self.progress.setFormat(fmt)
        self.progress.setRange(0, 0)
        self.progress.show()

    def end(self, message: str) -> None:
        self.progress.hide()
        self.bar.showMessage(message, 10000)

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def show_device(self, text: str, warning: str, model_path: str | None) -> None:
        self.device_badge.setText(text)
        # after the first model load on this machine: "Inference runs on CPU · ~14 ms/image"
        self.device_badge.setToolTip(warning or badge_tooltip(text, model_path))
        self.device_badge.setProperty("warning", bool(warning))
        self.device_badge.setStyleSheet("color: #101113; background: #e0a030;" if warning else "")
