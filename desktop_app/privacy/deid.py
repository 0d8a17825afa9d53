"""De-identification: PS3.15 Annex E Basic Application Level Confidentiality Profile.

:class:`Deidentifier` applies the action of Table E.1-1 (``deid_table.BASIC_PROFILE``) to every
attribute, in the top-level dataset and, recursively, in every sequence item (PS3.15 E.1.1:
"whether contained in the main dataset or embedded in an Item of a Sequence of Items"):

- ``X`` remove; ``Z`` empty; ``D`` a dummy value of the right VR; ``K`` keep (sequences are
  still cleaned inside); ``U`` a new UID, the same for the same original everywhere.
- Combined codes need the IOD's attribute type, which the table leaves to the
  de-identifier. Resolved here as: ``X/Z`` -> Z and ``X/Z/D`` -> Z (present stays present, so a
  Type 2 attribute stays valid), ``X/D`` -> X (these are Type 3 in the common image IODs),
  ``Z/D`` -> D (Content Date/Time are Type 1 in SR and enhanced objects), ``X/Z/U*`` -> keep
  the referencing sequence and replace the UIDs inside it (so references stay consistent).
- Patient Name and Patient ID (``Z``) get a pseudonym instead of an empty value: a keyed hash
  of the original ID, so the studies of one patient stay together and nothing can be
  reversed without the local secret (PS3.15 E.1.1 note 2 allows dummy values).
- Private attributes are removed (the Retain Safe Private Option, off by default, keeps those
  of Table E.3.10-1 with their creators). Curves (50xx) and overlays (60xx) are removed as
  whole groups: overlay data can carry burned-in text, and the Clean Graphics Option is not
  offered.
- Dates (PS3.15 E.3.6): by default the Retain Longitudinal Temporal Information with Modified
  Dates Option shifts every date of the table's temporal rows by a per-patient offset of whole
  days (times are kept, so intervals survive); ``dates="remove"`` applies the basic profile
  instead, ``dates="keep"`` the Full Dates Option. As E.1.1 note 4 suggests, any other DA/DT/TM
  attribute is treated by its VR the same way.
- UI attributes that the table does not list are replaced too, unless they name a class,
  transfer syntax or coding scheme (those are not instance identifiers); a kept one that is
  not a valid UID (PS3.5 9.1) gets a valid derived one (``dicom.uids.safe_uid``).
- Free text (E.1.1 item 2, E.3.5): a text attribute (LO, LT, ST, UT, SH, PN, UC) that the
  table does not list is removed, unless ``deid_table.KEPT_TEXT`` keeps it (codes, device
  names); the Text Value of SR/CAD SR/KOS TEXT content items, at any depth, gets a dummy. Kept
  text (and kept CS/AE values) that mentions one of the original's identifiers (a person's
  name, an ID, the birth date: ``deid_text``) gets a dummy too.
- Patient Identity Removed (0012,0062) = YES, De-identification Method (0012,0063) and its Code
  Sequence (0012,0064, CID 7050) and Longitudinal Temporal Information Modified (0028,0303)
  are added; the File Meta Information and preamble are replaced (E.1.1 item 7).

Pixel data is never touched. :func:`burned_in_risk` flags objects whose pixels may carry
identifying text (E.3.1 Clean Pixel Data is not offered), and :func:`deidentify_paths` withholds
them unless the caller accepts the risk. Output files are named by hashed new UIDs.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from desktop_app import __version__
from desktop_app.dicom.uids import safe_uid
from desktop_app.infra.atomicio import atomic_path
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import ExportError, RadAssistError
from desktop_app.infra.hashedpaths import clean_uid, instance_relpath
from desktop_app.privacy.deid_keys import DeidKeyStore
from desktop_app.privacy.deid_table import (
    BASIC_PROFILE,
    CLEANED_TEXT,
    FREE_TEXT_VRS,
    KEPT_TEXT,
    SAFE_PRIVATE,
    TEMPORAL_ATTRIBUTES,
)
from desktop_app.privacy.deid_text import identifier_pattern, mentions

log = logging.getLogger(__name__)

DateMode = Literal["shift", "remove", "keep"]

# Identifies this implementation in the File Meta Information (PS3.7 D.3.3.2): a name-based
# UUID (uuid5 of the project URL) under the 2.25 root.
IMPLEMENTATION_CLASS_UID = "2.25.131307915022012637390581450705132381701"
IMPLEMENTATION_VERSION_NAME = ("RADASSIST_" + __version__)[:16]

PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
DEIDENTIFICATION_METHOD_CODES = 0x00120064
LONGITUDINAL_TEMPORAL_MODIFIED = 0x00280303
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
TIMEZONE_OFFSET = 0x00080201

_COMBINED = {"X/Z": "Z", "X/Z/D": "Z", "X/D": "X", "Z/D": "D", "X/Z/U*": "U*"}
_DATE_VRS = ("DA", "DT", "TM")
# Kept values of these VRs are screened for the original's identifiers (deid_text).
_SCREENED_VRS = FREE_TEXT_VRS | {"CS", "AE"}
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, Any] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
}
# UI attributes whose values name a class, syntax or scheme, not an instance: kept.
_CLASS_UID_KEYWORD = re.compile(
    r"(ClassUID|TransferSyntaxUID|CodingSchemeUID|ContextGroupExtensionCreatorUID|"
    r"MappingResourceUID|ContextUID|PrivateInformationCreatorUID)$"
)
# PS3.16 CID 7050 De-identification Method (scheme DCM).
_METHOD_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "shift": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "keep": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "safe_private": ("113111", "Retain Safe Private Option"),
}
_MAX_SHIFT_DAYS = 3650
_MIN_SHIFT_DAYS = 365
# Burned-in text risk (PS3.3 C.7.6.1.1.7 Burned In Annotation; E.3.1 note 1).
_RISKY_MODALITIES = {
    "US": "ultrasound images usually carry burned-in text",
    "ES": "endoscopy images often carry burned-in text",
    "XC": "external-camera photographs can show the patient or text",
    "GM": "general microscopy images may carry labels",
    "SM": "slide images may show the slide label",
    "OT": "'other' images are often screenshots with text",
    "DOC": "documents are text",
    "CR": "radiographs often carry burned-in labels",
    "DX": "radiographs often carry burned-in labels",
    "MG": "mammograms often carry burned-in labels",
    "PX": "panoramic X-rays often carry burned-in labels",
    "IO": "intra-oral X-rays often carry burned-in labels",
    "XA": "angiography frames often carry burned-in text",
    "RF": "fluoroscopy frames often carry burned-in text",
}
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_DOCUMENT_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.104.1": "an encapsulated PDF is a document",
    "1.2.840.10008.5.1.4.1.1.104.2": "an encapsulated CDA is a document",
}
_VIDEO_PREFIXES = ("1.2.840.10008.5.1.4.1.1.77.1.1.1", "1.2.840.10008.5.1.4.1.1.77.1.2.1")


@dataclass(frozen=True)
class DeidOptions:
    """Choices for :class:`Deidentifier`; the defaults are the conservative ones."""

    dates: DateMode = "shift"
    retain_safe_private: bool = False
    allow_burned_in: bool = False

    def __post_init__(self) -> None:
        if self.dates not in ("shift", "remove", "keep"):
            raise ValueError(f"`dates` {self.dates!r} should be 'shift', 'remove' or 'keep'.")


@dataclass(frozen=True)
class BurnedInRisk:
    """Whether the pixels may carry identifying text, and why (empty when not flagged)."""

    flagged: bool
    reasons: tuple[str, ...] = ()

    def summary(self) -> str:
        return "; ".join(self.reasons)


ResultStatus = Literal["written", "withheld", "duplicate", "failed"]


@dataclass(frozen=True)
class DeidResult:
    """One input file: ``written`` (to ``output``), ``withheld`` for burned-in risk,
    ``duplicate`` (its SOP Instance UID was already written) or ``failed`` (``problem``)."""

    source: Path
    output: Path | None
    risk: BurnedInRisk
    status: ResultStatus = "written"
    problem: str = ""


@dataclass
class DeidReport:
    results: list[DeidResult] = field(default_factory=list)
    skipped_not_dicom: int = 0
    cancelled: bool = False

    def with_status(self, status: ResultStatus) -> list[DeidResult]:
        return [r for r in self.results if r.status == status]

    @property
    def written(self) -> list[DeidResult]:
        return self.with_status("written")

    @property
    def not_written(self) -> list[DeidResult]:
        """Withheld and failed files (duplicates were written once and are not counted)."""
        return [r for r in self.results if r.status in ("withheld", "failed")]


def burned_in_risk(ds: Dataset) -> BurnedInRisk:
    """Flag objects whose pixel data may show identifying text or features.

    Rules: Burned In Annotation (0028,0301) = YES; Recognizable Visual Features (0028,0302) =
    YES; documents and video; Secondary Capture SOP classes; and modalities that commonly burn
    in text (US, CR/DX/MG, XA/RF, ES, XC, OT...) unless Burned In Annotation says NO.
    """
    reasons: list[str] = []
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    visual = str(ds.get("RecognizableVisualFeatures", "") or "").strip().upper()
    sop_class = clean_uid(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if burned == "YES":
        reasons.append("Burned In Annotation (0028,0301) is YES")
    if visual == "YES":
        reasons.append("Recognizable Visual Features (0028,0302) is YES")
    if sop_class in _DOCUMENT_CLASSES:
        reasons.append(_DOCUMENT_CLASSES[sop_class])
    if sop_class.startswith(_VIDEO_PREFIXES):
        reasons.append("video frames can show the patient or text")
    if burned != "NO":
        unstated = "Burned In Annotation is not stated" if not burned else ""
        if sop_class.startswith(_SECONDARY_CAPTURE_PREFIX):
            reasons.append(
                "a Secondary Capture image (often a screenshot with text)"
                + (f"; {unstated}" if unstated else "")
            )
        elif modality in _RISKY_MODALITIES:
            reasons.append(
                f"modality {modality}: {_RISKY_MODALITIES[modality]}"
                + (f"; {unstated}" if unstated else "")
            )
    return BurnedInRisk(bool(reasons), tuple(reasons))


class Deidentifier:
    """Applies the profile to datasets; keeps UIDs, pseudonyms and date offsets consistent.

    One instance is meant for one export (or many): UIDs map through ``keys`` (secret + stored
    map), so results agree across instances and runs. Call :meth:`flush` to remember the new
    mappings (``deidentify_paths`` does).
    """

    def __init__(self, options: DeidOptions | None = None, keys: DeidKeyStore | None = None):
        self.options = options or DeidOptions()
        self.keys = keys or DeidKeyStore()
        self._map = self.keys.load_map()
        self._pending: dict[str, str] = {}

    # ------------------------------------------------------------------ identities

    def uid(self, original: object) -> str:
        """The new UID for ``original``: remembered, or HMAC(secret, uid) under 2.25."""
        key = clean_uid(original)
        if not key:
            return ""
        found = self._map.get(key)
        if found is None:
            digest = self.keys.derive("uid", key)
            found = "2.25." + str(int.from_bytes(digest[:16], "big"))
            self._map[key] = found
            self._pending[key] = found
        return found

    def flush(self) -> None:
        """Remember the mappings made since the last flush in the local store."""
        pending, self._pending = self._pending, {}
        try:
            self.keys.remember(pending)
        except BaseException:
            self._pending.update(pending)
            raise

    def patient_key(self, ds: Dataset) -> str:
        """What identifies the patient for pseudonyms and date offsets (never output)."""
        for keyword in ("PatientID", "PatientName", "StudyInstanceUID"):
            value = str(ds.get(keyword, "") or "").strip()
            if value:
                return f"{keyword}={value}"
        return "unknown"

    def pseudonym(self, ds: Dataset) -> str:
        """A stable, non-reversible stand-in for Patient ID and Name (e.g. ``RA-3F9A...``)."""
        return "RA-" + self.keys.derive("patient", self.patient_key(ds)).hex()[:12].upper()

    def date_offset(self, ds: Dataset) -> _dt.timedelta:
        """The per-patient date shift: between 1 and 10 years back, in whole days."""
        digest = self.keys.derive("dates", self.patient_key(ds))
        span = _MAX_SHIFT_DAYS - _MIN_SHIFT_DAYS + 1
        return -_dt.timedelta(days=_MIN_SHIFT_DAYS + int.from_bytes(digest[:8], "big") % span)

    # ------------------------------------------------------------------ datasets

    def deidentify(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place and return it (with new file meta)."""
        context = _Context(self.pseudonym(ds), self.date_offset(ds), identifier_pattern(ds))
        transfer_syntax = _transfer_syntax(ds)
        self._clean(ds, context, depth=0)
        self._mark(ds)
        ds.file_meta = _new_file_meta(ds, transfer_syntax)
        ds.preamble = b"\x00" * 128
        return ds

    def _clean(self, ds: Dataset, context: _Context, depth: int) -> None:
        keep_private = self._safe_private_tags(ds) if self.options.retain_safe_private else set()
        for elem in list(ds):
            tag = int(elem.tag)
            group = tag >> 16
            if group == 0x0002 or (tag & 0xFFFF) == 0:
                # File meta inside a dataset (rebuilt separately) and group lengths, which
                # would be wrong once attributes are removed (retired, PS3.5 7.2).
                del ds[tag]
                continue
            if elem.tag.is_private:
                if tag not in keep_private:
                    del ds[tag]
                continue
            if (0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E) and group % 2 == 0:
                del ds[tag]  # curves and overlays (Table E.1-1 (50xx,xxxx), (60xx,3000/4000))
                continue
            action = self._action(tag, elem)
            self._apply(ds, elem, action, context, depth)

    def _action(self, tag: int, elem: DataElement) -> str:
        if tag in TEMPORAL_ATTRIBUTES and self.options.dates != "remove":
            return "K" if self.options.dates == "keep" else "C"
        action = BASIC_PROFILE.get(tag) or CLEANED_TEXT.get(tag)
        if action is not None:
            return _COMBINED.get(action, action)
        if elem.VR in FREE_TEXT_VRS:  # E.1.1 item 2: unlisted free text may identify too
            return "K" if tag in KEPT_TEXT else "X"
        if elem.VR in _DATE_VRS:  # E.1.1 note 4: treat other dates and times by VR
            if self.options.dates == "keep":
                return "K"
            return "C" if self.options.dates == "shift" else "X"
        if elem.VR == "UI" and not _CLASS_UID_KEYWORD.search(elem.keyword or ""):
            return "U"
        return "K"

    def _apply(
        self, ds: Dataset, elem: DataElement, action: str, context: _Context, depth: int
    ) -> None:
        tag = int(elem.tag)
        if action == "X":
            del ds[tag]
        elif action == "Z":
            if tag in (PATIENT_NAME, PATIENT_ID):
                elem.value = context.pseudonym
            else:
                _empty(elem)
        elif action == "D":
            if elem.VR == "SQ":
                self._recurse(elem, context, depth)
            elif tag in (PATIENT_NAME, PATIENT_ID):
                elem.value = context.pseudonym
            else:
                _dummy(elem)
        elif action in ("U", "U*"):
            if elem.VR == "SQ":
                self._recurse(elem, context, depth)
            elif elem.VR == "UI":
                elem.value = _map_values(elem.value, self.uid)
            else:
                del ds[tag]  # a U action on a non-UID VR: nothing safe to replace with
        elif action == "C":
            if elem.VR in ("DA", "DT"):
                elem.value = _map_values(elem.value, lambda v: _shift(v, elem.VR, context.offset))
            elif tag == TIMEZONE_OFFSET:
                del ds[tag]  # could locate the site; no use once dates are shifted
            elif elem.VR == "SQ":
                self._recurse(elem, context, depth)
            # TM and other temporal values stay: the shift is by whole days
        elif elem.VR == "SQ":  # K: keep the sequence, clean its items
            self._recurse(elem, context, depth)
        elif elem.VR == "UN":
            del ds[tag]  # content unknown to the dictionary can't be checked: don't pass it on
        elif elem.VR == "UI":  # a class, syntax or scheme UID: kept, but only a valid one
            elem.value = _map_values(elem.value, safe_uid)
        elif elem.VR in _SCREENED_VRS and mentions(elem.value, context.identifiers):
            _dummy(elem)  # kept text that names the patient (or another person, an ID, a date)

    def _recurse(self, elem: DataElement, context: _Context, depth: int) -> None:
        if depth >= 32:
            raise ExportError(
                "sequences nest too deeply to de-identify safely",
                hint="the file is likely malformed",
            )
        for item in elem.value or ():
            self._clean(item, context, depth + 1)

    def _safe_private_tags(self, ds: Dataset) -> set[int]:
        """Private tags of Table E.3.10-1 present in ``ds``, and their creators' tags."""
        keep: set[int] = set()
        creators: dict[tuple[int, int], str] = {}
        for elem in ds:
            tag = int(elem.tag)
            if elem.tag.is_private and 0x0010 <= (tag & 0xFFFF) <= 0x00FF:
                creators[(tag >> 16, tag & 0xFF)] = str(elem.value).strip()
        for elem in ds:
            tag = int(elem.tag)
            if not elem.tag.is_private or (tag & 0xFFFF) < 0x1000:
                continue
            group, block, offset = tag >> 16, (tag >> 8) & 0xFF, tag & 0xFF
            creator = creators.get((group, block))
            if creator is not None and (group, creator, offset) in SAFE_PRIVATE:
                keep.add(tag)
                keep.add((group << 16) | block)
        return keep

    def _mark(self, ds: Dataset) -> None:
        """Add the attributes PS3.15 E.1.1 items 6 and E.3 require."""
        ds.add_new(PATIENT_IDENTITY_REMOVED, "CS", "YES")
        steps = ["basic"]
        if self.options.dates in ("shift", "keep"):
            steps.append(self.options.dates)
        if self.options.retain_safe_private:
            steps.append("safe_private")
        method = f"RadAssist {__version__}: PS3.15 E Basic Profile"
        ds.add_new(DEIDENTIFICATION_METHOD, "LO", method[:64])
        items = []
        for step in steps:
            value, meaning = _METHOD_CODES[step]
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
        ds.add_new(DEIDENTIFICATION_METHOD_CODES, "SQ", DicomSequence(items))
        temporal = {"shift": "MODIFIED", "keep": "UNMODIFIED", "remove": "REMOVED"}
        ds.add_new(LONGITUDINAL_TEMPORAL_MODIFIED, "CS", temporal[self.options.dates])


