"""Screenshots of the reader's annotation tools (reader-tools-*): ellipse and rectangle ROIs
with their HU statistics, an angle, an arrow with text and the key-image flag on the CT phantom.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \
        docs/screenshots/make_reader_tools.py --size 1600x1000   # and --size 1280x720

Opens the bundled CT phantom on fresh temporary settings and data folder (no model run),
draws each annotation with the mouse (QTest) as a reader would, and grabs the window.
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
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--size", default="1600x1000")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    out = Path(args.out)
    tmp = tempfile.TemporaryDirectory(prefix="radassist-docs-")
    os.environ["RADASSIST_DATA_DIR"] = str(Path(tmp.name) / "data")
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import (
        QBuffer,
        QEventLoop,
        QIODevice,
        QPoint,
        QPointF,
        QSettings,
        Qt,
        QTimer,
    )
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from desktop_app.infra.atomicio import atomic_write_bytes
    from desktop_app.qt.main_window import MainWindow
    from desktop_app.qt.theme import apply_dark_theme

    app = QApplication(sys.argv[:1])
    app.setApplicationName("RadAssist")
    apply_dark_theme(app)
    settings = QSettings(str(Path(tmp.name) / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("review/reviewer", "Dr A. Reader")
    window = MainWindow(settings=settings, warm_up_ms=-1)
    window.resize(width, height)
    window.show()

    def wait(predicate: Callable[[], bool], timeout_s: float = 60) -> bool:
        loop = QEventLoop()
        timer = QTimer()
        left = [int(timeout_s * 1000 / 20)]

        def check() -> None:
            left[0] -= 1
            if predicate() or left[0] <= 0:
                loop.quit()

        timer.timeout.connect(check)
        timer.start(20)
        if not predicate():
            loop.exec()
        timer.stop()
        return predicate()

    def settle(ms: int = 400) -> None:
        end = QTimer()
        end.setSingleShot(True)
        loop = QEventLoop()
        end.timeout.connect(loop.quit)
        end.start(ms)
        loop.exec()

    canvas = window.canvas
    left = Qt.MouseButton.LeftButton

    def at(x: float, y: float) -> QPoint:
        return canvas.image_to_widget(QPointF(x, y)).toPoint()

    def drag(a: tuple[float, float], b: tuple[float, float]) -> None:
        QTest.mousePress(canvas, left, Qt.KeyboardModifier.NoModifier, at(*a))
        QTest.mouseMove(canvas, at((a[0] + b[0]) / 2, (a[1] + b[1]) / 2))
        QTest.mouseMove(canvas, at(*b))
        QTest.mouseRelease(canvas, left, Qt.KeyboardModifier.NoModifier, at(*b))

    shown: list[str] = []
    window.studies.seriesShown.connect(shown.append)
    window.studies.open_paths([SAMPLE / "ct_phantom"])
    if not wait(lambda: bool(shown) and window.viewer.frame is not None):
        print("error: the CT phantom did not open", file=sys.stderr)
        return 1
    window.viewer.set_index(17)  # the lesion's largest slice
    wait(lambda: window.annotations._image_ref() is not None and window.viewer.index == 17)
    window.canvas.zoom_by(1.5)
    settle()
    ctl = window.annotations
    window.acts["tool_ellipse"].trigger()
    drag((71.5, 112.5), (84, 124.5))  # inside the 50 HU lesion
    window.acts["tool_rectangle"].trigger()
    drag((160, 100), (195, 135))  # lung on the other side
    window.acts["tool_angle"].trigger()
    drag((200, 150), (168, 168))
    QTest.mouseClick(canvas, left, Qt.KeyboardModifier.NoModifier, at(196, 192))
    window.acts["tool_arrow"].trigger()
    drag((72, 108), (95, 70))
    if ctl.text_dialog is not None:
        ctl.text_dialog.setTextValue("round 50 HU nodule")
        ctl.text_dialog.accept()
    ctl.toggle_key_image()
    ctl.selected = next(a.id for a in ctl.here() if a.kind == "ellipse")
    canvas.update()
    settle()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    window.grab().toImage().save(buffer, "PNG")
    path = out / f"reader-tools-{width}.png"
    atomic_write_bytes(path, bytes(buffer.data().data()))
    print(f"wrote {path}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
