"""The identifiers a dataset names (people, IDs, birth date) and the screen of kept text for them.

The profile keeps a few text attributes (``deid_table.KEPT_TEXT``: code meanings, device
names...). A person can still type a name, a record number or a birth date into them, or a
hostile file can put one there. Before cleaning, :func:`identifier_pattern` collects what
identifies someone in the original dataset: the components of every Person Name (PN) at any
depth, the values of the identifying attributes (IDs, accession and order numbers, addresses,
telephone numbers) and the patient's birth date in the usual spellings. :func:`mentions` tells
whether a kept value contains any of them; the de-identifier then replaces the whole value.
Names match as whole words (so "Li" does not hit "Linear"); IDs and dates match anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

# Identifying attributes whose whole value is an identifier (PS3.15 Table E.1-1 rows whose
# values are numbers, addresses or IDs rather than names).
_ID_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "AccessionNumber",
    "AdmissionID",
    "MedicalRecordLocator",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "InsurancePlanIdentification",
    "ServiceEpisodeID",
    "RequestedProcedureID",
    "PerformedProcedureStepID",
    "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest",
    "StudyID",
    "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID",
)
_MIN_NAME = 2
_MIN_ID = 3
_MAX_TOKENS = 512
_MAX_TOKEN_LENGTH = 64
_MAX_DEPTH = 64
_NAME_SPLIT = re.compile(r"[\^=\s,.]+")


def identifier_pattern(ds: Dataset) -> re.Pattern[str] | None:
    """One case-insensitive pattern for the identifiers that ``ds`` names, or None."""
    names: set[str] = set()
    ids: set[str] = set()
    for item in _items(ds):
        for elem in item:
            if elem.VR == "PN":
                for value in _strings(elem.value):
                    names.update(p for p in _NAME_SPLIT.split(value) if len(p) >= _MIN_NAME)
            elif elem.keyword in _ID_KEYWORDS:
                ids.update(v.strip() for v in _strings(elem.value) if len(v.strip()) >= _MIN_ID)
            elif elem.keyword == "PatientBirthDate":
                for value in _strings(elem.value):
                    ids.update(date_spellings(value))
    names = {n[:_MAX_TOKEN_LENGTH] for n in names}
    ids = {i[:_MAX_TOKEN_LENGTH] for i in ids}
    if not names and not ids:
        return None
    parts = []
    if names:
        words = sorted(names, key=len, reverse=True)[:_MAX_TOKENS]
        parts.append(r"(?<![^\W_])(?:" + "|".join(map(re.escape, words)) + r")(?![^\W_])")
    if ids:
        parts.append("|".join(map(re.escape, sorted(ids, key=len, reverse=True)[:_MAX_TOKENS])))
    return re.compile("|".join(parts), re.IGNORECASE)


def date_spellings(value: str) -> set[str]:
    """A DA value (YYYYMMDD) and the ways people write it: 1970-03-14, 14.03.1970,
    14/03/1970, 03/14/1970, 1970/03/14."""
    text = value.strip()
    if len(text) != 8 or not text.isdigit():
        return {text} if len(text) >= _MIN_ID else set()
    y, m, d = text[:4], text[4:6], text[6:]
    return {text, f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{y}/{m}/{d}"}


def mentions(value: object, pattern: re.Pattern[str] | None) -> bool:
    """Whether a text value (or any of its values) contains an identifier of ``pattern``."""
    if pattern is None:
        return False
    return any(pattern.search(v) for v in _strings(value))


def _strings(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | MultiValue | tuple):
        return [str(v) for v in value if v is not None]
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    return [str(value)]


def _items(ds: Dataset) -> Iterator[Dataset]:
    """``ds`` and every sequence item below it, without recursion (depth-capped: the
    de-identifier refuses deeper nesting anyway)."""
    stack = [(ds, 0)]
    while stack:
        item, depth = stack.pop()
        yield item
        if depth >= _MAX_DEPTH:
            continue
        for elem in item:
            if elem.VR == "SQ":
                stack.extend((child, depth + 1) for child in elem.value or ())
