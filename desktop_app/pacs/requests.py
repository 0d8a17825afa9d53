"""What DIMSE requests carry, without networking: SOP classes, query levels and return keys,
C-FIND and retrieve identifiers, and the presentation contexts of C-GET and C-STORE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.presentation import AllStoragePresentationContexts, StoragePresentationContexts

from desktop_app.dicom.uids import is_valid_uid
from desktop_app.infra.errors import DicomReadError, PacsError
from desktop_app.infra.hashedpaths import clean_uid
from desktop_app.infra.safetext import escape_control

# SOP classes (PS3.4 A, C.6.1, C.6.2).
Verification = UID("1.2.840.10008.1.1")
PatientRootQueryRetrieveInformationModelFind = UID("1.2.840.10008.5.1.4.1.2.1.1")
StudyRootQueryRetrieveInformationModelFind = UID("1.2.840.10008.5.1.4.1.2.2.1")
StudyRootQueryRetrieveInformationModelMove = UID("1.2.840.10008.5.1.4.1.2.2.2")
StudyRootQueryRetrieveInformationModelGet = UID("1.2.840.10008.5.1.4.1.2.2.3")

QueryLevel = Literal["PATIENT", "STUDY", "SERIES"]

# A peer's value longer than any return key's VR allows (LO 64, PN 3 x 64, UI 64; a few VM > 1)
# is cut here, so a hostile PACS can't fill memory, a terminal or a table cell with one value.
MAX_VALUE_CHARS = 1024

# Return keys per level (PS3.4 C.6.1.1, C.6.2.1): asked for empty, so the PACS fills them in.
RETURN_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "NumberOfPatientRelatedStudies",
    ),
    "STUDY": (
        "PatientName",
        "PatientID",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "AccessionNumber",
        "StudyDescription",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    "SERIES": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "NumberOfSeriesRelatedInstances",
    ),
}
FIND_MODELS = {
    "PATIENT": PatientRootQueryRetrieveInformationModelFind,
    "STUDY": StudyRootQueryRetrieveInformationModelFind,
    "SERIES": StudyRootQueryRetrieveInformationModelFind,
}
# Offered for every storage class we may receive: uncompressed and the common compressed ones.
RETRIEVE_TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
]
# At most 128 presentation contexts per association (PS3.8 9.3.2.2); one goes to C-GET itself.
GET_STORAGE_CLASSES = [str(cx.abstract_syntax) for cx in StoragePresentationContexts][:127]
ALL_STORAGE_CLASSES = [str(cx.abstract_syntax) for cx in AllStoragePresentationContexts]


def get_storage_contexts(sop_classes: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The storage contexts a C-GET offers (SCP role), within 127 (PS3.8 9.3.2.2).

    Known classes get one context per transfer syntax, so that the PACS finds one matching
    each stored instance. Unknown (empty ``sop_classes``): one context per common storage
    class, each listing every syntax (the PACS then picks one and may transcode).
    """
    per_syntax = [(uid, [ts]) for uid in sop_classes for ts in RETRIEVE_TRANSFER_SYNTAXES]
    if sop_classes and len(per_syntax) <= 127:
        return per_syntax
    if sop_classes and len(sop_classes) <= 127:
        return [(uid, list(RETRIEVE_TRANSFER_SYNTAXES)) for uid in sop_classes]
    return [(uid, list(RETRIEVE_TRANSFER_SYNTAXES)) for uid in GET_STORAGE_CLASSES]


def build_query(level: str, filters: Mapping[str, str]) -> Dataset:
    """The C-FIND identifier: the return keys empty, then the matching keys' values."""
    allowed = RETURN_KEYS[level]
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in allowed:
        setattr(ds, keyword, "")
    for keyword, value in filters.items():
        if keyword not in allowed:
            raise PacsError(
                f"{keyword!r} is not a matching key at {level} level",
                hint="use one of " + ", ".join(allowed),
            )
        text = str(value).strip()
        if len(text) > 200 or any(ord(c) < 0x20 for c in text):
            raise PacsError(
                f"the value for {keyword} is not a valid query value",
                hint="use plain text up to 200 characters; * and ? are wildcards",
            )
        setattr(ds, keyword, text)
    if level == "SERIES" and not str(ds.get("StudyInstanceUID", "")).strip():
        raise PacsError(
            "a series-level query needs the study's StudyInstanceUID",
            hint="find the study first, then query its series",
        )
    return ds


