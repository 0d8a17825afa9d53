"""Screenshots of a lesion mask being edited on the CT sample (brush-<W>.png): the nodule (L1)
selected with the Brush in hand and a stroke in progress extending it, the brush outline at
the cursor, and a missed lesion (L2) the reader drew with "Add lesion", in the findings panel's
lesion rows with their volumes measured again.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_brush.py \
        [--size 1600x1000] [--out docs/screenshots]

The nodule is the bundled CT model's when resources/models/ holds it, else the sample's true
nodule put in the review as a model's lesion (``make_lesions.show_truth``).
"""

from __future__ import annotations

import sys

from make_lesions import CT, MODEL, show_truth
from shots import Session, grab, open_and_show, parse_args, wait


def main() -> int:
    args = parse_args(__doc__)
    session = Session()
    use_model = MODEL.exists()
    window = session.window(args.width, args.height, model=str(MODEL) if use_model else "")
    if not open_and_show(window, [CT]):
        print("error: the CT sample did not open", file=sys.stderr)
        return 1
    if use_model:
        if not window.runs.run_inference_and_wait():
            print("error: the CT model did not run", file=sys.stderr)
            return 1
    else:
        show_truth(window)
    if not window.lesions.views:
        print("error: no lesion to show", file=sys.stderr)
        return 1
    from PySide6.QtCore import QPointF

    from desktop_app.review.lesionreview import brush_region

    key = window.shown.key
    state = window.review.current_state()
    nodule = state.lesions_for(key)[0]
    window.lesions.go_to_lesion(nodule.lesion_id)
    target = window.viewer.index
    wait(lambda: window.viewer.frame is not None and window.viewer._frame_index == target)
    x, y, w, h = nodule.box
    cx, cy = x + w / 2, y + h / 2
    canvas = window.canvas
    canvas.zoom_by(2.2)
    canvas.center_on(cx + w * 0.8, cy)
    # a missed lesion the reader drew: "Add lesion", one stroke beside the nodule
    window.masks.start_add_lesion()
    window.masks.set_diameter(9)
    rows, cols = state.lesion_labels(key).shape[1:]
    missed = [(cx + w * 1.6 + dx, cy + h * 0.6 + dy) for dx, dy in ((0, 0), (3, 2), (5, 5))]
    window.masks.apply_stroke(target, brush_region((rows, cols), missed, 9), None, False)
    # the nodule selected again, the brush extending it: a stroke in progress
    window.lesions.select_lesion(nodule.lesion_id)
    window.masks.set_tool("brush")
    window.masks.set_diameter(7)
    path = [(x + w - 1.0, cy - h * 0.2), (x + w + 3.0, cy - h * 0.35), (x + w + 6.0, cy - h * 0.3)]
    window.masks._begin(path[0])
    for p in path[1:]:
        window.masks._extend(p)
    window.masks._cursor = QPointF(*path[-1])
    canvas.update()
    grab(window, args.out / f"brush-{args.width}.png", settle_ms=600)
    window.masks.cancel_stroke()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
