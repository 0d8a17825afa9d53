"""The reader's annotations as TID 1500 measurement groups, built through highdicom (Qt-free).

One group per annotation, after the model's findings in the report's Imaging Measurements
(PS3.16 TID 1500 row 6):

- ellipse / rectangle ROI: TID 1410 "Planar ROI Measurements and Qualitative Evaluations"
  whose region is an SCOORD ELLIPSE (the major axis's ends, then the minor axis's) or a closed
  POLYLINE on the referenced image and frame (PS3.3 C.18.6.1.2); measurements (TID 300): SCT
  42798000 "Area" (UCUM ``mm2`` from Pixel Spacing, else ``{px2}``), and the modality values'
  mean, standard deviation, minimum and maximum as one concept with its derivation (CID 7464:
  SCT Mean / Standard Deviation / Minimum / Maximum). The concept is DCM 112031 "Attenuation
  Coefficient" in UCUM ``[hnsf'U]`` on CT, DCM 110852 "MR signal intensity" on MR and a local
  "Pixel value" elsewhere (both unitless, UCUM ``1``);
- angle: TID 1501 with SCT 1483009 "Angle" in UCUM ``deg``, inferred from an open SCOORD
  POLYLINE of its three points (TID 300 row 12, ``CoordinatesForMeasurement``);
- arrow: TID 1410 whose region is an SCOORD POINT at the arrow's tip, geometric purpose DCM
  111010 "Center";
- key-image flag: TID 1501 with finding type DCM 121180 "Key Images" and the image as the
  group's source image.

The tracking identifier says which ("Reader ellipse ROI 1"); the reader's text is a TEXT item
DCM 121106 "Comment" (added after construction, as the findings' notes; left out of
de-identified exports). The reader is the document's person observer (TID 1002), so the groups
carry no algorithm identification.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from highdicom.sr import (
    CodedConcept,
    CoordinatesForMeasurement,
    GraphicTypeValues,
    ImageRegion,
    Measurement,
    MeasurementsAndQualitativeEvaluations,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    RelationshipTypeValues,
    SourceImageForMeasurementGroup,
    SourceImageForRegion,
    TextContentItem,
    TrackingIdentifier,
)
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from desktop_app.review.annotations import (
    ANGLE,
    ARROW,
    ELLIPSE,
    KEY_IMAGE,
    RECTANGLE,
    Annotation,
    ellipse_axes,
    rectangle_polyline,
)

ImageRef = tuple[str, str, int | None]  # SOP Class UID, SOP Instance UID, frame number or None

LOCAL_SCHEME = "99RADASSIST"
PIXEL_VALUE = CodedConcept("RA-PIXEL-VALUE", LOCAL_SCHEME, "Pixel value")
SQUARE_PIXELS = CodedConcept("{px2}", "UCUM", "square pixels")
UNITLESS = CodedConcept("1", "UCUM", "no units")
NAMES = {
    ELLIPSE: "Reader ellipse ROI",
    RECTANGLE: "Reader rectangle ROI",
    ANGLE: "Reader angle",
    ARROW: "Reader arrow",
    KEY_IMAGE: "Reader key image",
}


def value_concept(modality: str) -> tuple[CodedConcept, CodedConcept]:
    """The concept and unit of an ROI's statistics on ``modality``."""
    m = modality.upper()
    if m == "CT":
        return (
            CodedConcept.from_code(codes.DCM.AttenuationCoefficient),
            CodedConcept.from_code(codes.UCUM.HounsfieldUnit),
        )
    if m == "MR":
        return CodedConcept.from_code(codes.DCM.MRSignalIntensity), UNITLESS
    return PIXEL_VALUE, UNITLESS


