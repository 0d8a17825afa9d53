"""The DICOM Structured Report of an export: a TID 1500 Measurement Report in a Comprehensive
SR (PS3.3 A.35.3), built through highdicom's template classes so that their checks run.

Structure (PS3.16 TID 1500 "Measurement Report", DCM 126000 "Imaging Measurement Report"):

- Language of content (TID 1204), observation context (TID 1001): the person observer is
  the reader who gave the verdicts (TID 1003; one per reader when several did), when the
  review names one (left out of de-identified exports); the device observer is RadAssist with
  the model's name and version (TID 1004).
- Procedure reported: LOINC "CT/MRI/XR unspecified body region" by modality (CID 100).
- Image library (TID 1600): the images the findings are on.
- Imaging measurements: one measurement group per finding (one label on one stack):
  - located findings (a box or an outline): TID 1410 "Planar ROI Measurements and Qualitative
    Evaluations", whose region is a closed POLYLINE SCOORD (PS3.3 C.18.6.1.2: image-relative
    pixel coordinates, the top-left corner of the top-left pixel at 0,0) on the referenced
    SOP instance and frame; geometric purpose DCM 111041 "Outline";
  - the others: TID 1501 "Measurements and Qualitative Evaluations";
  - tracking identifier (TID 4108), finding type (the label: SNOMED CT where one fits, else a
    local code), algorithm identification (TID 4019: the model's name, version, and parameters
    ``tensor_sha256=…``, ``device=…``, ``backend=…``);
  - measurements (TID 300): DCM 122157 "Probability" (referencing the image it is the maximum
    on) and DCM 122411 "Threshold Value" (the threshold the model's decision was made at: the
    one in force when the reader gave the verdict, so a threshold moved later never changes a
    recorded decision), both unitless (UCUM "1");
  - qualitative evaluations, the model's and the reader's kept apart: "Model decision at
    operating threshold" = DCM 121053 Present / 121054 Absent; "Reader's assessment" = DCM
    121053 Present / 121054 Absent / SCT 82334004 Indeterminate (uncertain) / local "Not
    reviewed"; "Agreement with model decision" = true/false positive/negative (derived from
    the two, only for present/absent); the reader's reason for disagreeing; and the region's
    source. Concept names and values without a standard code are local codes (scheme
    ``99RADASSIST``, declared in the Coding Scheme Identification Sequence, PS3.3
    C.12.1.1.3);
  - the region: the reader's box when there is one (edited, or drawn for a finding the model
    missed, on the image it was drawn on: such a finding has no model region), else the
    model's outline or box while the model calls the label positive (a negative has none);
  - the reader's note as a TEXT item DCM 121106 "Comment" (TID 1501/1410 allow text
    qualitative evaluations; highdicom builds only coded ones, so it is added after
    construction). De-identified exports leave notes out: free text may name the patient.
  - applicability (issue 13): for a run outside the model's intended input (run anyway) a
    coded evaluation "Input applicability" = "Outside the model's intended input (run anyway)";
    for a stack out of distribution "Input distribution" = "Out of distribution - finding
    unreliable", with the image's "Out-of-distribution score" and the model's threshold as
    unitless measurements (local codes);
- the reader's annotations (ROIs with their statistics, angles, arrows, key-image flags):
  one group each after the findings (``sr_annotations``);
- Qualitative evaluations of the report (TID 1500 row 12, UMLS C0034375): the research-use
  disclaimer as TEXT, and one TEXT line per flagged stack saying why (out of scope with the
  reason; out of distribution with the score and the threshold).

The document references every image of the analysed series in the Current Requested Procedure
Evidence Sequence (PS3.3 C.17.2.3), lives in the source study, in a new series, and is
PRELIMINARY and UNVERIFIED (research software cannot verify a report, PS3.3 C.17.2.1).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    ComprehensiveSR,
    ContainerContentItem,
    ContentSequence,
    DeviceObserverIdentifyingAttributes,
    GraphicTypeValues,
    ImageRegion,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PersonObserverIdentifyingAttributes,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    RelationshipTypeValues,
    SourceImageForMeasurement,
    SourceImageForRegion,
    TextContentItem,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from desktop_app import __version__
from desktop_app.exports.content import (
    DISCLAIMER,
    ExportFinding,
    ModelSummary,
    applicability_lines,
)
from desktop_app.exports.sr_annotations import annotation_groups
from desktop_app.infra.errors import ExportError
from desktop_app.review.annotations import Annotation
from desktop_app.review.state import (
    ABSENT,
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    PENDING,
    PRESENT,
    TRUE_NEGATIVE,
    TRUE_POSITIVE,
    UNCERTAIN,
)

log = logging.getLogger(__name__)

LOCAL_SCHEME = "99RADASSIST"
"""Local coding scheme for concepts no standard code fits (PS3.16 8.2: "99" prefix)."""

SR_SERIES_NUMBER = 9001
SR_SERIES_DESCRIPTION = "RadAssist AI findings - research use only"
MANUFACTURER = "RadAssist (open source, research use only)"

UNITLESS = CodedConcept("1", "UCUM", "no units")
QUALITATIVE_EVALUATIONS = CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")


def _local(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value, LOCAL_SCHEME, meaning)


DECISION = _local("RA-DECISION", "Model decision at operating threshold")
READER_ASSESSMENT = _local("RA-READER", "Reader's assessment")
READER_VALUES = {
    PRESENT: CodedConcept.from_code(codes.DCM.Present),
    ABSENT: CodedConcept.from_code(codes.DCM.Absent),
    UNCERTAIN: CodedConcept.from_code(codes.SCT.Indeterminate),
    PENDING: _local("RA-PENDING", "Not reviewed"),
}
AGREEMENT = _local("RA-AGREEMENT", "Agreement with model decision")
AGREEMENT_VALUES = {
    TRUE_POSITIVE: _local("RA-TP", "True positive"),
    FALSE_POSITIVE: _local("RA-FP", "False positive"),
    TRUE_NEGATIVE: _local("RA-TN", "True negative"),
    FALSE_NEGATIVE: _local("RA-FN", "False negative"),
}
REASON = _local("RA-REASON", "Reason for disagreement")
REASON_VALUES = {
    "fp_artefact": _local("RA-FP-ARTEFACT", "False positive - artefact"),
    "fp_normal_anatomy": _local("RA-FP-ANATOMY", "False positive - normal anatomy"),
    "wrong_location": _local("RA-WRONG-LOC", "Wrong location"),
    "duplicate": _local("RA-DUPLICATE", "Duplicate"),
    "fn_subtle": _local("RA-FN-SUBTLE", "Missed - subtle finding"),
    "fn_small": _local("RA-FN-SMALL", "Missed - small finding"),
    "fn_obscured": _local("RA-FN-OBSCURED", "Missed - hidden by overlapping structures"),
    "fn_image_quality": _local("RA-FN-QUALITY", "Missed - image quality"),
    "other": _local("RA-OTHER", "Other"),
}
REGION_SOURCE = _local("RA-REGION", "Region source")
REGION_VALUES = {
    "outline": _local("RA-MODEL-OUTLINE", "Model heatmap region outline"),
    "box": _local("RA-MODEL-BOX", "Model heatmap region box"),
    "edited": _local("RA-READER-BOX", "Box edited by reader"),
    "added": _local("RA-READER-ADDED", "Box drawn by reader (finding added by reader)"),
}
NOTICE = _local("RA-NOTICE", "Research use notice")
APPLICABILITY = _local("RA-INPUT", "Input applicability")
OUT_OF_SCOPE = _local("RA-OUT-OF-SCOPE", "Outside the model's intended input (run anyway)")
DISTRIBUTION = _local("RA-DISTRIBUTION", "Input distribution")
OUT_OF_DISTRIBUTION = _local("RA-OOD", "Out of distribution - finding unreliable")
OOD_SCORE = _local("RA-OOD-SCORE", "Out-of-distribution score")
OOD_THRESHOLD = _local("RA-OOD-THRESHOLD", "Out-of-distribution threshold")
INPUT_WARNING = _local("RA-INPUT-WARNING", "Input warning")

# Labels of the demo models with a SNOMED CT concept; any other label gets a local code.
LABEL_CODES: dict[str, CodedConcept] = {
    "nodule": CodedConcept.from_code(codes.SCT.Nodule),
    "effusion": CodedConcept.from_code(codes.SCT.PleuralEffusion),
    "pleural effusion": CodedConcept.from_code(codes.SCT.PleuralEffusion),
    "cardiomegaly": CodedConcept.from_code(codes.SCT.Cardiomegaly),
}


def label_code(label: str) -> CodedConcept:
    """The finding-type code of a model label: SNOMED CT for the known ones, else a local
    code (value at most 16 characters, PS3.5 SH)."""
    known = LABEL_CODES.get(label.strip().lower())
    if known is not None:
        return known
    value = label if len(label) <= 16 else label[:11] + "~" + _digest(label)[:4]
    return _local(value, label)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def procedure_code(modality: str) -> CodedConcept:
    """CID 100 "Quantitative Diagnostic Imaging Procedures" by modality (LOINC)."""
    m = modality.upper()
    if m == "CT":
        return CodedConcept.from_code(codes.LN.CTUnspecifiedBodyRegion)
    if m == "MR":
        return CodedConcept.from_code(codes.LN.MRIUnspecifiedBodyRegion)
    return CodedConcept.from_code(codes.LN.XRUnspecifiedBodyRegion)


def device_observer_uid(model: ModelSummary) -> str:
    """A stable UID for "RadAssist running this model" (2.25 + a name-based UUID, PS3.5 B.2)."""
    name = f"radassist:{model.name}:{model.version}:{model.tensor_sha256}"
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, name).int)


def person_name(text: str) -> str:
    """A free-text name as a PN value: kept when it has components (``^``), else the whole
    text as the family name component (``"Jane Doe^"``, PS3.5 6.2.1)."""
    text = " ".join(text.split())[:64]
    return text if "^" in text else f"{text}^"


def algorithm_id(model: ModelSummary) -> AlgorithmIdentification:
    """TID 4019: the model's name and version; the tensor hash, device and backend as
    parameters (the hash identifies the exact weights)."""
    params = [f"tensor_sha256={model.tensor_sha256 or 'unknown'}", f"device={model.device_text}"]
    if model.backend:
        params.append(f"backend={model.backend}")
    if model.architecture:
        params.append(f"architecture={model.architecture}")
    return AlgorithmIdentification(
        name=model.name or "unknown model",
        version=model.version or "unknown",
        parameters=params,
        manufacturer="RadAssist",
    )


@dataclass(frozen=True)
class SrInputs:
    """What :func:`build_sr` needs besides the findings.

    ``evidence``: the exported headers of every source image the SR references (same study;
    the first one gives the patient and study modules); ``image_of``: per finding id, the
    (SOP Class UID, exported SOP Instance UID, frame number or None for single-frame) of the
    image the finding is on; ``region_of``: the same for the image of the finding's region
    when that is another one (the reader drew the box elsewhere); ``library``: exported
    headers of those images (TID 1600); ``reviewers``: the readers who gave the verdicts (the
    person observers; empty in a de-identified export).
    """

    evidence: Sequence[Dataset]
    image_of: dict[str, tuple[str, str, int | None]]
    library: Sequence[Dataset]
    modality: str
    reviewers: Sequence[str] = ()
    region_of: dict[str, tuple[str, str, int | None]] = field(default_factory=dict)
    include_notes: bool = True
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    # the reader's annotations (``sr_annotations``): the image of each by annotation id, and
    # the modality of each annotation's series by series UID (the statistics' concept and unit)
    annotations: Sequence[Annotation] = ()
    annotation_image_of: dict[str, tuple[str, str, int | None]] = field(default_factory=dict)
    modality_of: dict[str, str] = field(default_factory=dict)


def build_sr(
    findings: Sequence[ExportFinding], model: ModelSummary, inputs: SrInputs
) -> ComprehensiveSR:
    """The TID 1500 Comprehensive SR for ``findings`` (see the module docstring)."""
    if not findings:
        raise ExportError(
            "there are no findings to put in a structured report",
            hint="run the model on the study first",
        )
    if not inputs.evidence:
        raise ExportError("the structured report has no source images to reference")
    algo = algorithm_id(model)
    report = MeasurementReport(
        observation_context=_observation_context(model, inputs.reviewers),
        procedure_reported=procedure_code(inputs.modality),
        imaging_measurements=[_group(f, model, algo, inputs) for f in findings]
        + annotation_groups(
            inputs.annotations,
            inputs.annotation_image_of,
            inputs.modality_of,
            include_text=inputs.include_notes,
        ),
        referenced_images=list(inputs.library) or None,
    )
    report[0].ContentSequence.append(_notice(applicability_lines(findings)))
    complete = all(f.decided for f in findings)
    sr = _document(report[0], inputs, complete)
    _declare_local_scheme(sr)
    copy_deidentification(sr, inputs.evidence[0])
    return sr


def _observation_context(model: ModelSummary, reviewers: Sequence[str]) -> ObservationContext:
    """TID 1001: the readers who gave the verdicts as person observers (TID 1002/1003, which
    TID 1001 allows more than once), then RadAssist running the model as the device observer
    (TID 1004)."""
    persons = [
        ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=PersonObserverIdentifyingAttributes(
                name=person_name(name)
            ),
        )
        for name in dict.fromkeys(n for n in reviewers if n.strip())
    ]
    device = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=device_observer_uid(model),
            name="RadAssist",
            manufacturer_name="RadAssist",
            model_name=f"{model.name} {model.version}".strip()[:64],
        ),
    )
    context = ObservationContext(observer_person_context=persons[0] if persons else None)
    for person in persons[1:]:
        context.extend(person)
    context.extend(device)
    return context


def _notice(warnings: Sequence[str] = ()) -> ContainerContentItem:
    """The report's qualitative evaluations (TID 1500 row 12): the disclaimer as TEXT, and
    one TEXT line per stack outside the intended input or out of distribution."""
    notice = ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=RelationshipTypeValues.CONTAINS
    )
    items = [
        TextContentItem(
            name=NOTICE, value=DISCLAIMER, relationship_type=RelationshipTypeValues.CONTAINS
        )
    ]
    items += [
        TextContentItem(
            name=INPUT_WARNING,
            value=line[:1024],
            relationship_type=RelationshipTypeValues.CONTAINS,
        )
        for line in warnings
    ]
    notice.ContentSequence = ContentSequence(items)
    return notice


def _applicability(
    f: ExportFinding,
) -> tuple[list[QualitativeEvaluation], list[Measurement]]:
    """The finding's out-of-scope and out-of-distribution evaluations, and its image's OOD
    score with the model's threshold (when the stack is out of distribution)."""
    evaluations = []
    measurements = []
    if f.out_of_scope:
        evaluations.append(QualitativeEvaluation(APPLICABILITY, OUT_OF_SCOPE))
    if f.out_of_distribution and f.input_check is not None:
        evaluations.append(QualitativeEvaluation(DISTRIBUTION, OUT_OF_DISTRIBUTION))
        score = f.ood_score if f.ood_score is not None else f.input_check.ood_score
        if score is not None and np.isfinite(score):
            measurements.append(Measurement(name=OOD_SCORE, value=float(score), unit=UNITLESS))
        if f.input_check.ood_threshold is not None:
            threshold = float(f.input_check.ood_threshold)
            measurements.append(Measurement(name=OOD_THRESHOLD, value=threshold, unit=UNITLESS))
    return evaluations, measurements


