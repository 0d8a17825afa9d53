"""DICOM Segmentation objects read with bounds: segments, and one boolean mask per frame mapped
to the image it was drawn on.

A Segmentation (PS3.3 A.51; Segmentation Storage 1.2.840.10008.5.1.4.1.1.66.4, Label Map
Segmentation Storage 1.2.840.10008.5.1.4.1.1.66.7) holds its segments in the Segment Sequence
(0062,0002) (PS3.3 C.8.20.2: number, label, description, coded category and type, algorithm
type, Recommended Display CIELab Value) and its frames as BINARY (1 bit), FRACTIONAL
(8 bit, 0..Maximum Fractional Value; a pixel counts when at least half of it) or LABELMAP
(each pixel a segment number) masks. Each frame's segment comes from the Segment
Identification Sequence (0062,000A) of its functional groups (PS3.3 C.8.20.3) and its source
image from Derivation Image Sequence (0008,9124) > Source Image Sequence (0008,2112)
(C.7.6.16.2.6); when a frame names no source image it is matched to an image of a referenced
series by Plane Position (Patient) (C.7.6.16.2.3), and a segmentation of one single image with
neither applies to that image.

Bounds (checked before anything is allocated): Rows × Columns within the read budget's frame
pixels, at most the budget's frames, :data:`MAX_SEGMENTS` segments, and the kept masks (empty
frames are dropped) within the budget's object bytes at one byte a pixel. Nothing here names a
file from a tag value; text is cut to 64 characters and shown through the GUI's escaping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from desktop_app.dicom import dsvalues
from desktop_app.dicom.dicomfile import read_header
from desktop_app.dicom.gsps import _lab_to_rgb
from desktop_app.dicom.imageplane import ImagePlane, Orientation, Vec3
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.dicom.pixels.decode import decode_frame
from desktop_app.infra.errors import DicomReadError, LimitExceededError, PathLike

log = logging.getLogger(__name__)

SEGMENTATION_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation",
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation",
}
MAX_SEGMENTS = 1000
MAX_SOURCE_REFS = 16  # source images one frame may name (one is the rule)
MAX_REFERENCES = 100_000
TEXT = 64
# Distinct colours for segments without a recommended one (the default is a CIELab white).
PALETTE = (
    (255, 80, 80),
    (80, 200, 255),
    (255, 200, 40),
    (120, 230, 120),
    (230, 120, 255),
    (255, 150, 60),
)
HINT = "the segmentation is damaged or not supported; re-export it from the tool that made it"


def is_segmentation(sop_class_uid: str) -> bool:
    return str(sop_class_uid) in SEGMENTATION_CLASSES


@dataclass(frozen=True)
class Code:
    """A coded concept (PS3.3 8.8): value, scheme designator, meaning."""

    value: str
    scheme: str
    meaning: str

    def __str__(self) -> str:
        return self.meaning or f"({self.value}, {self.scheme})"


@dataclass(frozen=True)
class Segment:
    """One Segment Sequence item (PS3.3 C.8.20.2)."""

    number: int
    label: str
    description: str = ""
    category: Code | None = None
    property_type: Code | None = None
    algorithm_type: str = ""
    algorithm_name: str = ""
    color: tuple[int, int, int] = (255, 80, 80)


@dataclass(frozen=True)
class SegFrame:
    """A non-empty mask of one segment on one image: the source image by UID and frame
    (1-based; 0: unnamed or the whole single-frame image) and/or the frame's position."""

    segment_number: int
    mask: np.ndarray = field(repr=False)
    source_sop_instance_uid: str = ""
    source_frame: int = 0
    position: Vec3 | None = None


