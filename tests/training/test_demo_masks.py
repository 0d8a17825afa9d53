"""make-demo-data's masks: one label PNG per image, named in the manifest's ``mask`` column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from training.demo_data import DemoDataOptions, make_demo_dataset, read_manifest_rows


def test_masks_cover_the_boxed_findings(tmp_path: Path) -> None:
    options = DemoDataOptions(n=10, seed=3, size=128, prevalence=0.7, nonsquare_fraction=0.5)
    make_demo_dataset(tmp_path / "d", options)
    root = tmp_path / "d"
    summary = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    assert summary["mask_values"] == {"nodule": 1, "effusion": 2}
    with open(root / "boxes.csv", encoding="utf-8") as fh:
        boxes = [line.strip().split(",") for line in fh][1:]
    rows = read_manifest_rows(root / "manifest.csv")
    seen = set()
    for row in rows:
        mask = np.asarray(Image.open(root / row["mask"]))
        ds = pydicom.dcmread(root / row["path"], stop_before_pixels=True)
        assert mask.shape == (ds.Rows, ds.Columns) and mask.dtype == np.uint8
        for value, name in ((1, "nodule"), (2, "effusion")):
            present = row[name] == "1"
            drawn = mask == value
            if not present:
                assert not drawn.any()
                continue
            seen.add(name)
            assert drawn.any()
            (box,) = [b for b in boxes if b[0] == row["path"] and b[1] == name]
            x, y, w, h = (int(v) for v in box[2:])
            inside = drawn[y : y + h, x : x + w].sum()
            assert inside >= 0.8 * drawn.sum() - 2  # the box leaves out the faint rim
        if row["cardiomegaly"] == "1" and row["nodule"] == row["effusion"] == "0":
            assert not mask.any()
    assert seen == {"nodule", "effusion"}