def valid_uid(value: object) -> str:
    """The UID without its padding if it is valid (PS3.5 9.1: digits and dots, no leading zero
    in a component other than "0" itself, at most 64 characters), else ``""``.

    Checked by ``dicom.uids.is_valid_uid`` (pydicom's pattern), never by building a ``UID``
    (which warns, repeating the peer's text, when the value is invalid).
    """
    return clean_uid(value) if is_valid_uid(value) else ""


def retrieve_identifier(study_uid: str, series_uid: str | None) -> Dataset:
    """The C-GET / C-MOVE identifier of a study, or of one of its series (PS3.4 C.4.2.1.4)."""
    if not clean_uid(study_uid):
        raise PacsError("no StudyInstanceUID given", hint="find the study first")
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = _checked_uid(study_uid, "StudyInstanceUID")
    if series_uid:
        ds.SeriesInstanceUID = _checked_uid(series_uid, "SeriesInstanceUID")
    return ds


def _checked_uid(value: str, keyword: str) -> str:
    uid = valid_uid(value)
    if not uid:
        raise PacsError(
            f"{keyword} '{escape_control(value, limit=80)}' is not a valid UID",
            hint="a UID is digits and dots, at most 64 characters (PS3.5 9.1); "
            "copy it from `radassist pacs find`",
        )
    return uid


def as_text(ds: Dataset, keywords: Sequence[str]) -> dict[str, str]:
    """The values of ``keywords`` present in a C-FIND response, as text (multi-values joined
    with a backslash), each cut to :data:`MAX_VALUE_CHARS`. Control characters are kept: they
    are escaped where the text is shown (:mod:`desktop_app.infra.safetext`)."""
    values: dict[str, str] = {}
    for keyword in keywords:
        if keyword in ds:
            value = ds[keyword].value
            if value is None:
                text = ""
            elif isinstance(value, bytes):  # kept raw (UN) when it could not be decoded
                text = value.decode("utf-8", "replace")
            elif isinstance(value, MultiValue | list | tuple):
                text = "\\".join(str(v) for v in value)
            else:
                text = str(value)
            text = text.strip()
            if len(text) > MAX_VALUE_CHARS:
                text = text[: MAX_VALUE_CHARS - 1] + "…"
            values[keyword] = text
    return values


def storable_files(
    files: Sequence[Path],
) -> tuple[list[tuple[Path, str, str]], list[tuple[Path, str]]]:
    """(path, SOP Class UID, transfer syntax) of each file that can be sent, and (path, reason)
    of each that can't (unreadable, or no SOP Class UID)."""
    from desktop_app.dicom.dicomfile import read_header

    failed: list[tuple[Path, str]] = []
    headers: list[tuple[Path, str, str]] = []
    for path in files:
        try:
            ds = read_header(path)
        except DicomReadError as err:
            failed.append((path, err.reason))
            continue
        sop_class = clean_uid(ds.get("SOPClassUID", ""))
        if not sop_class:
            failed.append((path, "has no SOP Class UID; not a storable DICOM object"))
            continue
        meta = getattr(ds, "file_meta", None)
        syntax = clean_uid(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        headers.append((path, sop_class, syntax or ImplicitVRLittleEndian))
    return headers, failed


def store_contexts(headers: Sequence[tuple[Path, str, str]]) -> list[tuple[str, tuple[str, ...]]]:
    """The presentation contexts a C-STORE of ``headers`` proposes (at most 128: their IDs are
    the odd numbers 1 to 255).

    An SCP accepts one transfer syntax per presentation context (PS3.8 9.3.3.2), so each
    (class, encoded syntax) pair gets a context of its own, plus an uncompressed one per
    class to fall back on when a compressed syntax is refused.
    """
    contexts: dict[tuple[str, tuple[str, ...]], None] = {}
    for _, sop_class, syntax in headers:
        contexts[(sop_class, (syntax,))] = None
        contexts[(sop_class, (ExplicitVRLittleEndian, ImplicitVRLittleEndian))] = None
    if len(contexts) > 128:
        raise PacsError(
            f"{len(contexts)} presentation contexts needed for one send",
            hint="send fewer kinds of object (SOP classes and encodings) at a time",
        )
    return list(contexts)
