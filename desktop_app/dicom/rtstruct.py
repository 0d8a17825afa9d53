"""RT Structure Sets read with bounds: ROIs with their colours, and contours in patient mm mapped
onto the images they lie on.

An RT Structure Set (PS3.3 A.19; 1.2.840.10008.5.1.4.1.1.481.3) names its ROIs in the
Structure Set ROI Sequence (3006,0020) (number, name, generation algorithm; C.8.8.5) and draws
them in the ROI Contour Sequence (3006,0039) (C.8.8.6): per ROI a ROI Display Color (3006,002A)
and Contour Sequence items, each a Contour Geometric Type (POINT, OPEN_PLANAR,
OPEN_NONPLANAR, CLOSED_PLANAR), Contour Data (x\\y\\z triplets in patient mm) and optionally a
Contour Image Sequence (3006,0016) naming the image(s) it was drawn on. A contour that names
no image applies to the image of a referenced series whose plane it lies in (within half the
slice spacing).

Bounds: :data:`MAX_ROIS` ROIs, :data:`MAX_CONTOURS` contours, :data:`MAX_POINTS` points in all
and :data:`MAX_CONTOUR_POINTS` in one contour; non-finite or absurd coordinates drop the
contour (counted in ``problems``). Names are cut to 64 characters and shown escaped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from desktop_app.dicom import dsvalues
from desktop_app.dicom.imageplane import ImagePlane

log = logging.getLogger(__name__)

RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
MAX_ROIS = 1000
MAX_CONTOURS = 100_000
MAX_CONTOUR_POINTS = 20_000
MAX_POINTS = 5_000_000
MAX_MM = 1.0e5  # a coordinate further than 100 m from the origin is nonsense
TEXT = 64
CONTOUR_TYPES = ("POINT", "OPEN_PLANAR", "OPEN_NONPLANAR", "CLOSED_PLANAR")
DEFAULT_COLOR = (255, 220, 0)


def is_rt_structure_set(sop_class_uid: str) -> bool:
    return str(sop_class_uid) == RTSTRUCT_CLASS


@dataclass(frozen=True)
class Roi:
    number: int
    name: str
    color: tuple[int, int, int] = DEFAULT_COLOR
    description: str = ""
    generation_algorithm: str = ""


@dataclass(frozen=True)
class Contour:
    """One contour: its ROI, geometric type, points (N, 3) in patient mm, and the images
    (SOP Instance UID, 1-based frame or 0) it names."""

    roi_number: int
    kind: str
    points: np.ndarray = field(repr=False)
    images: tuple[tuple[str, int], ...] = ()

    @property
    def closed(self) -> bool:
        return self.kind == "CLOSED_PLANAR"


@dataclass
class StructureSet:
    """What the viewer uses of one RT Structure Set."""

    sop_instance_uid: str
    label: str = ""
    name: str = ""
    description: str = ""
    referenced_series: tuple[str, ...] = ()
    rois: dict[int, Roi] = field(default_factory=dict)
    contours: list[Contour] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "RT Structure Set"

    def applies(self, contour: Contour, plane: ImagePlane) -> bool:
        if contour.images:
            return any(
                sop == plane.sop_instance_uid and frame in (0, plane.frame)
                for sop, frame in contour.images
            )
        if self.referenced_series and plane.series_instance_uid not in self.referenced_series:
            return False
        distances = plane.distance_mm(contour.points)
        if distances is None:
            return False
        tolerance = max((plane.slice_spacing or 1.0) / 2, 0.01)
        return bool(np.all(np.abs(distances) <= tolerance))

    def polygons_on(self, plane: ImagePlane) -> list[tuple[Roi, Contour, np.ndarray]]:
        """Each contour on ``plane`` with its points as (N, 2) image coordinates."""
        out = []
        for contour in self.contours:
            roi = self.rois.get(contour.roi_number)
            if roi is None or not self.applies(contour, plane):
                continue
            pixels = plane.to_pixels(contour.points)
            if pixels is not None and np.all(np.isfinite(pixels)):
                out.append((roi, contour, pixels))
        return out

    def polygons_by_image(
        self, planes: list[ImagePlane]
    ) -> dict[tuple[str, int], list[tuple[Roi, Contour, np.ndarray]]]:
        """Per image of ``planes`` (SOP Instance UID, 1-based frame): its contours."""
        out = {}
        for plane in planes:
            found = self.polygons_on(plane)
            if found:
                out[(plane.sop_instance_uid, plane.frame)] = found
        return out

    def first_image(self) -> tuple[str, int] | None:
        for contour in self.contours:
            if contour.images:
                return contour.images[0]
        return None

    def summary(self) -> str:
        names = ", ".join(r.name or f"#{r.number}" for r in list(self.rois.values())[:6])
        more = "…" if len(self.rois) > 6 else ""
        return f"{len(self.rois)} ROI(s): {names}{more}"


def _text(ds: Dataset, keyword: str) -> str:
    return dsvalues.text(ds, keyword, "")[:TEXT]


def _items(ds: Dataset, keyword: str, limit: int) -> list[Dataset]:
    n = min(dsvalues.sequence_length(ds, keyword), limit)
    items = (dsvalues.sequence_item(ds, keyword, i) for i in range(n))
    return [item for item in items if item is not None]


def _color(item: Dataset) -> tuple[int, int, int]:
    values = dsvalues.floats(item, "ROIDisplayColor")
    if len(values) == 3 and all(v is not None and 0 <= v <= 255 for v in values):
        return int(values[0]), int(values[1]), int(values[2])  # type: ignore[arg-type]
    return DEFAULT_COLOR


def _points(item: Dataset) -> np.ndarray | None:
    declared = dsvalues.first_int(item, "NumberOfContourPoints")
    if declared is not None and not 0 < declared <= MAX_CONTOUR_POINTS:
        return None
    values = dsvalues.raw_value(item, "ContourData")
    if values is None or isinstance(values, (str, bytes)):
        return None
    try:
        if len(values) > 3 * MAX_CONTOUR_POINTS or len(values) % 3:
            return None
        arr = np.asarray([float(v) for v in values], dtype=np.float64).reshape(-1, 3)
    except (TypeError, ValueError):
        return None
    if not len(arr) or not np.all(np.isfinite(arr)) or np.abs(arr).max() > MAX_MM:
        return None
    return arr


def _images(item: Dataset) -> tuple[tuple[str, int], ...]:
    out = []
    for ref in _items(item, "ContourImageSequence", 64):
        uid = _text(ref, "ReferencedSOPInstanceUID")
        if uid:
            frame = dsvalues.first_int(ref, "ReferencedFrameNumber") or 0
            out.append((uid, frame if frame > 0 else 0))
    return tuple(out)


def _referenced_series(ds: Dataset) -> tuple[str, ...]:
    series = []
    for frame_ref in _items(ds, "ReferencedFrameOfReferenceSequence", 100):
        for study in _items(frame_ref, "RTReferencedStudySequence", 100):
            for item in _items(study, "RTReferencedSeriesSequence", 1000):
                uid = _text(item, "SeriesInstanceUID")
                if uid:
                    series.append(uid)
    return tuple(series)


def read_structure_set(ds: Dataset) -> StructureSet:
    """The structure set in ``ds`` (see the module docstring); never raises for what a
    file holds: what can't be drawn is left out and counted in ``problems``."""
    out = StructureSet(
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        label=_text(ds, "StructureSetLabel"),
        name=_text(ds, "StructureSetName"),
        description=_text(ds, "StructureSetDescription") or _text(ds, "SeriesDescription"),
        referenced_series=_referenced_series(ds),
    )
    if dsvalues.sequence_length(ds, "StructureSetROISequence") > MAX_ROIS:
        out.problems.append(f"more than {MAX_ROIS} ROIs: the rest are not shown")
    names: dict[int, Dataset] = {}
    for item in _items(ds, "StructureSetROISequence", MAX_ROIS):
        number = dsvalues.first_int(item, "ROINumber")
        if number is not None:
            names[number] = item
    dropped = 0
    points = 0
    for roi_item in _items(ds, "ROIContourSequence", MAX_ROIS):
        number = dsvalues.first_int(roi_item, "ReferencedROINumber")
        if number is None:
            continue
        named = names.get(number)
        out.rois[number] = Roi(
            number=number,
            name=(_text(named, "ROIName") if named is not None else "") or f"ROI {number}",
            color=_color(roi_item),
            description=_text(named, "ROIDescription") if named is not None else "",
            generation_algorithm=_text(named, "ROIGenerationAlgorithm")
            if named is not None
            else "",
        )
        for item in _items(roi_item, "ContourSequence", MAX_CONTOURS):
            if len(out.contours) >= MAX_CONTOURS or points >= MAX_POINTS:
                out.problems.append("too many contours or points: the rest are not shown")
                return out
            kind = _text(item, "ContourGeometricType").upper()
            arr = _points(item)
            if kind not in CONTOUR_TYPES or arr is None:
                dropped += 1
                continue
            points += len(arr)
            out.contours.append(Contour(number, kind, arr, _images(item)))
    if dropped:
        out.problems.append(f"{dropped} contour(s) with invalid data not shown")
    log.info("structure set: %d ROIs, %d contours", len(out.rois), len(out.contours))
    return out


__all__ = [
    "RTSTRUCT_CLASS",
    "Contour",
    "Roi",
    "StructureSet",
    "is_rt_structure_set",
    "read_structure_set",
]
