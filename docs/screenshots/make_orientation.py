"""Screenshots of reading order, orientation letters and corner text (ct-order-*, orientation-*).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \
        docs/screenshots/make_orientation.py --size 1600x1000   # and --size 1280x720

Opens the bundled synthetic samples on fresh temporary settings and data folder (no model
run), then grabs the window: the CT phantom on its lesion slice (Instance Number 17, head
first, corner text), and the chest film turned right and flipped left-right on screen with
identifiers hidden (the letters follow).
"""

from __future__ import annotations

import sys

from shots import SAMPLE, Session, grab, open_and_show, parse_args, wait


def main() -> int:
    args = parse_args(__doc__)
    suffix = str(args.width)
    session = Session()
    window = session.window(args.width, args.height)
    if not open_and_show(window, [SAMPLE]):
        print("error: the samples did not open", file=sys.stderr)
        return 1
    xr = next(e for e in window.studies.entries if e.modality in ("DX", "CR"))
    ct = next(e for e in window.studies.entries if e.modality == "CT")

    window.studies.show_stack(ct.key)
    wait(lambda: window.viewer.frame is not None)
    window.viewer.set_index(16)  # Instance Number 17: the lesion's largest slice
    wait(lambda: window.viewer._frame_index == 16)
    window.canvas.zoom_by(1.6)
    grab(window, args.out / f"ct-order-{suffix}.png")

    window.studies.show_stack(xr.key)
    wait(lambda: window.viewer.frame is not None)
    wait(lambda: bool(window.canvas.orientation_letters()))
    window.acts["rotate_right"].trigger()
    window.acts["flip_h"].trigger()
    window.acts["hide_identifiers"].trigger()
    grab(window, args.out / f"orientation-{suffix}.png")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
