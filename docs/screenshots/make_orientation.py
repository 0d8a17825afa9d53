"""Screenshots of reading order, orientation letters and corner text (ct-order-*, orientation-*).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \
        docs/screenshots/make_orientation.py --size 1600x1000   # and --size 1280x720

Opens the bundled synthetic samples on fresh temporary settings and data folder (no model
run), then grabs the window: the CT phantom on its lesion slice (Instance Number 17, head
first, corner text), and the chest film turned right and flipped left-right on screen with
identifiers hidden (the letters follow).
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
    suffix = str(width)
    out = Path(args.out)
    tmp = tempfile.TemporaryDirectory(prefix="radassist-docs-")
    os.environ["RADASSIST_DATA_DIR"] = str(Path(tmp.name) / "data")
    sys.path.insert(0, str(ROOT))

    from PySide6.QtCore import QBuffer, QEventLoop, QIODevice, QSettings, QTimer
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

    def grab(name: str) -> None:
        settle()
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
    window.viewer.set_index(16)  # Instance Number 17: the lesion's largest slice
    wait(lambda: window.viewer._frame_index == 16)
    window.canvas.zoom_by(1.6)
    grab(f"ct-order-{suffix}.png")

    window.studies.show_stack(xr.key)
    wait(lambda: window.viewer.frame is not None)
    wait(lambda: bool(window.canvas.orientation_letters()))
    window.acts["rotate_right"].trigger()
    window.acts["flip_h"].trigger()
    window.acts["hide_identifiers"].trigger()
    grab(f"orientation-{suffix}.png")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
