"""De-identification (PS3.15 Annex E Basic Profile) on pydicom's bundled test files.

pydicom's files are listed from their folder: ``get_testdata_file(name)`` may try to download.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from desktop_app.cli import main
from desktop_app.infra.errors import ExportError
from desktop_app.infra.hashedpaths import instance_relpath
from desktop_app.privacy.deid import (
    BurnedInRisk,
    Deidentifier,
    DeidOptions,
    _shift,
    burned_in_risk,
    deidentify_file,
    deidentify_paths,
)
from desktop_app.privacy.deid_keys import DeidKeyStore
from desktop_app.privacy.deid_table import BASIC_PROFILE, SAFE_PRIVATE, TEMPORAL_ATTRIBUTES

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
UID_RE = re.compile(r"^2\.25\.[1-9][0-9]{0,38}$")
PSEUDONYM_RE = re.compile(r"^RA-[0-9A-F]{12}$")


def _testfile(name: str) -> Path:
    path = TEST_FILES / name
    assert path.is_file(), f"pydicom's bundled {name} is missing from {TEST_FILES}"
    return path


@pytest.fixture
def keys(tmp_path: Path) -> DeidKeyStore:
    return DeidKeyStore(tmp_path / "keys")


def _deid(ds: Dataset, keys: DeidKeyStore, **options: Any) -> Dataset:
    return Deidentifier(DeidOptions(**options), keys).deidentify(ds)


def _ct() -> pydicom.FileDataset:
    return pydicom.dcmread(_testfile("CT_small.dcm"))


def _enriched_ct() -> Dataset:
    """CT_small plus attributes that exercise every action class of Table E.1-1."""
    ds = _ct()
    ds.OperatorsName = "Operator^Olga"  # X/Z/D
    ds.DeviceSerialNumber = "SN-12345"  # X/Z/D
    ds.ProtocolName = "Chest Mrs Doe"  # X/D
    ds.SeriesDescription = "for Mrs Doe"  # X
    ds.PerformingPhysicianName = "Doc^Dora"  # X
    ds.RequestingPhysician = "Doc^Rita"  # X
    ds.InstanceCreationDate = "20040119"  # not in Table E.1-1: treated by VR
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.1"
    ds.ReferencedImageSequence = Sequence([item])  # X/Z/U*
    ctx = Dataset()
    ctx.ConceptNameCodeSequence = Sequence([Dataset()])
    ds.AcquisitionContextSequence = Sequence([ctx])  # X/Z
    icon = Dataset()
    icon.Rows = 1
    ds.IconImageSequence = Sequence([icon])  # X
    content = Dataset()
    content.PersonName = "Observer^Otto"  # D
    content.DateTime = "20040119101500"  # DT, not in the table
    content.UID = "1.2.3.4.5.6.7.8.2"  # U
    ds.ContentSequence = Sequence([content])  # D
    ds.add_new(0x60003000, "OW", b"\x01\x02" * 8)  # overlay data
    ds.add_new(0x60000010, "US", 4)  # overlay rows: whole 60xx group goes
    ds.add_new(0x50000005, "US", 1)  # curve group
    block = ds.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "private note about Mrs Doe")
    nested = Dataset()
    nested.add_new(0x00091010, "LO", "ACME")
    nested.add_new(0x00091001, "LO", "hidden name")
    nested.CodeValue = "123"
    ds.ProcedureCodeSequence = Sequence([nested])
    return ds


class TestTable:
    def test_covers_the_table(self) -> None:
        assert len(BASIC_PROFILE) >= 400
        allowed = {"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
        assert set(BASIC_PROFILE.values()) <= allowed
        assert set(BASIC_PROFILE) >= TEMPORAL_ATTRIBUTES
        assert len(SAFE_PRIVATE) >= 100

    @pytest.mark.parametrize(
        ("keyword", "action"),
        [
            ("PatientName", "Z"),
            ("PatientID", "Z"),
            ("PatientBirthDate", "Z"),
            ("OtherPatientIDsSequence", "X"),
            ("AccessionNumber", "Z"),
            ("StudyInstanceUID", "U"),
            ("SeriesInstanceUID", "U"),
            ("SOPInstanceUID", "U"),
            ("FrameOfReferenceUID", "U"),
            ("ReferencedSOPInstanceUID", "U"),
            ("InstitutionName", "X/Z/D"),
            ("ReferringPhysicianName", "Z"),
            ("OperatorsName", "X/Z/D"),
            ("DeviceSerialNumber", "X/Z/D"),
            ("StudyDate", "Z"),
            ("ContentDate", "Z/D"),
            ("ImageComments", "X"),
            ("AcquisitionContextSequence", "X/Z"),
            ("ReferencedImageSequence", "X/Z/U*"),
            ("ContentSequence", "D"),
        ],
    )
    def test_profile_action(self, keyword: str, action: str) -> None:
        assert BASIC_PROFILE[tag_for_keyword(keyword)] == action


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Dataset]:
    """(before, after) for the enriched CT."""
    keys = DeidKeyStore(tmp_path_factory.mktemp("keys"))
    return _enriched_ct(), _deid(_enriched_ct(), keys)


class TestProfileActions:
    @pytest.mark.parametrize(
        "keyword",
        [
            "OtherPatientIDsSequence",  # X
            "PatientAge",
            "PatientWeight",
            "StudyDescription",
            "SeriesDescription",
            "ImageComments",
            "ProtocolName",  # X/D -> X
            "PerformingPhysicianName",
            "RequestingPhysician",
            "IconImageSequence",
            "TimezoneOffsetFromUTC",
            "DataSetTrailingPadding",
        ],
    )
    def test_removed(self, pair: tuple[Dataset, Dataset], keyword: str) -> None:
        before, after = pair
        assert keyword in before
        assert keyword not in after

    @pytest.mark.parametrize(
        "keyword",
        [
            "PatientBirthDate",  # Z
            "PatientSex",
            "AccessionNumber",
            "ReferringPhysicianName",
            "StudyID",
            "InstitutionName",  # X/Z/D -> Z
            "StationName",
            "OperatorsName",
            "DeviceSerialNumber",
        ],
    )
    def test_emptied(self, pair: tuple[Dataset, Dataset], keyword: str) -> None:
        assert keyword in pair[1]
        assert pair[1][keyword].value in ("", None)

    def test_patient_name_and_id_get_one_pseudonym(self, pair: tuple[Dataset, Dataset]) -> None:
        before, after = pair
        assert PSEUDONYM_RE.match(str(after.PatientName))
        assert str(after.PatientID) == str(after.PatientName)
        assert str(before.PatientID) not in str(after.PatientName)

    def test_dummy_values(self, pair: tuple[Dataset, Dataset]) -> None:
        after = pair[1]
        assert after.ContrastBolusAgent == "ANONYMIZED"  # Z/D -> D
        assert after.ContentSequence[0].PersonName == "ANONYMIZED"  # D inside a D sequence

    def test_kept(self, pair: tuple[Dataset, Dataset]) -> None:
        before, after = pair
        for keyword in ("Manufacturer", "Modality", "SliceThickness", "KVP", "SOPClassUID"):
            assert after[keyword].value == before[keyword].value, keyword

    def test_uids_replaced_everywhere(self, pair: tuple[Dataset, Dataset]) -> None:
        before, after = pair
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            assert UID_RE.match(after[keyword].value), keyword
            assert after[keyword].value != before[keyword].value
        ref = after.ReferencedImageSequence[0]  # X/Z/U*: kept, UIDs inside replaced
        assert UID_RE.match(ref.ReferencedSOPInstanceUID)
        assert ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
        assert UID_RE.match(after.ContentSequence[0].UID)
        assert UID_RE.match(after.InstanceCreatorUID)

    def test_acquisition_context_emptied(self, pair: tuple[Dataset, Dataset]) -> None:
        assert len(pair[1].AcquisitionContextSequence) == 0  # X/Z -> Z

    def test_private_curves_and_overlays_gone(self, pair: tuple[Dataset, Dataset]) -> None:
        before, after = pair
        assert any(e.tag.is_private for e in before.iterall())
        assert not any(e.tag.is_private for e in after.iterall())
        groups = {e.tag.group for e in after.iterall()}
        assert not any(0x5000 <= g <= 0x601E for g in groups)
        assert after.ProcedureCodeSequence[0].CodeValue == "123"

    def test_marked_as_deidentified(self, pair: tuple[Dataset, Dataset]) -> None:
        after = pair[1]
        assert after.PatientIdentityRemoved == "YES"
        codes = [c.CodeValue for c in after.DeidentificationMethodCodeSequence]
        assert codes == ["113100", "113107"]
        assert {c.CodingSchemeDesignator for c in after.DeidentificationMethodCodeSequence} == {
            "DCM"
        }
        assert after.LongitudinalTemporalInformationModified == "MODIFIED"
        assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
        assert after.preamble == b"\x00" * 128

    def test_no_identifying_text_left(self, pair: tuple[Dataset, Dataset]) -> None:
        after = pair[1]
        text = " ".join(str(e.value) for e in after.iterall() if e.VR not in ("OB", "OW"))
        for leak in ("Doe", "Olga", "Dora", "Rita", "Otto", "SN-12345", "JFK", "1CT1"):
            assert leak not in text, leak


def _days(a: str, b: str) -> int:
    return (dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days


class TestDates:
    def test_shift_keeps_intervals(self, keys: DeidKeyStore) -> None:
        before = _enriched_ct()
        after = _deid(_enriched_ct(), keys)
        offset = _days(after.StudyDate, before.StudyDate)
        assert -3650 <= offset <= -365
        for keyword in ("SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate"):
            assert _days(after[keyword].value, before[keyword].value) == offset, keyword
        assert after.StudyTime == before.StudyTime  # whole days: times stay
        dt_before = before.ContentSequence[0].DateTime
        dt_after = after.ContentSequence[0].DateTime
        assert _days(dt_after[:8], dt_before[:8]) == offset
        assert dt_after[8:] == dt_before[8:]
        assert after.PatientBirthDate == ""  # Z whatever the date option

    def test_same_offset_for_every_study_of_a_patient(self, keys: DeidKeyStore) -> None:
        a, b = _ct(), _ct()
        b.StudyInstanceUID = "1.2.3.999"
        b.StudyDate = "20100101"
        deid = Deidentifier(DeidOptions(), keys)
        assert deid.date_offset(a) == deid.date_offset(b)
        other = _ct()
        other.PatientID = "someone else"
        assert deid.pseudonym(other) != deid.pseudonym(a)

    def test_remove(self, keys: DeidKeyStore) -> None:
        after = _deid(_enriched_ct(), keys, dates="remove")
        assert after.StudyDate == ""  # Z
        assert after.StudyTime == ""  # Z
        assert "SeriesDate" not in after  # X/D -> X
        assert after.AcquisitionDate == ""  # X/Z -> Z
        assert after.ContentDate == "19000101"  # Z/D -> D
        assert "InstanceCreationDate" not in after  # by VR
        assert "DateTime" not in after.ContentSequence[0]
        assert after.LongitudinalTemporalInformationModified == "REMOVED"
        assert [c.CodeValue for c in after.DeidentificationMethodCodeSequence] == ["113100"]

    def test_keep(self, keys: DeidKeyStore) -> None:
        before = _enriched_ct()
        after = _deid(_enriched_ct(), keys, dates="keep")
        for keyword in ("StudyDate", "SeriesDate", "ContentDate", "InstanceCreationDate"):
            assert after[keyword].value == before[keyword].value
        assert after.PatientBirthDate == ""
        assert after.LongitudinalTemporalInformationModified == "UNMODIFIED"
        assert [c.CodeValue for c in after.DeidentificationMethodCodeSequence] == [
            "113100",
            "113106",
        ]

    @pytest.mark.parametrize(
        ("value", "vr", "days", "expected"),
        [
            ("20200111", "DA", -10, "20200101"),
            ("20200301", "DA", -1, "20200229"),
            ("2020.01.11", "DA", -10, "20200101"),
            ("20200111-20200121", "DA", -10, "20200101-20200111"),
            ("-20200121", "DA", -10, "-20200111"),
            ("20200111123000.5+0100", "DT", -10, "20200101123000.5+0100"),
            ("2020", "DT", -400, "2018"),
            ("202003", "DT", -31, "202002"),
            ("2020AB11", "DA", -10, ""),
            ("20200230", "DA", -10, ""),
            ("", "DA", -10, ""),
        ],
    )
    def test_shift_value(self, value: str, vr: str, days: int, expected: str) -> None:
        assert _shift(value, vr, dt.timedelta(days=days)) == expected


def _write_series(folder: Path, n: int = 3) -> list[Path]:
    """A 3-instance CT series from CT_small; instances 2.. reference instance 1."""
    paths = []
    for i in range(1, n + 1):
        ds = _ct()
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.7.{i}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i
        if i > 1:
            ref = Dataset()
            ref.ReferencedSOPClassUID = ds.SOPClassUID
            ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.7.1"
            ds.ReferencedImageSequence = Sequence([ref])
            src = Dataset()
            src.ReferencedSOPClassUID = ds.SOPClassUID
            src.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.7.1"
            ds.SourceImageSequence = Sequence([src])
        path = folder / f"ct{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


class TestUidsAcrossFiles:
    def test_series_stays_consistent(self, tmp_path: Path, keys: DeidKeyStore) -> None:
        src = tmp_path / "in"
        src.mkdir()
        _write_series(src)
        report = deidentify_paths([src], tmp_path / "out", keys=keys)
        assert [r.status for r in report.results] == ["written"] * 3
        out = [pydicom.dcmread(r.output) for r in report.results]  # type: ignore[arg-type]
        assert len({d.StudyInstanceUID for d in out}) == 1
        assert len({d.SeriesInstanceUID for d in out}) == 1
        assert len({d.FrameOfReferenceUID for d in out}) == 1
        assert len({d.SOPInstanceUID for d in out}) == 3
        assert len({d.PatientID for d in out}) == 1
        assert len({d.StudyDate for d in out}) == 1
        first = out[0].SOPInstanceUID
        for d in out[1:]:
            assert d.ReferencedImageSequence[0].ReferencedSOPInstanceUID == first
            assert d.SourceImageSequence[0].ReferencedSOPInstanceUID == first
        for d in out:
            for e in d.iterall():
                if (
                    e.VR == "UI"
                    and "ClassUID" not in e.keyword
                    and "TransferSyntax" not in (e.keyword)
                ):
                    assert UID_RE.match(str(e.value)) and len(str(e.value)) <= 64, e

    def test_nested_references_in_rtplan(self, keys: DeidKeyStore) -> None:
        before = pydicom.dcmread(_testfile("rtplan.dcm"))
        deid = Deidentifier(DeidOptions(), keys)
        after = deid.deidentify(pydicom.dcmread(_testfile("rtplan.dcm")))
        for seq in ("ReferencedStructureSetSequence", "ReferencedRTPlanSequence"):
            original = before[seq][0].ReferencedSOPInstanceUID
            assert after[seq][0].ReferencedSOPInstanceUID == deid.uid(original)
            assert after[seq][0].ReferencedSOPClassUID == before[seq][0].ReferencedSOPClassUID
        assert after.BeamSequence[0].InstitutionName == ""
        assert after.BeamSequence[0].DeviceSerialNumber == ""
        assert after.RTPlanLabel == "ANONYMIZED"  # D

    def test_same_uids_across_runs_and_stores(self, tmp_path: Path) -> None:
        original = "1.2.826.0.1.3680043.8.498.42"
        keys = DeidKeyStore(tmp_path / "k1")
        first = Deidentifier(DeidOptions(), keys)
        new = first.uid(original)
        first.flush()
        assert Deidentifier(DeidOptions(), keys).uid(original) == new
        assert DeidKeyStore(tmp_path / "k1").load_map() == {original: new}
        assert keys.original_of(new) == original
        # Another secret gives other UIDs...
        other = DeidKeyStore(tmp_path / "k2")
        assert Deidentifier(DeidOptions(), other).uid(original) != new
        # ...unless the mapping was remembered: a stored mapping wins over derivation.
        other.remember({original: new})
        assert Deidentifier(DeidOptions(), other).uid(original) == new

    def test_damaged_secret_is_refused(self, tmp_path: Path) -> None:
        keys = DeidKeyStore(tmp_path / "k")
        keys.root.mkdir()
        (keys.root / "secret.key").write_text("not hex")
        with pytest.raises(ExportError, match="the de-identification secret is damaged"):
            Deidentifier(DeidOptions(), keys).uid("1.2.3")


class TestFiles:
    def test_outputs_named_by_hashed_uids_and_free_of_identifiers(
        self, tmp_path: Path, data_dir: Path
    ) -> None:
        src = tmp_path / "in"
        src.mkdir()
        inputs = _write_series(src)
        out = tmp_path / "out"
        report = deidentify_paths([src], out)
        originals = [pydicom.dcmread(p) for p in inputs]
        for result in report.results:
            assert result.output is not None
            ds = pydicom.dcmread(result.output)
            rel = instance_relpath(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            assert result.output == out.joinpath(*rel.parts)
            data = result.output.read_bytes()
            for o in originals:
                for secret in (o.SOPInstanceUID, o.StudyInstanceUID, o.SeriesInstanceUID):
                    assert secret.encode() not in data
                assert str(o.PatientName).encode() not in data
                assert b"JFK IMAGING" not in data
        files = [p for p in out.rglob("*") if p.is_file()]
        assert len(files) == 3 and all(p.suffix == ".dcm" for p in files)
        # The mapping stays in the data folder, never beside the export.
        mapping = json.loads((data_dir / "deid" / "uid_map.json").read_text())
        assert originals[0].StudyInstanceUID in mapping["uids"]
        assert (data_dir / "deid" / "secret.key").exists()

    @pytest.mark.parametrize(
        "name",
        [
            "CT_small.dcm",
            "MR_small.dcm",
            "MR_small_RLE.dcm",
            "JPEG2000.dcm",
            "MR_small_bigendian.dcm",
            "SC_rgb_jpeg_dcmtk.dcm",
            "examples_overlay.dcm",
        ],
    )
    def test_pixel_data_untouched(self, tmp_path: Path, keys: DeidKeyStore, name: str) -> None:
        source = _testfile(name)
        deid = Deidentifier(DeidOptions(allow_burned_in=True), keys)
        result = deidentify_file(source, tmp_path / "out", deid)
        assert result.output is not None
        before = pydicom.dcmread(source, force=True)
        after = pydicom.dcmread(result.output)
        assert after.PixelData == before.PixelData
        if "TransferSyntaxUID" in getattr(before, "file_meta", {}):
            assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
        assert after.file_meta.ImplementationVersionName.startswith("RADASSIST")

    def test_file_without_meta_gets_one(self, tmp_path: Path, keys: DeidKeyStore) -> None:
        source = _testfile("ExplVR_BigEndNoMeta.dcm")  # big endian, no preamble or meta
        result = deidentify_file(source, tmp_path / "out", Deidentifier(DeidOptions(), keys))
        assert result.output is not None
        after = pydicom.dcmread(result.output)
        assert after.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRBigEndian
        assert after.file_meta.MediaStorageSOPInstanceUID == after.SOPInstanceUID
        assert after.Modality == "RTPLAN"

    def test_safe_private_option(self, tmp_path: Path, keys: DeidKeyStore) -> None:
        group, creator, offset = next(
            (g, c, o) for g, c, o in sorted(SAFE_PRIVATE) if c == "GEMS_PARM_01"
        )
        ds = _ct()
        for elem in [e for e in ds if e.tag.is_private]:
            del ds[elem.tag]
        block = ds.private_block(group, creator, create=True)
        block.add_new(offset, "DS", "1.5")
        unsafe = (offset + 1) % 0x100
        assert (group, creator, unsafe) not in SAFE_PRIVATE
        block.add_new(unsafe, "LO", "Mrs Doe")
        after = _deid(ds, keys, retain_safe_private=True)
        kept = after.private_block(group, creator)
        assert kept[offset].value == "1.5"
        assert unsafe not in kept
        assert [c.CodeValue for c in after.DeidentificationMethodCodeSequence][-1] == "113111"
        assert not any(e.tag.is_private for e in _deid(_ct(), keys).iterall())

    def test_duplicates_written_once(self, tmp_path: Path, keys: DeidKeyStore) -> None:
        names = ["MR_small.dcm", "MR_small_RLE.dcm"]
        report = deidentify_paths([_testfile(n) for n in names], tmp_path / "out", keys=keys)
        assert [r.status for r in report.results] == ["written", "duplicate"]
        assert "same SOP Instance UID as" in report.results[1].problem

    def test_refuses_output_inside_the_data_folder(
        self, data_dir: Path, keys: DeidKeyStore
    ) -> None:
        with pytest.raises(ExportError, match="inside RadAssist's data folder"):
            deidentify_paths([_testfile("CT_small.dcm")], data_dir / "export")
        with pytest.raises(ExportError, match="inside RadAssist's data folder"):
            deidentify_paths([_testfile("CT_small.dcm")], keys.root / "x", keys=keys)

    def test_progress_and_stop(self, tmp_path: Path, keys: DeidKeyStore) -> None:
        src = tmp_path / "in"
        src.mkdir()
        _write_series(src, 4)
        (src / "notes.txt").write_text("not DICOM")
        seen: list[tuple[int, int]] = []
        report = deidentify_paths(
            [src], tmp_path / "o1", keys=keys, progress=lambda d, t: seen.append((d, t))
        )
        assert seen == [(i, 5) for i in range(1, 6)]
        assert report.skipped_not_dicom == 1
        stop = threading.Event()

        def stop_after_two(done: int, total: int) -> None:
            if done == 2:
                stop.set()

        report = deidentify_paths(
            [src], tmp_path / "o2", keys=keys, progress=stop_after_two, stop=stop
        )
        assert report.cancelled
        assert len(report.results) == 2


class TestBurnedIn:
    @pytest.mark.parametrize(
        ("attrs", "flagged", "reason"),
        [
            ({"Modality": "CT"}, False, ""),
            ({"Modality": "CT", "BurnedInAnnotation": "YES"}, True, "is YES"),
            ({"Modality": "MR", "RecognizableVisualFeatures": "YES"}, True, "Visual Features"),
            ({"Modality": "US"}, True, "modality US"),
            ({"Modality": "US", "BurnedInAnnotation": "NO"}, False, ""),
            ({"Modality": "DX"}, True, "modality DX"),
            ({"Modality": "CR", "BurnedInAnnotation": "NO"}, False, ""),
            ({"Modality": "OT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, True, "Secondary"),
            (
                {"Modality": "SC", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7.2"},
                True,
                "Secondary Capture",
            ),
            (
                {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.104.1", "BurnedInAnnotation": "NO"},
                True,
                "encapsulated PDF",
            ),
        ],
    )
    def test_rules(self, attrs: dict[str, str], flagged: bool, reason: str) -> None:
        ds = Dataset()
        for key, value in attrs.items():
            setattr(ds, key, value)
        risk = burned_in_risk(ds)
        assert risk.flagged is flagged
        assert reason in risk.summary()

    def test_withheld_unless_accepted(self, tmp_path: Path, keys: DeidKeyStore) -> None:
        us = _testfile("examples_palette.dcm")
        report = deidentify_paths([us], tmp_path / "a", keys=keys)
        [result] = report.results
        assert (result.status, result.output) == ("withheld", None)
        assert result.risk == BurnedInRisk(
            True,
            (
                "modality US: ultrasound images usually carry burned-in text; "
                "Burned In Annotation is not stated",
            ),
        )
        assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*.dcm"))
        report = deidentify_paths(
            [us], tmp_path / "b", DeidOptions(allow_burned_in=True), keys=keys
        )
        assert report.results[0].status == "written"


class TestCli:
    def test_export_for_sharing(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "share"
        code = main(
            ["deidentify", str(_testfile("CT_small.dcm")), "--out", str(out), "--remove-dates"]
        )
        assert code == 0
        [written] = list(out.rglob("*.dcm"))
        ds = pydicom.dcmread(written)
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert "wrote 1 de-identified files" in capsys.readouterr().out

    def test_withheld_file_exits_1_with_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        us = _testfile("examples_palette.dcm")
        code = main(
            ["deidentify", str(us), str(_testfile("CT_small.dcm")), "--out", str(tmp_path / "o")]
        )
        assert code == 1
        err = capsys.readouterr().err.splitlines()
        assert err == [
            f"{us}: withheld: burned-in annotation risk (modality US: ultrasound images usually "
            "carry burned-in text; Burned In Annotation is not stated) (check the pixels, then "
            "use --include-burned-in)"
        ]

    @pytest.mark.parametrize(
        "argv",
        [
            ["deidentify", "x.dcm"],
            ["deidentify", "x.dcm", "--out", "o", "--keep-dates", "--remove-dates"],
            ["deidentify", "--out", "o"],
        ],
    )
    def test_usage_errors_exit_2(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1
