"""Reviewed lesions as DICOM: the SEG of the kept lesions and the TID 1500 SR of their measurements.

What is kept (PS3.3 does not say; a reader expects what they signed off): lesions the reader
accepted and lesions the reader drew; rejected and still pending model lesions are left out.

- SEG (:func:`build_lesion_seg`, through ``seg.build_segmentation``): one segment per kept
  lesion, numbered 1..n in lesion-id order and labelled ``"L<id> <label>"`` (so the SR can point
  at each lesion, as OHIF and Slicer show one row per segment), every source image referenced.
  Segment Algorithm Type (PS3.3 C.8.20.2.3): AUTOMATIC for a model lesion accepted as it was,
  SEMIAUTOMATIC for one the reader edited, MANUAL for one the reader drew. Series Description
  says it was reviewed.
- SR (:func:`build_lesion_sr`): a Comprehensive 3D SR (PS3.3 A.35.13) holding a TID 1500
  Measurement Report with one TID 1411 "Volumetric ROI Measurements and Qualitative
  Evaluations" group per kept lesion: tracking identifier and a stable tracking UID (TID 4108),
  the Referenced Segment (the SEG's SOP Instance UID and the lesion's segment number, with the
  segment's source images), finding category and type (SCT 49755003 / the label's code, e.g.
  SCT 27925004 "Nodule" with finding site SCT 39607008 "Lung"), the model as algorithm for a
  model lesion (TID 4019), and TID 300 measurements: SCT 118565006 Volume (mm3), SCT 103339001
  Long axis (mm: the longest axial diameter), DCM 112031 Attenuation Coefficient with
  derivation SCT 373098007 Mean / SCT 56851009 Maximum (Hounsfield unit) on CT (plain SCT Mean
  / Maximum, no units, elsewhere), and DCM 122157 Probability (the model's confidence). The
  reader's assessment and how the outline was made are coded qualitative evaluations (local
  codes from ``sr``). Observers: the reviewers as persons (none when de-identified), RadAssist
  with the model as the device (TID 1001).

Inputs are plain (:class:`LesionRecord`, a label volume in the headers' order) so the functions
serve the review's lesions (``ReviewState.lesions_for``) and any other caller alike.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from desktop_app import __version__
from desktop_app.exports.content import ModelSummary
from desktop_app.exports.seg import SegmentSpec, SegRequest, build_segmentation
from desktop_app.exports.sr import (
    LOCAL_SCHEME,
    MANUFACTURER,
    READER_ASSESSMENT,
    READER_VALUES,
    REGION_SOURCE,
    UNITLESS,
    _declare_local_scheme,
    _local,
    _notice,
    _observation_context,
    algorithm_id,
    build_failed,
    copy_deidentification,
    label_code,
    placeholder_names,
    procedure_code,
    restore_names,
)
from desktop_app.infra.errors import ExportError

log = logging.getLogger(__name__)

LESION_SEG_SERIES_NUMBER = 9004
LESION_SR_SERIES_NUMBER = 9005
LESION_SEG_SERIES_DESCRIPTION = "RadAssist reviewed lesions - research use only"
LESION_SR_SERIES_DESCRIPTION = "RadAssist lesion measurements - research use only"

ACCEPTED, REJECTED, PENDING = "accepted", "rejected", "pending"
MODEL, READER = "model", "reader"

OUTLINE_VALUES = {
    "AUTOMATIC": _local("RA-SEG-MODEL", "Model segmentation accepted by reader"),
    "SEMIAUTOMATIC": _local("RA-SEG-EDITED", "Model segmentation edited by reader"),
    "MANUAL": _local("RA-SEG-READER", "Segmentation drawn by reader"),
}
_SITE_OF = {"nodule": codes.SCT.Lung}
_CATEGORY = ("49755003", "SCT", "Morphologically abnormal structure")


@dataclass(frozen=True)
class LesionRecord:
    """One reviewed lesion (the fields of ``review.lesionreview.LesionReview`` an export
    needs): ``lesion_id`` is its value in the label volume; ``slices`` (first, last) 0-based in
    stack order; ``edited``: the reader changed a model lesion's outline."""

    lesion_id: int
    label: str = "nodule"
    source: str = MODEL
    verdict: str = PENDING
    reason: str | None = None
    volume_mm3: float | None = None
    longest_diameter_mm: float | None = None
    mean_value: float | None = None
    max_value: float | None = None
    slices: tuple[int, int] = (0, 0)
    confidence: float | None = None
    reviewer: str | None = None
    edited: bool = False

    @property
    def kept(self) -> bool:
        """Accepted by the reader, or drawn by the reader and not rejected."""
        return self.verdict == ACCEPTED or (self.source == READER and self.verdict != REJECTED)

    @property
    def algorithm_type(self) -> str:
        if self.source == READER:
            return "MANUAL"
        return "SEMIAUTOMATIC" if self.edited else "AUTOMATIC"

    @property
    def name(self) -> str:
        """``"L2 nodule"``: the segment label and the lesion's name in every output."""
        return f"L{self.lesion_id} {self.label}".strip()

    @classmethod
    def from_review(cls, lesion: Any, edited: Collection[int] = ()) -> LesionRecord:
        """The record of a ``LesionReview`` (read by attribute, so any object with its
        fields serves); ``edited``: ids of model lesions whose outline the reader changed."""
        lesion_id = int(lesion.lesion_id)
        first, last = (int(v) for v in lesion.slices)
        return cls(
            lesion_id=lesion_id,
            label=str(lesion.label),
            source=str(lesion.source),
            verdict=str(lesion.verdict),
            reason=lesion.reason,
            volume_mm3=_float(lesion.volume_mm3),
            longest_diameter_mm=_float(lesion.longest_diameter_mm),
            mean_value=_float(lesion.mean_value),
            max_value=_float(lesion.max_value),
            slices=(first, last),
            confidence=_float(lesion.confidence),
            reviewer=lesion.reviewer,
            edited=bool(getattr(lesion, "edited", False)) or lesion_id in set(edited),
        )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def kept_lesions(lesions: Iterable[LesionRecord]) -> list[LesionRecord]:
    """The lesions an export writes (:attr:`LesionRecord.kept`), by lesion id."""
    return sorted((r for r in lesions if r.kept), key=lambda r: r.lesion_id)