def annotation_groups(
    annotations: Sequence[Annotation],
    image_of: dict[str, ImageRef],
    modality_of: dict[str, str],
    include_text: bool = True,
) -> list[PlanarROIMeasurementsAndQualitativeEvaluations | MeasurementsAndQualitativeEvaluations]:
    """One measurement group per annotation whose image is in ``image_of`` (by annotation id);
    ``modality_of``: the modality of each annotation's series (by series UID)."""
    groups: list[
        PlanarROIMeasurementsAndQualitativeEvaluations | MeasurementsAndQualitativeEvaluations
    ] = []
    counts: dict[str, int] = {}
    for a in annotations:
        ref = image_of.get(a.id)
        if ref is None:
            continue
        counts[a.kind] = counts.get(a.kind, 0) + 1
        tracking = TrackingIdentifier(
            uid=generate_uid(), identifier=f"{NAMES[a.kind]} {counts[a.kind]}"
        )
        group = _group(a, ref, tracking, modality_of.get(a.series_uid, ""))
        text = " ".join(a.text.split()) if include_text else ""
        if text:
            group[0].ContentSequence.append(
                TextContentItem(
                    name=codes.DCM.Comment,
                    value=text[:1024],
                    relationship_type=RelationshipTypeValues.CONTAINS,
                )
            )
        groups.append(group)
    return groups


def _region_source(ref: ImageRef) -> SourceImageForRegion:
    sop_class, sop_uid, frame = ref
    return SourceImageForRegion(
        sop_class, sop_uid, referenced_frame_numbers=[frame] if frame is not None else None
    )


def _group(
    a: Annotation, ref: ImageRef, tracking: TrackingIdentifier, modality: str
) -> PlanarROIMeasurementsAndQualitativeEvaluations | MeasurementsAndQualitativeEvaluations:
    if a.kind in (ELLIPSE, RECTANGLE):
        shape = ellipse_axes(a.points) if a.kind == ELLIPSE else rectangle_polyline(a.points)
        region = ImageRegion(
            graphic_type=GraphicTypeValues.ELLIPSE
            if a.kind == ELLIPSE
            else GraphicTypeValues.POLYLINE,
            graphic_data=np.asarray(shape, dtype=np.float64),
            source_image=_region_source(ref),
        )
        return PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_region=region,
            measurements=_roi_measurements(a, modality),
            geometric_purpose=codes.DCM.Outline,
        )
    if a.kind == ARROW:
        region = ImageRegion(
            graphic_type=GraphicTypeValues.POINT,
            graphic_data=np.asarray([a.points[0]], dtype=np.float64),
            source_image=_region_source(ref),
        )
        return PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_region=region,
            geometric_purpose=codes.DCM.Center,
        )
    sop_class, sop_uid, frame = ref
    source = SourceImageForMeasurementGroup(
        sop_class, sop_uid, referenced_frame_numbers=[frame] if frame is not None else None
    )
    if a.kind == ANGLE:
        angle = Measurement(
            name=codes.SCT.Angle,
            value=float(a.angle if a.angle is not None else 0.0),
            unit=codes.UCUM.Degree,
            referenced_coordinates=[
                CoordinatesForMeasurement(
                    graphic_type=GraphicTypeValues.POLYLINE,
                    graphic_data=np.asarray(a.points, dtype=np.float64),
                    source_image=_region_source(ref),
                )
            ],
        )
        return MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, measurements=[angle], source_images=[source]
        )
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=codes.DCM.KeyImages,
        source_images=[source],
    )


def _roi_measurements(a: Annotation, modality: str) -> list[Measurement]:
    stats = a.stats
    if stats is None:
        return []
    area_unit = CodedConcept.from_code(codes.UCUM.SquareMillimeter)
    out = [
        Measurement(
            name=codes.SCT.Area,
            value=float(stats.area),
            unit=area_unit if stats.area_unit == "mm2" else SQUARE_PIXELS,
        )
    ]
    name, unit = value_concept(modality)
    for derivation, value in (
        (codes.SCT.Mean, stats.mean),
        (codes.SCT.StandardDeviation, stats.sd),
        (codes.SCT.Minimum, stats.minimum),
        (codes.SCT.Maximum, stats.maximum),
    ):
        if value is not None:
            out.append(Measurement(name=name, value=float(value), unit=unit, derivation=derivation))
    return out
