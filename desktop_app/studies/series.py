"""Series assembly: order a series' images into stacks and say what is wrong with them.

Slices are ordered by Image Position (Patient) projected on the slice normal, the cross
product of the row and column direction cosines of Image Orientation (Patient)
(PS3.3 C.7.6.2.1.1). This orders tilted-gantry and oblique stacks correctly, where sorting on
z alone would not. The direction is the reader's, whatever the scanner's: the normal's main
patient axis decides, so an axial stack runs head to feet (the most superior slice first), a
coronal one front to back and a sagittal one right to left (``order_direction``); an oblique
stack goes by its nearest axis the same way. Without positions, Instance Number (0020,0013)
orders them, then the file name. A slice is named by its Instance Number and its position
along that axis (``SliceStack.slice_label``: "Im 17 (of 40) · +12.5 mm"), not by its place in
the stack.

One series may hold images that do not form one stack: localizers beside axial slices, a
different matrix size, a repeated scan. Single-frame images are grouped by geometry (Rows,
Columns, Samples per Pixel and orientation); a series with more than one group is split into
parts, and each part carries a warning. A multi-frame object is a stack of its own
(PS3.3 C.7.6.6; enhanced objects give per-frame positions, PS3.3 C.7.6.16.2.3).

Each stack reports duplicates (same position; same SOP Instance UID), missing slices (a gap
over 1.5x the median spacing), uneven spacing and gantry tilt as warnings.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from desktop_app.dicom.orientation import direction_letters, opposite
from desktop_app.studies.index import InstanceInfo, Orientation, SeriesNode, Vec3, hashed_uid

log = logging.getLogger(__name__)

ORIENTATION_TOLERANCE = 1e-3  # direction cosines that differ less are the same orientation
MISSING_GAP_FACTOR = 1.5  # a gap over 1.5x the median spacing means missing slices
UNEVEN_TOLERANCE = 0.05  # relative spacing deviation reported as uneven (plus 0.01 mm)
DUPLICATE_TOLERANCE_MM = 1e-3  # positions closer than this along the normal coincide
TILT_WARNING_DEGREES = 0.5


@dataclass(frozen=True)
class SliceRef:
    """One 2-D image of a stack: an instance and a frame of it (0 for single-frame)."""

    instance: InstanceInfo
    frame: int = 0
    position: Vec3 | None = None


class FrameRefs(Sequence[SliceRef]):
    """The frames of one multi-frame instance in stored order, each SliceRef made when asked
    for: a stack of 100,000 frames costs this one object, not 100,000 entries.

    ``positions`` are per-frame positions (frame k gets ``positions[k]``); frames past them,
    or all frames without them, get ``default``.
    """

    __slots__ = ("default", "instance", "positions")

    def __init__(
        self,
        instance: InstanceInfo,
        positions: Sequence[Vec3 | None] | None = None,
        default: Vec3 | None = None,
    ) -> None:
        self.instance = instance
        self.positions = positions
        self.default = default

    def __len__(self) -> int:
        return max(self.instance.number_of_frames, 1)

    @overload
    def __getitem__(self, index: int) -> SliceRef: ...
    @overload
    def __getitem__(self, index: slice) -> list[SliceRef]: ...
    def __getitem__(self, index: int | slice) -> SliceRef | list[SliceRef]:
        n = len(self)
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(n))]
        k = index + n if index < 0 else index
        if not 0 <= k < n:
            raise IndexError(f"frame {index} is out of range 0..{n - 1}")
        positions = self.positions
        position = positions[k] if positions is not None and k < len(positions) else self.default
        return SliceRef(self.instance, k, position)

    def __iter__(self) -> Iterator[SliceRef]:
        return (self[k] for k in range(len(self)))

    def __repr__(self) -> str:
        return f"FrameRefs({self.instance.path.name!r}, {len(self)} frames)"


@dataclass
class SliceStack:
    """An ordered stack of same-geometry images: what a viewer scrolls through.

    ``slice_spacing`` is the median distance between neighbouring slices along the normal
    (mm), or None when positions are missing. ``ordered_by`` says which rule ordered it:
    "position", "instance number", "file name" or "frame order". ``runs`` names the patient
    directions of the first and the last slice when ordered by position (("H", "F") for an
    axial stack), else None.
    """

    series_instance_uid: str
    slices: Sequence[SliceRef]
    rows: int
    columns: int
    samples_per_pixel: int
    orientation: Orientation | None
    ordered_by: str
    slice_spacing: float | None = None
    pixel_spacing: tuple[float, float] | None = None
    part: int = 1
    parts: int = 1
    is_multiframe: bool = False
    warnings: list[str] = field(default_factory=list)
    runs: tuple[str, str] | None = None

    def __len__(self) -> int:
        return len(self.slices)

    def location(self, index: int) -> float | None:
        """Slice ``index``'s position in mm along its main patient axis, positive toward
        Head, Left or Posterior (z, x or y in LPS: an axial slice's z), or None without a
        position or orientation."""
        position = self.slices[index].position
        if position is None or self.orientation is None:
            return None
        return _project(position, location_direction(self.orientation))

    def short_label(self, index: int) -> str:
        """How a reader names slice ``index``: "Im 17" (its Instance Number), "Fr 5" (a frame
        of one multi-frame object, 1-based) or "#18" (its place, when it has no number)."""
        ref = self.slices[index]
        if self.is_multiframe:
            return f"Fr {ref.frame + 1}"
        number = ref.instance.instance_number
        return f"Im {number}" if number is not None else f"#{index + 1}"

    def slice_label(self, index: int) -> str:
        """The viewer's slice label: "Im 17 (of 40) · +12.5 mm"."""
        text = f"{self.short_label(index)} (of {len(self.slices)})"
        mm = self.location(index)
        return text if mm is None else f"{text} · {mm:+.1f} mm"

    def index_of(self, sop_instance_uid: str, frame: int = 0) -> int | None:
        """The stack position of an image named by SOP Instance UID and frame (None if it
        is not in this stack): persisted references should be resolved through this."""
        for i, ref in enumerate(self.slices):
            if ref.instance.sop_instance_uid == sop_instance_uid and ref.frame == frame:
                return i
        return None

    @property
    def normal(self) -> Vec3 | None:
        return slice_normal(self.orientation) if self.orientation else None

    @property
    def plane(self) -> str:
        """The plane nearest the normal: axial, coronal, sagittal or oblique ("" if unknown)."""
        return plane_name(self.orientation)

    @property
    def size_text(self) -> str:
        return f"{self.rows}x{self.columns}" + (
            f"x{self.samples_per_pixel}" if self.samples_per_pixel != 1 else ""
        )


@dataclass
class SeriesAssembly:
    """A series as stacks. ``warnings`` are about the series as a whole (also on each part)."""

    series: SeriesNode = field(repr=False)
    stacks: list[SliceStack] = field(default_factory=list)
    non_image_instances: int = 0
    warnings: list[str] = field(default_factory=list)
    duplicates: list[InstanceInfo] = field(default_factory=list)
    """Files left out because their SOP Instance UID is already in a stack."""

    @property
    def image_count(self) -> int:
        return sum(len(s) for s in self.stacks)


def slice_normal(orientation: Orientation) -> Vec3:
    """Row cosines x column cosines, normalised (PS3.3 C.7.6.2.1.1)."""
    r = np.asarray(orientation[:3], dtype=np.float64)
    c = np.asarray(orientation[3:], dtype=np.float64)
    n = np.cross(r, c)
    norm = float(np.linalg.norm(n))
    if norm < 1e-9:
        return (0.0, 0.0, 1.0)
    n /= norm
    return (float(n[0]), float(n[1]), float(n[2]))


def location_direction(orientation: Orientation) -> Vec3:
    """The slice normal turned toward +x, +y or +z (Left, Posterior, Head), whichever is its
    main axis: positions measured along it are the usual slice locations."""
    n = slice_normal(orientation)
    axis = int(np.argmax(np.abs(n)))
    sign = 1.0 if n[axis] > 0 else -1.0
    return (sign * n[0], sign * n[1], sign * n[2])


def order_direction(orientation: Orientation) -> Vec3:
    """The direction slices are sorted along (first slice lowest): head to feet for axial,
    right to left for sagittal, anterior to posterior for coronal (the usual reading order)."""
    v = location_direction(orientation)
    if int(np.argmax(np.abs(v))) == 2:
        return (-v[0], -v[1], -v[2])
    return v


def plane_name(orientation: Orientation | None) -> str:
    """The anatomical plane nearest the normal, or "oblique" when none is within ~10 degrees."""
    if orientation is None:
        return ""
    n = slice_normal(orientation)
    axis = int(np.argmax(np.abs(n)))
    if abs(n[axis]) < 0.985:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _same_orientation(a: Orientation | None, b: Orientation | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return max(abs(x - y) for x, y in zip(a, b)) < ORIENTATION_TOLERANCE


def _natural_key(text: str) -> list[object]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text)]


