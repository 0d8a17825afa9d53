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

import sys

from shots import SAMPLE, Session, grab, open_and_show, parse_args, wait


def main() -> int:
    args = parse_args(__doc__)
    session = Session()

    from desktop_app.dicom.voi import Window
    from desktop_app.phantoms.studies import write_ct_series
    from desktop_app.studies.compare import summarize

    studies = session.folder / "studies"
    write_ct_series(studies / "current", 1, slices=40, rows=256, lesions=2, patient_number=7)
    write_ct_series(studies / "prior", 2, slices=20, rows=256, slice_thickness_mm=5.0,
                    lesions=1, patient_number=7)  # fmt: skip

    window = session.window(args.width, args.height)
    if not open_and_show(window, [SAMPLE, studies]):
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
    suffix = str(args.width)
    grab(window, args.out / f"compare-{suffix}.png", settle_ms=500)

    window.acts["layout_2x2"].trigger()
    xr = next(e for e in window.studies.entries if e.modality in ("DX", "CR"))
    window.layouts.show_in(2, xr.key)
    third = window.viewports.viewers[2]
    wait(lambda: third.frame is not None)
    window.viewports.activate(2)
    grab(window, args.out / f"layout-{suffix}.png", settle_ms=500)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
