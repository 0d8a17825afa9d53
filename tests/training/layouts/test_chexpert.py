"""CheXpert read as published, against a real slice of train.csv (1 / 0 / -1 / blank, lateral
views, several studies per patient), with tiny JPEGs at the paths the CSV names."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest

from desktop_app.infra.errors import ConfigError, DataError
from training.data import read_dataset, split_dataset
from training.layouts.chexpert import CHEXPERT_LABELS, read_chexpert
from training.layouts.common import LayoutOptions

from .public import slice_text, write_jpeg, write_slice

TRAIN = "chexpert_train.csv.gz"


def table(text: str | None = None) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text or slice_text(TRAIN))))
    return rows[0], rows[1:]


def make_chexpert(root: Path, text: str | None = None, *, valid: bool = False) -> Path:
    """root/CheXpert-v1.0-small/{train.csv, train/patient.../study.../view..._frontal.jpg}."""
    release = root / "CheXpert-v1.0-small"
    csv_path = write_slice(TRAIN, release / "train.csv", edit=text)
    header, rows = table(text)
    for i, row in enumerate(rows):
        write_jpeg(root / row[0], seed=i)
    if valid:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for i, row in enumerate(rows[:40]):
            path = row[0].replace("/train/patient000", "/valid/patient640")
            writer.writerow([path, *[v.replace("-1.0", "1.0") for v in row[1:]]])
            write_jpeg(root / path, seed=1000 + i)
        (release / "valid.csv").write_text(out.getvalue())
    return csv_path


@pytest.fixture(scope="module")
def chexpert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_chexpert(tmp_path_factory.mktemp("chexpert"))


def frontal_rows() -> list[list[str]]:
    header, rows = table()
    col = header.index("Frontal/Lateral")
    return [r for r in rows if r[col] == "Frontal"]


class TestReadChexpert:
    def test_default_is_frontal_only_uncertain_as_positive_blank_as_negative(
        self, chexpert: Path
    ) -> None:
        data = read_chexpert(chexpert)
        header, _ = table()
        rows = frontal_rows()
        assert data.kind == "chexpert" and data.labels == CHEXPERT_LABELS
        assert len(data.records) == len(rows) < 300
        for record, row in zip(data.records, rows, strict=True):
            assert record.path.as_posix().endswith(row[0])
            assert record.patient == row[0].split("/")[2]
            for label, value in zip(data.labels, record.labels, strict=True):
                raw = row[header.index(label)]
                assert value == {"1.0": 1.0, "-1.0": 1.0, "0.0": 0.0, "": 0.0}[raw]
        assert len({r.patient for r in data.records}) < len(data.records)  # several studies

    def test_u_zeros_reads_uncertain_as_negative(self, chexpert: Path) -> None:
        header, _ = table()
        data = read_chexpert(chexpert, options=LayoutOptions(uncertainty="u-zeros"))
        col = header.index("Edema")
        j = data.labels.index("Edema")
        for record, row in zip(data.records, frontal_rows(), strict=True):
            assert record.labels[j] == (1.0 if row[col] == "1.0" else 0.0)

    def test_ignore_makes_the_uncertain_label_unknown_and_keeps_the_image(
        self, chexpert: Path
    ) -> None:
        header, _ = table()
        col, other = header.index("Edema"), header.index("Cardiomegaly")
        rows = frontal_rows()
        uncertain = sum(r[col] == "-1.0" for r in rows)
        assert uncertain > 0
        data = read_chexpert(
            chexpert, ["Edema", "Cardiomegaly"], LayoutOptions(uncertainty="ignore")
        )
        assert len(data.records) == len(rows)  # U-Ignore: per label, never whole images
        y = data.label_matrix()
        assert int(np.isnan(y[:, 0]).sum()) == uncertain
        for record, row in zip(data.records, rows, strict=True):
            assert math.isnan(record.labels[0]) == (row[col] == "-1.0")
            if row[other] != "-1.0":  # the image's other label is read as ever
                assert record.labels[1] == (1.0 if row[other] == "1.0" else 0.0)
        either = sum("-1.0" in (r[col], r[other]) for r in rows)
        assert any(f"{either} image(s)" in n and "ignore" in n for n in data.notes)

    @pytest.mark.parametrize(("views", "wanted"), [("lateral", {"Lateral"}), ("all", None)])
    def test_view_filter(self, chexpert: Path, views: str, wanted: set[str] | None) -> None:
        header, rows = table()
        col = header.index("Frontal/Lateral")
        expected = [r for r in rows if wanted is None or r[col] in wanted]
        data = read_chexpert(chexpert, options=LayoutOptions(views=views))
        assert len(data.records) == len(expected)

    def test_valid_csv_is_the_test_split(self, tmp_path: Path) -> None:
        make_chexpert(tmp_path, valid=True)
        data = read_dataset(tmp_path)  # the release folder is one level down
        assert data.kind == "chexpert" and data.has_split
        splits = split_dataset(data, seed=1)
        assert {data.records[i].path.parts[-4] for i in splits.test} == {"valid"}
        assert {data.records[i].path.parts[-4] for i in splits.val} == {"train"}
        assert "val carved from train" in splits.method

    def test_valid_csv_alone_has_no_split(self, tmp_path: Path) -> None:
        make_chexpert(tmp_path, valid=True)
        data = read_dataset(tmp_path / "CheXpert-v1.0-small" / "valid.csv")
        assert data.kind == "chexpert" and not data.has_split
        assert all(r.path.parts[-4] == "valid" for r in data.records)

    def test_a_csv_moved_up_beside_the_release_folder(self, tmp_path: Path) -> None:
        make_chexpert(tmp_path)
        moved = tmp_path / "train.csv"
        (tmp_path / "CheXpert-v1.0-small" / "train.csv").rename(moved)
        assert len(read_dataset(moved).records) == len(frontal_rows())

    def test_a_renamed_release_folder(self, tmp_path: Path) -> None:
        make_chexpert(tmp_path)
        (tmp_path / "CheXpert-v1.0-small").rename(tmp_path / "chexpert")
        data = read_chexpert(tmp_path / "chexpert" / "train.csv")
        assert len(data.records) == len(frontal_rows())


class TestChexpertErrors:
    def test_a_value_other_than_1_0_minus1_blank(self, tmp_path: Path) -> None:
        lines = slice_text(TRAIN).splitlines()
        lines[3] = lines[3].replace(",1.0,", ",2,", 1)
        with pytest.raises(DataError, match=r"row 4: '.+' is '2', not 1, 0, -1 or blank"):
            read_chexpert(make_chexpert(tmp_path, "\n".join(lines)))

    def test_a_path_without_patient_folder(self, tmp_path: Path) -> None:
        lines = slice_text(TRAIN).splitlines()
        lines[1] = lines[1].replace("patient00001", "someone", 1)
        with pytest.raises(DataError, match="row 2: Path has no patientNNNNN folder"):
            read_chexpert(make_chexpert(tmp_path, "\n".join(lines)))

    def test_unknown_policy_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match="uncertainty 'u-maybe' is not one of"):
            LayoutOptions(uncertainty="u-maybe")

    def test_missing_images_error_names_the_row(self, tmp_path: Path) -> None:
        csv_path = make_chexpert(tmp_path)
        _, rows = table()
        (tmp_path / rows[0][0]).unlink()
        with pytest.raises(DataError, match=r"row 2: its image is not below"):
            read_chexpert(csv_path, options=LayoutOptions(missing_images="error"))
        assert len(read_chexpert(csv_path).records) == len(frontal_rows()) - 1