def _project(position: Vec3, normal: Vec3) -> float:
    return position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2]


def _describe_geometry(inst: InstanceInfo) -> str:
    size = f"{inst.rows}x{inst.columns}"
    plane = plane_name(inst.image_orientation)
    return f"{size} {plane}".strip()


def _order(
    refs: Sequence[SliceRef], orientation: Orientation | None
) -> tuple[Sequence[SliceRef], str, np.ndarray | None]:
    """Sort refs; returns (ordered, rule, coordinates along the normal or None)."""
    if isinstance(refs, FrameRefs) and refs.positions is None:
        return refs, "frame order", None  # stored order, kept lazy

    def tie(ref: SliceRef) -> tuple[object, ...]:
        n = ref.instance.instance_number
        return (n if n is not None else 1 << 62, _natural_key(str(ref.instance.path)), ref.frame)

    if orientation is not None and refs and all(r.position is not None for r in refs):
        normal = order_direction(orientation)
        # (position, instance number, frame) first: the file name's natural key (~5 us a
        # slice) is needed only when two slices share both position and number.
        quick = [
            (
                _project(r.position, normal),  # type: ignore[arg-type]
                n if (n := r.instance.instance_number) is not None else 1 << 62,
                r.frame,
                i,
            )
            for i, r in enumerate(refs)
        ]
        if len({q[:2] for q in quick}) == len(quick):
            keyed = [refs[q[3]] for q in sorted(quick)]
        else:
            keyed = sorted(refs, key=lambda r: (_project(r.position, normal), *tie(r)))  # type: ignore[arg-type]
        coords = np.array([_project(r.position, normal) for r in keyed])  # type: ignore[arg-type]
        return keyed, "position", coords
    if refs and all(r.instance.instance_number is not None for r in refs):
        multi = len({r.instance.path for r in refs}) == 1 and len(refs) > 1
        if multi:
            return sorted(refs, key=lambda r: r.frame), "frame order", None
        return sorted(refs, key=tie), "instance number", None
    multi = len({r.instance.path for r in refs}) == 1 and len(refs) > 1
    if multi:
        return sorted(refs, key=lambda r: r.frame), "frame order", None
    return (
        sorted(refs, key=lambda r: (_natural_key(str(r.instance.path)), r.frame)),
        "file name",
        None,
    )


