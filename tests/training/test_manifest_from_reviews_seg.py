"""`radassist-train manifest-from-reviews --task segmentation`: reviewed lesions → per-image
masks that the segmentation trainer reads (``training.segdata``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from desktop_app.inference.lesions import MaskGeometry, find_lesions
from desktop_app.phantoms.studies import write_ct_series
from desktop_app.review.lesionreview import SeriesLesions
from desktop_app.review.state import ReviewState
from desktop_app.review.store import ReviewStore
from training.cli import main
from training.commands.manifest_from_reviews import harvest_lesions

SLICES, ROWS = 6, 32


def square(top: int, left: int, size: int) -> np.ndarray:
    region = np.zeros((ROWS, ROWS), dtype=bool)
    region[top : top + size, left : left + size] = True
    return region


@pytest.fixture
def reviewed(tmp_path: Path) -> tuple[Path, Path, ReviewState]:
    """A CT series with three model lesions (L1 accepted and edited, L2 rejected, L3 pending
    at first) and one lesion the reader drew (L4); the review saved in ``reviews/``."""
    folder = tmp_path / "ct"
    write_ct_series(folder, 3, slices=SLICES, rows=ROWS)
    headers = sorted(
        (pydicom.dcmread(p, stop_before_pixels=True) for p in folder.glob("*.dcm")),
        key=lambda ds: float(ds.ImagePositionPatient[2]),
    )
    study, series = str(headers[0].StudyInstanceUID), str(headers[0].SeriesInstanceUID)
    key = f"{series}#1"
    mask = np.zeros((SLICES, ROWS, ROWS), dtype=bool)
    mask[1:3, 4:12, 4:12] = True  # L1
    mask[3, 20:26, 20:26] = True  # L2
    mask[5, 2:4, 28:30] = True  # L3
    geometry = MaskGeometry(pixel_spacing=(1.0, 1.0), slice_spacing=2.5)
    table = find_lesions(mask, geometry, with_labels=True)
    assert table.labels is not None
    state = ReviewState(study, reviewer="Dr Reader")
    state.merge_lesions(
        key,
        SeriesLesions.from_table(
            key,
            series,
            "nodule",
            table,
            table.labels,
            geometry,
            slice_refs=tuple((str(ds.SOPInstanceUID), 0) for ds in headers),
        ),
    )
    state.accept_lesion(key, 1)
    state.paint_lesion(key, 2, square(12, 4, 2), 1)
    state.reject_lesion(key, 2, "fp_artefact")
    state.paint_lesion(key, 4, square(14, 14, 4), None)
    reviews = tmp_path / "reviews"
    ReviewStore(reviews).save(state)
    return folder, reviews, state


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_pending_lesions_keep_the_series_out(reviewed, tmp_path, capsys) -> None:
    folder, reviews, _state = reviewed
    out = tmp_path / "seg.csv"
    argv = ["manifest-from-reviews", str(reviews), "--out", str(out), "--task", "segmentation"]
    assert main([*argv, "--images", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "left out 1: series with lesions still pending" in err
    assert "no series with every lesion decided" in err and not out.exists()


def test_masks_match_the_reviewed_labels(reviewed, tmp_path, capsys) -> None:
    folder, reviews, state = reviewed
    key = next(iter(state.lesion_sets))
    state.reject_lesion(key, 3, "fp_normal_anatomy")
    ReviewStore(reviews).save(state)
    out = tmp_path / "out" / "seg.csv"
    out.parent.mkdir()
    code = main(
        [
            "manifest-from-reviews", str(reviews), "--out", str(out), "--task", "segmentation",
            "--images", str(folder), "--splits",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "TP 1" in capsys.readouterr().out
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "mask", "patient_id", "split", "study_id", "series_id"]
    assert len(rows) == SLICES
    assert {r["split"] for r in rows} <= {"train", "val", "test"}
    assert len({r["split"] for r in rows}) == 1 and len({r["patient_id"] for r in rows}) == 1
    reviewed_labels = state.reviewed_labels(key)
    assert reviewed_labels is not None
    by_sop = {uid: i for i, (uid, _f) in enumerate(state.lesion_sets[key].slice_refs)}
    for row in rows:
        image = pydicom.dcmread(out.parent / row["path"], stop_before_pixels=True)
        index = by_sop[str(image.SOPInstanceUID)]
        png = np.asarray(Image.open(out.parent / row["mask"]))
        assert png.dtype == np.uint8 and png.shape == (ROWS, ROWS)
        np.testing.assert_array_equal(png != 0, reviewed_labels[index] != 0)
        assert set(np.unique(png)) <= {0, 255}
    # rejected lesions are background; the accepted (edited) one and the drawn one are there
    labels = state.lesion_labels(key)
    assert labels is not None
    assert (labels == 2).any() and not (reviewed_labels == 2).any()
    assert (reviewed_labels == 1).sum() == (labels == 1).sum()
    assert (reviewed_labels == 4).sum() == 16
    # the trainer reads it back: one record per image, positive where a lesion is
    from training.segdata import read_segmentation_data

    seg = read_segmentation_data(out, ["nodule"])
    assert len(seg.data.records) == SLICES
    assert sorted(int(r.labels[0]) for r in seg.data.records) == [0, 0, 0, 1, 1, 1]


def test_lesion_slices_only(reviewed) -> None:
    _folder, _reviews, state = reviewed
    key = next(iter(state.lesion_sets))
    state.reject_lesion(key, 3, "fp_normal_anatomy")
    found = harvest_lesions([state], lesion_slices_only=True)
    assert [item.mask.any() for item in found.slices] == [True] * 3  # slices 1, 2 and 4
    assert found.lesions == {"TP": 1, "FP": 2, "FN": 1}


def test_calibrate_counts_lesion_reviews_at_lesion_level(reviewed) -> None:
    from types import SimpleNamespace

    from desktop_app.review.state import ModelRef
    from training.commands.calibrate import lesion_counts

    _folder, reviews, state = reviewed
    state.model = ModelRef("ct-nodule", "1.0", "c" * 64)
    ReviewStore(reviews).save(state)
    assert lesion_counts(reviews, SimpleNamespace(tensor_sha256="c" * 64)) == {
        "TP": 1,
        "FP": 1,
        "FN": 1,
        "pending": 1,
    }
    assert lesion_counts(reviews, SimpleNamespace(tensor_sha256="d" * 64)) is None
