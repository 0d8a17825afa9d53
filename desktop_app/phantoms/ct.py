"""Seeded chest CT phantoms in Hounsfield units, slice by slice, with spherical lesions.

The body is made of axis-aligned ellipsoids and elliptic cylinders in patient coordinates
(LPS, mm; PS3.3 C.7.6.2.1.1): air -1000, subcutaneous fat -100, soft tissue 40, lungs
about -820 with vessels, heart, aorta, liver, vertebrae (cancellous 250, cortex 900), ribs
800, sternum and a table. A slice plane cuts each ellipsoid in an ellipse, and because
every shape is axis-aligned and the gantry tilts only about the x axis, the cut separates
into a per-column and a per-row term: each slice costs a few small vector operations plus
painting inside bounding boxes. 300 slices of 512x512 render in about a second.

Slice ``i`` has Instance Number ``i + 1`` and lies ``i`` steps below the first (head
first, top to bottom). Lesion ground truth names slices by that index, and
:meth:`CtPhantom.lesion_mask` gives each slice's lesion labels (the masks of the findings).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from desktop_app.infra.errors import ConfigError
from desktop_app.phantoms.boxes import Box
from desktop_app.phantoms.dicomwrite import CtSliceGeometry, synthetic_uid
from desktop_app.phantoms.seeds import derive_rng

log = logging.getLogger(__name__)

HU_AIR = -1000
HU_FAT = -100
HU_SOFT = 40
HU_LUNG = -820
HU_BONE = 800
HU_CORTEX = 900
HU_CANCELLOUS = 250
DEFAULT_FOV_MM = 380.0


@dataclass(frozen=True)
class Lesion:
    """A sphere of ``hu`` at ``center_mm`` (patient LPS coordinates) with ``radius_mm``."""

    center_mm: tuple[float, float, float]
    radius_mm: float
    hu: float = 45.0

    @property
    def volume_mm3(self) -> float:
        """The sphere's analytic volume, 4/3 pi r^3."""
        return 4.0 / 3.0 * math.pi * self.radius_mm**3


@dataclass(frozen=True)
class LesionTruth:
    """Where a lesion shows: the slices it cuts (inclusive) and the union of its boxes."""

    lesion: Lesion
    first_slice: int
    last_slice: int
    box: Box
    largest_slice: int


@dataclass(frozen=True)
class CtGeometry:
    """The whole series' geometry (PS3.3 C.7.6.2): slice ``i`` starts at ``positions[i]``."""

    rows: int
    cols: int
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) in mm
    slice_thickness: float
    table_step: float  # table travel between slices (mm along z)
    tilt_deg: float
    orientation: tuple[float, float, float, float, float, float]
    positions: tuple[tuple[float, float, float], ...]
    frame_of_reference_uid: str

    @property
    def slices(self) -> int:
        return len(self.positions)

    @property
    def normal(self) -> tuple[float, float, float]:
        r, c = np.array(self.orientation[:3]), np.array(self.orientation[3:])
        n = np.cross(r, c)
        return (float(n[0]), float(n[1]), float(n[2]))

    @property
    def spacing_between_slices(self) -> float:
        """Distance between neighbouring planes along their normal."""
        return self.table_step * math.cos(math.radians(self.tilt_deg))

    def slice_geometry(self, index: int) -> CtSliceGeometry:
        from pydicom.uid import UID

        return CtSliceGeometry(
            position=self.positions[index],
            orientation=self.orientation,
            pixel_spacing=self.pixel_spacing,
            slice_thickness=self.slice_thickness,
            spacing_between_slices=self.spacing_between_slices,
            gantry_tilt_deg=self.tilt_deg,
            frame_of_reference_uid=UID(self.frame_of_reference_uid),
        )