def _spacing_report(
    coords: np.ndarray, refs: Sequence[SliceRef], normal: Vec3
) -> tuple[float | None, list[str]]:
    """Median spacing and warnings: duplicates, missing slices, uneven spacing, tilt."""
    warnings: list[str] = []
    if len(coords) < 2:
        return None, warnings
    diffs = np.diff(coords)
    dup = np.abs(diffs) < DUPLICATE_TOLERANCE_MM
    n_dup = int(dup.sum())
    if n_dup:
        warnings.append(
            f"{n_dup} slice(s) share a position with a neighbour (duplicates or repeated "
            "acquisitions; all kept)"
        )
    steps = diffs[~dup]
    if steps.size == 0:
        return None, warnings
    spacing = float(np.median(steps))
    if steps.size >= 2:
        missing_gaps = steps[steps > MISSING_GAP_FACTOR * spacing]
        if missing_gaps.size:
            missing = int(sum(max(1, round(g / spacing) - 1) for g in missing_gaps))
            warnings.append(
                f"about {missing} missing slice(s): {missing_gaps.size} gap(s) up to "
                f"{float(missing_gaps.max()):.3g} mm where the spacing is {spacing:.3g} mm"
            )
        regular = steps[steps <= MISSING_GAP_FACTOR * spacing]
        deviation = np.abs(regular - spacing)
        uneven = deviation > UNEVEN_TOLERANCE * spacing + 0.01
        if uneven.any():
            warnings.append(
                f"uneven slice spacing: {float(regular.min()):.3g} to "
                f"{float(regular.max()):.3g} mm (median {spacing:.3g} mm)"
            )
    # Gantry tilt: consecutive positions step off the normal (PS3.3 C.7.6.2.1.1 allows it).
    first, last = refs[0].position, refs[-1].position
    if first is not None and last is not None:
        step = np.subtract(last, first)
        length = float(np.linalg.norm(step))
        if length > 1e-6:
            cos = abs(float(np.dot(step, normal))) / length
            angle = math.degrees(math.acos(min(1.0, cos)))
            if TILT_WARNING_DEGREES < angle < 89.0:
                warnings.append(
                    f"slices are sheared by {angle:.1f} degrees (gantry tilt); spacing is "
                    "measured along the slice normal"
                )
    return spacing, warnings