def _document(content: Dataset, inputs: SrInputs, complete: bool) -> ComprehensiveSR:
    """The Comprehensive SR document around ``content``, in a new series of the source study."""
    first, names = placeholder_names(inputs.evidence[0])
    try:
        sr = ComprehensiveSR(
            evidence=[first, *inputs.evidence[1:]],
            content=content,
            series_instance_uid=inputs.series_instance_uid or generate_uid(),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=inputs.sop_instance_uid or generate_uid(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=complete,
            is_final=False,
            is_verified=False,
            series_description=SR_SERIES_DESCRIPTION,
            software_versions=f"RadAssist {__version__}",
            specific_character_set="ISO_IR 192",
            record_evidence=True,
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise build_failed("structured report", err) from None
    restore_names(sr, names)
    return sr


def _group(
    f: ExportFinding,
    model: ModelSummary,
    algo: AlgorithmIdentification,
    inputs: SrInputs,
) -> PlanarROIMeasurementsAndQualitativeEvaluations | MeasurementsAndQualitativeEvaluations:
    """One finding's measurement group (see the module docstring)."""
    sop_class, sop_uid, frame = inputs.image_of[f.finding_id]
    frames = [frame] if frame is not None else None
    source = SourceImageForMeasurement(sop_class, sop_uid, referenced_frame_numbers=frames)
    measurements = [
        Measurement(
            name=codes.DCM.Probability,
            value=float(f.probability),
            unit=UNITLESS,
            algorithm_id=algo,
            referenced_images=[source],
        ),
        Measurement(name=codes.DCM.ThresholdValue, value=float(f.threshold), unit=UNITLESS),
    ]
    evaluations = _evaluations(f)
    flagged, ood_measurements = _applicability(f)
    evaluations += flagged
    measurements += ood_measurements
    tracking = TrackingIdentifier(
        uid=generate_uid(),
        identifier=f"{f.label} (slice {f.region_slice_index + 1})",
    )
    region = f.region()
    group: PlanarROIMeasurementsAndQualitativeEvaluations | MeasurementsAndQualitativeEvaluations
    if region is not None:
        kind, points = region
        evaluations.append(QualitativeEvaluation(REGION_SOURCE, REGION_VALUES[kind]))
        r_class, r_uid, r_frame = inputs.region_of.get(f.finding_id, (sop_class, sop_uid, frame))
        image_region = ImageRegion(
            graphic_type=GraphicTypeValues.POLYLINE,
            graphic_data=np.asarray(points, dtype=np.float64),
            source_image=SourceImageForRegion(
                r_class, r_uid, referenced_frame_numbers=[r_frame] if r_frame is not None else None
            ),
        )
        group = PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_region=image_region,
            finding_type=label_code(f.label),
            algorithm_id=algo,
            measurements=measurements,
            qualitative_evaluations=evaluations,
            geometric_purpose=codes.DCM.Outline,
        )
    else:
        group = MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            finding_type=label_code(f.label),
            algorithm_id=algo,
            measurements=measurements,
            qualitative_evaluations=evaluations,
        )
    note = " ".join(f.note.split()) if inputs.include_notes else ""
    if note:
        group[0].ContentSequence.append(
            TextContentItem(
                name=codes.DCM.Comment,
                value=note,
                relationship_type=RelationshipTypeValues.CONTAINS,
            )
        )
    return group


