"""Regenerate the GUI screenshots in this folder (browser, viewer, findings, review, tags).

Run under a real X server so that Qt's xcb platform draws what a user sees:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_screenshots.py \
        [--model FILE] [--out docs/screenshots]

It opens the bundled sample studies (synthetic phantoms, no patient data) in a MainWindow on
fresh temporary settings and data folder, runs the model (``--model`` or the bundled one),
scripts a few review actions and grabs the window after each step.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "resources" / "sample"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the bundled one)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--size", default="1600x1000")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    out = Path(args.out)
    tmp = tempfile.TemporaryDirectory(prefix="radassist-docs-")
    os.environ["RADASSIST_DATA_DIR"] = str(Path(tmp.name) / "data")
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop_app.infra.atomicio import atomic_write_bytes
    from desktop_app.qt.main_window import MainWindow
    from desktop_app.qt.theme import apply_dark_theme

    sys.setswitchinterval(0.002)
    app = QApplication(sys.argv[:1])
    app.setApplicationName("RadAssist")
    apply_dark_theme(app)
    settings = QSettings(str(Path(tmp.name) / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("review/reviewer", "Dr A. Reader")
    if args.model:
        settings.setValue("inference/model_path", str(Path(args.model).resolve()))
    window = MainWindow(settings=settings, warm_up_ms=-1)
    window.resize(width, height)
    window.show()

    def wait(predicate: Callable[[], bool], timeout_s: float = 300) -> bool:
        loop = QEventLoop()
        timer = QTimer()
        ok = [predicate()]
        left = [int(timeout_s * 1000 / 20)]

        def check() -> None:
            left[0] -= 1
            if predicate():
                ok[0] = True
                loop.quit()
            elif left[0] <= 0:
                loop.quit()

        timer.timeout.connect(check)
        timer.start(20)
        if not ok[0]:
            loop.exec()
        timer.stop()
        return ok[0]

    def settle(ms: int = 400) -> None:
        end = QTimer()
        end.setSingleShot(True)
        loop = QEventLoop()
        end.timeout.connect(loop.quit)
        end.start(ms)
        loop.exec()

    def grab(name: str) -> None:
        settle()
        from PySide6.QtCore import QBuffer, QIODevice

        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        window.grab().toImage().save(buffer, "PNG")
        path = out / name
        atomic_write_bytes(path, bytes(buffer.data().data()))
        print(f"wrote {path}")

    shown: list[str] = []
    window.studies.seriesShown.connect(shown.append)
    window.studies.open_paths([SAMPLE])
    if not wait(lambda: bool(shown) and window.viewer.frame is not None):
        print("error: the samples did not open", file=sys.stderr)
        return 1
    xr = next(e for e in window.studies.entries if e.modality in ("DX", "CR"))
    ct = next(e for e in window.studies.entries if e.modality == "CT")
    window.studies.show_stack(ct.key)
    wait(lambda: window.viewer.frame is not None)
    wait(lambda: all(window.browser.has_thumbnail(e.key) for e in window.studies.entries), 60)
    window.acts["toggle_tags"].trigger()
    wait(lambda: len(window.tags.rows) > 0, 30)
    grab("browser.png")
    window.tags.search.setText("0028,10")
    wait(lambda: "of" in window.tags.status.text(), 5)
    grab("tags.png")
    window.tags.search.setText("")
    window.findings_dock.raise_()

    window.studies.show_stack(xr.key)
    wait(lambda: window.viewer.frame is not None)
    done: list[str] = []
    failed: list[str] = []
    window.runs.inferenceDone.connect(done.append)
    window.runs.inferenceFailed.connect(failed.append)
    window.runs.run_inference()
    if not wait(lambda: bool(done or failed), 600) or failed:
        print(f"error: inference failed: {failed[0] if failed else 'timeout'}", file=sys.stderr)
        return 1
    grab("viewer.png")

    state = window.review.current_state()
    assert state is not None
    findings = sorted(state.for_series(xr.key), key=lambda f: -f.probability)
    # The findings panel: where the model gave a below-threshold label a real score (5 % or
    # more), a reader lowers its threshold with the live slider; a label at ~0 % is left alone
    # (making it "positive" at threshold 0 would only show a meaningless box).
    second = findings[1] if len(findings) > 1 else None
    if second is not None and second.probability >= 0.05:
        card = window.findings.cards[second.finding_id]
        card.slider.setValue(max(0, round(second.probability * 1000) - 50))
    else:
        second = None
    window.review.select_finding(findings[0].finding_id)
    grab("findings.png")

    # The review: accept the top finding with a note, reject another, edit the box.
    window.review.accept_finding(findings[0].finding_id)
    window.review.set_note(
        findings[0].finding_id, "Well-defined, about 2 cm; compare with prior films."
    )
    if second is not None:
        window.review.reject_finding(second.finding_id, "fp_normal_anatomy")
    window.review.select_finding(findings[0].finding_id)
    window.findings.select(findings[0].finding_id)
    window.acts["tool_edit"].trigger()
    grab("review.png")
    window.review.writer.flush()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