def _stack(
    uid: str,
    refs: Sequence[SliceRef],
    orientation: Orientation | None,
    *,
    is_multiframe: bool,
) -> SliceStack:
    ordered, rule, coords = _order(refs, orientation)
    first = ordered[0].instance
    stack = SliceStack(
        series_instance_uid=uid,
        slices=ordered,
        rows=first.rows,
        columns=first.columns,
        samples_per_pixel=first.samples_per_pixel,
        orientation=orientation,
        ordered_by=rule,
        pixel_spacing=first.pixel_spacing,
        is_multiframe=is_multiframe,
    )
    if coords is not None and orientation is not None:
        stack.slice_spacing, more = _spacing_report(coords, ordered, slice_normal(orientation))
        stack.warnings.extend(more)
        toward = direction_letters(order_direction(orientation))
        stack.runs = (opposite(toward), toward) if toward else None
    elif not is_multiframe and len(refs) > 1:
        with_pos = sum(1 for r in refs if r.position is not None)
        if 0 < with_pos < len(refs):
            stack.warnings.append(
                f"only {with_pos} of {len(refs)} images have a position; ordered by {rule}"
            )
    return stack


def _multiframe_refs(
    inst: InstanceInfo,
) -> tuple[Sequence[SliceRef], Orientation | None, list[str]]:
    """Frames of one multi-frame object, with per-frame positions when all frames share one
    orientation (otherwise the frames keep their stored order). The index has checked the
    frame count (``frames.check_frames``); the refs are made lazily all the same."""
    frames = inst.number_of_frames
    notes: list[str] = []
    positions = inst.frame_positions
    orientations = inst.frame_orientations
    orientation = inst.image_orientation
    if positions is not None and len(positions) == frames and all(p is not None for p in positions):
        if orientations and any(not _same_orientation(o, orientations[0]) for o in orientations):
            notes.append("frames have different orientations; shown in stored order")
            return FrameRefs(inst), orientation, notes
        orientation = orientations[0] if orientations else orientation
        return FrameRefs(inst, positions), orientation, notes
    return FrameRefs(inst), orientation, notes