def _evaluations(f: ExportFinding) -> list[QualitativeEvaluation]:
    """The model's decision (at the threshold of the verdict), the reader's assessment, their
    agreement and the reader's reason for disagreeing: separate coded items."""
    decision = codes.DCM.Present if f.positive else codes.DCM.Absent
    evaluations = [
        QualitativeEvaluation(DECISION, CodedConcept.from_code(decision)),
        QualitativeEvaluation(
            READER_ASSESSMENT, READER_VALUES.get(f.truth, READER_VALUES[PENDING])
        ),
    ]
    tag = f.agreement
    if tag is not None:
        evaluations.append(QualitativeEvaluation(AGREEMENT, AGREEMENT_VALUES[tag]))
    if f.decided and f.reason in REASON_VALUES:
        evaluations.append(QualitativeEvaluation(REASON, REASON_VALUES[f.reason]))
    return evaluations


def _declare_local_scheme(ds: Dataset) -> None:
    """Coding Scheme Identification Sequence (0008,0110) for the local scheme (PS3.3
    C.12.1.1.3: required for a designator that is not in PS3.16 Table 8-1)."""
    item = Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "RadAssist local codes"
    item.CodingSchemeResponsibleOrganization = "RadAssist project"
    ds.CodingSchemeIdentificationSequence = [item]


