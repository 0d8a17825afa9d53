"""Screenshots of the viewport layouts and compare with prior (layout-*, compare-*).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \
        docs/screenshots/make_layouts.py --size 1600x1000   # and --size 1280x720

Writes two synthetic chest CTs of one patient (2022 and 2021, 2.5 and 5 mm slices) into a
temporary folder, opens them with the bundled samples on fresh settings and data folder (no
model run), then grabs the window: "compare with prior" (1×2, scroll / zoom / W/L in sync, lung
window), and the 2×2 layout with the chest film dragged into the third viewport and the fourth
still empty.
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

    from PySide6.QtCore import QBuffer, QEventLoop, QIODevice, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop_app.dicom.voi import Window
    from desktop_app.infra.atomicio import atomic_write_bytes
    from desktop_app.phantoms.studies import write_ct_series
    from desktop_app.qt.main_window import MainWindow
    from desktop_app.qt.theme import apply_dark_theme
    from desktop_app.studies.compare import summarize

    studies = Path(tmp.name) / "studies"
    write_ct_series(studies / "current", 1, slices=40, rows=256, lesions=2, patient_number=7)
    write_ct_series(studies / "prior", 2, slices=20, rows=256, slice_thickness_mm=5.0,
                    lesions=1, patient_number=7)  # fmt: skip

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

    def grab(name: str) -> None:
        end = QTimer()
        end.setSingleShot(True)
        loop = QEventLoop()
        end.timeout.connect(loop.quit)
        end.start(500)
        loop.exec()
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        window.grab().toImage().save(buffer, "PNG")
        atomic_write_bytes(out / name, bytes(buffer.data().data()))
        print(f"wrote {out / name}")

    shown: list[str] = []
    window.studies.seriesShown.connect(shown.append)
    window.studies.open_paths([SAMPLE, studies])
    if not wait(lambda: bool(shown) and window.viewer.frame is not None):
        print("error: the studies did not open", file=sys.stderr)
        return 1
    summaries = summarize(window.studies.index, window.studies.assemblies)
    current = next(s.key for s in summaries.values() if s.study_date == "20220309")
    window.studies.show_stack(current)
    wait(lambda: window.viewer.frame is not None)
    window.viewer.set_index(25)
    wait(lambda: all(window.browser.has_thumbnail(e.key) for e in window.studies.entries), 60)
    window.acts["compare_prior"].trigger()
    second = window.viewports.viewers[1]
    wait(lambda: second.frame is not None)
    window.viewer.set_window(Window(-600, 1500))
    wait(lambda: second.window_level == Window(-600, 1500))
    window.viewports.activate(1)
    suffix = str(width)
    grab(f"compare-{suffix}.png")

    window.acts["layout_2x2"].trigger()
    xr = next(e for e in window.studies.entries if e.modality in ("DX", "CR"))
    window.layouts.show_in(2, xr.key)
    third = window.viewports.viewers[2]
    wait(lambda: third.frame is not None)
    window.viewports.activate(2)
    grab(f"layout-{suffix}.png")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
