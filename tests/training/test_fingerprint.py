"""training.fingerprint: header statistics, prevalence, splits and box sizes, against values
computed here from the same seeded demo data; PNG headers; sampling; unreadable files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.helpers.tinydata import demo_dataset
from training.data import Dataset, read_dataset, split_dataset
from training.fingerprint import (
    FINGERPRINT,
    compute_fingerprint,
    read_header,
    record_boxes,
    smallest_finding,
    summary_lines,
    write_fingerprint,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    manifest = demo_dataset(
        tmp_path_factory.mktemp("fp"), n=30, size=64, seed=5,
        monochrome1_fraction=0.5, rle_fraction=0.5, nonsquare_fraction=0.5,
    )  # fmt: skip
    return read_dataset(manifest)


class TestComputeFingerprint:
    def test_image_statistics_match_the_headers(self, demo: Dataset) -> None:
        fp = compute_fingerprint(demo, split_dataset(demo))
        headers = [pydicom.dcmread(r.path, stop_before_pixels=True) for r in demo.records]
        rows = [int(h.Rows) for h in headers]
        cols = [int(h.Columns) for h in headers]
        im = fp["image"]
        assert im["rows"]["min"] == min(rows) and im["rows"]["max"] == max(rows)
        assert im["cols"]["median"] == float(np.median(cols))
        assert im["headers_read"] == len(demo.records) and "sampled" not in im
        photometric = [str(h.PhotometricInterpretation) for h in headers]
        assert im["photometric"] == {k: photometric.count(k) for k in set(photometric)}
        assert set(im["photometric"]) == {"MONOCHROME1", "MONOCHROME2"}
        syntaxes = {h.file_meta.TransferSyntaxUID.name for h in headers}
        assert set(im["transfer_syntax"]) == syntaxes and "RLE Lossless" in syntaxes
        assert sum(im["bits_stored"].values()) == len(headers)
        assert im["unreadable"] == 0

    def test_prevalence_and_splits(self, demo: Dataset) -> None:
        splits = split_dataset(demo)
        fp = compute_fingerprint(demo, splits)
        y = demo.label_matrix(splits.train)
        for j, label in enumerate(demo.labels):
            assert fp["prevalence"]["train"][label] == pytest.approx(y[:, j].mean(), abs=1e-6)
        assert fp["splits"]["train"]["images"] == len(splits.train)
        assert fp["splits"]["val"]["patients"] == len({demo.records[i].patient for i in splits.val})
        assert fp["images"] == len(demo.records) and fp["labels"] == list(demo.labels)

    def test_box_sizes_relative_to_the_longer_side(self, demo: Dataset) -> None:
        fp = compute_fingerprint(demo, split_dataset(demo))
        expected: dict[str, list[float]] = {}
        for r in demo.records:
            h = pydicom.dcmread(r.path, stop_before_pixels=True)
            for label, _x, _y, w, bh in record_boxes(r, demo.labels):
                if min(w, bh) > 0:
                    expected.setdefault(label, []).append(min(w, bh) / max(h.Rows, h.Columns))
        per_label = fp["boxes"]["per_label"]
        assert set(per_label) == set(expected) and expected
        for label, values in expected.items():
            entry = per_label[label]
            assert entry["count"] == len(values)
            assert entry["min_side_fraction"]["p5"] == pytest.approx(
                np.percentile(values, 5), abs=1e-5
            )
            assert entry["min_side_fraction"]["min"] == pytest.approx(min(values), abs=1e-5)
        label, p5, _ = smallest_finding(fp) or ("", 0.0, 0)
        assert p5 == min(v["min_side_fraction"]["p5"] for v in per_label.values())
        assert per_label[label]["min_side_fraction"]["p5"] == p5

    def test_a_large_dataset_is_sampled_and_says_so(self, demo: Dataset) -> None:
        fp = compute_fingerprint(demo, split_dataset(demo), max_headers=7, seed=3)
        assert fp["image"]["headers_read"] == 7
        assert (
            fp["image"]["sampled"] == f"a seeded sample of 7 of {len(demo.records)} images (seed 3)"
        )
        assert sum(fp["image"]["photometric"].values()) == 7
        again = compute_fingerprint(demo, split_dataset(demo), max_headers=7, seed=3)
        assert again["image"]["rows"] == fp["image"]["rows"]  # seeded

    def test_written_atomically_as_json_and_summarised(self, demo: Dataset, tmp_path: Path) -> None:
        fp = compute_fingerprint(demo, split_dataset(demo))
        path = write_fingerprint(fp, tmp_path)
        assert path == tmp_path / FINGERPRINT
        assert json.loads(path.read_text())["images"] == len(demo.records)
        lines = summary_lines(fp)
        assert lines[0].startswith(f"{len(demo.records)} images of ")
        assert any(line.startswith("boxes (smaller side") for line in lines)
        assert any("MONOCHROME1" in line for line in lines)

    def test_without_boxes(self, demo: Dataset) -> None:
        plain = replace(demo, records=[replace(r, box=None, boxes=()) for r in demo.records])
        fp = compute_fingerprint(plain, split_dataset(plain))
        assert fp["boxes"]["per_label"] == {} and smallest_finding(fp) is None
        assert "no annotated boxes" in summary_lines(fp)


class TestReadHeader:
    @pytest.mark.parametrize(("mode", "bits"), [("L", 8), ("I;16", 16), ("RGB", 8)])
    def test_png_size_and_mode_without_decoding(self, tmp_path: Path, mode: str, bits: int) -> None:
        path = tmp_path / "a.png"
        Image.new(mode, (40, 30)).save(path)
        h = read_header(path)
        assert (h.rows, h.cols, h.bits_stored, h.spacing, h.error) == (30, 40, bits, None, None)
        assert h.photometric == ("RGB" if mode == "RGB" else "MONOCHROME2")

    def test_an_unreadable_file_is_counted_not_raised(self, demo: Dataset, tmp_path: Path) -> None:
        bad = tmp_path / "bad.dcm"
        bad.write_bytes(b"not a dicom file")
        assert read_header(bad).error is not None
        records = [replace(demo.records[0], path=bad), *demo.records[1:]]
        data = replace(demo, records=records)
        fp = compute_fingerprint(data, split_dataset(data))
        assert fp["image"]["unreadable"] == 1
        assert fp["image"]["pixel_spacing_mm"]["missing"] >= 1