_PERSON_KEYWORDS = ("PatientName", "ReferringPhysicianName")
_DEID_KEYWORDS = (
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)


def placeholder_names(ds: Dataset) -> tuple[Dataset, dict[str, Any]]:
    """A copy of ``ds`` whose person names highdicom accepts, and the real values for
    :func:`restore_names`: highdicom refuses person names without a component separator, and
    the de-identification pseudonym has none."""
    ref = copy.deepcopy(ds)
    names = {k: ref.get(k, "") for k in _PERSON_KEYWORDS}
    for keyword in _PERSON_KEYWORDS:
        setattr(ref, keyword, "RADASSIST^PLACEHOLDER")
    return ref, names


def restore_names(ds: Dataset, names: dict[str, Any]) -> None:
    """Put back the person names that :func:`placeholder_names` replaced, exactly."""
    for keyword, value in names.items():
        setattr(ds, keyword, value)


def build_failed(what: str, err: Exception) -> ExportError:
    """highdicom's refusal to build ``what`` as one line."""
    return ExportError(f"the {what} could not be built: {' '.join(str(err).split())[:200]}")


def copy_deidentification(target: Dataset, source: Dataset) -> None:
    """A new object made from de-identified data says so too (PS3.15 E.1.1 item 6): copy the
    de-identification attributes of its source."""
    for keyword in _DEID_KEYWORDS:
        if keyword in source:
            target[keyword] = copy.deepcopy(source[keyword])
