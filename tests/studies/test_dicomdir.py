"""DICOMDIR traversal: pydicom's real file-sets, and hostile references refused
(CVE-2026-32711: nothing outside the file-set root is read)."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pydicom
import pytest

from desktop_app.infra.errors import UnsafePathError
from desktop_app.studies.dicomdir import read_dicomdir, resolve_file_id
from desktop_app.studies.index import index_paths
from tests.helpers.dicomfiles import image_dataset, save

DICOMDIR_TESTS = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests"
GOOD_ID = "77654033\\CT2\\17106"  # one IMAGE record of pydicom's DICOMDIR


def _patch_file_id(dicomdir: Path, old: str, new: str) -> None:
    """Rewrite one Referenced File ID in place, same length (offsets stay valid)."""
    data = dicomdir.read_bytes()
    old_b = old.encode("ascii")
    old_b += b" " * (len(old_b) % 2)
    assert len(new) <= len(old_b), "the hostile ID must fit in the old one"
    new_b = new.encode("ascii").ljust(len(old_b), b" ")
    assert data.count(old_b) == 1
    dicomdir.write_bytes(data.replace(old_b, new_b))


@pytest.fixture
def fileset(tmp_path: Path) -> Path:
    """A copy of pydicom's file-set (31 images) in tmp_path/media, plus a valid DICOM file
    outside it: tmp_path/outside.dcm. Returns the DICOMDIR."""
    save(image_dataset(PatientName="Outside^Root"), tmp_path / "outside.dcm")
    media = tmp_path / "media"
    shutil.copytree(DICOMDIR_TESTS, media, ignore=shutil.ignore_patterns("DICOMDIR-*", "*.txt"))
    return media / "DICOMDIR"


class TestRealFileSets:
    @pytest.mark.parametrize(
        "name", ["DICOMDIR", "DICOMDIR-bigEnd", "DICOMDIR-implicit", "DICOMDIR-reordered"]
    )
    def test_pydicom_dicomdirs_resolve_every_file_inside_the_root(self, name: str) -> None:
        contents = read_dicomdir(DICOMDIR_TESTS / name)
        assert contents.problems == []
        assert len(contents.files) == 31
        root = os.path.realpath(DICOMDIR_TESTS)
        assert all(str(f).startswith(root + os.sep) and f.is_file() for f in contents.files)
        types = {r.record_type for r in contents.records}
        assert {"PATIENT", "STUDY", "SERIES", "IMAGE"} <= types

    def test_hierarchy_order_patient_first(self) -> None:
        contents = read_dicomdir(DICOMDIR_TESTS / "DICOMDIR")
        first = contents.records[0]
        assert (first.record_type, first.depth) == ("PATIENT", 0)
        assert contents.records[1].record_type == "STUDY" and contents.records[1].depth == 1

    def test_index_a_dicomdir(self) -> None:
        index = index_paths([DICOMDIR_TESTS / "DICOMDIR"])
        assert index.instance_count == 31
        assert index.dicomdirs == 1
        assert index.problems == []

    def test_empty_dicomdir(self) -> None:
        contents = read_dicomdir(DICOMDIR_TESTS / "DICOMDIR-empty.dcm")
        assert (contents.files, contents.problems) == ([], [])

    def test_the_copy_reads_like_the_original(self, fileset: Path) -> None:
        contents = read_dicomdir(fileset)
        assert (len(contents.files), contents.problems) == (31, [])


class TestHostileReferences:
    @pytest.mark.parametrize(
        ("file_id", "why"),
        [
            ("..\\..\\outside.dcm", "component '..' is not allowed"),
            ("77654033\\..\\..\\x", "component '..' is not allowed"),
            ("/etc/passwd", "holds a path separator or drive"),
            ("C:\\Windows\\win.ini", "holds a path separator or drive"),
            ("77654033\\.\\17106", "component '.' is not allowed"),
        ],
    )
    def test_traversal_is_refused_and_the_other_records_still_read(
        self, fileset: Path, tmp_path: Path, file_id: str, why: str
    ) -> None:
        _patch_file_id(fileset, GOOD_ID, file_id)
        contents = read_dicomdir(fileset)
        assert len(contents.files) == 30
        assert "17106" not in {f.name for f in contents.files}
        (problem,) = contents.problems
        assert problem.kind == "UnsafePathError"
        assert problem.path == fileset
        assert problem.reason.startswith("DICOMDIR IMAGE record #")
        assert why in problem.reason
        assert "\n" not in problem.one_line()

        index = index_paths([fileset])
        assert index.instance_count == 30
        root = os.path.realpath(fileset.parent) + os.sep
        assert all(str(i.path).startswith(root) for i in index.iter_instances())
        assert all(p.name != "Outside^Root" for p in index.patients)
        assert len(index.problems) == 1

    @pytest.mark.skipif(os.name != "posix", reason="symbolic links")
    def test_a_symlink_leading_out_of_the_root_is_refused(
        self, fileset: Path, tmp_path: Path
    ) -> None:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        shutil.copy(tmp_path / "outside.dcm", elsewhere / "17106")
        os.symlink(elsewhere, fileset.parent / "LINK")
        _patch_file_id(fileset, GOOD_ID, "LINK\\17106")
        contents = read_dicomdir(fileset)
        (problem,) = contents.problems
        assert "resolves outside the file-set root" in problem.reason
        assert problem.kind == "UnsafePathError"
        assert len(contents.files) == 30

    @pytest.mark.skipif(os.name != "posix", reason="symbolic links")
    def test_a_symlink_inside_the_root_is_fine(self, fileset: Path) -> None:
        os.symlink(fileset.parent / "77654033", fileset.parent / "ALIAS")
        _patch_file_id(fileset, GOOD_ID, "ALIAS\\CT2\\17106")
        contents = read_dicomdir(fileset)
        assert contents.problems == []
        assert len(contents.files) == 31

    def test_a_missing_file_is_one_problem(self, fileset: Path) -> None:
        (fileset.parent / "77654033" / "CT2" / "17106").unlink()
        contents = read_dicomdir(fileset)
        (problem,) = contents.problems
        assert problem.kind == "DicomReadError"
        assert "is missing" in problem.reason
        assert len(contents.files) == 30

    def test_lower_case_copies_are_found(self, fileset: Path) -> None:
        (fileset.parent / "77654033" / "CR1").rename(fileset.parent / "77654033" / "cr1")
        contents = read_dicomdir(fileset)
        assert contents.problems == []
        assert len(contents.files) == 31
        assert fileset.parent / "77654033" / "cr1" / "6154" in contents.files

    def test_circular_offsets_end(self, fileset: Path) -> None:
        ds = pydicom.dcmread(fileset)
        first = ds.DirectoryRecordSequence[0]
        next_elem = first.get_item(0x00041400)  # Offset of the Next Directory Record
        data = bytearray(fileset.read_bytes())
        struct.pack_into("<L", data, next_elem.value_tell, first.seq_item_tell)
        fileset.write_bytes(bytes(data))
        contents = read_dicomdir(fileset)
        assert len(contents.files) == 31
        assert len(contents.records) == len(ds.DirectoryRecordSequence)

    def test_a_dicomdir_met_while_walking_is_counted_not_followed(
        self, fileset: Path, tmp_path: Path
    ) -> None:
        before = index_paths([fileset.parent])
        _patch_file_id(fileset, GOOD_ID, "..\\outside.dcm")
        index = index_paths([fileset.parent])
        assert index.dicomdirs == before.dicomdirs >= 1
        assert index.problems == []
        assert index.instance_count == before.instance_count  # the walk finds every file
        assert all(p.name != "Outside^Root" for p in index.patients)


class TestResolveFileId:
    @pytest.mark.parametrize(
        ("components", "message"),
        [
            (("..", "x"), "component '..' is not allowed"),
            (("a", ""), "component '' is not allowed"),
            (("a/b",), "holds a path separator or drive"),
            (("D:",), "holds a path separator or drive"),
            (("a\x01",), "control characters"),
            (("a",) * 17, "17 components, over 16"),
        ],
    )
    def test_refused(self, tmp_path: Path, components: tuple[str, ...], message: str) -> None:
        with pytest.raises(UnsafePathError, match=message):
            resolve_file_id(tmp_path, components, record="IMAGE record #1")

    def test_resolved_inside(self, tmp_path: Path) -> None:
        (tmp_path / "A").mkdir()
        (tmp_path / "A" / "B").write_bytes(b"x")
        assert resolve_file_id(tmp_path, ("A", "B")) == Path(os.path.realpath(tmp_path / "A" / "B"))