def ct_geometry(
    seed: int,
    slices: int,
    rows: int,
    cols: int,
    *,
    pixel_spacing_mm: float | None = None,
    slice_thickness_mm: float = 2.5,
    tilt_deg: float = 0.0,
) -> CtGeometry:
    """Geometry centred on the body: rows run posteriorly (+y), columns to the patient's left
    (+x); with a gantry tilt ``t`` the column direction is ``(0, cos t, sin t)``."""
    if not 1 <= slices <= 5000:
        raise ConfigError(f"`slices` {slices} should be between 1 and 5000")
    for label, value in (("rows", rows), ("cols", cols)):
        if not 16 <= value <= 4096:
            raise ConfigError(f"`{label}` {value} should be between 16 and 4096")
    if not -45.0 < tilt_deg < 45.0:
        raise ConfigError(f"`tilt_deg` {tilt_deg} should be between -45 and 45 degrees")
    if slice_thickness_mm <= 0:
        raise ConfigError(f"`slice_thickness_mm` {slice_thickness_mm} should be positive")
    dx = pixel_spacing_mm if pixel_spacing_mm is not None else DEFAULT_FOV_MM / max(rows, cols)
    if dx <= 0:
        raise ConfigError(f"`pixel_spacing_mm` {pixel_spacing_mm} should be positive")
    t = math.radians(tilt_deg)
    col_dir = (0.0, math.cos(t), math.sin(t))
    x0 = -(cols - 1) / 2.0 * dx
    y0 = -(rows - 1) / 2.0 * dx * col_dir[1]
    z_mid = -(rows - 1) / 2.0 * dx * col_dir[2]
    top = (slices - 1) / 2.0 * slice_thickness_mm
    positions = tuple(
        (round(x0, 4), round(y0, 4), round(top - i * slice_thickness_mm + z_mid, 4))
        for i in range(slices)
    )
    return CtGeometry(
        rows=rows,
        cols=cols,
        pixel_spacing=(dx, dx),
        slice_thickness=slice_thickness_mm,
        table_step=slice_thickness_mm,
        tilt_deg=tilt_deg,
        orientation=(1.0, 0.0, 0.0, 0.0, round(col_dir[1], 8), round(col_dir[2], 8)),
        positions=positions,
        frame_of_reference_uid=str(synthetic_uid("frame-of-reference", seed)),
    )


@dataclass(frozen=True)
class _Ellipsoid:
    center: tuple[float, float, float]
    semi: tuple[float, float, float]  # math.inf along z makes an elliptic cylinder
    hu: int


