"""A RadAssist window in its own process, for the kill test: it opens the sample CT, runs the
fake model, reviews the findings, waits for the review to be on disk, prints READY and waits
to be killed (SIGKILL: no clean shutdown, no atexit, nothing flushed after READY)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from desktop_app.qt.main_window import MainWindow
from tests.qt.conftest import SAMPLE_CT, FakeRunner, fake_colorizer


def main(settings_path: str) -> int:
    app = QApplication(sys.argv[:1])
    settings = QSettings(settings_path, QSettings.Format.IniFormat)
    settings.setValue("review/reviewer", "Dr Kill")  # no name dialog before the first verdict
    window = MainWindow(
        settings=settings, runner_factory=lambda m, d: FakeRunner(m, d), colorizer=fake_colorizer
    )
    window.show()

    def reviewed(_key: str) -> None:
        key = window.shown.key
        window.review.accept_finding(f"{key}:nodule")
        window.review.reject_finding(f"{key}:effusion", "fn_subtle")  # negative: missed
        window.review.set_note(f"{key}:nodule", "round, 22 mm; compare with prior")
        window.review.set_threshold("effusion", 0.2, final=True)
        if not window.review.writer.flush(30):
            print("NOT FLUSHED", flush=True)
            return
        print("READY", flush=True)

    window.studies.seriesShown.connect(lambda _k: window.runs.run_inference())
    window.runs.inferenceDone.connect(reviewed)
    QTimer.singleShot(0, lambda: window.studies.open_paths([SAMPLE_CT]))
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
