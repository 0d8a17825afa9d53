"""export_study with a source whose UIDs are hostile (issue 12 item 6): the SR, secondary
capture, PDF and JSON carry only valid UIDs (PS3.5 9.1), none of the hostile strings, the
same derived replacement everywhere, and the replacement is noted."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

from desktop_app.dicom.uids import derived_uid
from desktop_app.exports import ExportRequest, ExportResult, export_study
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.privacy.deid import DeidOptions
from desktop_app.privacy.deid_keys import DeidKeyStore
from tests.helpers.exports import (
    BIRTH_DATE,
    CHEST,
    NODULE_BOX,
    PATIENT_ID,
    PATIENT_NAME,
    make_manifest,
    make_result,
    make_review,
)

STUDY = "../../.."
SERIES = "1." + "9" * 6000  # a 6 KB string of digits
SOP = "1.2.abc.3"
FRAME_OF_REFERENCE = "1.02.3"
HOSTILE = {
    0x0020000D: STUDY,  # StudyInstanceUID
    0x0020000E: SERIES,  # SeriesInstanceUID
    0x00080018: SOP,  # SOPInstanceUID
    0x00200052: FRAME_OF_REFERENCE,  # FrameOfReferenceUID
}
NEEDLES = (b"../../..", b"9" * 80, b"1.2.abc.3", b"1.02.3")


def _hostile_study(folder: Path) -> list[Path]:
    """The chest radiograph with the made-up patient and hostile UIDs, as a file or a peer
    could send them (set without pydicom's validation)."""
    folder.mkdir(parents=True)
    ds = pydicom.dcmread(CHEST)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, BIRTH_DATE
    for tag, value in HOSTILE.items():
        ds[tag] = DataElement(tag, "UI", value, validation_mode=config.IGNORE)
    ds.file_meta[0x00020003] = DataElement(0x00020003, "UI", SOP, validation_mode=config.IGNORE)
    target = folder / "hostile.dcm"
    with warnings.catch_warnings():  # pydicom warns about the UIDs this test means to write
        warnings.simplefilter("ignore", UserWarning)
        ds.save_as(target, enforce_file_format=True)
    return [target]


def _uids(ds: Dataset) -> Iterator[str]:
    stack = [ds, ds.file_meta]
    while stack:
        item = stack.pop()
        for elem in item:
            if elem.VR == "SQ":
                stack.extend(elem.value or ())
            elif elem.VR == "UI" and elem.value:
                values = elem.value if isinstance(elem.value, list) else [elem.value]
                yield from (str(v) for v in values)


def _export(tmp_path: Path, deidentify: bool) -> ExportResult:
    files = _hostile_study(tmp_path / "study")
    with warnings.catch_warnings():  # the test's own reading of its hostile file
        warnings.simplefilter("ignore", UserWarning)
        result = make_result(files, {"nodule": (0.93, 0, NODULE_BOX)})
    return export_study(
        ExportRequest(
            study_paths=files,
            out_dir=tmp_path / "out",
            results=[result],
            review=make_review(result),
            model_manifest=make_manifest(),
            deidentify=deidentify,
            deid_options=DeidOptions(allow_burned_in=True),
            deid_keys=DeidKeyStore(tmp_path / "keys"),
        )
    )


@pytest.mark.parametrize("deidentify", [False, True], ids=["identified", "deidentified"])
def test_written_objects_hold_only_valid_uids(tmp_path: Path, deidentify: bool) -> None:
    out = _export(tmp_path, deidentify)
    assert out.sr is not None and out.pdf is not None and out.json is not None and out.sc
    for path in out.files:
        data = path.read_bytes()
        for needle in NEEDLES:
            assert needle not in data, (path.name, needle)
    for path in (out.sr, *out.sc):
        ds = pydicom.dcmread(path)
        uids = list(_uids(ds))
        assert len(uids) >= 8
        for uid in uids:
            validate_value("UI", uid, config.RAISE)
    doc = json.loads(out.json.read_text())
    for uid in (doc["study"]["study_instance_uid"], doc["series"][0]["series_instance_uid"]):
        validate_value("UI", uid, config.RAISE)


def test_replacements_are_derived_consistent_and_noted(tmp_path: Path) -> None:
    out = _export(tmp_path, deidentify=False)
    study, series, sop = derived_uid(STUDY), derived_uid(SERIES), derived_uid(SOP)
    assert out.study_uid == study and out.folder.name == uid_hash(study)
    assert out.sr is not None and out.json is not None
    sr = pydicom.dcmread(out.sr)
    assert sr.StudyInstanceUID == study
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == study
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == series
    assert (
        evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        == sop
    )
    (sc_path,) = out.sc
    sc = pydicom.dcmread(sc_path)
    assert sc.StudyInstanceUID == study
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == sop
    assert sc.get("FrameOfReferenceUID", derived_uid(FRAME_OF_REFERENCE)) == derived_uid(
        FRAME_OF_REFERENCE
    )
    doc = json.loads(out.json.read_text())
    assert doc["study"]["study_instance_uid"] == study
    assert doc["series"][0]["series_instance_uid"] == series
    assert {f["sop_instance_uid"] for f in doc["series"][0]["findings"]} == {sop}
    # the note: in the result (one line, by hash), and in the JSON
    assert out.uid_replacements == 4
    (line,) = [w for w in out.warnings if "invalid UID" in w]
    assert line.startswith("4 invalid UIDs in the source") and "\n" not in line
    assert uid_hash(STUDY) in line and "../" not in line
    records = {r["original_sha256_16"]: r for r in doc["uid_replacements"]}
    assert records[uid_hash(SERIES)] == {
        "original_sha256_16": uid_hash(SERIES),
        "original_length": len(SERIES),
        "replacement": series,
    }
    assert set(records) == {uid_hash(v) for v in HOSTILE.values()}


def test_a_valid_source_notes_nothing(tmp_path: Path) -> None:
    from tests.helpers.exports import copy_study

    files = copy_study(CHEST, tmp_path / "study")
    result = make_result(files, {"nodule": (0.93, 0, NODULE_BOX)})
    out = export_study(
        ExportRequest(
            study_paths=files, out_dir=tmp_path / "out", results=[result], formats=["json"]
        )
    )
    assert out.uid_replacements == 0 and not [w for w in out.warnings if "invalid UID" in w]
    assert out.json is not None
    assert json.loads(out.json.read_text())["uid_replacements"] == []
