"""MIMIC-CXR-JPG read as published: the hand-made label files of
tests/fixtures/public_labels/mimic (the release's column layout, synthetic ids) with tiny JPEGs
at files/pNN/pSUBJECT/sSTUDY/<dicom_id>.jpg."""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from desktop_app.infra.errors import ConfigError, DataError
from training.data import read_dataset, resolve_data_path, split_dataset
from training.layouts.chexpert import CHEXPERT_LABELS
from training.layouts.common import LayoutOptions
from training.layouts.mimic import read_mimic, view_of

from .public import SLICES, write_jpeg

FIXTURE = SLICES / "mimic"
FILES = ("metadata", "chexpert", "negbio", "split")
VALUE = {"1.0": 1.0, "0.0": 0.0, "": 0.0}


def name(kind: str, gz: bool = False) -> str:
    return f"mimic-cxr-2.0.0-{kind}.csv" + (".gz" if gz else "")


def table(kind: str, text: str | None = None) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text or (FIXTURE / name(kind)).read_text())))
    return rows[0], rows[1:]


def image_path(root: Path, row: list[str]) -> Path:
    dicom, subject, study = row[:3]
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"


def make_mimic(
    root: Path,
    *,
    gz: bool = False,
    leave_out: tuple[str, ...] = (),
    edit: dict[str, str] | None = None,
) -> Path:
    """The release's folder: the four label files (optionally gzip'd, edited or left out) and a
    JPEG for every image of the metadata."""
    root.mkdir(parents=True, exist_ok=True)
    for kind in FILES:
        if kind in leave_out:
            continue
        text = (edit or {}).get(kind, (FIXTURE / name(kind)).read_text())
        data = text.encode("utf-8")
        (root / name(kind, gz)).write_bytes(gzip.compress(data, mtime=0) if gz else data)
    for i, row in enumerate(table("metadata")[1]):
        write_jpeg(image_path(root, row), seed=i)
    return root


@pytest.fixture(scope="module")
def mimic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mimic(tmp_path_factory.mktemp("mimic") / "2.0.0")


def study_values(kind: str = "chexpert") -> dict[str, dict[str, str]]:
    header, rows = table(kind)
    return {row[1]: dict(zip(header, row, strict=True)) for row in rows}


def expected_rows(views: set[str | None]) -> list[list[str]]:
    """Metadata rows of the given views whose study has labels."""
    header, rows = table("metadata")
    position = header.index("ViewPosition")
    code = header.index("ViewCodeSequence_CodeMeaning")
    labelled = study_values()
    return [r for r in rows if view_of(r[position], r[code]) in views and r[2] in labelled]


