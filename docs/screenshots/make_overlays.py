"""Screenshots of what other tools wrote, shown: overlay planes, GSPS annotations, SR regions
and the SR panel (overlays-<W>.png, sr-panel-<W>.png).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_overlays.py \
        [--size 1600x1000] [--out docs/screenshots]

The image is pydicom-data's MR-SIEMENS-DICOM-WithOverlays.dcm (public test data with a real
overlay plane); the presentation state and the TID 1500 SR on it are made here
(tests/helpers/presentation.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make_study(folder: Path) -> Path:
    import pydicom

    from tests.helpers.dicomfiles import pydicom_data_files
    from tests.helpers.presentation import gsps_for, tid1500_sr

    source = next(p for p in pydicom_data_files() if p.name == "MR-SIEMENS-DICOM-WithOverlays.dcm")
    folder.mkdir(parents=True)
    shutil.copy(source, folder / "mr.dcm")
    image = pydicom.dcmread(source)
    gsps = gsps_for(
        [image],
        graphics=[
            ("CIRCLE", [300.0, 250.0, 300.0, 215.0], "PIXEL"),
            ("POLYLINE", [120.0, 400.0, 220.0, 400.0], "PIXEL"),
            ("ELLIPSE", [0.3, 0.25, 0.7, 0.25, 0.5, 0.2, 0.5, 0.3], "DISPLAY"),
        ],
        texts=[("100 mm", (140.0, 405.0, 260.0, 425.0), (220.0, 400.0), "PIXEL")],
        layer_lab=(45000, 58000, 20000),
    )
    gsps.save_as(folder / "gsps.dcm", enforce_file_format=True)
    sr = tid1500_sr(image, [(150.0, 180.0), (215.0, 170.0), (225.0, 240.0), (160.0, 250.0)])
    sr.save_as(folder / "sr.dcm", enforce_file_format=True)
    return folder


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

    from desktop_app.infra.atomicio import atomic_write_bytes
    from desktop_app.qt.main_window import MainWindow
    from desktop_app.qt.theme import apply_dark_theme

    app = QApplication(sys.argv[:1])
    apply_dark_theme(app)
    settings = QSettings(str(Path(tmp.name) / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, warm_up_ms=-1)
    window.resize(width, height)
    window.show()

    def wait(predicate: Callable[[], bool], timeout_s: float = 60) -> bool:
        loop, timer = QEventLoop(), QTimer()
        left = [int(timeout_s * 50)]

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
        wait(lambda: False, 0.5)
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        window.grab().toImage().save(buffer, "PNG")
        atomic_write_bytes(out / name, bytes(buffer.data().data()))
        print(f"wrote {out / name}")

    folder = make_study(Path(tmp.name) / "study")
    window.studies.open_paths([folder])
    controller = window.presentation
    if not wait(
        lambda: (
            window.viewer.frame is not None
            and len(controller.documents) == 2
            and controller._bitmap_key == controller._current
        )
    ):
        print("error: the study did not open", file=sys.stderr)
        return 1
    grab(f"overlays-{width}.png")
    sr = next(k for k, e in window.browser.objects.items() if e.kind == "SR")
    window.browser.objectActivated.emit(sr)
    grab(f"sr-panel-{width}.png")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