@dataclass
class SegmentationObject:
    """What the viewer and training use of one Segmentation object."""

    sop_instance_uid: str
    sop_class_uid: str
    segmentation_type: str
    rows: int
    columns: int
    label: str = ""
    series_description: str = ""
    orientation: Orientation | None = None
    referenced_series: tuple[str, ...] = ()
    referenced_images: tuple[str, ...] = ()
    segments: dict[int, Segment] = field(default_factory=dict)
    frames: list[SegFrame] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return SEGMENTATION_CLASSES.get(self.sop_class_uid, "Segmentation")

    def frame_applies(self, frame: SegFrame, plane: ImagePlane) -> bool:
        """Whether ``frame`` was drawn on ``plane`` (see the module docstring)."""
        if frame.source_sop_instance_uid:
            return frame.source_sop_instance_uid == plane.sop_instance_uid and (
                frame.source_frame in (0, plane.frame)
            )
        if frame.position is not None:
            if self.referenced_series and plane.series_instance_uid not in self.referenced_series:
                return False
            return plane.parallel_to(self.orientation) and plane.same_position(frame.position)
        return self.referenced_images == (plane.sop_instance_uid,)

    def masks_on(self, plane: ImagePlane) -> list[tuple[Segment, np.ndarray]]:
        """Each segment's mask on ``plane`` (frames of one segment merged), in segment order;
        nothing when the mask's grid is not the image's."""
        merged: dict[int, np.ndarray] = {}
        for frame in self.frames:
            if not self.frame_applies(frame, plane):
                continue
            if frame.mask.shape != (plane.rows, plane.columns):
                continue
            have = merged.get(frame.segment_number)
            merged[frame.segment_number] = frame.mask if have is None else have | frame.mask
        return [(self.segments[n], merged[n]) for n in sorted(merged) if n in self.segments]

    def masks_by_image(
        self, planes: list[ImagePlane]
    ) -> dict[tuple[str, int], dict[int, np.ndarray]]:
        """Per image of ``planes`` (SOP Instance UID, 1-based frame) that carries a mask:
        each segment number's mask."""
        out: dict[tuple[str, int], dict[int, np.ndarray]] = {}
        for plane in planes:
            masks = self.masks_on(plane)
            if masks:
                key = (plane.sop_instance_uid, plane.frame)
                out[key] = {segment.number: mask for segment, mask in masks}
        return out

    def first_image(self) -> tuple[str, int] | None:
        """The source image (UID, frame) of the first frame that names one, else None."""
        for frame in self.frames:
            if frame.source_sop_instance_uid:
                return frame.source_sop_instance_uid, frame.source_frame
        return None

    def summary(self) -> str:
        names = ", ".join(s.label or f"#{s.number}" for s in list(self.segments.values())[:6])
        more = "…" if len(self.segments) > 6 else ""
        return f"{len(self.segments)} segment(s): {names}{more}"


# --------------------------------------------------------------------------- reading


def _text(ds: Dataset, keyword: str) -> str:
    return dsvalues.text(ds, keyword, "")[:TEXT]


def _code(ds: Dataset, keyword: str) -> Code | None:
    item = dsvalues.sequence_item(ds, keyword)
    if item is None:
        return None
    return Code(
        _text(item, "CodeValue") or _text(item, "LongCodeValue") or _text(item, "URNCodeValue"),
        _text(item, "CodingSchemeDesignator"),
        _text(item, "CodeMeaning"),
    )


def _color(item: Dataset, number: int) -> tuple[int, int, int]:
    lab = dsvalues.floats(item, "RecommendedDisplayCIELabValue")
    if len(lab) == 3 and all(v is not None and 0 <= v <= 65535 for v in lab):
        return _lab_to_rgb((int(lab[0]), int(lab[1]), int(lab[2])))  # type: ignore[arg-type]
    return PALETTE[(number - 1) % len(PALETTE)]


def _segments(ds: Dataset, problems: list[str]) -> dict[int, Segment]:
    count = dsvalues.sequence_length(ds, "SegmentSequence")
    if count > MAX_SEGMENTS:
        problems.append(f"{count} segments: only the first {MAX_SEGMENTS} are read")
    out: dict[int, Segment] = {}
    for i in range(min(count, MAX_SEGMENTS)):
        item = dsvalues.sequence_item(ds, "SegmentSequence", i)
        number = None if item is None else dsvalues.first_int(item, "SegmentNumber")
        if item is None or number is None or not 0 < number <= 65535:
            problems.append(f"segment item {i + 1} has no valid Segment Number")
            continue
        algorithm = dsvalues.sequence_item(item, "SegmentationAlgorithmIdentificationSequence")
        name = _text(item, "SegmentAlgorithmName")
        if not name and algorithm is not None:
            name = _text(algorithm, "AlgorithmName")
        out[number] = Segment(
            number=number,
            label=_text(item, "SegmentLabel") or f"Segment {number}",
            description=_text(item, "SegmentDescription"),
            category=_code(item, "SegmentedPropertyCategoryCodeSequence"),
            property_type=_code(item, "SegmentedPropertyTypeCodeSequence"),
            algorithm_type=_text(item, "SegmentAlgorithmType").upper(),
            algorithm_name=name,
            color=_color(item, number),
        )
    return out