class TestReadMimic:
    def test_default_is_chexpert_labeler_frontal_uncertain_as_positive_per_study(
        self, mimic: Path
    ) -> None:
        data = read_dataset(mimic)
        assert data.kind == "mimic" and data.labels == CHEXPERT_LABELS
        assert data.has_patient_ids and data.has_split
        rows = expected_rows({"frontal"})
        assert len(data.records) == len(rows) == 12
        studies = study_values()
        for record, row in zip(data.records, rows, strict=True):
            assert record.path == image_path(mimic, row)
            assert record.patient == row[1]
            values = studies[row[2]]
            for label, value in zip(data.labels, record.labels, strict=True):
                assert value == {**VALUE, "-1.0": 1.0}[values[label]]
        # a study's labels apply to each of its images
        two = [r for r in data.records if r.path.parent.name == "s50000222"]
        assert len(two) == 2 and two[0].labels == two[1].labels
        assert any("3 image(s)" in n and "no view position" in n for n in data.notes)
        assert any(
            "1 image(s)" in n and "without a row in the labels file" in n for n in data.notes
        )
        assert any("mimic-cxr-2.0.0-chexpert.csv (the chexpert labeler)" in n for n in data.notes)

    def test_u_zeros_reads_uncertain_as_negative(self, mimic: Path) -> None:
        data = read_mimic(mimic / name("metadata"), options=LayoutOptions(uncertainty="u-zeros"))
        studies = study_values()
        for record in data.records:
            values = studies[record.path.parent.name[1:]]
            for label, value in zip(data.labels, record.labels, strict=True):
                assert value == {**VALUE, "-1.0": 0.0}[values[label]]

    def test_ignore_makes_the_uncertain_label_of_a_study_unknown_for_its_images(
        self, mimic: Path
    ) -> None:
        studies = study_values()
        rows = expected_rows({"frontal"})
        uncertain = [r for r in rows if studies[r[2]]["Edema"] == "-1.0"]
        assert len(uncertain) == 3
        data = read_mimic(mimic / name("metadata"), ["Edema"], LayoutOptions(uncertainty="ignore"))
        assert data.labels == ("Edema",)
        assert len(data.records) == len(rows)  # U-Ignore keeps the images
        assert int(np.isnan(data.label_matrix()[:, 0]).sum()) == len(uncertain)
        assert any("3 image(s)" in n and "ignore" in n for n in data.notes)

    @pytest.mark.parametrize(
        ("views", "wanted", "count"),
        [("lateral", {"lateral"}, 6), ("all", {"frontal", "lateral", None}, 21)],
    )
    def test_view_filter(
        self, mimic: Path, views: str, wanted: set[str | None], count: int
    ) -> None:
        data = read_mimic(mimic / name("metadata"), options=LayoutOptions(views=views))
        rows = expected_rows(wanted)
        assert len(data.records) == len(rows) == count
        assert [r.path for r in data.records] == [image_path(mimic, row) for row in rows]

    def test_the_split_file_gives_train_val_test_by_subject(self, mimic: Path) -> None:
        data = read_mimic(mimic / name("metadata"))
        _, rows = table("split")
        split_of = {row[0]: row[3] for row in rows}
        for record in data.records:
            published = split_of[record.path.stem]
            assert record.split == {"validate": "val"}.get(published, published)
        splits = split_dataset(data, seed=3)
        assert splits.method == "manifest split column"  # val is the published validate
        patients = {
            s: {data.records[i].patient for i in getattr(splits, s)} for s in ("val", "test")
        }
        assert patients == {"val": {"10000505", "10000606"}, "test": {"10000707", "11000808"}}
        assert any("validate is val" in n for n in data.notes)

    def test_without_a_split_file_a_seeded_split_by_subject(self, tmp_path: Path) -> None:
        data = read_dataset(make_mimic(tmp_path, leave_out=("split",)))
        assert not data.has_split and all(r.split is None for r in data.records)
        assert any("seeded split by subject_id" in n for n in data.notes)
        splits = split_dataset(data, seed=1)
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            pa = {data.records[i].patient for i in getattr(splits, a)}
            pb = {data.records[i].patient for i in getattr(splits, b)}
            assert not pa & pb

    def test_the_negbio_labeler_on_request(self, mimic: Path) -> None:
        negbio = study_values("negbio")
        data = read_mimic(
            mimic / name("metadata"),
            options=LayoutOptions(labeler="negbio", uncertainty="u-zeros"),
        )
        edema = data.labels.index("Edema")
        record = next(r for r in data.records if r.path.parent.name == "s50000112")
        assert negbio["50000112"]["Edema"] == "1.0" and record.labels[edema] == 1.0
        assert any("(the negbio labeler)" in n for n in data.notes)

    def test_naming_a_labels_file_reads_that_labeler(self, mimic: Path) -> None:
        by_name = read_dataset(mimic / name("negbio"))
        by_option = read_mimic(mimic / name("metadata"), options=LayoutOptions(labeler="negbio"))
        assert [r.labels for r in by_name.records] == [r.labels for r in by_option.records]
        assert by_name.records != read_dataset(mimic).records

    def test_a_partial_download_reads_what_is_there(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path)
        shutil.rmtree(root / "files" / "p11")  # one of the pNN folders is not downloaded
        data = read_mimic(root / name("metadata"))
        assert len(data.records) == 11
        assert any("1 of 12 images" in n and "left out" in n for n in data.notes)

    def test_images_outside_files_are_found_by_name(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path / "a")
        flat = tmp_path / "flat"  # the labels files beside the JPEGs, no files/ tree
        flat.mkdir()
        for kind in FILES:
            shutil.copy(root / name(kind), flat / name(kind))
        for jpg in (root / "files").rglob("*.jpg"):
            shutil.copy(jpg, flat / jpg.name)
        assert len(read_mimic(flat / name("metadata")).records) == 12


class TestDetectMimic:
    def test_from_the_folder_and_from_each_file(self, mimic: Path) -> None:
        assert resolve_data_path(mimic) == (mimic / name("metadata"), "mimic")
        assert resolve_data_path(mimic.parent) == (mimic / name("metadata"), "mimic")
        for kind in FILES:
            assert resolve_data_path(mimic / name(kind)) == (mimic / name(kind), "mimic")
            data = read_dataset(mimic / name(kind))
            assert data.kind == "mimic" and len(data.records) == 12

    def test_gzipped_files_as_published(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path, gz=True)
        assert resolve_data_path(root) == (root / name("metadata", gz=True), "mimic")
        for kind in FILES:
            path = root / name(kind, gz=True)
            assert resolve_data_path(path) == (path, "mimic")
        data = read_dataset(root)
        assert len(data.records) == 12 and data.has_split

    def test_a_manifest_with_study_columns_is_still_a_manifest(self, tmp_path: Path) -> None:
        write_jpeg(tmp_path / "a.jpg")
        manifest = tmp_path / "m.csv"
        manifest.write_text("path,subject_id,study_id,Edema\na.jpg,1,2,1\n")
        assert resolve_data_path(manifest) == (manifest, "manifest")


