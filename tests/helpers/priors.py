"""Two synthetic CT studies of one patient on different dates (a current and its prior), and a
third patient's older study that must never be taken for the prior."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from desktop_app.phantoms.dicomwrite import StudyIds
from desktop_app.phantoms.studies import CtSeries, write_ct_series

PATIENT = 7
OTHER_PATIENT = 8


@dataclass(frozen=True)
class PriorPair:
    current: CtSeries  # 2.5 mm slices
    prior: CtSeries  # 5 mm slices over the same span: positions match every second slice
    other_patient: CtSeries


def study_date(seed: int, patient: int = PATIENT) -> str:
    return StudyIds.for_patient(patient, ("ct", seed)).study_date


def write_prior_pair(root: Path, *, rows: int = 64, slices: int = 16) -> PriorPair:
    """Seeds 1 (2022-03-09) and 2 (2021-01-31) of patient 7, and seed 5 of patient 8 (2020)."""
    assert study_date(2) < study_date(1)
    current = write_ct_series(root / "current", 1, slices=slices, rows=rows,
                              slice_thickness_mm=2.5, patient_number=PATIENT)  # fmt: skip
    prior = write_ct_series(root / "prior", 2, slices=slices // 2, rows=rows,
                            slice_thickness_mm=5.0, patient_number=PATIENT)  # fmt: skip
    other = write_ct_series(root / "other", 5, slices=slices, rows=rows,
                            patient_number=OTHER_PATIENT)  # fmt: skip
    return PriorPair(current, prior, other)