def _referenced(ds: Dataset) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Referenced Series Sequence (0008,1115): series UIDs, and their instances' UIDs."""
    series: list[str] = []
    images: list[str] = []
    for i in range(min(dsvalues.sequence_length(ds, "ReferencedSeriesSequence"), 1000)):
        item = dsvalues.sequence_item(ds, "ReferencedSeriesSequence", i)
        if item is None:
            continue
        uid = _text(item, "SeriesInstanceUID")
        if uid:
            series.append(uid)
        n = min(dsvalues.sequence_length(item, "ReferencedInstanceSequence"), MAX_REFERENCES)
        for k in range(n):
            ref = dsvalues.sequence_item(item, "ReferencedInstanceSequence", k)
            sop = "" if ref is None else _text(ref, "ReferencedSOPInstanceUID")
            if sop:
                images.append(sop)
    return tuple(series), tuple(images)


def _source(ds: Dataset, index: int) -> tuple[str, int]:
    """The first source image (UID, 1-based frame or 0) that frame ``index`` names."""
    derivation = dsvalues.functional_group(ds, index, "DerivationImageSequence")
    if derivation is None:
        return "", 0
    n = min(dsvalues.sequence_length(derivation, "SourceImageSequence"), MAX_SOURCE_REFS)
    for k in range(n):
        item = dsvalues.sequence_item(derivation, "SourceImageSequence", k)
        uid = "" if item is None else _text(item, "ReferencedSOPInstanceUID")
        if uid:
            assert item is not None
            frame = dsvalues.first_int(item, "ReferencedFrameNumber") or 0
            return uid, frame if frame > 0 else 0
    return "", 0


def _position(ds: Dataset, index: int) -> Vec3 | None:
    item = dsvalues.functional_group(ds, index, "PlanePositionSequence")
    values = () if item is None else dsvalues.floats(item, "ImagePositionPatient")
    if len(values) != 3 or any(v is None or not np.isfinite(v) for v in values):
        return None
    return (float(values[0]), float(values[1]), float(values[2]))  # type: ignore[arg-type]


def _orientation(ds: Dataset) -> Orientation | None:
    item = dsvalues.functional_group(ds, 0, "PlaneOrientationSequence")
    values = () if item is None else dsvalues.floats(item, "ImageOrientationPatient")
    if len(values) != 6 or any(v is None or not np.isfinite(v) for v in values):
        return None
    return tuple(float(v) for v in values)  # type: ignore[arg-type, return-value]


def _frame_masks(
    stored: np.ndarray, seg_type: str, segment: int | None, max_value: int
) -> list[tuple[int, np.ndarray]]:
    """(segment number, mask) pairs of one decoded frame."""
    if stored.ndim != 2:
        return []
    if seg_type == "LABELMAP":
        return [(int(v), stored == v) for v in np.unique(stored) if v != 0]
    if segment is None:
        return []
    if seg_type == "FRACTIONAL":
        return [(segment, stored.astype(np.float32) >= max_value / 2)]
    return [(segment, stored != 0)]


def _check_size(path: Path, rows: int, columns: int, frames: int, limits: ReadLimits) -> None:
    if rows < 1 or columns < 1:
        raise DicomReadError(f"segmentation of {rows} × {columns} pixels", path, HINT)
    if rows * columns > limits.max_frame_pixels:
        raise LimitExceededError(
            f"segmentation frames of {rows} × {columns} pixels exceed the "
            f"{limits.max_frame_pixels}-pixel limit",
            path,
            "raise the read limits in the settings if the file is trusted",
        )
    if frames > limits.max_frames:
        raise LimitExceededError(
            f"{frames} segmentation frames exceed the limit of {limits.max_frames}",
            path,
            "raise the read limits in the settings if the file is trusted",
        )