def edited_lesions(reviewed: np.ndarray, model_mask: np.ndarray | None) -> set[int]:
    """Ids whose voxels differ between the reviewed label volume and the model's mask (both
    (slices, rows, cols) lesion ids): the model lesions the reader edited."""
    if model_mask is None or model_mask.shape != reviewed.shape:
        return set()
    changed = reviewed != model_mask
    ids = np.union1d(np.unique(reviewed[changed]), np.unique(model_mask[changed]))
    return {int(i) for i in ids if i}


def lesion_text(r: LesionRecord) -> str:
    """``accepted; 12.3 mm, 456 mm³, slices 3-7``: a lesion in one line (1-based slices)."""
    parts = [{MODEL: r.verdict, READER: "drawn by the reader"}.get(r.source, r.verdict)]
    if r.edited and r.source == MODEL:
        parts[0] += ", outline edited"
    size = []
    if r.longest_diameter_mm is not None:
        size.append(f"{r.longest_diameter_mm:.1f} mm")
    if r.volume_mm3 is not None:
        size.append(f"{r.volume_mm3:.0f} mm³")
    size.append(f"slices {r.slices[0] + 1}-{r.slices[1] + 1}")
    return f"{parts[0]}; {', '.join(size)}"


@dataclass(frozen=True)
class ReviewedLesions:
    """The reviewed lesions of one stack: ``series_key`` (``"<Series Instance UID>#<part>"``),
    ``labels`` the (slices, rows, cols) lesion ids in the stack's order (``series.assemble``,
    the viewer's and the engine's), every lesion's record (kept or not), and the unit of their
    mean/max values (``"HU"`` on CT; "" when unknown: the modality decides)."""

    series_key: str
    labels: np.ndarray = field(repr=False)
    lesions: tuple[LesionRecord, ...]
    unit: str = ""

    @property
    def series_uid(self) -> str:
        return self.series_key.rpartition("#")[0] if "#" in self.series_key else self.series_key

    @property
    def part(self) -> int:
        tail = self.series_key.rpartition("#")[2] if "#" in self.series_key else ""
        return int(tail) if tail.isdigit() else 1

    @property
    def kept(self) -> list[LesionRecord]:
        return kept_lesions(self.lesions)


def review_lesions(review: Any, results: Sequence[Any] = ()) -> list[ReviewedLesions]:
    """The reviewed lesions of every stack of ``review`` (a ``ReviewState`` with the lesion
    review API: ``lesions_for``/``reviewed_labels``; [] for one without it): edited model
    lesions are found by comparing with the engine's mask in ``results`` when given."""
    lesions_for = getattr(review, "lesions_for", None)
    reviewed_labels = getattr(review, "reviewed_labels", None)
    if lesions_for is None or reviewed_labels is None:
        return []
    masks = {f"{r.series_instance_uid}#{r.part}": r.mask for r in results if r.mask is not None}
    sets = getattr(review, "lesion_sets", None) or {}
    keys = [*sets, *(f.series_key for f in review.findings), *masks]
    out = []
    for key in dict.fromkeys(keys):
        reviews = lesions_for(key)
        labels = reviewed_labels(key) if reviews else None
        if labels is None:
            continue
        edited = edited_lesions(labels, masks.get(key))
        records = tuple(LesionRecord.from_review(r, edited) for r in reviews)
        unit = str(getattr(sets.get(key), "value_unit", "") or "")
        out.append(ReviewedLesions(key, np.asarray(labels), records, unit))
    return out


