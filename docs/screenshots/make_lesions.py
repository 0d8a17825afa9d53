"""Screenshots of a segmentation's lesions on the CT sample (lesions-<W>.png): the nodule filled
and outlined with its "L1" label, the marker strip along the slice slider, and its row in the
findings panel (volume, diameter, HU, slices) with Accept / Reject; the lesion is selected by a
click in the image (thicker outline, its row highlighted, its measurements in the status line).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_lesions.py \
        [--size 1600x1000] [--out docs/screenshots] [--truth]

With the bundled CT nodule model (resources/models/radassist-ct-nodule-lite0.safetensors) the
model is run (Ctrl+Enter); without it, or with ``--truth``, the sample's true nodule
(resources/sample/ct_phantom/truth.json, the phantom redrawn) is measured with
``inference.lesions.find_lesions`` and put in the review as a model's lesions would be.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shots import ROOT, SAMPLE, Session, grab, open_and_show, parse_args, wait

CT = SAMPLE / "ct_phantom"
MODEL = ROOT / "resources" / "models" / "radassist-ct-nodule-lite0.safetensors"


def truth_labels(stack: object) -> object:
    """The sample's true lesion ids (slices, rows, cols) in the viewer stack's order."""
    import numpy as np

    from desktop_app.phantoms.ct import Lesion, ct_phantom

    truth = json.loads((CT / "truth.json").read_text())
    phantom = ct_phantom(
        int(truth["seed"]),
        slices=int(truth["slices"]),
        rows=int(truth["rows"]),
        cols=int(truth["cols"]),
        pixel_spacing_mm=float(truth["pixel_spacing_mm"]),
        slice_thickness_mm=float(truth["slice_thickness_mm"]),
        tilt_deg=0.0,
        lesions=[
            Lesion(tuple(item["center_mm"]), float(item["radius_mm"]), float(item["hu"]))
            for item in truth["lesions"]
        ],
        noise_hu=0.0,
    )
    files = list(truth["files"])
    slices = stack.slices  # type: ignore[attr-defined]
    labels = np.zeros((len(slices), int(truth["rows"]), int(truth["cols"])), np.uint16)
    for i, ref in enumerate(slices):  # the stack's order, whatever the files' order
        labels[i] = phantom.lesion_mask(files.index(Path(ref.instance.path).name))
    return labels


def show_truth(window: object) -> None:
    """The true nodule as a model run's pending lesions in the shown study's review."""
    import numpy as np

    from desktop_app.inference.lesions import MaskGeometry, find_lesions
    from desktop_app.review.lesionreview import SeriesLesions

    entry, volume = window.shown.entry, window.shown.volume  # type: ignore[attr-defined]
    stack = entry.stack
    geometry = MaskGeometry.from_stack(stack)
    values = np.stack([volume.frame(i).values for i in range(len(volume))])
    table = find_lesions(
        truth_labels(stack), geometry, values=values, value_unit="HU", with_labels=True
    )
    lesions = SeriesLesions.from_table(
        entry.key, stack.series_instance_uid, "nodule", table, table.labels, geometry
    )
    state = window.review.review_for(entry.study_uid, create=True)  # type: ignore[attr-defined]
    state.merge_lesions(entry.key, lesions)
    window.lesions.refresh()  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truth", action="store_true", help="the sample's truth, not the model")
    args = parse_args(__doc__, parser)
    session = Session()
    use_model = MODEL.exists() and not args.truth
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
    window.lesions.go_to_lesion(window.lesions.views[0].lesion_id)
    target = window.viewer.index
    import numpy as np  # the reader then clicks the lesion in the image: it is selected

    rows, cols = np.nonzero(window.lesions.labels[target])
    window.lesions.select_at(float(np.median(cols)), float(np.median(rows)))
    wait(lambda: window.viewer.frame is not None and window.viewer._frame_index == target)
    grab(window, args.out / f"lesions-{args.width}.png", settle_ms=600)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