def read_segmentation(
    path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS, header: Dataset | None = None
) -> SegmentationObject:
    """The Segmentation object at ``path`` (``header``: its :func:`read_header`, if read).

    Raises DicomReadError (or LimitExceededError) with a one-line reason for a file that is
    not a readable segmentation; frames that can't be used are counted in ``problems``."""
    p = Path(path)
    ds = header if header is not None else read_header(p, limits=limits)
    sop_class = _text(ds, "SOPClassUID")
    if not is_segmentation(sop_class):
        raise DicomReadError("not a DICOM Segmentation object", p, "open it as an image")
    rows = dsvalues.first_int(ds, "Rows") or 0
    columns = dsvalues.first_int(ds, "Columns") or 0
    frames = dsvalues.first_int(ds, "NumberOfFrames") or 1
    _check_size(p, rows, columns, frames, limits)
    seg_type = _text(ds, "SegmentationType").upper()
    if sop_class.endswith(".66.7"):
        seg_type = "LABELMAP"
    if seg_type not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise DicomReadError(f"unknown Segmentation Type {seg_type[:16]!r}", p, HINT)
    series, images = _referenced(ds)
    obj = SegmentationObject(
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        sop_class_uid=sop_class,
        segmentation_type=seg_type,
        rows=rows,
        columns=columns,
        label=_text(ds, "ContentLabel"),
        series_description=_text(ds, "SeriesDescription"),
        orientation=_orientation(ds),
        referenced_series=series,
        referenced_images=images,
    )
    obj.segments = _segments(ds, obj.problems)
    _read_frames(p, ds, obj, frames, limits)
    log.info(
        "segmentation: %d segments, %d of %d frames non-empty",
        len(obj.segments),
        len(obj.frames),
        frames,
    )
    return obj


def _read_frames(
    p: Path, ds: Dataset, obj: SegmentationObject, frames: int, limits: ReadLimits
) -> None:
    max_value = dsvalues.first_int(ds, "MaximumFractionalValue") or 255
    budget = limits.max_object_bytes
    unknown = 0
    for index in range(frames):
        stored = decode_frame(p, index, ds=ds, limits=limits)
        ident = dsvalues.functional_group(ds, index, "SegmentIdentificationSequence")
        segment = None if ident is None else dsvalues.first_int(ident, "ReferencedSegmentNumber")
        masks = _frame_masks(stored, obj.segmentation_type, segment, max(1, max_value))
        if not masks and obj.segmentation_type != "LABELMAP":
            unknown += 1
            continue
        sop, frame = _source(ds, index)
        position = _position(ds, index)
        for number, mask in masks:
            if not mask.any():
                continue
            if number not in obj.segments:
                unknown += 1
                continue
            budget -= mask.size
            if budget < 0:
                raise LimitExceededError(
                    f"the segmentation's masks exceed {limits.max_object_bytes} bytes",
                    p,
                    "raise the read limits in the settings if the file is trusted",
                )
            obj.frames.append(SegFrame(number, mask, sop, frame, position))
    if unknown:
        obj.problems.append(f"{unknown} frame(s) name no known segment")
    if any(not f.source_sop_instance_uid and f.position is None for f in obj.frames) and (
        len(obj.referenced_images) != 1
    ):
        obj.problems.append("some frames name neither a source image nor a position")


# --------------------------------------------------------------------------- drawing help

MAX_EDGES = 200_000


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """The outline of a boolean mask as pixel-edge segments (N, 4): x0, y0, x1, y1 in image
    coordinates (pixel corners), runs along a row or column merged into one segment; empty
    when the outline would take more than :data:`MAX_EDGES` segments (a noise mask)."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    horizontal = m[1:, 1:-1] != m[:-1, 1:-1]  # (rows + 1, cols): edge at y = i, x in [j, j+1]
    vertical = m[1:-1, 1:] != m[1:-1, :-1]  # (rows, cols + 1): edge at x = j, y in [i, i+1]
    if int(horizontal.sum()) + int(vertical.sum()) > 4 * MAX_EDGES:
        return np.zeros((0, 4), np.float32)
    out = [_runs(horizontal, along_x=True), _runs(vertical.T, along_x=False)]
    edges = np.concatenate(out, axis=0)
    return edges if len(edges) <= MAX_EDGES else np.zeros((0, 4), np.float32)


def _runs(edges: np.ndarray, *, along_x: bool) -> np.ndarray:
    """Runs of True along each row of ``edges`` as segments (row index is the fixed axis)."""
    padded = np.pad(edges, ((0, 0), (1, 1)))
    change = np.diff(padded.astype(np.int8), axis=1)
    starts = np.argwhere(change == 1)
    ends = np.argwhere(change == -1)
    if not len(starts):
        return np.zeros((0, 4), np.float32)
    fixed = starts[:, 0].astype(np.float32)
    a = starts[:, 1].astype(np.float32)
    b = ends[:, 1].astype(np.float32)
    if along_x:
        return np.stack([a, fixed, b, fixed], axis=1)
    return np.stack([fixed, a, fixed, b], axis=1)


__all__ = [
    "SEGMENTATION_CLASSES",
    "Code",
    "SegFrame",
    "Segment",
    "SegmentationObject",
    "is_segmentation",
    "mask_edges",
    "read_segmentation",
]
