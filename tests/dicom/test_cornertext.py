"""The viewer's corner lines from a header, and hiding the identifiers."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from desktop_app.dicom.cornertext import HIDDEN_NOTE, ImageLabels, format_da, format_pn


def header(**values: object) -> Dataset:
    ds = Dataset()
    ds.PatientName = "DOE^JANE^Q"
    ds.PatientID = "MRN123"
    ds.PatientBirthDate = "19700102"
    ds.PatientSex = "F"
    ds.AccessionNumber = "ACC9"
    ds.StudyDate = "20240301"
    ds.StudyDescription = "CT CHEST"
    ds.SeriesNumber = 3
    ds.SeriesDescription = "AXIAL 1.25"
    for key, value in values.items():
        setattr(ds, key, value)
    return ds


@pytest.mark.parametrize(
    ("value", "shown"),
    [("DOE^JANE^Q", "DOE, JANE Q"), ("DOE", "DOE"), ("^JANE", "JANE"), ("", ""),
     ("YAMADA^TARO=山田^太郎", "YAMADA, TARO")],
)  # fmt: skip
def test_person_names(value: str, shown: str) -> None:
    assert format_pn(value) == shown


def test_dates() -> None:
    assert format_da("20240301") == "2024-03-01"
    assert format_da("2024") == "2024"


def test_lines_with_and_without_identifiers() -> None:
    labels = ImageLabels.from_header(header())
    assert labels.patient_lines() == [
        "DOE, JANE Q",
        "ID MRN123 · born 1970-01-02 · F",
        "2024-03-01 · CT CHEST",
        "Acc ACC9",
    ]
    hidden = labels.patient_lines(hide_identifiers=True)
    assert hidden == [f"{HIDDEN_NOTE} · F", "2024-03-01 · CT CHEST"]
    assert not any(v in line for line in hidden for v in ("DOE", "MRN123", "1970", "ACC9"))
    assert labels.series_line() == "Se 3 · AXIAL 1.25"
    assert "DOE" not in repr(labels) and "MRN123" not in repr(labels)


def test_missing_values_leave_no_empty_lines() -> None:
    labels = ImageLabels.from_header(Dataset())
    assert labels.patient_lines() == []
    assert labels.series_line("from the index") == "from the index"
    assert labels.patient_orientation is None


def test_patient_orientation_of_a_radiograph() -> None:
    ds = header(PatientOrientation=["L", "F"])
    assert ImageLabels.from_header(ds).patient_orientation == ("L", "F")
