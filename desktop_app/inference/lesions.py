"""Lesions from a mask: connected components of a probability or binary mask on a series'
original grid, each with its volume (or area), longest axial diameter, values and confidence.

``find_lesions(mask, MaskGeometry(...), values=hu)`` returns a :class:`LesionTable`, sorted by
size (largest first, ids 1..n), with a versioned JSON form for findings.json.

- Input: ``(slices, rows, cols)`` in stack order (or ``(rows, cols)``: one radiograph, where
  areas in mm² replace volumes). A float array is a probability map, thresholded at
  ``threshold`` (and its mean/max inside each lesion is the lesion's confidence); a bool or
  integer array is a mask (non-zero is inside).
- Volume is honest about anisotropic and uneven spacing: each slice owns the slab between the
  midpoints to its neighbours along the normal (the ends reach as far out as they reach in), so
  a voxel on slice ``i`` counts ``row spacing x column spacing x slab[i]`` mm³.
- Longest axial diameter: the longest in-plane distance across the lesion on the slice where
  its area is largest, between points of its pixel boundary (the mid-points of the edges
  between inside and outside pixels, in mm with each axis' own spacing), from their convex hull;
  the short axis is the hull's width perpendicular to it (as RECIST readers measure).
- Labelling is plain numpy (the CPU bundle has no SciPy, and scikit-image's ``label`` imports
  it): runs of foreground along each row, joined with the runs of the neighbouring rows and
  slices (6- or 26-connectivity; 4- or 8- within a 2-D image) by vectorised union-find. Work
  and memory grow with the number of runs, not voxels, and are bounded: a mask over
  ``max_voxels`` voxels or with over ``max_runs`` runs is refused in one line.

- Size floor: ``min_diameter_mm`` drops components whose longest axial diameter is under it
  (a bounding-box bound first, vectorised, then the measured diameter), and a note counts them;
  the engine passes :data:`MIN_DIAMETER_MM` (or :data:`MIN_VOXELS_UNKNOWN_SPACING` voxels when
  the spacing is not known), so a barely trained model's one-voxel specks are not lesions.

Pixel coordinates in the output follow ``findings``: ``(x, y)`` = (column, row) with pixel
``(r, c)`` covering ``[c, c+1) x [r, r+1)``; slices are 0-based stack indices. Each lesion also
carries the Instance Numbers (0020,0013) of its first and last slice, which is how the viewer
names slices ("Im 17"); ``lesiontext.lesion_line`` says a lesion as the findings rows do.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from desktop_app.inference.findings import FindingsFormatError
from desktop_app.infra.errors import ConfigError, DataError

if TYPE_CHECKING:
    from desktop_app.studies.series import SliceStack

log = logging.getLogger(__name__)

SCHEMA_NAME = "radassist-lesions"
SCHEMA_VERSION = "1.1"  # 1.1: lesions' Instance Numbers, the table's min_diameter_mm
SCHEMA_MAJOR = 1
#: 2048 slices of 512x512: the largest mask measured unless the caller raises it.
MAX_VOXELS = 2**29
#: A mask with more foreground runs than this is noise, not lesions (about 350 MB of work).
MAX_RUNS = 5_000_000
#: The largest lesions measured; the rest are counted in a note (a noisy map has millions).
MAX_LESIONS = 1000
#: The engine's size floor: a component under 3 mm longest axial diameter is not a lesion.
#: 3 mm is the line LIDC-IDRI's readers drew (nodules of 3 mm or more were outlined, smaller
#: ones only marked) and Fleischner's "micronodule"; the smallest nodule a CT reader reports.
MIN_DIAMETER_MM = 3.0
#: The floor without a known pixel spacing (a PNG): a 3 x 3 pixel speck is still noise.
MIN_VOXELS_UNKNOWN_SPACING = 10
_CHUNK_VOXELS = 1 << 22  # voxels per pass over the input (bounds temporary memory)

Vec3 = tuple[float, float, float]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class MaskGeometry:
    """Where a mask's voxels are (PS3.3 C.7.6.2.1.1): spacing in mm.

    ``pixel_spacing`` is (row spacing, column spacing), as Pixel Spacing (0028,0030) orders it.
    ``slice_positions`` are the slices' positions along the normal (mm, one per slice, in stack
    order); without them ``slice_spacing``, else ``slice_thickness``, is each slice's slab.
    ``image_positions`` and ``orientation`` (optional) place centroids in patient coordinates.
    ``instance_numbers`` (optional, one per slice) name the slices as the viewer does.
    """

    pixel_spacing: tuple[float, float]
    slice_positions: tuple[float, ...] | None = None
    slice_spacing: float | None = None
    slice_thickness: float | None = None
    image_positions: tuple[Vec3, ...] | None = None
    orientation: tuple[float, float, float, float, float, float] | None = None
    instance_numbers: tuple[int | None, ...] | None = None

    @classmethod
    def from_stack(cls, stack: SliceStack) -> MaskGeometry:
        """The geometry of a viewer's stack (positions projected on its normal)."""
        if stack.pixel_spacing is None:
            raise DataError(
                f"series {stack.series_instance_uid[-12:]} has no pixel spacing",
                hint="lesion sizes in mm need Pixel Spacing; measure in pixels instead",
            )
        positions = [ref.position for ref in stack.slices]
        normal = stack.normal
        known = [p for p in positions if p is not None]
        along = None
        if normal is not None and len(known) == len(positions) and len(known) > 1:
            along = tuple(float(np.dot(p, normal)) for p in known)
        thickness = stack.slices[0].instance.slice_thickness if len(stack) else None
        return cls(
            pixel_spacing=(float(stack.pixel_spacing[0]), float(stack.pixel_spacing[1])),
            slice_positions=along,
            slice_spacing=stack.slice_spacing,
            slice_thickness=None if thickness is None else float(thickness),
            image_positions=tuple(known) if len(known) == len(positions) else None,
            orientation=stack.orientation,
            instance_numbers=tuple(ref.instance.instance_number for ref in stack.slices),
        )

    def instance_number(self, index: int) -> int | None:
        """Slice ``index``'s Instance Number (0020,0013), None when unknown."""
        numbers = self.instance_numbers
        return numbers[index] if numbers is not None and 0 <= index < len(numbers) else None

    def slabs(self, slices: int) -> tuple[np.ndarray, list[str]] | None:
        """Each slice's extent along the normal (mm) and notes; None when unknown (2-D)."""
        dy, dx = self.pixel_spacing
        if not (math.isfinite(dy) and math.isfinite(dx) and dy > 0 and dx > 0):
            raise DataError(f"pixel spacing {self.pixel_spacing} should be two positive numbers")
        notes: list[str] = []
        if self.slice_positions is not None and slices > 1:
            if len(self.slice_positions) != slices:
                raise DataError(
                    f"{len(self.slice_positions)} slice positions for a mask of {slices} slices",
                    hint="give one position along the normal per slice, in stack order",
                )
            z = np.asarray(self.slice_positions, dtype=np.float64)
            steps = np.abs(np.diff(z))
            signs = np.sign(np.diff(z))
            if not np.all(np.isfinite(z)) or steps.min() <= 1e-6 or abs(signs.sum()) != len(steps):
                raise DataError(
                    "slice positions are not strictly monotonic along the normal",
                    hint="order the stack by position and drop duplicate slices",
                )
            slab = np.empty(slices)
            slab[1:-1] = (steps[:-1] + steps[1:]) / 2.0
            slab[0], slab[-1] = steps[0], steps[-1]
            median = float(np.median(steps))
            if steps.max() - steps.min() > 0.05 * median + 0.01:
                notes.append(
                    f"uneven slice spacing {steps.min():.3g}-{steps.max():.3g} mm: each slice "
                    "counts its own slab"
                )
            return slab, notes
        step = self.slice_spacing if self.slice_spacing else self.slice_thickness
        if step is None:
            return None
        if not (math.isfinite(step) and step > 0):
            raise DataError(f"slice spacing {step} should be a positive number of mm")
        return np.full(slices, float(step)), notes

    def patient_point(self, slice_index: float, row: float, col: float) -> Vec3 | None:
        """A fractional voxel index (pixel centres at integers) in patient LPS mm."""
        if self.image_positions is None or self.orientation is None:
            return None
        positions = np.asarray(self.image_positions, dtype=np.float64)
        k = min(max(slice_index, 0.0), len(positions) - 1.0)
        k0 = math.floor(k)
        k1 = min(k0 + 1, len(positions) - 1)
        origin = positions[k0] + (k - k0) * (positions[k1] - positions[k0])
        o = np.asarray(self.orientation, dtype=np.float64)
        dy, dx = self.pixel_spacing
        p = origin + col * dx * o[:3] + row * dy * o[3:]
        return (float(p[0]), float(p[1]), float(p[2]))