def instance_stack(inst: InstanceInfo) -> SliceStack:
    """One instance on its own, frames in stored order (a preview, or a left-out duplicate)."""
    frames = max(inst.number_of_frames, 1)
    return SliceStack(
        series_instance_uid="",
        slices=FrameRefs(inst, inst.frame_positions or (), inst.image_position),
        rows=inst.rows,
        columns=inst.columns,
        samples_per_pixel=inst.samples_per_pixel,
        orientation=inst.image_orientation,
        ordered_by="frame order",
        pixel_spacing=inst.pixel_spacing,
        is_multiframe=frames > 1,
    )


def assemble(series: SeriesNode) -> SeriesAssembly:
    """Order a series' images into stacks (split by geometry) with warnings."""
    result = SeriesAssembly(series=series)
    uid = series.series_instance_uid
    images = [i for i in series.instances if i.has_pixels and i.number_of_frames > 0]
    result.non_image_instances = len(series.instances) - len(images)

    # Duplicate SOP Instance UIDs: the same object twice (copied files). Keep the first.
    seen: dict[str, InstanceInfo] = {}
    unique: list[InstanceInfo] = []
    dropped = 0
    for inst in sorted(images, key=lambda i: _natural_key(str(i.path))):
        key = inst.sop_instance_uid
        if key and key in seen:
            dropped += 1
            result.duplicates.append(inst)
            continue
        if key:
            seen[key] = inst
        unique.append(inst)
    if dropped:
        result.warnings.append(
            f"{dropped} file(s) repeat a SOP Instance UID already in the series; each kept once"
        )

    multiframe = [i for i in unique if i.number_of_frames > 1]
    single = [i for i in unique if i.number_of_frames == 1]

    # Group single-frame images by geometry: size, samples, orientation.
    groups: list[tuple[tuple[int, int, int], Orientation | None, list[InstanceInfo]]] = []
    for inst in single:
        size = (inst.rows, inst.columns, inst.samples_per_pixel)
        for g_size, g_orient, members in groups:
            if g_size == size and _same_orientation(g_orient, inst.image_orientation):
                members.append(inst)
                break
        else:
            groups.append((size, inst.image_orientation, [inst]))
    groups.sort(key=lambda g: -len(g[2]))

    stacks: list[SliceStack] = []
    for _size, orient, members in groups:
        refs = [SliceRef(m, 0, m.image_position) for m in members]
        stacks.append(_stack(uid, refs, orient, is_multiframe=False))
    if len(groups) > 1:
        sizes = {g[0][:2] for g in groups}
        orients = len({plane_name(g[1]) + str(g[1]) for g in groups})
        what = []
        if len(sizes) > 1:
            what.append(f"{len(sizes)} image sizes")
        if orients > 1:
            what.append(f"{orients} orientations")
        geometry = " and ".join(what) or "different geometries"
        parts = ", ".join(
            f"{len(members)} x {_describe_geometry(members[0])}" for _, _, members in groups
        )
        split_note = f"series mixes {geometry}; split into {len(groups)} parts ({parts})"
        result.warnings.append(split_note)
        for stack in stacks:
            stack.warnings.insert(0, split_note)

    for inst in multiframe:
        frame_refs, orient, notes = _multiframe_refs(inst)
        stack = _stack(uid, frame_refs, orient, is_multiframe=True)
        stack.warnings[:0] = notes
        stacks.append(stack)

    for n, stack in enumerate(stacks, start=1):
        stack.part, stack.parts = n, len(stacks)
        if dropped:
            stack.warnings.insert(0, result.warnings[0])
    result.stacks = stacks
    log.debug(
        "series %s: %d stacks, %d images, %d warnings",
        hashed_uid(uid),
        len(stacks),
        result.image_count,
        sum(len(s.warnings) for s in stacks),
    )
    return result
