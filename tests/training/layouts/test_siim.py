"""SIIM-ACR Pneumothorax read as published, against a real slice of train-rle.csv (several
rows per image, -1 rows), with tiny DICOMs in the release's dicom-images-train/<study>/<series>/
folders; the relative RLE decoded on real rows."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from desktop_app.infra.errors import DataError
from training.data import read_dataset
from training.layouts.siim import (
    decode_rle,
    encode_rle,
    image_masks,
    read_siim,
    rle_box,
    union_mask,
)

from .public import data_rows, slice_text, write_dicom, write_slice

RLE = "siim_train-rle.csv.gz"


def encodings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for line in data_rows(slice_text(RLE)):
        image_id, encoded = line.split(",")
        out[image_id].append(encoded.strip())
    return dict(out)


def make_siim(root: Path, text: str | None = None, *, keep: int | None = None) -> Path:
    csv_path = write_slice(RLE, root / "train-rle.csv", edit=text)
    for i, image_id in enumerate(list(encodings())[:keep]):
        write_dicom(root / "dicom-images-train" / f"1.2.{i}" / f"1.2.{i}.1" / f"{image_id}.dcm", i)
    return csv_path


@pytest.fixture(scope="module")
def siim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_siim(tmp_path_factory.mktemp("siim"))


def real_masks() -> list[str]:
    return [e for rows in encodings().values() for e in rows if e != "-1"]


class TestDecodeRle:
    def test_column_major_relative_runs(self) -> None:
        # 3 rows x 4 columns; runs at flat 1-2 (column 0, rows 1-2) and 1 later (flat 4: column 1, row 1)
        mask = decode_rle("1 2 1 1", width=4, height=3)
        expected = np.zeros((3, 4), bool)
        expected[1:3, 0] = True
        expected[1, 1] = True
        np.testing.assert_array_equal(mask, expected)

    def test_no_mask(self) -> None:
        assert not decode_rle("-1").any() and decode_rle("-1").shape == (1024, 1024)

    def test_real_rows_area_equals_the_run_lengths_and_round_trip(self) -> None:
        rows = real_masks()
        assert len(rows) >= 40
        for encoded in rows:
            mask = decode_rle(encoded)
            assert mask.shape == (1024, 1024) and mask.dtype == bool
            assert int(mask.sum()) == sum(int(v) for v in encoded.split()[1::2])
            assert encode_rle(mask) == " ".join(encoded.split())
            ys, xs = np.nonzero(mask)
            x, y = xs.min(), ys.min()
            assert rle_box(encoded) == (x, y, xs.max() - x + 1, ys.max() - y + 1)

    def test_union_of_an_images_rows(self) -> None:
        several = next(rows for rows in encodings().values() if len(rows) > 2)
        union = union_mask(several)
        assert np.array_equal(union, np.logical_or.reduce([decode_rle(e) for e in several]))
        assert union.sum() > max(decode_rle(e).sum() for e in several)

    def test_encode_empty_and_full(self) -> None:
        assert encode_rle(np.zeros((4, 5), bool)) == "-1"
        assert encode_rle(np.ones((4, 5), bool)) == "0 20"

    @pytest.mark.parametrize(
        ("encoded", "message"),
        [
            ("5 2 3", "3 numbers, not"),
            ("5 x", "not whitespace-separated integers"),
            ("5 0", "run length under 1"),
            ("1048570 10", "runs to pixel 1048580, past 1024 x 1024"),
        ],
    )
    def test_bad_encodings(self, encoded: str, message: str) -> None:
        with pytest.raises(DataError, match=message):
            decode_rle(encoded)


class TestReadSiim:
    def test_one_record_per_image_positive_when_any_row_has_a_mask(self, siim: Path) -> None:
        data = read_siim(siim)
        truth = encodings()
        assert data.kind == "siim" and data.labels == ("pneumothorax",)
        assert len(data.records) == len(truth)
        for record in data.records:
            rows = truth[record.path.stem]
            masks = [e for e in rows if e != "-1"]
            assert record.labels == ((1.0,) if masks else (0.0,))
            assert len(record.boxes) == len(masks)
            assert record.boxes == tuple(("pneumothorax", *rle_box(e)) for e in masks)
            assert record.box == (record.boxes[0][1:] if masks else None)
        assert sum(r.labels[0] for r in data.records) >= 40
        assert not data.has_patient_ids and any("own patient" in n for n in data.notes)

    def test_image_masks_for_the_segmentation_work(self, siim: Path) -> None:
        masks = image_masks(siim)
        truth = encodings()
        assert masks.keys() == truth.keys()
        for image_id, rows in truth.items():
            assert masks[image_id] == tuple(e for e in rows if e != "-1")

    def test_detected_from_the_folder_and_from_the_file(self, siim: Path) -> None:
        assert read_dataset(siim.parent).kind == "siim"
        assert read_dataset(siim).kind == "siim"

    def test_header_without_the_leading_space(self, tmp_path: Path) -> None:
        text = slice_text(RLE).replace("ImageId, EncodedPixels", "ImageId,EncodedPixels", 1)
        assert read_dataset(make_siim(tmp_path, text, keep=5)).kind == "siim"


class TestSiimErrors:
    def test_a_bad_mask_names_its_row(self, tmp_path: Path) -> None:
        lines = slice_text(RLE).splitlines()
        k = next(i for i, line in enumerate(lines) if i and not line.endswith("-1"))
        lines[k] = lines[k] + " 7"
        with pytest.raises(DataError, match=rf"row {k + 1}: the mask has \d+ numbers"):
            read_siim(make_siim(tmp_path, "\n".join(lines), keep=3))

    def test_minus1_beside_a_mask_of_the_same_image(self, tmp_path: Path) -> None:
        several = next(i for i, rows in encodings().items() if len(rows) > 1)
        text = slice_text(RLE) + f"{several},-1\n"
        with pytest.raises(DataError, match=r"-1 \(no pneumothorax\) for an image that has a mask"):
            read_siim(make_siim(tmp_path, text, keep=3))

    def test_missing_dicoms_are_counted(self, tmp_path: Path) -> None:
        data = read_siim(make_siim(tmp_path, keep=100))
        assert len(data.records) == 100
        assert any(
            f"{len(encodings()) - 100} of {len(encodings())} images" in n for n in data.notes
        )

    def test_unknown_label(self, siim: Path) -> None:
        with pytest.raises(DataError, match="unknown label 'Pneumothorax'"):
            read_siim(siim, ["Pneumothorax"])
