"""dicom.uids: PS3.5 9.1 validation and deterministic, valid stand-ins for invalid UIDs."""

from __future__ import annotations

import pytest
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.valuerep import validate_value

from desktop_app.dicom.uids import UidRepairs, derived_uid, is_valid_uid, safe_uid
from desktop_app.infra.errors import DataError
from desktop_app.infra.hashedpaths import uid_hash

HOSTILE = [
    "../../..",
    "1." + "9" * 6000,
    "1.2.abc.3",
    "1.02.3",
    "1..2",
    ".1.2",
    "1.2.",
    "1.2.3\x1b[31m",
    "1.2\x00.3",
    "1" * 65,
    "-1.2",
    "1.2 3",
]


def _hostile(tag: int, value: object) -> DataElement:
    """A UI element holding ``value`` as a file or peer could send it (no pydicom warning)."""
    return DataElement(tag, "UI", value, validation_mode=config.IGNORE)


def _passes_pydicom(value: str) -> None:
    validate_value("UI", value, config.RAISE)


class TestIsValidUid:
    @pytest.mark.parametrize(
        "value", ["0", "1.2.840.10008.1.2", "2.25.0", "1.0.3", "1.2.3\x00", " 1.2 ", "9" * 64]
    )
    def test_valid(self, value: str) -> None:
        assert is_valid_uid(value)

    @pytest.mark.parametrize("value", [*HOSTILE, "", None, 12, b"1.2"])
    def test_invalid(self, value: object) -> None:
        assert not is_valid_uid(value)


class TestDerivedUid:
    @pytest.mark.parametrize("value", HOSTILE)
    def test_is_valid_and_stable(self, value: str) -> None:
        new = derived_uid(value)
        assert new.startswith("2.25.") and len(new) <= 44
        _passes_pydicom(new)
        assert derived_uid(value) == new == derived_uid(value + "\x00 ")

    def test_different_originals_differ(self) -> None:
        assert len({derived_uid(v) for v in HOSTILE}) == len(HOSTILE)


class TestSafeUid:
    def test_keeps_a_valid_uid_without_padding(self) -> None:
        assert safe_uid("1.2.840.10008.1.2\x00") == "1.2.840.10008.1.2"

    def test_empty_stays_empty(self) -> None:
        assert safe_uid("") == safe_uid(None) == ""

    @pytest.mark.parametrize("value", HOSTILE)
    def test_replaces_an_invalid_uid(self, value: str) -> None:
        assert safe_uid(value) == derived_uid(value)

    def test_bytes(self) -> None:
        assert safe_uid(b"1.2.3") == "1.2.3"


class TestUidRepairs:
    def test_fix_records_only_replacements(self) -> None:
        repairs = UidRepairs()
        assert repairs.fix("1.2.3") == "1.2.3"
        new = repairs.fix("../../..")
        assert repairs.fix("../../..") == new
        assert len(repairs) == 1
        assert repairs.records() == [
            {"original_sha256_16": uid_hash("../../.."), "original_length": 8, "replacement": new}
        ]

    def test_summary_names_hashes_not_values(self) -> None:
        repairs = UidRepairs()
        assert repairs.summary() == ""
        for value in HOSTILE[:5]:
            repairs.fix(value)
        line = repairs.summary()
        assert line.startswith("5 invalid UIDs in the source") and line.endswith(", ...")
        assert "../" not in line and "abc" not in line and "\n" not in line

    def test_repair_dataset_at_every_depth(self) -> None:
        ds = Dataset()
        inner = Dataset()
        deeper = Dataset()
        ds.add(_hostile(0x0020000D, "../../.."))  # StudyInstanceUID
        deeper.add(_hostile(0x00081155, "1." + "9" * 6000))  # ReferencedSOPInstanceUID
        ds.SeriesInstanceUID = "1.2.3"
        ds.add(_hostile(0x00080058, ["1.2.3", "bad"]))  # FailedSOPInstanceUIDList
        inner.ReferencedSeriesSequence = Sequence([deeper])
        ds.ReferencedStudySequence = Sequence([inner])
        ds.file_meta = FileMetaDataset()
        ds.file_meta.add(_hostile(0x00020003, "x.y"))
        repairs = UidRepairs()
        assert repairs.repair_dataset(ds) == 4
        assert ds.StudyInstanceUID == derived_uid("../../..")
        assert ds.SeriesInstanceUID == "1.2.3"
        assert list(ds[0x00080058].value) == ["1.2.3", derived_uid("bad")]
        ref = ds.ReferencedStudySequence[0].ReferencedSeriesSequence[0]
        assert ref.ReferencedSOPInstanceUID == derived_uid("1." + "9" * 6000)
        assert ds.file_meta.MediaStorageSOPInstanceUID == derived_uid("x.y")
        assert len(repairs) == 4
        assert repairs.repair_dataset(ds) == 0

    def test_refuses_absurd_nesting(self) -> None:
        ds = Dataset()
        item = ds
        for _ in range(70):
            child = Dataset()
            item.ReferencedStudySequence = Sequence([child])
            item = child
        with pytest.raises(DataError, match="sequences nest deeper than 64 levels"):
            UidRepairs().repair_dataset(ds)