@dataclass(frozen=True)
class Lesion:
    """One connected component and its measurements (see the module docstring)."""

    id: int
    voxels: int
    volume_mm3: float | None  # None for a 2-D image
    area_mm2: float  # on the slice where it is largest
    longest_diameter_mm: float
    short_axis_mm: float
    diameter_slice: int
    diameter_line: tuple[float, float, float, float]  # (x0, y0, x1, y1) on diameter_slice
    first_slice: int
    last_slice: int
    box: tuple[int, int, int, int]  # (x, y, width, height) over all its slices
    centroid: tuple[float, float, float]  # (slice, x, y); slice a fractional stack index
    centroid_mm: Vec3 | None = None
    mean_value: float | None = None
    max_value: float | None = None
    mean_probability: float | None = None
    max_probability: float | None = None
    first_instance_number: int | None = None  # Instance Number of first_slice (the viewer's "Im")
    last_instance_number: int | None = None

    @property
    def slice_count(self) -> int:
        return self.last_slice - self.first_slice + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "voxels": self.voxels,
            "volume_mm3": self.volume_mm3,
            "area_mm2": self.area_mm2,
            "longest_diameter_mm": self.longest_diameter_mm,
            "short_axis_mm": self.short_axis_mm,
            "diameter_slice": self.diameter_slice,
            "diameter_line": list(self.diameter_line),
            "first_slice": self.first_slice,
            "last_slice": self.last_slice,
            "slice_count": self.slice_count,
            "box": list(self.box),
            "centroid": list(self.centroid),
            "centroid_mm": None if self.centroid_mm is None else list(self.centroid_mm),
            "mean_value": self.mean_value,
            "max_value": self.max_value,
            "mean_probability": self.mean_probability,
            "max_probability": self.max_probability,
            "first_instance_number": self.first_instance_number,
            "last_instance_number": self.last_instance_number,
        }

    @classmethod
    def from_json(cls, data: Any) -> Lesion:
        if not isinstance(data, dict):
            raise FindingsFormatError(f"a lesion should be an object, not {type(data).__name__}")
        try:
            centroid_mm = data.get("centroid_mm")
            return cls(
                id=int(data["id"]),
                voxels=int(data["voxels"]),
                volume_mm3=_opt_float(data.get("volume_mm3")),
                area_mm2=float(data["area_mm2"]),
                longest_diameter_mm=float(data["longest_diameter_mm"]),
                short_axis_mm=float(data["short_axis_mm"]),
                diameter_slice=int(data["diameter_slice"]),
                diameter_line=_floats(data["diameter_line"], 4),  # type: ignore[arg-type]
                first_slice=int(data["first_slice"]),
                last_slice=int(data["last_slice"]),
                box=tuple(int(v) for v in _floats(data["box"], 4)),  # type: ignore[arg-type]
                centroid=_floats(data["centroid"], 3),  # type: ignore[arg-type]
                centroid_mm=None if centroid_mm is None else _floats(centroid_mm, 3),  # type: ignore[arg-type]
                mean_value=_opt_float(data.get("mean_value")),
                max_value=_opt_float(data.get("max_value")),
                mean_probability=_opt_float(data.get("mean_probability")),
                max_probability=_opt_float(data.get("max_probability")),
                first_instance_number=_opt_int(data.get("first_instance_number")),
                last_instance_number=_opt_int(data.get("last_instance_number")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise FindingsFormatError(f"lesion {data.get('id', '?')}: bad field ({err})") from None


@dataclass(frozen=True)
class LesionTable:
    """The lesions of one mask, largest first, and how they were found."""

    lesions: tuple[Lesion, ...]
    dimension: int  # 3 (volume, mm³) or 2 (one image, mm²)
    shape: tuple[int, int, int]
    pixel_spacing: tuple[float, float]
    connectivity: int
    threshold: float | None  # None when the input was a binary mask
    min_voxels: int
    min_size: float  # mm³ (3-D) or mm² (2-D)
    value_unit: str = ""
    notes: tuple[str, ...] = ()
    labels: np.ndarray | None = field(default=None, compare=False, repr=False)
    min_diameter_mm: float = 0.0  # longest axial diameter; 0 = no floor (1.0 tables)

    def __len__(self) -> int:
        return len(self.lesions)

    def to_json(self) -> dict[str, Any]:
        """The versioned JSON form (``labels`` is not inlined: write it as a SEG or masks)."""
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "dimension": self.dimension,
            "shape": list(self.shape),
            "pixel_spacing": list(self.pixel_spacing),
            "connectivity": self.connectivity,
            "threshold": self.threshold,
            "min_voxels": self.min_voxels,
            "min_size": self.min_size,
            "min_diameter_mm": self.min_diameter_mm,
            "value_unit": self.value_unit,
            "notes": list(self.notes),
            "lesions": [lesion.to_json() for lesion in self.lesions],
        }

    @classmethod
    def from_json(cls, data: Any) -> LesionTable:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_NAME:
            raise FindingsFormatError(f"not a {SCHEMA_NAME} document")
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != str(SCHEMA_MAJOR):
            raise FindingsFormatError(
                f"lesion table version {version!r} is not readable (this reader: {SCHEMA_VERSION})",
                hint="update RadAssist",
            )
        try:
            lesions = data["lesions"]
            if not isinstance(lesions, list):
                raise TypeError("lesions should be a list")
            threshold = data.get("threshold")
            return cls(
                lesions=tuple(Lesion.from_json(item) for item in lesions),
                dimension=int(data["dimension"]),
                shape=tuple(int(v) for v in _floats(data["shape"], 3)),  # type: ignore[arg-type]
                pixel_spacing=_floats(data["pixel_spacing"], 2),  # type: ignore[arg-type]
                connectivity=int(data["connectivity"]),
                threshold=None if threshold is None else float(threshold),
                min_voxels=int(data["min_voxels"]),
                min_size=float(data["min_size"]),
                value_unit=str(data.get("value_unit", "")),
                notes=tuple(str(n) for n in data.get("notes", [])),
                min_diameter_mm=float(data.get("min_diameter_mm", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise FindingsFormatError(f"lesion table: bad field ({err})") from None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _floats(value: Any, n: int) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or len(value) != n:
        raise ValueError(f"{value!r} should be a list of {n} numbers")
    return tuple(float(v) for v in value)


# ------------------------------------------------------------------------------------ runs


@dataclass
class _Runs:
    """Foreground runs along rows, in C order: row id (slice * rows + row), [start, end)."""

    row: IntArray
    start: IntArray
    end: IntArray


def _chunks(slices: int, plane: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_VOXELS // max(plane, 1))
    return [(k, min(k + step, slices)) for k in range(0, slices, step)]


def _foreground(block: np.ndarray, threshold: float | None) -> np.ndarray:
    return block >= threshold if threshold is not None else block != 0


def _extract_runs(volume: np.ndarray, threshold: float | None, max_runs: int) -> _Runs:
    slices, rows, cols = volume.shape
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    count = 0
    for k0, k1 in _chunks(slices, rows * cols):
        fg = _foreground(volume[k0:k1], threshold).reshape(-1, cols)
        padded = np.zeros((fg.shape[0], cols + 2), dtype=np.int8)
        padded[:, 1:-1] = fg
        edges = np.diff(padded, axis=1)
        r_start, c_start = np.nonzero(edges == 1)
        _, c_end = np.nonzero(edges == -1)
        count += r_start.size
        if count > max_runs:
            raise DataError(
                f"the mask has over {max_runs:,} runs of foreground (a mask this fragmented is "
                "noise, not lesions)",
                hint="smooth or threshold it higher, or raise max_runs",
            )
        parts.append((r_start.astype(np.int64) + k0 * rows, c_start, c_end))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return _Runs(empty, empty, empty)
    return _Runs(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]).astype(np.int64),
        np.concatenate([p[2] for p in parts]).astype(np.int64),
    )


def _offsets(connectivity: int) -> list[tuple[int, int, int]]:
    """Earlier neighbour rows (slice step, row step) and the column reach (0 face, 1 diagonal)."""
    if connectivity == 6:
        return [(0, -1, 0), (-1, 0, 0)]
    return [(0, -1, 1), (-1, -1, 1), (-1, 0, 1), (-1, 1, 1)]


def _pairs(
    runs: _Runs, rows: int, width: int, offset: tuple[int, int, int]
) -> tuple[IntArray, IntArray]:
    """Indices (a, b) of runs that touch across one neighbour offset."""
    ds, dr, reach = offset
    s, r = np.divmod(runs.row, rows)
    valid = (r + dr >= 0) & (r + dr < rows) & (s + ds >= 0)
    a = np.flatnonzero(valid)
    target = (s[a] + ds) * rows + r[a] + dr
    start_key = runs.row * width + runs.start
    end_key = runs.row * width + runs.end
    lo = np.searchsorted(end_key, target * width + runs.start[a] - reach, side="right")
    hi = np.searchsorted(start_key, target * width + runs.end[a] + reach, side="left")
    counts = np.maximum(hi - lo, 0)
    total = int(counts.sum())
    first = np.cumsum(counts) - counts
    pa = np.repeat(a, counts)
    pb = np.repeat(lo, counts) + (np.arange(total) - np.repeat(first, counts))
    return pa, pb


def _compress(parent: IntArray) -> IntArray:
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            return parent
        parent = nxt


def _components(runs: _Runs, rows: int, cols: int, connectivity: int) -> tuple[IntArray, int]:
    """Component index (0..n-1, in order of first run) for every run."""
    n = runs.row.size
    parent = np.arange(n, dtype=np.int64)
    for offset in _offsets(connectivity):
        a, b = _pairs(runs, rows, cols + 2, offset)
        while a.size:
            ra, rb = parent[a], parent[b]
            differ = ra != rb
            if not differ.any():
                break
            a, b, ra, rb = a[differ], b[differ], ra[differ], rb[differ]
            # Hook the larger root under the smaller: pointers only decrease, so no cycles.
            parent[np.maximum(ra, rb)] = np.minimum(ra, rb)
            parent = _compress(parent)
    roots, comp = np.unique(parent, return_inverse=True)
    return comp.astype(np.int64), int(roots.size)


# ------------------------------------------------------------------------------ measuring


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain: the hull's vertices (counter-clockwise) of (n, 2) points."""
    pts = np.unique(points, axis=0)
    if len(pts) <= 2:
        return pts
    lower: list[tuple[float, float]] = []
    upper: list[tuple[float, float]] = []

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    listed = [(float(p[0]), float(p[1])) for p in pts]
    for p in listed:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(listed):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1], dtype=np.float64)


def _boundary_points(crop: np.ndarray) -> np.ndarray:
    """(row, col) mid-points of the outermost inside/outside pixel edges of a 2-D mask: per
    row its leftmost and rightmost edge, per column its top and bottom (all the hull needs)."""
    rows_any = np.flatnonzero(crop.any(axis=1))
    cols_any = np.flatnonzero(crop.any(axis=0))
    sub_r = crop[rows_any]
    left = np.argmax(sub_r, axis=1)
    right = crop.shape[1] - 1 - np.argmax(sub_r[:, ::-1], axis=1)
    sub_c = crop[:, cols_any]
    top = np.argmax(sub_c, axis=0)
    bottom = crop.shape[0] - 1 - np.argmax(sub_c[::-1], axis=0)
    r = rows_any.astype(np.float64)
    c = cols_any.astype(np.float64)
    return np.concatenate(
        [
            np.stack([r, left - 0.5], axis=1),
            np.stack([r, right + 0.5], axis=1),
            np.stack([top - 0.5, c], axis=1),
            np.stack([bottom + 0.5, c], axis=1),
        ]
    )


def _diameters(
    crop: np.ndarray, origin: tuple[int, int], spacing: tuple[float, float]
) -> tuple[float, float, tuple[float, float, float, float]]:
    """Longest diameter, short axis (mm) and the diameter's ends (x0, y0, x1, y1) in pixels."""
    dy, dx = spacing
    pts = _boundary_points(crop)
    mm = np.stack([pts[:, 0] * dy, pts[:, 1] * dx], axis=1)
    hull = _convex_hull(mm)
    best, i, j = 0.0, 0, 0
    for k in range(0, len(hull), 512):  # pairwise over the hull, in blocks: bounded memory
        d = np.linalg.norm(hull[k : k + 512, None, :] - hull[None, :, :], axis=2)
        flat = int(np.argmax(d))
        if d.flat[flat] > best:
            best = float(d.flat[flat])
            i, j = k + flat // len(hull), flat % len(hull)
    p, q = hull[i], hull[j]
    if best > 0:
        axis = (q - p) / best
        normal = np.array([-axis[1], axis[0]])
        widths = hull @ normal
        short = float(widths.max() - widths.min())
    else:
        short = 0.0
    r0, c0 = origin
    line = (
        p[1] / dx + c0 + 0.5,
        p[0] / dy + r0 + 0.5,
        q[1] / dx + c0 + 0.5,
        q[0] / dy + r0 + 0.5,
    )
    return best, short, (float(line[0]), float(line[1]), float(line[2]), float(line[3]))


def _slice_crop(runs: _Runs, pick: IntArray, rows: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The picked runs (one slice) painted into their bounding box."""
    r = runs.row[pick] % rows
    start, end = runs.start[pick], runs.end[pick]
    r0, c0 = int(r.min()), int(start.min())
    crop = np.zeros((int(r.max()) - r0 + 1, int(end.max()) - c0), dtype=bool)
    lengths = end - start
    first = np.cumsum(lengths) - lengths
    cols = np.repeat(start - c0, lengths) + (
        np.arange(int(lengths.sum())) - np.repeat(first, lengths)
    )
    crop[np.repeat(r - r0, lengths), cols] = True
    return crop, (r0, c0)


@dataclass
class _Sums:
    """Per-component sums of values and probabilities from a second pass over the input."""

    value_sum: np.ndarray
    value_max: np.ndarray
    prob_sum: np.ndarray
    prob_max: np.ndarray


def _value_sums(
    volume: np.ndarray,
    values: np.ndarray | None,
    threshold: float | None,
    runs: _Runs,
    comp: IntArray,
    n: int,
    labels: np.ndarray | None,
    lesion_id: np.ndarray,
) -> _Sums:
    slices, rows, cols = volume.shape
    sums = _Sums(np.zeros(n), np.full(n, -np.inf), np.zeros(n), np.full(n, -np.inf))
    lengths = runs.end - runs.start
    plane = rows * cols
    for k0, k1 in _chunks(slices, plane):
        lo, hi = np.searchsorted(runs.row, [k0 * rows, k1 * rows])
        if lo == hi:
            continue
        fg = _foreground(volume[k0:k1], threshold)
        voxel_comp = np.repeat(comp[lo:hi], lengths[lo:hi])
        if values is not None:
            v = values[k0:k1][fg].astype(np.float64)
            sums.value_sum += np.bincount(voxel_comp, weights=v, minlength=n)
            np.maximum.at(sums.value_max, voxel_comp, v)
        if threshold is not None:
            p = volume[k0:k1][fg].astype(np.float64)
            sums.prob_sum += np.bincount(voxel_comp, weights=p, minlength=n)
            np.maximum.at(sums.prob_max, voxel_comp, p)
        if labels is not None:
            labels[k0:k1][fg] = lesion_id[voxel_comp]
    return sums


def _check_inputs(
    volume: np.ndarray, values: np.ndarray | None, connectivity: int, max_voxels: int
) -> int:
    if volume.ndim not in (2, 3):
        raise DataError(
            f"a mask of shape {volume.shape} should be (rows, cols) or (slices, rows, cols)"
        )
    if volume.size > max_voxels:
        raise DataError(
            f"a mask of {volume.size:,} voxels {volume.shape} is over the limit of {max_voxels:,}",
            hint="measure a cropped region, or raise max_voxels",
        )
    if values is not None and values.shape != volume.shape:
        raise DataError(f"values of shape {values.shape} do not match the mask {volume.shape}")
    aliases = {4: 6, 6: 6, 8: 26, 26: 26}
    if connectivity not in aliases:
        raise ConfigError(
            f"connectivity {connectivity} should be 6 or 26 (4 or 8 within one image)"
        )
    return aliases[connectivity]


def find_lesions(
    mask: np.ndarray,
    geometry: MaskGeometry,
    *,
    values: np.ndarray | None = None,
    value_unit: str = "",
    threshold: float = 0.5,
    connectivity: int = 26,
    min_voxels: int = 1,
    min_size: float = 0.0,
    min_diameter_mm: float = 0.0,
    with_labels: bool = False,
    max_voxels: int = MAX_VOXELS,
    max_runs: int = MAX_RUNS,
    max_lesions: int = MAX_LESIONS,
) -> LesionTable:
    """The connected components of ``mask`` as lesions, largest first (ids 1..n).

    ``mask``: a probability map (float, inside where ``>= threshold``) or a binary mask
    (bool or integers, inside where non-zero), shaped (slices, rows, cols) or (rows, cols).
    ``values``: the modality values (HU on CT) on the same grid, for each lesion's mean and max.
    Components smaller than ``min_voxels`` voxels or ``min_size`` mm³ (mm² in 2-D), or whose
    longest axial diameter is under ``min_diameter_mm``, are dropped (a note counts the last).
    Only the ``max_lesions`` largest are measured and listed; a note counts the rest.
    ``with_labels`` also returns the label volume (lesion id per voxel, 0 outside: uint16, or
    uint32 past 65,535 lesions).
    """
    arr = np.asarray(mask)
    conn = _check_inputs(arr, values, connectivity, max_voxels)
    vals = None if values is None else np.asarray(values)
    if arr.ndim == 2:
        arr = arr[None]
        vals = None if vals is None else vals[None]
    thr = float(threshold) if np.issubdtype(arr.dtype, np.floating) else None
    slices, rows, cols = arr.shape
    numbers = geometry.instance_numbers
    if numbers is not None and len(numbers) != slices:  # e.g. a crop's geometry: not its slices
        geometry = replace(geometry, instance_numbers=None)
    slab_info = geometry.slabs(slices) if np.asarray(mask).ndim == 3 else None
    if slab_info is None and slices > 1:
        raise DataError(
            f"a mask of {slices} slices needs slice positions, spacing or thickness",
            hint="pass them in MaskGeometry (MaskGeometry.from_stack does)",
        )
    if slab_info is None:
        geometry.slabs(1)  # validates the pixel spacing
    dimension = 2 if slab_info is None else 3
    slab, notes = slab_info if slab_info is not None else (np.ones(1), [])
    runs = _extract_runs(arr, thr, max_runs)
    comp, n = _components(runs, rows, cols, conn)
    dy, dx = geometry.pixel_spacing
    lengths = (runs.end - runs.start).astype(np.float64)
    s_of = runs.row // rows
    voxels = np.bincount(comp, weights=lengths, minlength=n)
    size = np.bincount(comp, weights=lengths * slab[s_of], minlength=n) * dy * dx
    keep = np.flatnonzero((voxels >= min_voxels) & (size >= min_size))
    # Largest first; ties by voxels, then by where they start (stack order).
    order = keep[np.lexsort((keep, -voxels[keep], -size[keep]))]
    widths: dict[int, _Widest] = {}
    unmeasured = 0
    if min_diameter_mm > 0 and order.size:
        order, small, unmeasured = _wide_enough(
            runs, comp, order, rows, (dy, dx), min_diameter_mm, max_lesions + 1, widths
        )
        if small:
            notes.append(
                f"{small:,} component(s) under {min_diameter_mm:g} mm longest axial diameter "
                "are not counted as lesions"
            )
    if order.size > max_lesions:
        found = f"up to {order.size + unmeasured:,}" if unmeasured else f"{order.size:,}"
        notes.append(
            f"{found} lesions found; the {max_lesions:,} largest are measured "
            f"(the rest are {size[order[max_lesions]]:.3g} {'mm³' if slab_info else 'mm²'} "
            "or smaller)"
        )
        order = order[:max_lesions]
    lesion_id = np.zeros(n, dtype=np.int64)
    lesion_id[order] = np.arange(1, order.size + 1)
    labels = None
    if with_labels:
        dtype = np.uint16 if order.size <= np.iinfo(np.uint16).max else np.uint32
        labels = np.zeros(arr.shape, dtype=dtype)
    sums = _value_sums(arr, vals, thr, runs, comp, n, labels, lesion_id)
    if labels is not None and np.asarray(mask).ndim == 2:
        labels = labels[0]
    lesions = _measure(
        runs, comp, order, rows, geometry, dimension, voxels, size, sums, vals, thr, widths
    )
    log.debug("%d components, %d lesions kept from %d runs", n, len(lesions), runs.row.size)
    return LesionTable(
        lesions=tuple(lesions),
        dimension=dimension,
        shape=(slices, rows, cols),
        pixel_spacing=(float(dy), float(dx)),
        connectivity=conn if dimension == 3 else {6: 4, 26: 8}[conn],
        threshold=thr,
        min_voxels=int(min_voxels),
        min_size=float(min_size),
        value_unit=value_unit,
        notes=tuple(notes),
        labels=labels,
        min_diameter_mm=float(min_diameter_mm),
    )


@dataclass(frozen=True)
class _Widest:
    """A component's slice of largest area, its area per slice and its diameters there."""

    slice: int
    area_per_slice: np.ndarray
    longest: float
    short: float
    line: tuple[float, float, float, float]


def _by_component(comp: IntArray) -> tuple[IntArray, IntArray]:
    """Runs sorted by component, and where each component's runs begin in that order."""
    by_comp = np.argsort(comp, kind="stable")
    bounds = np.searchsorted(comp[by_comp], np.arange(comp.max() + 2 if comp.size else 1))
    return by_comp, bounds


def _widest(runs: _Runs, mine: IntArray, rows: int, spacing: tuple[float, float]) -> _Widest:
    """The diameters of one component (its runs ``mine``) on the slice where it is largest."""
    s = runs.row[mine] // rows
    first = int(s.min())
    area_per_slice = np.bincount(s - first, weights=(runs.end[mine] - runs.start[mine]))
    largest = first + int(np.argmax(area_per_slice))
    crop, origin = _slice_crop(runs, mine[s == largest], rows)
    longest, short, line = _diameters(crop, origin, spacing)
    return _Widest(largest, area_per_slice.astype(np.float64), longest, short, line)


def _wide_enough(
    runs: _Runs,
    comp: IntArray,
    order: IntArray,
    rows: int,
    spacing: tuple[float, float],
    min_diameter_mm: float,
    enough: int,
    widths: dict[int, _Widest],
) -> tuple[IntArray, int, int]:
    """The components of ``order`` (kept in order) whose longest axial diameter reaches
    ``min_diameter_mm``, at most ``enough`` of them; how many were dropped as too small; and
    how many were left unmeasured after ``enough`` were found. The in-plane bounding box's
    diagonal bounds every slice's diameter from above, so specks are dropped without measuring;
    the measured ones are kept in ``widths`` for ``_measure``."""
    dy, dx = spacing
    n = int(comp.max()) + 1 if comp.size else 0
    r = runs.row % rows
    lo_r, hi_r = np.full(n, np.iinfo(np.int64).max), np.full(n, -1)
    lo_c, hi_c = np.full(n, np.iinfo(np.int64).max), np.full(n, -1)
    np.minimum.at(lo_r, comp, r)
    np.maximum.at(hi_r, comp, r)
    np.minimum.at(lo_c, comp, runs.start)
    np.maximum.at(hi_c, comp, runs.end)
    bound = np.hypot((hi_r - lo_r + 1) * dy, (hi_c - lo_c) * dx)
    candidates = order[bound[order] >= min_diameter_mm]
    small = order.size - candidates.size
    by_comp, bounds = _by_component(comp)
    kept: list[int] = []
    done = 0
    for c in candidates.tolist():
        if len(kept) >= enough:
            break
        done += 1
        wide = _widest(runs, by_comp[bounds[c] : bounds[c + 1]], rows, spacing)
        if wide.longest >= min_diameter_mm:
            widths[c] = wide
            kept.append(c)
        else:
            small += 1
    return np.asarray(kept, dtype=np.int64), small, candidates.size - done


def _measure(
    runs: _Runs,
    comp: IntArray,
    order: IntArray,
    rows: int,
    geometry: MaskGeometry,
    dimension: int,
    voxels: np.ndarray,
    size: np.ndarray,
    sums: _Sums,
    values: np.ndarray | None,
    threshold: float | None,
    widths: dict[int, _Widest],
) -> list[Lesion]:
    dy, dx = geometry.pixel_spacing
    s_of, r_of = np.divmod(runs.row, rows)
    lengths = (runs.end - runs.start).astype(np.float64)
    by_comp, bounds = _by_component(comp)
    out: list[Lesion] = []
    for rank, c in enumerate(order, start=1):
        mine = by_comp[bounds[c] : bounds[c + 1]]
        s, r, ln = s_of[mine], r_of[mine], lengths[mine]
        first, last = int(s.min()), int(s.max())
        wide = widths.get(int(c)) or _widest(runs, mine, rows, (dy, dx))
        n_vox = float(voxels[c])
        cs = float((s * ln).sum() / n_vox)
        cr = float((r * ln).sum() / n_vox)
        cc = float(((runs.start[mine] + runs.end[mine] - 1) / 2.0 * ln).sum() / n_vox)
        x0, x1 = int(runs.start[mine].min()), int(runs.end[mine].max())
        y0, y1 = int(r.min()), int(r.max()) + 1
        out.append(
            Lesion(
                id=rank,
                voxels=int(n_vox),
                volume_mm3=float(size[c]) if dimension == 3 else None,
                area_mm2=float(wide.area_per_slice.max() * dy * dx),
                longest_diameter_mm=wide.longest,
                short_axis_mm=wide.short,
                diameter_slice=wide.slice,
                diameter_line=wide.line,
                first_slice=first,
                last_slice=last,
                box=(x0, y0, x1 - x0, y1 - y0),
                centroid=(cs, cc + 0.5, cr + 0.5),
                centroid_mm=geometry.patient_point(cs, cr, cc),
                mean_value=None if values is None else float(sums.value_sum[c] / n_vox),
                max_value=None if values is None else float(sums.value_max[c]),
                mean_probability=None if threshold is None else float(sums.prob_sum[c] / n_vox),
                max_probability=None if threshold is None else float(sums.prob_max[c]),
                first_instance_number=geometry.instance_number(first),
                last_instance_number=geometry.instance_number(last),
            )
        )
    return out