@dataclass(frozen=True)
class _Context:
    pseudonym: str
    offset: _dt.timedelta
    identifiers: re.Pattern[str] | None = None


def _map_values(value: Any, fn: Callable[[str], str]) -> Any:
    if value is None or value == "":
        return value
    if isinstance(value, bytes):
        return fn(value.decode("ascii", "replace"))
    if isinstance(value, list | tuple | MultiValue):
        return [fn(str(v)) for v in value]
    return fn(str(value))  # str, or a valuerep.DA/DT/TM that a builder (highdicom) stored


def _empty(elem: DataElement) -> None:
    if elem.VR == "SQ":
        elem.value = DicomSequence()
    elif elem.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        elem.value = b""
    elif isinstance(elem.value, str | bytes) or elem.VR in _TEXT_VRS:
        elem.value = ""
    else:
        elem.value = None


_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC"}
_TEXT_VRS |= {"UI", "UR", "UT"}


def _dummy(elem: DataElement) -> None:
    vr = elem.VR
    if vr in _DUMMY_BY_VR:
        elem.value = _DUMMY_BY_VR[vr]
    elif vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        length = len(elem.value or b"") or 2
        elem.value = b"\x00" * (length + length % 2)
    else:
        elem.value = _DUMMY_TEXT


def _shift(value: str, vr: str, offset: _dt.timedelta) -> str:
    """Shift a DA or DT value (PS3.5 6.2) by whole days; unparseable values become empty."""
    text = value.strip()
    if not text:
        return text
    if "-" in text and vr == "DA":  # a range (query syntax): shift both ends
        return "-".join(_shift(part, vr, offset) if part else "" for part in text.split("-"))
    digits = text.replace(".", "") if vr == "DA" and len(text) == 10 else text
    head = digits[:8]
    with contextlib.suppress(ValueError, OverflowError):
        if len(head) == 8 and head.isdigit():
            day = _dt.date(int(head[:4]), int(head[4:6]), int(head[6:8])) + offset
            return day.strftime("%Y%m%d") + digits[8:]
        if vr == "DT" and len(head) in (4, 6) and head.isdigit():
            month = int(head[4:6]) if len(head) == 6 else 1
            day = _dt.date(int(head[:4]), month, 15) + offset
            return day.strftime("%Y%m")[: len(head)]
    return ""  # not a date we can shift: remove its value rather than leak it


