"""The query/retrieve dialog's Qt-free logic: matching keys, dates, names, rows, progress."""

from __future__ import annotations

import datetime as dt

import pytest

from desktop_app.infra.errors import PacsError
from desktop_app.pacs.dimse import FindMatch
from desktop_app.pacs.query import (
    RetrievePlan,
    StudyQuery,
    date_range,
    display_date,
    person_name,
    preset_range,
    study_rows,
)

D = dt.date


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (StudyQuery(), {}),
        (StudyQuery(patient_name=" doe "), {"PatientName": "doe*"}),
        (StudyQuery(patient_name="DOE^J?HN"), {"PatientName": "DOE^J?HN"}),
        (StudyQuery(patient_id=" 123 ", accession="A9"), {"PatientID": "123", "AccessionNumber": "A9"}),
        (StudyQuery(modality="ct"), {"ModalitiesInStudy": "CT"}),
        (StudyQuery(date_from=D(2024, 1, 2), date_to=D(2024, 2, 3)), {"StudyDate": "20240102-20240203"}),
    ],
)  # fmt: skip
def test_filters(query: StudyQuery, expected: dict[str, str]) -> None:
    assert query.filters() == expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, ""),
        (D(2024, 5, 1), D(2024, 5, 1), "20240501"),
        (D(2024, 5, 1), None, "20240501-"),
        (None, D(2024, 5, 1), "-20240501"),
    ],
)
def test_date_range(start: dt.date | None, end: dt.date | None, expected: str) -> None:
    assert date_range(start, end) == expected


def test_backwards_date_range_is_refused() -> None:
    with pytest.raises(PacsError, match=r"^the date range starts after it ends \(2024-05-02 >"):
        date_range(D(2024, 5, 2), D(2024, 5, 1))


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("any", (None, None)),
        ("today", (D(2024, 3, 10), D(2024, 3, 10))),
        ("yesterday", (D(2024, 3, 9), D(2024, 3, 9))),
        ("last7", (D(2024, 3, 4), D(2024, 3, 10))),
        ("last30", (D(2024, 2, 10), D(2024, 3, 10))),
    ],
)
def test_preset_range(preset: str, expected: tuple[dt.date | None, dt.date | None]) -> None:
    assert preset_range(preset, D(2024, 3, 10)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DOE^JOHN^Q", "DOE, JOHN Q"),
        ("DOE", "DOE"),
        ("^Anon", "Anon"),
        ("Yamada^Tarou=山田^太郎", "Yamada, Tarou"),
        ("", ""),
    ],
)
def test_person_name(value: str, expected: str) -> None:
    assert person_name(value) == expected


@pytest.mark.parametrize(("value", "expected"), [("20240131", "2024-01-31"), ("2024", "2024")])
def test_display_date(value: str, expected: str) -> None:
    assert display_date(value) == expected


def test_study_rows_keep_one_row_per_study_and_numeric_counts() -> None:
    values = {
        "StudyInstanceUID": "1.2.3",
        "PatientName": "A^B",
        "ModalitiesInStudy": "CT\\MR",
        "NumberOfStudyRelatedSeries": "3",
        "NumberOfStudyRelatedInstances": "",
    }
    matches = [
        FindMatch("STUDY", values),
        FindMatch("STUDY", dict(values, PatientName="dup")),
        FindMatch("STUDY", {"PatientName": "no uid"}),
    ]
    [row] = study_rows(matches)
    assert (row.patient, row.modality, row.n_series, row.n_instances) == ("A, B", "CT, MR", 3, None)
    assert row.cells()[-2:] == (3, None)


def test_retrieve_plan_sums_progress_over_studies() -> None:
    plan = RetrievePlan([4, None])
    assert plan.update(0, 1, 4) == (1, 5)  # the unknown study counts as one until it reports
    assert plan.finish(0, 4) == (4, 5)
    assert plan.update(1, 2, 6) == (6, 10)
    assert plan.finish(1, 6) == (10, 10)
