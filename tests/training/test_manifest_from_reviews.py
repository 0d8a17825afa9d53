"""`radassist-train manifest-from-reviews`: verdicts → a manifest that training reads back."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest

from desktop_app.review.store import ReviewStore
from tests.helpers.exports import (
    CT_DIR,
    NODULE_BOX,
    PATIENT_ID,
    chest_study,
    copy_study,
    fid,
    make_result,
    make_review,
)
from training.cli import main
from training.commands.manifest_from_reviews import label_from_verdict
from training.data import read_manifest

BOX = (1.0, 2.0, 3.0, 4.0)
EDITED = (5.0, 6.0, 7.0, 8.0)


@pytest.mark.parametrize(
    ("truth", "positive", "reader_box", "model_boxes", "value", "box", "why"),
    [
        ("present", True, None, False, 1, None, ""),  # the model's box is not the reader's
        ("present", True, None, True, 1, BOX, ""),  # ... unless asked for
        ("present", False, None, True, 1, None, ""),  # a negative call has no box to keep
        ("present", True, EDITED, False, 1, EDITED, ""),  # edited
        ("present", False, EDITED, False, 1, EDITED, ""),  # drawn for a missed finding
        ("absent", True, None, False, 0, None, ""),
        ("absent", False, None, False, 0, None, ""),
        ("uncertain", True, None, False, None, None, "uncertain"),
        ("pending", True, None, False, None, None, "not reviewed"),
        ("pending", False, None, False, None, None, "not reviewed"),
    ],
)
def test_label_from_verdict(
    truth: str,
    positive: bool,
    reader_box: Any,
    model_boxes: bool,
    value: int | None,
    box: Any,
    why: str,
) -> None:
    got = label_from_verdict(truth, positive, reader_box, BOX, False, model_boxes)
    assert got[:2] == (value, box)
    assert why in got[2]


def test_pending_negatives_count_as_0_only_when_asked() -> None:
    assert label_from_verdict("pending", False, None, None, True)[0] == 0
    assert label_from_verdict("pending", True, None, BOX, True)[0] is None
    assert label_from_verdict("uncertain", False, None, None, True)[0] is None


@pytest.fixture
def reviews(tmp_path: Path) -> dict[str, Any]:
    """Two studies of one patient: the chest radiograph (nodule accepted, effusion rejected,
    cardiomegaly pending negative) and the CT (nodule accepted with an edited box on slice 17,
    effusion rejected on slice 3)."""
    chest_files, _chest_result, chest_review = chest_study(tmp_path / "chest")
    ct_files = copy_study(CT_DIR, tmp_path / "ct" / "study")
    ct_result = make_result(
        ct_files,
        {
            "nodule": (0.8, 17, (70.0, 110.0, 15.0, 16.0)),
            "effusion": (0.7, 3, (20.0, 30.0, 40.0, 50.0)),
        },
    )
    ct_review = make_review(ct_result)
    ct_review.accept(fid(ct_result, "nodule"))
    ct_review.edit_box(fid(ct_result, "nodule"), (68, 108, 19, 20))
    ct_review.reject(fid(ct_result, "effusion"), "fp_normal_anatomy")
    store = ReviewStore(tmp_path / "reviews")
    store.save(chest_review)
    store.save(ct_review)
    return {
        "dir": store.root,
        "chest": chest_files[0],
        "ct": ct_files,
        "images": [chest_files[0].parent, ct_files[0].parent],
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_manifest_training_reads_back(
    tmp_path: Path, reviews: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data" / "manifest.csv"
    code = main(
        [
            "manifest-from-reviews",
            str(reviews["dir"]),
            "--out",
            str(out),
            "--images",
            *map(str, reviews["images"]),
        ]
    )
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "wrote 2 image(s) from 2 review(s)" in stdout
    assert "nodule 2 positive / 0 negative, effusion 0 positive / 2 negative" in stdout
    data = read_manifest(out)
    assert data.labels == ("nodule", "effusion")
    by_path = {r.path.resolve(): r for r in data.records}
    chest = by_path[reviews["chest"].resolve()]
    assert chest.labels == (1.0, 0.0) and chest.box is None  # the model's box, left as drawn
    ct17 = by_path[reviews["ct"][17].resolve()]
    assert ct17.labels == (1.0, 0.0) and ct17.box == (68.0, 108.0, 19.0, 20.0)
    # the rejected effusion (slice 3) is absent on every slice, so slice 17 has a row; slice
    # 3 has none: where the nodule is not, nothing says it is absent there
    assert reviews["ct"][3].resolve() not in by_path
    assert "left out 1 image(s): a label column has no usable verdict" in stderr
    rows = _rows(out)
    assert all(not Path(r["path"]).is_absolute() for r in rows)
    assert all(r["path"].startswith("../") for r in rows)  # relative to the CSV's folder
    # one patient: one hashed id; never the real one
    assert len({r["patient_id"] for r in rows}) == 1
    assert rows[0]["patient_id"].startswith("p") and len(rows[0]["patient_id"]) == 17
    assert PATIENT_ID not in out.read_text("utf-8")
    assert [r["box_label"] for r in rows] == ["", "nodule"]  # only boxes the reader gave
    assert "left out 2 finding(s): not reviewed" in stderr  # both cardiomegaly findings


def test_copy_images_makes_a_movable_folder(tmp_path: Path, reviews: dict[str, Any]) -> None:
    out = tmp_path / "data" / "manifest.csv"
    code = main(
        [
            "manifest-from-reviews",
            str(reviews["dir"]),
            "--out",
            str(out),
            "--images",
            *map(str, reviews["images"]),
            "--copy-images",
        ]
    )
    assert code == 0
    moved = shutil.move(str(tmp_path / "data"), str(tmp_path / "elsewhere"))
    data = read_manifest(Path(moved) / "manifest.csv")
    assert len(data.records) == 2
    for record in data.records:
        rel = record.path.relative_to(Path(moved).resolve())
        assert rel.parts[0] == "images" and len(rel.parts) == 4
        assert all(len(part) == 16 for part in rel.parts[1:3])


def test_pending_negatives_and_label_choice(
    tmp_path: Path, reviews: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.csv"
    args = [
        "manifest-from-reviews",
        str(reviews["dir"]),
        "--out",
        str(out),
        "--images",
        *map(str, reviews["images"]),
    ]
    assert main([*args, "--labels", "effusion,cardiomegaly"]) == 1  # cardiomegaly: pending
    assert "no image has a usable row; nothing written" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "--labels", "effusion,cardiomegaly", "--pending-negatives-as-0"]) == 0
    rows = _rows(out)
    # the radiograph, and the CT slices of its three findings (all absent series-wide)
    assert [(r["effusion"], r["cardiomegaly"]) for r in rows] == [("0", "0")] * 4
    assert main([*args, "--labels", "pneumothorax"]) == 2
    assert "no review has label 'pneumothorax'" in capsys.readouterr().err


def test_images_found_in_the_local_store_by_default(
    tmp_path: Path, reviews: dict[str, Any]
) -> None:
    import pydicom

    from desktop_app.pacs.store import LocalStore

    store = LocalStore()
    for path in [reviews["chest"], *reviews["ct"]]:
        store.put_dataset(pydicom.dcmread(path))
    out = tmp_path / "m.csv"
    assert main(["manifest-from-reviews", str(reviews["dir"]), "--out", str(out)]) == 0
    assert len(read_manifest(out).records) == 2


def test_missing_images_are_named_and_the_rest_written(
    tmp_path: Path, reviews: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.csv"
    code = main(
        [
            "manifest-from-reviews",
            str(reviews["dir"]),
            "--out",
            str(out),
            "--images",
            str(reviews["images"][0]),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "1 reviewed image(s) not found (pass their folders with --images)" in err
    assert len(read_manifest(out).records) == 1


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        ("no_dir", 2, "no such folder"),
        ("empty", 1, "holds no readable review file"),
        ("pending_only", 1, "no accepted or rejected finding usable as a label"),
    ],
)
def test_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, code: int, message: str
) -> None:
    folder = tmp_path / "reviews"
    if setup != "no_dir":
        folder.mkdir()
    if setup == "pending_only":
        _, result, _ = chest_study(tmp_path)
        ReviewStore(folder).save(make_review(result))
    got = main(["manifest-from-reviews", str(folder), "--out", str(tmp_path / "m.csv")])
    err = capsys.readouterr().err
    assert got == code and message in err and "Traceback" not in err
    assert not (tmp_path / "m.csv").exists()


def test_missed_finding_and_uncertain_label(tmp_path: Path) -> None:
    """A finding the model missed is written as 1 with the reader's box on the image it was
    drawn on; an uncertain label leaves its image out; the model's box only on request."""
    files, result, review = chest_study(tmp_path / "chest")
    missed = (100.0, 120.0, 80.0, 60.0)
    review.add_missed(
        fid(result, "cardiomegaly").rsplit(":", 1)[0],
        "cardiomegaly",
        missed,
        slice_index=0,
        sop_instance_uid=review.find(fid(result, "cardiomegaly")).sop_instance_uid,
    )
    assert review.agreement(review.find(fid(result, "cardiomegaly"))) == "FN"
    store = ReviewStore(tmp_path / "reviews")
    store.save(review)
    out = tmp_path / "m.csv"
    args = ["manifest-from-reviews", str(store.root), "--out", str(out)]
    args += ["--images", str(files[0].parent)]
    assert main([*args, "--labels", "nodule,cardiomegaly"]) == 0
    (row,) = _rows(out)
    assert (row["nodule"], row["cardiomegaly"], row["box_label"]) == ("1", "1", "cardiomegaly")
    assert tuple(float(row[k]) for k in ("x", "y", "width", "height")) == missed
    assert main([*args, "--labels", "nodule,cardiomegaly", "--model-boxes"]) == 0
    (row,) = _rows(out)
    assert row["box_label"] == "nodule"
    assert tuple(float(row[k]) for k in ("x", "y", "width", "height")) == NODULE_BOX

    review.set_truth(fid(result, "cardiomegaly"), "uncertain")
    store.save(review)
    assert main([*args, "--labels", "nodule,cardiomegaly"]) == 1  # nothing usable