def _transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return UID(clean_uid(ts))
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit is False:
        return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian
    return ImplicitVRLittleEndian


def _new_file_meta(ds: Dataset, transfer_syntax: UID) -> FileMetaDataset:
    """PS3.10 7.1 File Meta Information describing this de-identifier (E.1.1 item 7)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(clean_uid(ds.get("SOPClassUID", "")))
    meta.MediaStorageSOPInstanceUID = UID(clean_uid(ds.get("SOPInstanceUID", "")))
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


# ---------------------------------------------------------------------- files and folders


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files given, and files under folders given (recursively, sorted, no symlinked dirs)."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name
        else:
            yield p


def check_output_folder(out_dir: Path, keys: DeidKeyStore | None = None) -> None:
    """Refuse an output folder inside the data folder or the key store, where the secret and
    the UID mapping live: shared exports must never carry them."""
    from desktop_app.infra.userdirs import data_dir

    out = out_dir.resolve()
    private = [data_dir().resolve()]
    if keys is not None:
        private.append(keys.root.resolve())
    for folder in private:
        if out == folder or folder in out.parents:
            raise ExportError(
                "the output folder is inside RadAssist's data folder, which holds the "
                "de-identification secret and UID mapping",
                out_dir,
                "choose a folder outside it",
            )


def deidentify_file(
    source: str | Path, out_dir: str | Path, deidentifier: Deidentifier
) -> DeidResult:
    """De-identify one file into ``out_dir/<h(study)>/<h(series)>/<h(sop)>.dcm`` (atomic).

    Returns a result with ``output=None`` when the file is withheld for burned-in risk;
    raises the project's errors when it can't be read or written.
    """
    return _deidentify_one(Path(source), Path(out_dir), deidentifier, None)


def _deidentify_one(
    src: Path, out_dir: Path, deidentifier: Deidentifier, seen: dict[Path, Path] | None
) -> DeidResult:
    from desktop_app.dicom.dicomfile import read_dataset

    ds = read_dataset(src)
    risk = burned_in_risk(ds)
    if risk.flagged and not deidentifier.options.allow_burned_in:
        return DeidResult(src, None, risk, "withheld", "burned-in annotation risk")
    if not clean_uid(ds.get("SOPInstanceUID", "")):
        raise ExportError(
            "has no SOP Instance UID (0008,0018); it can't be exported as a DICOM object",
            src,
            "check that it is a DICOM image or document",
        )
    deidentifier.deidentify(ds)
    rel = instance_relpath(
        ds.get("StudyInstanceUID", "unknown"),
        ds.get("SeriesInstanceUID", "unknown"),
        ds.SOPInstanceUID,
    )
    target = out_dir.joinpath(*rel.parts)
    if seen is not None:
        first = seen.get(target)
        if first is not None:
            return DeidResult(src, None, risk, "duplicate", f"same SOP Instance UID as {first}")
    try:
        with atomic_path(target) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise ExportError(
            f"can't write the de-identified copy: {' '.join(str(err).split())[:200]}",
            src,
            "check the output folder",
        ) from None
    if seen is not None:
        seen[target] = src
    return DeidResult(src, target, risk)


def deidentify_paths(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    options: DeidOptions | None = None,
    *,
    keys: DeidKeyStore | None = None,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> DeidReport:
    """De-identify every DICOM file in ``paths`` (files or folders) into ``out_dir``.

    Non-DICOM files are skipped and counted. A file that fails, or is withheld for burned-in
    risk, is reported and the rest go on. Two inputs with the same SOP Instance UID are the
    same object: the first is written, the second reported. New UID mappings are remembered
    locally even when the run is cancelled or fails half-way.
    """
    from desktop_app.dicom.dicomfile import sniff_dicom

    out = Path(out_dir)
    deidentifier = Deidentifier(options, keys)
    check_output_folder(out, deidentifier.keys)
    files = list(iter_files(paths))
    report = DeidReport()
    seen: dict[Path, Path] = {}
    total = len(files)
    try:
        for i, path in enumerate(files):
            if stop_requested(stop):
                report.cancelled = True
                break
            if not sniff_dicom(path):
                report.skipped_not_dicom += 1
            else:
                report.results.append(_one(path, out, deidentifier, seen))
            if progress is not None:
                progress(i + 1, total)
    finally:
        deidentifier.flush()
    log.info(
        "de-identified %d of %d files (%d withheld or failed, %d not DICOM)",
        len(report.written),
        total,
        len(report.not_written),
        report.skipped_not_dicom,
    )
    return report


def _one(path: Path, out: Path, deidentifier: Deidentifier, seen: dict[Path, Path]) -> DeidResult:
    try:
        return _deidentify_one(path, out, deidentifier, seen)
    except RadAssistError as err:
        return DeidResult(path, None, BurnedInRisk(False), "failed", err.reason)
