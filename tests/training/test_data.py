"""training.data: manifest and RSNA reading, one-line errors, per-patient splits, k-fold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from desktop_app.infra.errors import DataError
from training.data import (
    kfold_by_patient,
    read_dataset,
    read_manifest,
    single_class_labels,
    split_dataset,
)


def _write(folder: Path, header: str, rows: list[str], images: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "img").mkdir(exist_ok=True)
    lines = [header, *rows]
    if images:
        for row in rows:
            path = row.split(",")[0]
            if path:
                (folder / path).parent.mkdir(parents=True, exist_ok=True)
                (folder / path).write_bytes(b"\x89PNG\r\n\x1a\n")
    csv = folder / "manifest.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv


def _population(
    folder: Path, patients: int = 60, per_patient: int = 2, split: bool = False
) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for p in range(patients):
        a, b = int(rng.random() < 0.3), int(rng.random() < 0.5)
        for k in range(per_patient):
            s = f",{('train', 'val', 'test')[p % 3]}" if split else ""
            rows.append(f"img/p{p}_{k}.png,{a},{b},P{p}{s}")
    header = "path,alpha,beta,patient_id" + (",split" if split else "")
    return _write(folder, header, rows)


class TestManifest:
    def test_labels_are_the_non_metadata_columns(self, tmp_path: Path) -> None:
        csv = _write(
            tmp_path,
            "path,pneumothorax,patient_id,split,x,y,width,height,box_label",
            ["img/a.png,1,P1,train,10,20,30,40,pneumothorax", "img/b.png,0,P2,test,,,,,"],
        )
        data = read_manifest(csv)
        assert data.labels == ("pneumothorax",)
        assert [r.labels for r in data.records] == [(1.0,), (0.0,)]
        assert data.records[0].box == (10.0, 20.0, 30.0, 40.0)
        assert data.records[1].box is None
        assert data.records[0].path == tmp_path / "img" / "a.png"
        assert [r.split for r in data.records] == ["train", "test"]
        assert len(data.sha256) == 64

    def test_columns_without_any_binary_value_are_not_labels(self, tmp_path: Path) -> None:
        csv = _write(
            tmp_path,
            "path,consolidation,photometric,kvp",
            ["img/a.png,1,MONOCHROME1,110", "img/b.png,0,MONOCHROME2,90"],
        )
        data = read_manifest(csv)
        assert data.labels == ("consolidation",)
        assert "'photometric', 'kvp' hold no 0/1 values and are not used as labels" in data.notes[0]

    def test_labels_option_picks_columns_and_ignores_others(self, tmp_path: Path) -> None:
        csv = _write(tmp_path, "path,a,b,site", ["img/a.png,1,0,north"])
        assert read_manifest(csv, labels=["a"]).labels == ("a",)

    def test_folder_and_bom_are_accepted(self, tmp_path: Path) -> None:
        csv = _write(tmp_path, "path,a", ["img/a.png,1", "img/b.png,0"])
        csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
        assert read_dataset(tmp_path).labels == ("a",)

    @pytest.mark.parametrize(
        ("header", "rows", "message"),
        [
            ("path,a", ["img/a.png,1", "img/b.png,2"], r"manifest\.csv: row 3: label 'a' is '2', not 0 or 1 \(write 0 or 1 for every label, or pick the label columns with --labels\)"),
            ("path,a", ["img/a.png,1", "img/b.png,"], r"row 3: label 'a' has an empty value"),
            ("path,a", ["img/a.png,1", ",0"], r"row 3: path is empty"),
            ("path,a,site", ["img/a.png,1,1", "img/b.png,0,north"], r"row 3: label 'site' is 'north', not 0 or 1"),
            ("path,a,split", ["img/a.png,1,dev2"], r"row 2: split 'dev2' is not train, val or test \(write train, val or test in every row, or drop the split column\)"),
            ("path,a,x,y,width,height", ["img/a.png,1,1,2,three,4"], r"row 2: box column 'width' is 'three', not a number"),
            ("path,a,patient_id", ["img/a.png,1,"], r"row 2: patient_id is empty"),
            ("file,a", ["img/a.png,1"], r"row 1: there is no 'path' column \(name the image column 'path'\)"),
            ("path,a,a", ["img/a.png,1,1"], r"row 1: column 'a' appears twice"),
            ("path,a", ["img/a.png,1,1"], r"row 2: has 3 fields, the header has 2"),
            ("path,patient_id", ["img/a.png,P1"], r"row 1: no label columns"),
            ("path,view", ["img/a.png,PA"], r"row 1: no label columns \(no column besides the metadata holds 0/1 values\)"),
            ("path,a", [], r"manifest has a header but no rows"),
        ],
    )  # fmt: skip
    def test_bad_rows_give_one_line_naming_the_row(
        self, tmp_path: Path, header: str, rows: list[str], message: str
    ) -> None:
        csv = _write(tmp_path, header, rows)
        with pytest.raises(DataError, match=message) as info:
            read_manifest(csv)
        assert "\n" not in str(info.value)

    def test_missing_image_names_the_row_and_the_fix(self, tmp_path: Path) -> None:
        csv = _write(tmp_path, "path,a", ["img/a.png,1"], images=False)
        with pytest.raises(
            DataError,
            match=r"row 2: image img/a\.png not found \(paths are relative to the CSV's folder",
        ):
            read_manifest(csv)

    def test_unknown_label_lists_the_columns(self, tmp_path: Path) -> None:
        csv = _write(tmp_path, "path,a,b,patient_id", ["img/a.png,1,0,P1"])
        with pytest.raises(
            DataError, match=r"unknown label 'c' \(the manifest's label columns are: a, b\)"
        ):
            read_manifest(csv, labels=["c"])

    def test_no_patient_id_column_is_noted(self, tmp_path: Path) -> None:
        csv = _write(tmp_path, "path,a", ["img/a.png,1", "img/b.png,0"])
        data = read_manifest(csv)
        assert (
            not data.has_patient_ids
            and "every image is treated as its own patient" in data.notes[0]
        )
        assert len({r.patient for r in data.records}) == 2

    def test_missing_manifest(self, tmp_path: Path) -> None:
        with pytest.raises(
            DataError, match=r"nope\.csv: manifest not found \(check the --data path\)"
        ):
            read_dataset(tmp_path / "nope.csv")


class TestSplits:
    def _patients_of(self, data, idx):  # type: ignore[no-untyped-def]
        return {data.records[i].patient for i in idx}

    def test_seeded_split_is_per_patient_and_near_70_15_15(self, tmp_path: Path) -> None:
        data = read_manifest(_population(tmp_path))
        s = split_dataset(data, seed=3)
        tr, va, te = (self._patients_of(data, x) for x in (s.train, s.val, s.test))
        assert not (tr & va or tr & te or va & te)
        assert len(s.train) + len(s.val) + len(s.test) == len(data.records)
        assert (len(tr), len(va), len(te)) == (42, 9, 9)
        assert "seeded per-patient split 70%/15%/15%" in s.method

    def test_split_is_stratified_by_label(self, tmp_path: Path) -> None:
        data = read_manifest(_population(tmp_path, patients=200, per_patient=1))
        s = split_dataset(data, seed=0)
        y = data.label_matrix()
        overall = y.mean(axis=0)
        for idx in (s.train, s.val, s.test):
            assert np.abs(y[idx].mean(axis=0) - overall).max() < 0.05

    def test_seed_decides_the_split(self, tmp_path: Path) -> None:
        data = read_manifest(_population(tmp_path))
        assert split_dataset(data, seed=1) == split_dataset(data, seed=1)
        assert split_dataset(data, seed=1).val != split_dataset(data, seed=2).val

    def test_manifest_splits_are_kept(self, tmp_path: Path) -> None:
        data = read_manifest(_population(tmp_path, split=True))
        s = split_dataset(data)
        assert {data.records[i].split for i in s.val} == {"val"}
        assert s.method == "manifest split column"

    def test_val_is_carved_from_train_by_patient(self, tmp_path: Path) -> None:
        rows = [
            f"img/p{p}_{k}.png,{p % 2},P{p},{'test' if p % 5 == 0 else 'train'}"
            for p in range(40)
            for k in range(2)
        ]
        data = read_manifest(_write(tmp_path, "path,a,patient_id,split", rows))
        s = split_dataset(data, seed=0)
        val_p = self._patients_of(data, s.val)
        assert val_p and not val_p & self._patients_of(data, s.train)
        assert {data.records[i].split for i in s.val} == {"train"}
        assert self._patients_of(data, s.test) == {f"P{p}" for p in range(0, 40, 5)}
        assert "val carved from train by patient" in s.method
        assert len(val_p) == 6  # 0.15 / 0.85 of 32 train patients

    def test_patient_in_two_splits_is_refused(self, tmp_path: Path) -> None:
        csv = _write(
            tmp_path,
            "path,a,patient_id,split",
            ["img/a.png,1,P1,train", "img/b.png,0,P2,val", "img/c.png,1,P1,test"],
        )
        with pytest.raises(
            DataError,
            match=r"rows 2 and 4: one patient is in both train and test \(put all of a patient's images in one split\)",
        ):
            split_dataset(read_manifest(csv))

    def test_empty_splits(self, tmp_path: Path) -> None:
        csv = _write(tmp_path, "path,a,split", ["img/a.png,1,test", "img/b.png,0,val"])
        with pytest.raises(
            DataError, match=r"the train split is empty \(mark some rows split=train\)"
        ):
            split_dataset(read_manifest(csv))
        csv = _write(tmp_path / "one", "path,a", ["img/a.png,1"])
        with pytest.raises(DataError, match=r"the val split is empty"):
            split_dataset(read_manifest(csv))

    def test_single_class_labels(self, tmp_path: Path) -> None:
        csv = _write(tmp_path, "path,a,b", ["img/a.png,1,0", "img/b.png,0,0"])
        assert single_class_labels(read_manifest(csv), [0, 1]) == ["b"]


class TestKFold:
    @pytest.mark.parametrize("k", [2, 5])
    def test_folds_partition_patients(self, tmp_path: Path, k: int) -> None:
        data = read_manifest(_population(tmp_path))
        pool = list(range(len(data.records)))
        folds = kfold_by_patient(data, pool, k, seed=0)
        assert len(folds) == k
        held = [i for _, h in folds for i in h]
        assert sorted(held) == pool
        for train, h in folds:
            assert sorted(train + h) == pool
            assert not {data.records[i].patient for i in train} & {
                data.records[i].patient for i in h
            }
        sizes = Counter(len({data.records[i].patient for i in h}) for _, h in folds)
        assert max(sizes) - min(sizes) <= 1

    def test_too_many_folds(self, tmp_path: Path) -> None:
        data = read_manifest(_population(tmp_path, patients=3))
        with pytest.raises(
            DataError, match=r"5 folds need at least 5 patients in train\+val, there are 3"
        ):
            kfold_by_patient(data, range(len(data.records)), 5)


class TestRsna:
    def _layout(self, root: Path, folder: str = "stage_2_train_images") -> Path:
        (root / folder).mkdir(parents=True)
        csv = root / "stage_2_train_labels.csv"
        rows = ["patientId,x,y,width,height,Target"]
        for k in range(12):
            pid = f"0a{k:02d}-uuid"
            (root / folder / f"{pid}.dcm").write_bytes(b"DICM")
            if k % 3 == 0:  # two boxes: two rows
                rows += [f"{pid},10,20,30,40,1", f"{pid},50,60,10,10,1"]
            else:
                rows.append(f"{pid},,,,,0")
        csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return csv

    @pytest.mark.parametrize("folder", ["stage_2_train_images", "my_dicoms"])
    def test_layout_is_read_as_it_is(self, tmp_path: Path, folder: str) -> None:
        self._layout(tmp_path, folder)
        for target in (tmp_path, tmp_path / "stage_2_train_labels.csv"):
            data = read_dataset(target)
            assert data.kind == "rsna" and data.labels == ("pneumonia",)
            assert len(data.records) == 12  # one image per patient, not per box row
            positives = [r for r in data.records if r.labels == (1.0,)]
            assert len(positives) == 4
            assert positives[0].box == (10.0, 20.0, 30.0, 40.0)
            assert positives[0].path.parent.name == folder
        s = split_dataset(read_dataset(tmp_path), seed=0)
        assert len(s.train) + len(s.val) + len(s.test) == 12

    def test_missing_image_folder(self, tmp_path: Path) -> None:
        self._layout(tmp_path)
        for f in (tmp_path / "stage_2_train_images").iterdir():
            f.unlink()
        with pytest.raises(
            DataError,
            match=r"no folder beside the labels CSV holds the first patient's <patientId>\.dcm",
        ):
            read_dataset(tmp_path)

    def test_unknown_label_for_rsna(self, tmp_path: Path) -> None:
        self._layout(tmp_path)
        with pytest.raises(
            DataError, match=r"unknown label 'nodule' \(the RSNA layout has one label: pneumonia\)"
        ):
            read_dataset(tmp_path, labels=["nodule"])
