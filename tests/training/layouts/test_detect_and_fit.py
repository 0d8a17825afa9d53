"""``read_dataset`` tells each public layout from its folder or its labels file, and a tiny
``fit`` trains on one (NIH ChestX-ray14 as published, 32 images) and writes a model file."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from desktop_app.infra.errors import DataError
from desktop_app.model.modelfile import read_manifest
from tests.helpers.tinydata import tiny_config
from training.data import read_dataset, resolve_data_path
from training.pipeline import run_fit

from .public import slice_text, write_dicom, write_jpeg, write_png, write_slice


def _nih(root: Path) -> Path:
    path = write_slice("nih_Data_Entry_2017_v2020.csv.gz", root / "Data_Entry_2017.csv")
    first = slice_text("nih_Data_Entry_2017_v2020.csv.gz").splitlines()[1].split(",")[0]
    write_png(root / "images" / first)
    return path


def _chexpert(root: Path) -> Path:
    path = write_slice("chexpert_train.csv.gz", root / "CheXpert-v1.0-small" / "train.csv")
    first = slice_text("chexpert_train.csv.gz").splitlines()[1].split(",")[0]
    write_jpeg(root / first)
    return path


def _siim(root: Path) -> Path:
    path = write_slice("siim_train-rle.csv.gz", root / "train-rle.csv")
    first = slice_text("siim_train-rle.csv.gz").splitlines()[1].split(",")[0]
    write_dicom(root / "dicom-images-train" / "a" / "b" / f"{first}.dcm")
    return path


def _vindr(root: Path) -> Path:
    path = write_slice("vinbigdata_train.csv.gz", root / "train.csv")
    first = slice_text("vinbigdata_train.csv.gz").splitlines()[1].split(",")[0]
    write_dicom(root / "train" / f"{first}.dicom")
    return path


def _rsna(root: Path) -> Path:
    path = write_slice("rsna_stage_2_train_labels.csv.gz", root / "stage_2_train_labels.csv")
    for line in slice_text("rsna_stage_2_train_labels.csv.gz").splitlines()[1:]:
        write_dicom(root / "stage_2_train_images" / f"{line.split(',')[0]}.dcm")
    return path


LAYOUTS = [
    ("nih", _nih),
    ("chexpert", _chexpert),
    ("siim", _siim),
    ("vindr", _vindr),
    ("rsna", _rsna),
]


@pytest.mark.parametrize(("kind", "make"), LAYOUTS)
def test_each_layout_is_detected_from_its_folder_and_its_file(tmp_path: Path, kind, make) -> None:  # type: ignore[no-untyped-def]
    labels_file = make(tmp_path)
    assert resolve_data_path(tmp_path) == (labels_file, kind)
    assert resolve_data_path(labels_file) == (labels_file, kind)
    data = read_dataset(tmp_path)
    assert data.kind == kind and data.records
    if kind != "rsna":
        assert any("left out" in n for n in data.notes)


def test_a_gzipped_labels_file_is_read_as_it_is(tmp_path: Path) -> None:
    gz = tmp_path / "Data_Entry_2017_v2020.csv.gz"
    gz.write_bytes(
        (
            Path(__file__).parents[2]
            / "fixtures"
            / "public_labels"
            / "nih_Data_Entry_2017_v2020.csv.gz"
        ).read_bytes()
    )
    write_png(
        tmp_path
        / "images"
        / slice_text(gz.name.replace("Data", "nih_Data", 1)).splitlines()[1].split(",")[0]
    )
    assert resolve_data_path(tmp_path) == (gz, "nih")
    assert len(read_dataset(tmp_path).records) == 1


def test_the_real_rsna_slice_still_reads(tmp_path: Path) -> None:
    data = read_dataset(_rsna(tmp_path))
    text = slice_text("rsna_stage_2_train_labels.csv.gz").splitlines()[1:]
    assert len(data.records) == len({line.split(",")[0] for line in text})
    boxed = Counter(line.split(",")[0] for line in text if line.endswith(",1"))
    for record in data.records:
        assert len(record.boxes) == boxed.get(record.path.stem, 0)
        assert record.box == (record.boxes[0][1:] if record.boxes else None)


def test_an_unknown_folder_lists_what_it_looks_for(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"public labels file .*Data_Entry_2017\*\.csv"):
        read_dataset(tmp_path)


@pytest.mark.slow  # a tiny two-epoch training run
def test_fit_trains_on_nih_as_published(tmp_path: Path) -> None:
    root = tmp_path / "nih"
    write_slice("nih_Data_Entry_2017_v2020.csv.gz", root / "Data_Entry_2017_v2020.csv")
    write_slice("nih_BBox_List_2017.csv.gz", root / "BBox_List_2017.csv")
    rows = list(csv.reader(io.StringIO(slice_text("nih_Data_Entry_2017_v2020.csv.gz"))))[1:]
    label = Counter(f for r in rows for f in r[1].split("|")).most_common(2)[1][0]
    positives = [r for r in rows if label in r[1].split("|")][:14]
    negatives = [r for r in rows if label not in r[1].split("|")][:18]
    for i, row in enumerate(positives + negatives):
        write_png(root / f"images_{1 + i % 2:03d}" / "images" / row[0], seed=i, size=64)
    config = tiny_config(root, data={"labels": [label]})
    outcome = run_fit(config, tmp_path / "out")
    model = tmp_path / "out" / "model.safetensors"
    assert model.is_file() and outcome is not None
    manifest = read_manifest(model)
    assert list(manifest.labels) == [label]