class CtPhantom:
    """One seeded body in one geometry; :meth:`slice` renders slice ``i`` in HU (int16)."""

    def __init__(
        self,
        seed: int,
        geometry: CtGeometry,
        lesions: Sequence[Lesion] | int = 0,
        noise_hu: float = 12.0,
    ) -> None:
        self.seed = seed
        self.geometry = g = geometry
        rng = derive_rng(seed, "ct-anatomy")
        dx = g.pixel_spacing[1]
        dy = g.pixel_spacing[0]
        t = math.radians(g.tilt_deg)
        x0, y0, _ = g.positions[0]
        self.x = (x0 + np.arange(g.cols) * dx).astype(np.float32)  # mm, per column
        self.y = (y0 + np.arange(g.rows) * dy * math.cos(t)).astype(np.float32)  # per row
        self.z_row = (np.arange(g.rows) * dy * math.sin(t)).astype(np.float32)
        s = float(rng.uniform(0.9, 1.06))
        self.scale = s
        self._build_static(rng, s)
        self.organs = [  # painted in this order, after the static body
            _Ellipsoid((-55 * s, 5 * s, -150 * s), (105 * s, 85 * s, 95 * s), 60),  # liver
            _Ellipsoid((-72 * s, 0.0, 20 * s), (60 * s, 75 * s, 130 * s), HU_LUNG),  # right lung
            _Ellipsoid((74 * s, 0.0, 15 * s), (58 * s, 74 * s, 125 * s), HU_LUNG),  # left lung
            _Ellipsoid((25 * s, -25 * s, -45 * s), (58 * s, 48 * s, 60 * s), HU_SOFT),  # heart
        ]
        self.lungs = self.organs[1:3]
        self._vessels = self._make_vessels(rng)
        if isinstance(lesions, int):
            lesions = random_lung_lesions(seed, lesions, self)
        self.lesions = list(lesions)
        noise_rng = derive_rng(seed, "ct-noise")
        self._noise_bank = [
            np.rint(
                noise_rng.standard_normal((g.rows, g.cols), dtype=np.float32) * noise_hu
            ).astype(np.int16)
            for _ in range(3)
        ]
        self._texture = np.rint(
            noise_rng.standard_normal((g.rows, g.cols), dtype=np.float32) * 25.0
        ).astype(np.int16)
        self._shifts = noise_rng.integers(0, max(g.rows, g.cols), size=(g.slices, 2))

    # ---------------------------------------------------------------------------- geometry

    def _ellipse_terms(self, e: _Ellipsoid, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-column and per-row parts of the ellipsoid's implicit function on slice ``index``."""
        (cx, cy, cz), (a, b, c) = e.center, e.semi
        fx = ((self.x - np.float32(cx)) / np.float32(a)) ** 2
        gy = ((self.y - np.float32(cy)) / np.float32(b)) ** 2
        if math.isfinite(c):
            z = self.geometry.positions[index][2] + self.z_row
            gy = gy + ((z - np.float32(cz)) / np.float32(c)) ** 2
        if float(fx.min()) + float(gy.min()) > 1.0:
            return None
        return fx, gy

    def _mask(self, e: _Ellipsoid, index: int) -> tuple[slice, slice, np.ndarray] | None:
        terms = self._ellipse_terms(e, index)
        if terms is None:
            return None
        fx, gy = terms
        rows = np.flatnonzero(gy <= 1.0 - fx.min())
        cols = np.flatnonzero(fx <= 1.0 - gy.min())
        if rows.size == 0 or cols.size == 0:
            return None
        rs, cs = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
        mask = fx[None, cs] + gy[rs, None] <= 1.0
        return rs, cs, mask

    def _static_ellipse(self, cx: float, cy: float, a: float, b: float) -> np.ndarray:
        return (((self.x[None, :] - cx) / a) ** 2 + ((self.y[:, None] - cy) / b) ** 2) <= 1.0

    def _build_static(self, rng: np.random.Generator, s: float) -> None:
        """Everything that does not change along z: body, fat, table, spine, aorta, sternum."""
        g = self.geometry
        base = np.full((g.rows, g.cols), HU_AIR, dtype=np.int16)
        table = (
            (self.y[:, None] >= 132 * s)
            & (self.y[:, None] <= 140 * s)
            & (np.abs(self.x[None, :]) <= 220)
        )
        base[np.broadcast_to(table, base.shape)] = 250
        base[self._static_ellipse(0.0, 5 * s, 168 * s, 122 * s)] = HU_FAT
        fat = float(rng.uniform(8.0, 22.0))
        base[self._static_ellipse(0.0, 5 * s, (168 - fat) * s, (122 - fat) * s)] = HU_SOFT
        self.base = base
        # Foreground: painted over the organs on every slice (flat index -> HU).
        fg = np.zeros((g.rows, g.cols), dtype=np.int16)
        have = np.zeros((g.rows, g.cols), dtype=bool)

        def put(mask: np.ndarray, hu: int) -> None:
            fg[mask] = hu
            have[mask] = True

        put(self._static_ellipse(22 * s, 42 * s, 12 * s, 12 * s), 45)  # descending aorta
        put(self._static_ellipse(0.0, -88 * s, 16 * s, 7 * s), 500)  # sternum
        put(self._static_ellipse(0.0, 72 * s, 21 * s, 18 * s), HU_CORTEX)  # vertebral body
        put(self._static_ellipse(0.0, 72 * s, 18 * s, 15 * s), HU_CANCELLOUS)
        put(self._static_ellipse(0.0, 102 * s, 14 * s, 13 * s), 700)  # posterior arch
        put(self._static_ellipse(0.0, 100 * s, 8 * s, 8 * s), 15)  # spinal canal
        self._fg_index = np.flatnonzero(have)
        self._fg_values = fg.ravel()[self._fg_index]
        body = self._static_ellipse(0.0, 72 * s, 18 * s, 15 * s).ravel()
        self._vert_index = np.flatnonzero(body)
        # Rib cage: a thin elliptical shell; whether a pixel is rib depends on z and angle.
        ax, by = 146 * s, 100 * s
        ex = self.x[None, :] / ax
        ey = (self.y[:, None] - 5 * s) / by
        rho = np.sqrt(ex**2 + ey**2)
        shell = (rho >= 1.0) & (rho <= 1.0 + 9.0 / by)
        self._rib_index = np.flatnonzero(shell)
        theta = np.arctan2(np.broadcast_to(ey, shell.shape), np.broadcast_to(ex, shell.shape))
        theta = theta.ravel()[self._rib_index]
        # Ribs slope down from the spine (posterior, +y) to the front; cartilage gap in front.
        self._rib_drop = (40.0 * s * (1.0 - np.sin(theta)) / 2.0).astype(np.float32)
        self._rib_row = (self._rib_index // g.cols).astype(np.intp)
        front = np.sin(theta) < -0.85
        self._rib_keep = ~front
        self._rib_period = 26.0 * s

    def _make_vessels(
        self, rng: np.random.Generator
    ) -> list[tuple[float, float, float, float, float]]:
        """Straight vessels through the lungs: (x at z=0, y at z=0, dx/dz, dy/dz, radius)."""
        out = []
        for lung in self.lungs:
            (cx, cy, _), (a, b, _) = lung.center, lung.semi
            for _ in range(28):
                out.append(
                    (
                        cx + rng.uniform(-0.7, 0.7) * a,
                        cy + rng.uniform(-0.7, 0.7) * b,
                        rng.uniform(-0.35, 0.35),
                        rng.uniform(-0.35, 0.35),
                        rng.uniform(1.0, 2.6),
                    )
                )
        return out

    # ------------------------------------------------------------------------------ render

    def slice(self, index: int) -> np.ndarray:
        """Slice ``index`` in HU as int16 (rows, cols)."""
        g = self.geometry
        img = self.base.copy()
        flat = img.reshape(-1)
        dr, dc = (int(v) for v in self._shifts[index])
        texture = np.roll(self._texture, (dc, dr), axis=(0, 1))  # lung texture varies along z
        for organ in self.organs:
            cut = self._mask(organ, index)
            if cut is None:
                continue
            rs, cs, mask = cut
            view = img[rs, cs]
            if organ.hu == HU_LUNG:
                inside = mask & (view > HU_FAT - 50)  # lungs stay inside the body
                view[inside] = HU_LUNG + texture[rs, cs][inside]
            else:
                view[mask] = organ.hu
        self._paint_vessels(img, index)
        # Spine, aorta, sternum over the organs; vertebral discs every rib period.
        flat[self._fg_index] = self._fg_values
        z_slice = g.positions[index][2]
        z_body = z_slice + self.z_row[self._vert_index // g.cols]
        disc = np.mod(z_body, self._rib_period) < 5.0 * self.scale
        flat[self._vert_index[disc]] = 80
        z_rib = z_slice + self.z_row[self._rib_row] + self._rib_drop
        rib = (np.mod(z_rib, self._rib_period) < 10.0 * self.scale) & self._rib_keep
        flat[self._rib_index[rib]] = HU_BONE
        for lesion in self.lesions:
            cut = self._mask(_sphere(lesion), index)
            if cut is not None:
                rs, cs, mask = cut
                img[rs, cs][mask] = round(lesion.hu)
        noise = self._noise_bank[index % len(self._noise_bank)]
        img += np.roll(noise, (dr, dc), axis=(0, 1))
        return img

    def _paint_vessels(self, img: np.ndarray, index: int) -> None:
        g = self.geometry
        dx = g.pixel_spacing[1]
        dy = g.pixel_spacing[0] * math.cos(math.radians(g.tilt_deg))
        z = g.positions[index][2] + float(self.z_row[g.rows // 2])
        x0, y0 = float(self.x[0]), float(self.y[0])
        for vx, vy, sx, sy, r in self._vessels:
            px, py = vx + sx * z, vy + sy * z
            if not any(_inside(lung, px, py, z, margin=r) for lung in self.lungs):
                continue
            c0 = max(0, int((px - r - x0) / dx))
            c1 = min(g.cols, int((px + r - x0) / dx) + 2)
            r0 = max(0, int((py - r - y0) / dy))
            r1 = min(g.rows, int((py + r - y0) / dy) + 2)
            if c0 >= c1 or r0 >= r1:
                continue
            xs = self.x[c0:c1][None, :] - px
            ys = self.y[r0:r1][:, None] - py
            disc = xs * xs + ys * ys <= r * r
            view = img[r0:r1, c0:c1]
            view[disc & (view < -500)] = 40

    def shows(self, lesion: Lesion) -> bool:
        """Whether any pixel centre of any slice falls inside the lesion."""
        sphere = _sphere(lesion)
        for i in range(self.geometry.slices):
            cut = self._mask(sphere, i)
            if cut is not None and cut[2].any():
                return True
        return False

    def truth(self) -> list[LesionTruth]:
        """Each lesion's slice range and box, from the same cut the painter uses."""
        out = []
        for lesion in self.lesions:
            first = last = largest = -1
            best = 0
            r0 = c0 = 10**9
            r1 = c1 = -1
            for i in range(self.geometry.slices):
                cut = self._mask(_sphere(lesion), i)
                if cut is None:
                    continue
                rs, cs, mask = cut
                if not mask.any():
                    continue
                rows = np.flatnonzero(mask.any(axis=1)) + rs.start
                cols = np.flatnonzero(mask.any(axis=0)) + cs.start
                first = i if first < 0 else first
                last = i
                area = int(mask.sum())
                if area > best:
                    best, largest = area, i
                r0, r1 = min(r0, int(rows[0])), max(r1, int(rows[-1]))
                c0, c1 = min(c0, int(cols[0])), max(c1, int(cols[-1]))
            if first < 0:
                raise ConfigError(
                    f"lesion at {lesion.center_mm} mm (radius {lesion.radius_mm}) cuts no slice",
                    hint="move it inside the scanned range",
                )
            out.append(
                LesionTruth(lesion, first, last, Box(c0, r0, c1 - c0 + 1, r1 - r0 + 1), largest)
            )
        return out

    def lesion_mask(self, index: int) -> np.ndarray:
        """Slice ``index``'s lesion labels (rows, cols): lesion ``k`` of :attr:`lesions` is
        ``k + 1`` where a pixel centre lies inside it, 0 elsewhere (uint8; uint16 past 255
        lesions). The same cut the painter uses, so the mask is the lesion's drawn extent."""
        g = self.geometry
        dtype = np.uint8 if len(self.lesions) < 256 else np.uint16
        out = np.zeros((g.rows, g.cols), dtype=dtype)
        for k, lesion in enumerate(self.lesions):
            cut = self._mask(_sphere(lesion), index)
            if cut is not None:
                rs, cs, mask = cut
                out[rs, cs][mask] = k + 1
        return out

    def mask_volume(self) -> np.ndarray:
        """Every slice's :meth:`lesion_mask` stacked: (slices, rows, cols)."""
        return np.stack([self.lesion_mask(i) for i in range(self.geometry.slices)])

    def volume(self) -> np.ndarray:
        """All slices stacked: (slices, rows, cols) int16 HU."""
        out = np.empty((self.geometry.slices, self.geometry.rows, self.geometry.cols), np.int16)
        for i in range(self.geometry.slices):
            out[i] = self.slice(i)
        return out


def _sphere(lesion: Lesion) -> _Ellipsoid:
    r = lesion.radius_mm
    return _Ellipsoid(lesion.center_mm, (r, r, r), round(lesion.hu))


def _inside(e: _Ellipsoid, x: float, y: float, z: float, margin: float = 0.0) -> bool:
    (cx, cy, cz), (a, b, c) = e.center, e.semi
    v = ((x - cx) / (a - margin)) ** 2 + ((y - cy) / (b - margin)) ** 2
    if math.isfinite(c):
        v += ((z - cz) / (c - margin)) ** 2
    return v <= 1.0


def random_lung_lesions(seed: int, count: int, phantom: CtPhantom) -> list[Lesion]:
    """``count`` soft-tissue nodules (4-12 mm radius) well inside the lungs and the scan."""
    if count < 0:
        raise ConfigError(f"lesion count {count} should be >= 0")
    rng = derive_rng(seed, "ct-lesions")
    g = phantom.geometry
    zs = [p[2] for p in g.positions]
    y0 = g.positions[0][1]
    tan_tilt = math.tan(math.radians(g.tilt_deg))
    out: list[Lesion] = []
    for _ in range(count):
        for _attempt in range(500):
            lung = phantom.lungs[int(rng.integers(0, 2))]
            r = float(rng.uniform(4.0, 12.0))
            (cx, cy, cz), (a, b, c) = lung.center, lung.semi
            x = cx + rng.uniform(-0.7, 0.7) * a
            y = cy + rng.uniform(-0.7, 0.7) * b
            # A tilted plane reaches a different z at each y: z_i + (y - y0) tan(tilt).
            shift = (y - y0) * tan_tilt
            lo = max(cz - 0.8 * c, min(zs) + shift + r / 2)
            hi = min(cz + 0.8 * c, max(zs) + shift - r / 2)
            if lo > hi:
                continue
            z = rng.uniform(lo, hi)
            lesion = Lesion((round(x, 2), round(y, 2), round(z, 2)), round(r, 2), 45.0)
            if _inside(lung, x, y, z, margin=r + 6.0) and phantom.shows(lesion):
                out.append(lesion)
                break
        else:
            raise ConfigError("no room for a lesion in the scanned part of the lungs")
    return out


def make_ct_volume(
    seed: int,
    *,
    slices: int = 40,
    rows: int = 512,
    cols: int | None = None,
    pixel_spacing_mm: float | None = None,
    slice_thickness_mm: float = 2.5,
    tilt_deg: float = 0.0,
    lesions: Sequence[Lesion] | int = 0,
    noise_hu: float = 12.0,
) -> tuple[np.ndarray, CtGeometry, list[LesionTruth]]:
    """A chest CT phantom: ``(hu, geometry, lesion_truth)`` with ``hu`` (slices, rows, cols)
    int16. ``lesions`` is a list of :class:`Lesion` or a count of random lung nodules."""
    phantom = ct_phantom(
        seed,
        slices=slices,
        rows=rows,
        cols=cols,
        pixel_spacing_mm=pixel_spacing_mm,
        slice_thickness_mm=slice_thickness_mm,
        tilt_deg=tilt_deg,
        lesions=lesions,
        noise_hu=noise_hu,
    )
    return phantom.volume(), phantom.geometry, phantom.truth()


def ct_phantom(
    seed: int,
    *,
    slices: int,
    rows: int,
    cols: int | None,
    pixel_spacing_mm: float | None,
    slice_thickness_mm: float,
    tilt_deg: float,
    lesions: Sequence[Lesion] | int,
    noise_hu: float,
) -> CtPhantom:
    """The seeded phantom in its geometry (square slices unless ``cols`` is given), before
    any slice is rendered: :func:`make_ct_volume` renders it whole, ``studies`` slice by slice."""
    geometry = ct_geometry(
        seed,
        slices,
        rows,
        rows if cols is None else cols,
        pixel_spacing_mm=pixel_spacing_mm,
        slice_thickness_mm=slice_thickness_mm,
        tilt_deg=tilt_deg,
    )
    return CtPhantom(seed, geometry, lesions, noise_hu)
