"""Screenshots of a DICOM SEG and an RT Structure Set from other tools drawn over the CT sample
(seg-<W>.png): the SEG's nodule filled and outlined in its colour, the RTSTRUCT's contours,
and both listed as their own rows in the study browser.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_seg.py \
        [--size 1600x1000] [--out docs/screenshots]

The SEG (written with highdicom) and the structure set (pydicom) are made here over a copy of
resources/sample/ct_phantom (tests/helpers/segobjects.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from shots import Session, grab, parse_args, wait


def make_study(folder: Path) -> Path:
    from tests.helpers.segobjects import copy_ct, ct_slices, write_rtstruct, write_seg

    slices = ct_slices(copy_ct(folder))
    write_seg(folder, slices)
    write_rtstruct(folder, slices)
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
            and len(window.browser.objects) == 2
            and len(controller.documents) == 2
        )
    ):
        print("error: the study did not open", file=sys.stderr)
        return 1
    seg = next(k for k, e in window.browser.objects.items() if e.kind == "SEG")
    window.browser.objectActivated.emit(seg)
    stack = next(iter(window.browser.entries.values())).stack
    middle = stack.slices[window.viewer.index + 2].instance.sop_instance_uid
    window.viewer.set_index(window.viewer.index + 2)
    plane = lambda: controller._plane  # noqa: E731
    wait(lambda: plane() is not None and plane().sop_instance_uid == middle)
    grab(window, args.out / f"seg-{args.width}.png", settle_ms=600)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
