"""De-identification of free text (issue 12): PHI planted in every text-bearing attribute, at
every sequence depth, of pydicom's and pydicom-data's SR and image objects and of a KOS is
gone from the output bytes; SR trees keep their shape; kept text that names someone goes."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes

from desktop_app.dicom.uids import derived_uid
from desktop_app.privacy.deid import Deidentifier, DeidOptions, deidentify_paths
from desktop_app.privacy.deid_keys import DeidKeyStore
from desktop_app.privacy.deid_table import FREE_TEXT_VRS, KEPT_TEXT
from desktop_app.privacy.deid_text import date_spellings, identifier_pattern, mentions
from tests.helpers.dicomfiles import pydicom_data_file, pydicom_test_file

PATIENT_NAME = "Doe^John"
MRN = "MRN4455667"
BIRTH_DATE = "19700314"
LONG_PHI = "John Doe MRN4455667 born 1970-03-14"
SHORT_PHI = ("John Doe", MRN, "1970-03-14", "14.03.1970")  # SH holds 16 characters
# Found anywhere in the output file (pixel data included) only if something leaked.
LONG_NEEDLES = (b"John Doe", b"Doe^John", b"MRN4455667", b"4455667", b"19700314", b"1970-03-14")
# Looked for in the header without pixel data, case-insensitively.
SHORT_NEEDLES = (b"john", b"doe", b"4455667", b"1970-03-14", b"14.03.1970")

SOURCES = [
    ("pydicom", "test-SR.dcm"),  # Comprehensive SR, nested content
    ("pydicom", "reportsi.dcm"),  # Basic Text SR
    ("pydicom", "CT_small.dcm"),
    ("pydicom", "MR_small.dcm"),
    ("pydicom", "rtstruct.dcm"),
    ("pydicom-data", "US1_UNCR.dcm"),
    ("pydicom-data", "RG1_UNCR.dcm"),  # CR
    ("pydicom-data", "emri_small.dcm"),  # enhanced MR, functional groups
    ("pydicom-data", "eCT_Supplemental.dcm"),
]
# Free-text attributes that the files may lack, added to each so every kind is covered.
EXTRA_TEXT = (
    "ImageComments",
    "AdditionalPatientHistory",
    "PatientComments",
    "StudyComments",
    "StudyDescription",
    "DerivationDescription",
    "ProtocolName",
    "InstitutionName",
    "ContentDescription",
    "ReasonForStudy",
    "RequestedProcedureDescription",
    "PerformedProcedureStepDescription",
    "ImagePresentationComments",
    "DocumentTitle",
    "Manufacturer",
    "SoftwareVersions",
    "ConvolutionKernel",
    "WindowCenterWidthExplanation",
    "ReferringPhysicianName",
    "OperatorsName",
)


def _source(where: str, name: str) -> Path:
    return pydicom_test_file(name) if where == "pydicom" else pydicom_data_file(name)


def _items(ds: Dataset) -> Iterator[Dataset]:
    stack = [ds]
    while stack:
        item = stack.pop()
        yield item
        for elem in item:
            if elem.VR == "SQ":
                stack.extend(elem.value or ())


def _text_elements(ds: Dataset) -> Iterator[DataElement]:
    for item in _items(ds):
        for elem in item:
            if elem.VR in FREE_TEXT_VRS:
                yield elem


def _plant(ds: Dataset) -> int:
    """The patient's identity in the identifying attributes and PHI in every other text
    element at every depth; returns how many elements were planted."""
    for keyword in EXTRA_TEXT:
        if keyword not in ds:
            setattr(ds, keyword, "x")
    note = Dataset()  # a free-text content item nested two levels down
    note.ValueType = "TEXT"
    note.RelationshipType = "CONTAINS"
    note.ConceptNameCodeSequence = [_code("121106", "DCM", "Comment")]
    note.TextValue = "x"
    container = Dataset()
    container.ValueType = "CONTAINER"
    container.ContentSequence = Sequence([note])
    ds.ContentSequence = Sequence([*ds.get("ContentSequence", []), container])
    planted = 0
    for n, elem in enumerate(_text_elements(ds)):
        if elem.VR == "PN":
            elem.value = PATIENT_NAME
        elif elem.VR == "SH":
            elem.value = SHORT_PHI[n % len(SHORT_PHI)]
        else:
            elem.value = LONG_PHI
        planted += 1
    ds.PatientName = PATIENT_NAME
    ds.PatientID = MRN
    ds.PatientBirthDate = BIRTH_DATE
    return planted


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


_PSEUDONYM = re.compile(r"RA-[0-9A-F]{12}")


def _without_derived_values(out: Dataset) -> Dataset:
    """A copy of ``out`` with the values the de-identifier derived from its random secret
    blanked: new UIDs (2.25.<HMAC>) and the pseudonym (RA-<hex>). Their digits are random, so
    a seven-digit needle turns up in them about once in ten thousand runs; a value left
    unreplaced does not have their form and is still searched."""
    copy = pydicom.dcmread(io.BytesIO(_bytes(out)), force=True)
    for item in [copy.file_meta, *_items(copy)]:
        for elem in item:
            value = str(elem.value) if isinstance(elem.value, str) else ""
            if elem.VR == "UI" and value.startswith("2.25."):
                elem.value = "2.25"
            elif _PSEUDONYM.fullmatch(value):
                elem.value = "RA"
    return copy


def _assert_clean(out: Dataset) -> None:
    assert _PSEUDONYM.fullmatch(str(out.PatientID)) and str(out.PatientName) == out.PatientID
    out = _without_derived_values(out)
    data = _bytes(out)
    for needle in LONG_NEEDLES:
        assert needle not in data, needle
    header = Dataset(out)
    header.file_meta = out.file_meta
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in header:
            del header[keyword]
    text = _bytes(header).lower()
    for needle in SHORT_NEEDLES:
        assert needle not in text, needle
    assert out.PatientIdentityRemoved == "YES"


def _kos() -> Dataset:
    """A Key Object Selection document over CT_small, with a description that names the
    patient and a person observer (highdicom builds it)."""
    ct = pydicom.dcmread(pydicom_test_file("CT_small.dcm"))
    content = hd.ko.KeyObjectSelection(
        document_title=hd.sr.CodedConcept("113000", "DCM", "Of Interest"),
        referenced_objects=[ct],
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name="Roe^Jane"
            ),
        ),
        description="Key images",
    )
    return hd.ko.KeyObjectSelectionDocument(
        evidence=[ct],
        content=content,
        series_instance_uid=hd.UID(),
        series_number=1,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Acme",
    )


@pytest.fixture
def deidentifier(tmp_path: Path) -> Deidentifier:
    return Deidentifier(DeidOptions(allow_burned_in=True), DeidKeyStore(tmp_path / "keys"))


class TestPlantedPhi:
    @pytest.mark.parametrize(("where", "name"), SOURCES)
    def test_no_planted_string_survives(
        self, where: str, name: str, deidentifier: Deidentifier
    ) -> None:
        ds = pydicom.dcmread(_source(where, name), force=True)
        planted = _plant(ds)
        assert planted >= len(EXTRA_TEXT) + 1
        assert LONG_NEEDLES[0] in _bytes(ds)  # the plant is there before
        _assert_clean(deidentifier.deidentify(ds))

    def test_key_object_selection(self, deidentifier: Deidentifier) -> None:
        ds = _kos()
        _plant(ds)
        _assert_clean(deidentifier.deidentify(ds))

    def test_a_stranger_named_in_unkept_text_goes_too(self, deidentifier: Deidentifier) -> None:
        """Free text that names nobody in the identifying attributes is removed all the same
        (only KEPT_TEXT is kept, and that is screened for the patient's identifiers)."""
        ds = pydicom.dcmread(pydicom_test_file("test-SR.dcm"))
        _plant(ds)
        for elem in _text_elements(ds):
            if int(elem.tag) not in KEPT_TEXT and elem.keyword not in ("PatientName", "PatientID"):
                elem.value = "Roe^Jane" if elem.VR == "PN" else "Jane Roe 5550199"
        data = _bytes(_without_derived_values(deidentifier.deidentify(ds)))
        assert b"Jane" not in data and b"5550199" not in data

    def test_deidentify_paths_writes_no_phi(self, tmp_path: Path) -> None:
        source = tmp_path / "in" / "sr.dcm"
        source.parent.mkdir()
        ds = pydicom.dcmread(pydicom_test_file("test-SR.dcm"))
        _plant(ds)
        ds.save_as(source, enforce_file_format=True)
        report = deidentify_paths([source], tmp_path / "out", keys=DeidKeyStore(tmp_path / "k"))
        (written,) = report.written
        assert written.output is not None
        _assert_clean(pydicom.dcmread(written.output))


def _tree(ds: Dataset) -> list[tuple[str, str, str]]:
    """(value type, concept code, relationship) of every content item, depth first."""
    out = []
    for item in ds.get("ContentSequence", []):
        concept = item.get("ConceptNameCodeSequence", [Dataset()])[0].get("CodeValue", "")
        out.append((item.get("ValueType", ""), concept, item.get("RelationshipType", "")))
        out.extend(_tree(item))
    return out


class TestStructuredContent:
    def test_sr_tree_kept_text_values_replaced(self, deidentifier: Deidentifier) -> None:
        before = pydicom.dcmread(pydicom_test_file("test-SR.dcm"))
        after = deidentifier.deidentify(pydicom.dcmread(pydicom_test_file("test-SR.dcm")))
        assert _tree(after) == _tree(before)
        texts = [i for i in _items(after) if i.get("ValueType") == "TEXT"]
        assert texts and all(i.TextValue == "ANONYMIZED" for i in texts)
        meanings = {str(i.CodeMeaning) for i in _items(after) if "CodeMeaning" in i}
        assert meanings and "ANONYMIZED" not in meanings  # concept names are codes: kept

    def test_kos_description_and_observer_name(self, deidentifier: Deidentifier) -> None:
        after = deidentifier.deidentify(_kos())
        data = _bytes(after)
        assert b"Key images" not in data and b"Roe" not in data
        assert after.Manufacturer == "Acme"


class TestKeptText:
    def _ds(self, **values: str) -> Dataset:
        ds = pydicom.dcmread(pydicom_test_file("CT_small.dcm"), stop_before_pixels=True)
        ds.PatientName = "Li^Wei"
        ds.PatientID = "A77123"
        ds.PatientBirthDate = "19611231"
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        return ds

    def test_technical_text_is_kept(self, deidentifier: Deidentifier) -> None:
        out = deidentifier.deidentify(
            self._ds(
                Manufacturer="Linear Systems", ConvolutionKernel="B30f", BodyPartExamined="CHEST"
            )
        )
        assert (out.Manufacturer, out.ConvolutionKernel) == ("Linear Systems", "B30f")
        assert out.BodyPartExamined == "CHEST"

    @pytest.mark.parametrize(
        ("keyword", "value"),
        [
            ("Manufacturer", "Scanner of Wei"),
            ("SoftwareVersions", "build for a77123"),
            ("WindowCenterWidthExplanation", "dob 31/12/1961"),
            ("BodyPartExamined", "LI WEI"),  # CS values are screened too
        ],
    )
    def test_kept_text_naming_the_patient_is_replaced(
        self, keyword: str, value: str, deidentifier: Deidentifier
    ) -> None:
        out = deidentifier.deidentify(self._ds(**{keyword: value}))
        assert out[keyword].value == "ANONYMIZED"

    def test_unlisted_text_is_removed(self, deidentifier: Deidentifier) -> None:
        out = deidentifier.deidentify(self._ds(ContrastBolusRoute="IV", SeriesDescription="Chest"))
        assert "ContrastBolusRoute" not in out and "SeriesDescription" not in out

    def test_invalid_class_uid_is_replaced(self, deidentifier: Deidentifier) -> None:
        ds = self._ds()
        ds[0x00080016] = DataElement(0x00080016, "UI", "1.2.abc", validation_mode=0)
        assert deidentifier.deidentify(ds).SOPClassUID == derived_uid("1.2.abc")


class TestIdentifierPattern:
    def test_collects_names_ids_and_birth_date_at_any_depth(self) -> None:
        ds = Dataset()
        ds.PatientID = "MRN4455667"
        ds.PatientBirthDate = "19700314"
        inner = Dataset()
        inner.PersonName = "Roe^Jane^Q"
        ds.ContentSequence = [inner]
        pattern = identifier_pattern(ds)
        assert pattern is not None
        for text in ("jane", "ROE", "id mrn4455667!", "14/03/1970", "1970-03-14"):
            assert mentions(text, pattern), text
        for text in ("Janet", "Roentgen", "MRN445566", "Q"):
            assert not mentions(text, pattern), text

    def test_none_without_identifiers(self) -> None:
        assert identifier_pattern(Dataset()) is None
        assert not mentions("anything", None)

    def test_date_spellings(self) -> None:
        assert date_spellings("19700314") == {
            "19700314",
            "1970-03-14",
            "14.03.1970",
            "14/03/1970",
            "03/14/1970",
            "1970/03/14",
        }
        assert date_spellings("1970") == {"1970"} and date_spellings("") == set()

    def test_many_names_stay_bounded(self) -> None:
        ds = Dataset()
        ds.ContentSequence = []
        for n in range(2000):
            item = Dataset()
            item.PersonName = f"Name{n}^Given{n}"
            ds.ContentSequence.append(item)
        pattern = identifier_pattern(ds)
        assert pattern is not None and len(pattern.pattern) < 64 * 1024
        assert re.search(pattern, "x") is None