def lesions_line(series: Sequence[ReviewedLesions]) -> str:
    """What an export with the SR writes of the reviewed lesions, in one line for the export
    dialog ("" when there are none): ``"Reviewed lesions: 3 of 4 in 1 series go out as a DICOM
    SEG + SR of their measurements (2 accepted, 1 drawn by the reader; 1 rejected or not
    reviewed, left out)"``."""
    every = [r for s in series for r in s.lesions]
    if not every:
        return ""
    kept = [r for r in every if r.kept]
    if not kept:
        return (
            f"Reviewed lesions: none of {len(every)} accepted or drawn, so no DICOM SEG "
            "(accept or draw a lesion first)"
        )
    drawn = sum(1 for r in kept if r.source == READER)
    parts = [f"{len(kept) - drawn} accepted"] if len(kept) > drawn else []
    parts += [f"{drawn} drawn by the reader"] if drawn else []
    left = len(every) - len(kept)
    detail = ", ".join(parts) + (f"; {left} rejected or not reviewed, left out" if left else "")
    stacks = sum(1 for s in series if s.kept)
    what = "a DICOM SEG + SR" if stacks == 1 else f"{stacks} DICOM SEGs + SRs"
    return (
        f"Reviewed lesions: {len(kept)} of {len(every)} in {len(series)} series go out as "
        f"{what} of their measurements ({detail})"
    )


@dataclass(frozen=True)
class LesionSeg:
    """A built SEG: the dataset, the lesions it holds and each one's segment number."""

    dataset: Dataset = field(repr=False)
    lesions: tuple[LesionRecord, ...]
    segment_of: dict[int, int]
    empty: tuple[int, ...] = ()  # kept lesions with no voxel left (not written)


def build_lesion_seg(
    headers: Sequence[Dataset],
    labels: np.ndarray,
    lesions: Sequence[LesionRecord],
    model: ModelSummary | None,
    *,
    series_instance_uid: str = "",
    sop_instance_uid: str = "",
) -> LesionSeg:
    """The SEG of the kept ``lesions`` over ``headers`` (the series' exported headers in the
    order of ``labels``, a (slices, rows, cols) volume of lesion ids); voxels of other ids
    (rejected, pending) are dropped. Raises ExportError when no kept lesion has a voxel."""
    volume = np.asarray(labels)
    if volume.ndim != 3 or not np.issubdtype(volume.dtype, np.integer):
        raise ExportError(
            f"a lesion label volume of shape {volume.shape} ({volume.dtype}) is not "
            "(slices, rows, cols) integers",
            hint="pass the review's label volume of the series",
        )
    present = {int(i) for i in np.unique(volume) if i}
    kept = kept_lesions(lesions)
    empty = tuple(r.lesion_id for r in kept if r.lesion_id not in present)
    kept = [r for r in kept if r.lesion_id in present]
    if not kept:
        raise ExportError(
            "no accepted or reader-drawn lesion to put in a segmentation",
            hint="accept the lesions to export (or draw them) first",
        )
    lut = np.zeros(int(volume.max()) + 1, dtype=np.uint16)
    segment_of = {}
    for number, r in enumerate(kept, start=1):
        lut[r.lesion_id] = number
        segment_of[r.lesion_id] = number
    segments = [
        SegmentSpec(
            label=r.name,
            property_type=_triple(label_code(r.label)),
            category=_CATEGORY,
            algorithm_type=r.algorithm_type,
            description=lesion_text(r),
        )
        for r in kept
    ]
    request = SegRequest(
        labels=lut[volume],
        segments=segments,
        model=model if any(r.source != READER for r in kept) else None,
        series_instance_uid=series_instance_uid or generate_uid(),
        sop_instance_uid=sop_instance_uid or generate_uid(),
        series_number=LESION_SEG_SERIES_NUMBER,
        series_description=LESION_SEG_SERIES_DESCRIPTION,
    )
    seg = build_segmentation(headers, request)
    if any(s.property_type[1] == LOCAL_SCHEME for s in segments):
        _declare_local_scheme(seg)
    log.info("reviewed lesion SEG: %d lesion(s), %d left out empty", len(kept), len(empty))
    return LesionSeg(seg, tuple(kept), segment_of, empty)


def _triple(code: Any) -> tuple[str, str, str]:
    return (str(code.value), str(code.scheme_designator), str(code.meaning))


def tracking_uid(study_uid: str, series_uid: str, lesion_id: int) -> str:
    """A stable Tracking UID (TID 4108) for a lesion of a series: the same lesion gets the same
    UID in every export (2.25 + a name-based UUID, PS3.5 B.2)."""
    name = f"radassist-lesion:{study_uid}:{series_uid}:{lesion_id}"
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, name).int)