def replaced(kind: str, old: str, new: str) -> dict[str, str]:
    text = (FIXTURE / name(kind)).read_text()
    assert old in text
    return {kind: text.replace(old, new, 1)}


class TestMimicErrors:
    def test_without_the_metadata_file(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path, leave_out=("metadata",))
        assert resolve_data_path(root) == (root / name("chexpert"), "mimic")
        with pytest.raises(DataError, match=r"mimic-cxr-2.0.0-metadata.csv\(.gz\) is not beside"):
            read_dataset(root)

    def test_negbio_asked_for_but_not_there(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path, leave_out=("negbio",))
        with pytest.raises(DataError, match=r"mimic-cxr-2.0.0-negbio.csv\(.gz\) is not beside"):
            read_mimic(root / name("metadata"), options=LayoutOptions(labeler="negbio"))

    def test_unknown_labeler_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match="labeler 'chexbert' is not one of"):
            LayoutOptions(labeler="chexbert")

    def test_a_value_other_than_1_0_minus1_blank(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path, edit=replaced("chexpert", ",1.0,", ",2,"))
        with pytest.raises(DataError, match=r"row 2: 'No Finding' is '2', not 1, 0, -1 or blank"):
            read_dataset(root)

    def test_a_study_listed_twice(self, tmp_path: Path) -> None:
        lines = (FIXTURE / name("chexpert")).read_text().splitlines()
        text = "\n".join([*lines, lines[1]]) + "\n"
        root = make_mimic(tmp_path, edit={"chexpert": text})
        with pytest.raises(DataError, match=rf"row {len(lines) + 1}: .* listed twice .*row 2\)"):
            read_dataset(root)

    def test_a_split_other_than_train_validate_test(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path, edit=replaced("split", ",train\n", ",holdout\n"))
        with pytest.raises(DataError, match="row 2: split is 'holdout', not train, validate"):
            read_dataset(root)

    def test_an_image_missing_from_the_split_file(self, tmp_path: Path) -> None:
        lines = (FIXTURE / name("split")).read_text().splitlines()
        root = make_mimic(tmp_path, edit={"split": "\n".join(lines[:1] + lines[2:]) + "\n"})
        with pytest.raises(DataError, match="the image of metadata row 2 is not in the split"):
            read_dataset(root)

    def test_a_subject_that_differs_from_the_labels_file(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path, edit=replaced("metadata", ",10000101,", ",10000102,"))
        with pytest.raises(DataError, match=r"row 2: its subject_id differs .*\(row 2\)"):
            read_dataset(root)

    def test_a_study_id_that_is_not_a_number(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path, edit=replaced("metadata", ",50000111,", ",s50000111,"))
        with pytest.raises(DataError, match="row 2: study_id is not a number"):
            read_dataset(root)

    def test_missing_images_error_names_the_row_not_the_image(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path)
        _, rows = table("metadata")
        image_path(root, rows[0]).unlink()
        with pytest.raises(DataError, match=r"row 2: its image is not below") as err:
            read_mimic(root / name("metadata"), options=LayoutOptions(missing_images="error"))
        assert rows[0][0] not in str(err.value) and rows[0][1] not in str(err.value)

    def test_no_image_there_at_all(self, tmp_path: Path) -> None:
        root = make_mimic(tmp_path)
        shutil.rmtree(root / "files")
        with pytest.raises(DataError, match="none of the 12 images it lists is below"):
            read_dataset(root)


@pytest.mark.parametrize(
    ("position", "code", "view"),
    [
        ("PA", "postero-anterior", "frontal"),
        ("AP", "", "frontal"),
        ("LATERAL", "lateral", "lateral"),
        ("LL", "left lateral", "lateral"),
        ("XTABLE LATERAL", "", "lateral"),
        ("AP AXIAL", "antero-posterior", None),
        ("AP LLD", "antero-posterior", None),
        ("LAO", "", None),
        ("", "postero-anterior", "frontal"),
        ("", "Lateral", "lateral"),
        ("", "", None),
    ],
)
def test_view_of(position: str, code: str, view: str | None) -> None:
    assert view_of(position, code) == view
