"""The query/retrieve dialog's logic, without Qt: a study query form to C-FIND matching keys,
and C-FIND matches to result rows.

Matching follows PS3.4 C.2.2.2: a Patient's Name without a wildcard becomes a prefix match
(``DOE`` -> ``DOE*``, wild card matching C.2.2.2.4), a date range is ``YYYYMMDD-YYYYMMDD``
(range matching C.2.2.2.5), and an empty field is universal matching (C.2.2.2.3), so it is
left out. The values shown come from the PACS; none of them is logged or used in a path.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from desktop_app.infra.errors import PacsError
from desktop_app.pacs.dimse import FindMatch

STUDY_COLUMNS = (
    "Patient",
    "Patient ID",
    "Date",
    "Modality",
    "Description",
    "Accession",
    "Series",
    "Instances",
)


@dataclass(frozen=True)
class StudyQuery:
    """What the user typed in the query form; empty means "any"."""

    patient_name: str = ""
    patient_id: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    modality: str = ""
    accession: str = ""

    def filters(self) -> dict[str, str]:
        """The study-level matching keys (keyword -> value) for ``PacsClient.find``."""
        out: dict[str, str] = {}
        name = self.patient_name.strip()
        if name:
            out["PatientName"] = name if any(c in name for c in "*?") else f"{name}*"
        if self.patient_id.strip():
            out["PatientID"] = self.patient_id.strip()
        dates = date_range(self.date_from, self.date_to)
        if dates:
            out["StudyDate"] = dates
        if self.modality.strip():
            out["ModalitiesInStudy"] = self.modality.strip().upper()
        if self.accession.strip():
            out["AccessionNumber"] = self.accession.strip()
        return out


def date_range(start: dt.date | None, end: dt.date | None) -> str:
    """A DA range (PS3.4 C.2.2.2.5.1): ``A-B``, ``A-`` (from), ``-B`` (until), ``A`` (one day)."""
    if start is not None and end is not None and start > end:
        raise PacsError(
            f"the date range starts after it ends ({start:%Y-%m-%d} > {end:%Y-%m-%d})",
            hint="swap the dates",
        )
    a = f"{start:%Y%m%d}" if start is not None else ""
    b = f"{end:%Y%m%d}" if end is not None else ""
    if a and a == b:
        return a
    return f"{a}-{b}" if (a or b) else ""


def preset_range(preset: str, today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """The dates of a named range: any, today, yesterday, last7, last30."""
    if preset == "today":
        return today, today
    if preset == "yesterday":
        day = today - dt.timedelta(days=1)
        return day, day
    if preset == "last7":
        return today - dt.timedelta(days=6), today
    if preset == "last30":
        return today - dt.timedelta(days=29), today
    return None, None


def person_name(value: str) -> str:
    """A PN for display (PS3.5 6.2.1): ``FAMILY^Given^Middle`` -> ``FAMILY, Given Middle``;
    only the alphabetic group (before any ``=``) is shown."""
    alphabetic = value.split("=", 1)[0]
    parts = [p.strip() for p in alphabetic.split("^")]
    family = parts[0] if parts else ""
    rest = " ".join(p for p in parts[1:3] if p)
    if family and rest:
        return f"{family}, {rest}"
    return family or rest


def display_date(value: str) -> str:
    """``YYYYMMDD`` -> ``YYYY-MM-DD`` (sorts the same); anything else is shown as it came."""
    text = value.strip()
    if len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


def _count(value: str) -> int | None:
    text = value.strip()
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class StudyRow:
    """One study-level match, ready for the results table."""

    study_uid: str
    patient: str
    patient_id: str
    date: str
    modality: str
    description: str
    accession: str
    n_series: int | None
    n_instances: int | None

    @classmethod
    def from_match(cls, match: FindMatch) -> StudyRow:
        return cls(
            study_uid=match.get("StudyInstanceUID"),
            patient=person_name(match.get("PatientName")),
            patient_id=match.get("PatientID"),
            date=display_date(match.get("StudyDate")),
            modality=", ".join(m for m in match.get("ModalitiesInStudy").split("\\") if m),
            description=match.get("StudyDescription"),
            accession=match.get("AccessionNumber"),
            n_series=_count(match.get("NumberOfStudyRelatedSeries")),
            n_instances=_count(match.get("NumberOfStudyRelatedInstances")),
        )

    def cells(self) -> tuple[str | int | None, ...]:
        """Values in :data:`STUDY_COLUMNS` order (counts as numbers, so they sort as numbers)."""
        return (
            self.patient,
            self.patient_id,
            self.date,
            self.modality,
            self.description,
            self.accession,
            self.n_series,
            self.n_instances,
        )


def study_rows(matches: list[FindMatch]) -> list[StudyRow]:
    """Rows for the matches that carry a Study Instance UID (one per study)."""
    seen: dict[str, StudyRow] = {}
    for match in matches:
        row = StudyRow.from_match(match)
        if row.study_uid and row.study_uid not in seen:
            seen[row.study_uid] = row
    return list(seen.values())


class RetrievePlan:
    """Overall ``(done, total)`` across several studies, each reporting its own progress.

    ``expected`` holds each study's instance count from the C-FIND (None when the PACS did
    not give one); a study's own reported total replaces its estimate once it is known.
    """

    def __init__(self, expected: list[int | None]) -> None:
        self.expected = [e if e is not None and e > 0 else 1 for e in expected]
        self.done = [0] * len(expected)
        self.current = 0

    def update(self, index: int, done: int, total: int) -> tuple[int, int]:
        self.current = index
        if total > 0:
            self.expected[index] = total
        self.done[index] = done
        return sum(self.done), sum(self.expected)

    def finish(self, index: int, stored: int) -> tuple[int, int]:
        self.expected[index] = max(stored, 1) if stored else self.expected[index]
        self.done[index] = self.expected[index]
        return sum(self.done), sum(self.expected)