def _measurements(r: LesionRecord, modality: str) -> list[Any]:
    from highdicom.sr import CodedConcept, Measurement

    out = []
    if r.volume_mm3 is not None:
        out.append(Measurement(codes.SCT.Volume, r.volume_mm3, codes.UCUM.CubicMillimeter))
    if r.longest_diameter_mm is not None:
        out.append(Measurement(codes.SCT.LongAxis, r.longest_diameter_mm, codes.UCUM.Millimeter))
    hu = modality.upper() == "CT"
    for value, derivation in ((r.mean_value, codes.SCT.Mean), (r.max_value, codes.SCT.Maximum)):
        if value is None:
            continue
        if hu:
            out.append(
                Measurement(
                    codes.DCM.AttenuationCoefficient,
                    value,
                    codes.UCUM.HounsfieldUnit,
                    derivation=CodedConcept.from_code(derivation),
                )
            )
        else:
            out.append(Measurement(derivation, value, UNITLESS))
    if r.confidence is not None and r.source == MODEL:
        out.append(Measurement(codes.DCM.Probability, r.confidence, UNITLESS))
    return out


def _group(
    r: LesionRecord, seg: LesionSeg, study_uid: str, modality: str, model: ModelSummary
) -> Any:
    from highdicom.sr import (
        CodedConcept,
        FindingSite,
        QualitativeEvaluation,
        ReferencedSegment,
        TrackingIdentifier,
        VolumetricROIMeasurementsAndQualitativeEvaluations,
    )

    site = _SITE_OF.get(r.label.strip().lower())
    return VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=tracking_uid(study_uid, str(seg.dataset.SeriesInstanceUID), r.lesion_id),
            identifier=f"Lesion {r.name}",
        ),
        referenced_segment=ReferencedSegment.from_segmentation(
            seg.dataset, seg.segment_of[r.lesion_id]
        ),
        finding_type=label_code(r.label),
        finding_category=CodedConcept(*_CATEGORY),
        finding_sites=None if site is None else [FindingSite(site)],
        algorithm_id=None if r.source == READER else algorithm_id(model),
        measurements=_measurements(r, modality),
        qualitative_evaluations=[
            QualitativeEvaluation(READER_ASSESSMENT, READER_VALUES["present"]),
            QualitativeEvaluation(REGION_SOURCE, OUTLINE_VALUES[r.algorithm_type]),
        ],
    )


def build_lesion_sr(
    evidence: Sequence[Dataset],
    seg: LesionSeg,
    model: ModelSummary,
    *,
    modality: str = "CT",
    reviewers: Sequence[str] = (),
    series_instance_uid: str = "",
    sop_instance_uid: str = "",
) -> Dataset:
    """The Comprehensive 3D SR of ``seg``'s lesions (see the module docstring): ``evidence``
    are the exported headers of the segmented series (the first gives the patient and study);
    ``reviewers`` become person observers (pass none when de-identifying)."""
    import highdicom as hd

    if not evidence:
        raise ExportError("the lesion report has no source images to reference")
    study_uid = str(evidence[0].StudyInstanceUID)
    try:
        report = hd.sr.MeasurementReport(
            observation_context=_observation_context(model, reviewers),
            procedure_reported=procedure_code(modality),
            imaging_measurements=[_group(r, seg, study_uid, modality, model) for r in seg.lesions],
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise build_failed("lesion report", err) from None
    report[0].ContentSequence.append(_notice())
    first, names = placeholder_names(evidence[0])
    try:
        sr = hd.sr.Comprehensive3DSR(
            evidence=[first, *evidence[1:], seg.dataset],
            content=report[0],
            series_instance_uid=series_instance_uid or generate_uid(),
            series_number=LESION_SR_SERIES_NUMBER,
            sop_instance_uid=sop_instance_uid or generate_uid(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            is_verified=False,
            series_description=LESION_SR_SERIES_DESCRIPTION,
            software_versions=f"RadAssist {__version__}",
            specific_character_set="ISO_IR 192",
            record_evidence=True,
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise build_failed("lesion report", err) from None
    restore_names(sr, names)
    _declare_local_scheme(sr)
    copy_deidentification(sr, evidence[0])
    log.info("lesion SR built: %d measurement group(s)", len(seg.lesions))
    return sr


__all__ = [
    "LESION_SEG_SERIES_DESCRIPTION",
    "LESION_SR_SERIES_DESCRIPTION",
    "LesionRecord",
    "LesionSeg",
    "ReviewedLesions",
    "build_lesion_seg",
    "build_lesion_sr",
    "edited_lesions",
    "kept_lesions",
    "lesion_text",
    "lesions_line",
    "review_lesions",
    "tracking_uid",
]
