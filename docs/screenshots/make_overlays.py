"""Screenshots of what other tools wrote, shown: overlay planes, GSPS annotations, SR regions
and the SR panel (overlays-<W>.png, sr-panel-<W>.png).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_overlays.py \
        [--size 1600x1000] [--out docs/screenshots]

The image is pydicom-data's MR-SIEMENS-DICOM-WithOverlays.dcm (public test data with a real
overlay plane); the presentation state and the TID 1500 SR on it are made here
(tests/helpers/presentation.py).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from shots import Session, grab, parse_args, wait


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
    args = parse_args(__doc__)
    session = Session()
    window = session.window(args.width, args.height)
    folder = make_study(session.folder / "study")
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
    grab(window, args.out / f"overlays-{args.width}.png", settle_ms=500)
    sr = next(k for k, e in window.browser.objects.items() if e.kind == "SR")
    window.browser.objectActivated.emit(sr)
    grab(window, args.out / f"sr-panel-{args.width}.png", settle_ms=500)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
