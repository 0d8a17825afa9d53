"""What the viewer's corner text says of an image's header: patient, study and series lines,
and Patient Orientation, with the identifiers hidden on request (screenshots, teaching).

Identifiers are Patient's Name (0010,0010), Patient ID (0010,0020), Patient's Birth Date
(0010,0030) and Accession Number (0008,0050): ``hide_identifiers`` leaves them out. The values
are for display only: never log them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from desktop_app.dicom import dsvalues
from desktop_app.dicom.orientation import patient_orientation_letters

HIDDEN_NOTE = "identifiers hidden"


def format_da(value: str) -> str:
    """A DA value (YYYYMMDD, PS3.5 6.2) as YYYY-MM-DD; anything else as stored."""
    value = (value or "").strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def format_pn(value: str) -> str:
    """A PN value (family^given^middle^prefix^suffix, PS3.5 6.2.1) as "FAMILY, Given Middle";
    only the first (alphabetic) group is shown."""
    first = (value or "").split("=")[0]
    parts = [p.strip() for p in first.split("^")]
    family, rest = parts[0], " ".join(p for p in parts[1:] if p)
    return f"{family}, {rest}" if family and rest else family or rest


@dataclass(frozen=True)
class ImageLabels:
    """The header values the corner text shows (names, IDs and dates as stored, formatted)."""

    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    accession: str = ""
    study_date: str = ""
    study_description: str = ""
    series_number: int | None = None
    series_description: str = ""
    patient_orientation: tuple[str, str] | None = None

    def __repr__(self) -> str:  # a repr may reach a log: no identifiers in it
        return f"ImageLabels(series {self.series_number}, {self.series_description!r})"

    @classmethod
    def from_header(cls, ds: Dataset) -> ImageLabels:
        return cls(
            patient_name=format_pn(dsvalues.text(ds, "PatientName")),
            patient_id=dsvalues.text(ds, "PatientID"),
            birth_date=format_da(dsvalues.text(ds, "PatientBirthDate")),
            sex=dsvalues.text(ds, "PatientSex"),
            accession=dsvalues.text(ds, "AccessionNumber"),
            study_date=format_da(dsvalues.text(ds, "StudyDate")),
            study_description=dsvalues.text(ds, "StudyDescription"),
            series_number=dsvalues.first_int(ds, "SeriesNumber"),
            series_description=dsvalues.text(ds, "SeriesDescription"),
            patient_orientation=patient_orientation_letters(
                dsvalues.texts(ds, "PatientOrientation")
            ),
        )

    def patient_lines(self, *, hide_identifiers: bool = False) -> list[str]:
        """Top-left lines: name; ID, birth date and sex; study date and description; the
        accession number. Hidden identifiers leave a note in their place."""
        study = " · ".join(v for v in (self.study_date, self.study_description) if v)
        if hide_identifiers:
            note = f"{HIDDEN_NOTE} · {self.sex}" if self.sex else HIDDEN_NOTE
            return [line for line in (note, study) if line]
        who = " · ".join(
            v
            for v in (
                f"ID {self.patient_id}" if self.patient_id else "",
                f"born {self.birth_date}" if self.birth_date else "",
                self.sex,
            )
            if v
        )
        accession = f"Acc {self.accession}" if self.accession else ""
        return [line for line in (self.patient_name, who, study, accession) if line]

    def series_line(self, fallback: str = "") -> str:
        """ "Se 2 · CHEST CT" (the series number and description; ``fallback`` without one)."""
        description = self.series_description or fallback
        if self.series_number is None:
            return description
        return f"Se {self.series_number}" + (f" · {description}" if description else "")
