"""ImagePlane: one image's place in patient space, and patient millimetres mapped onto its pixels.

A segmentation or structure set names the images it applies to by SOP Instance UID (and
frame), or gives only positions in the patient coordinate system (PS3.3 C.7.6.2.1.1: x toward
the patient's left, y posterior, z head). Image Position (Patient) is the centre of the first
transmitted pixel; Image Orientation (Patient) gives the row direction (along a row, increasing
column) and the column direction; Pixel Spacing (PS3.3 10.7.1.3) is the row spacing (between
rows) first, then the column spacing. Pixel coordinates here follow the viewer's convention
(:mod:`desktop_app.dicom.graphics`): the top-left corner of the top-left pixel is (0, 0), so a
pixel's centre sits at +0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Vec3 = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]

PARALLEL_COS = 0.999  # normals closer than ~2.6 degrees: the same plane orientation
POSITION_TOLERANCE_MM = 0.05  # DS rounding of positions written by other tools


@dataclass(frozen=True)
class ImagePlane:
    """One displayed image: SOP Instance UID, ``frame`` (1-based, as DICOM references count
    frames), its size and geometry (None when the header lacks it), the series it belongs to
    and ``slice_spacing`` (its stack's spacing along the normal, mm; None when unknown)."""

    sop_instance_uid: str
    frame: int = 1
    rows: int = 0
    columns: int = 0
    position: Vec3 | None = None
    orientation: Orientation | None = None
    pixel_spacing: tuple[float, float] | None = None
    series_instance_uid: str = ""
    slice_spacing: float | None = None

    @property
    def has_geometry(self) -> bool:
        return (
            self.position is not None
            and self.orientation is not None
            and self.pixel_spacing is not None
            and all(s > 0 for s in self.pixel_spacing)
        )

    def normal(self) -> np.ndarray | None:
        """The unit normal (row × column direction), or None without an orientation."""
        if self.orientation is None:
            return None
        row = np.asarray(self.orientation[:3], dtype=np.float64)
        col = np.asarray(self.orientation[3:], dtype=np.float64)
        n = np.cross(row, col)
        norm = float(np.linalg.norm(n))
        return None if norm < 1e-6 else n / norm

    def parallel_to(self, orientation: Orientation | None) -> bool:
        """Whether ``orientation`` (None: unknown, taken as parallel) is this plane's."""
        if orientation is None or self.orientation is None:
            return True
        other = ImagePlane("", orientation=orientation).normal()
        mine = self.normal()
        return other is None or mine is None or abs(float(mine @ other)) >= PARALLEL_COS

    def distance_mm(self, points: np.ndarray) -> np.ndarray | None:
        """Signed distances (mm) of ``points`` (N, 3) from the plane along its normal."""
        n = self.normal()
        if n is None or self.position is None:
            return None
        return (np.asarray(points, np.float64) - np.asarray(self.position)) @ n

    def same_position(self, position: Vec3 | None) -> bool:
        """Whether a frame at ``position`` (Image Position (Patient)) is this image's origin."""
        if position is None or self.position is None:
            return False
        gap = np.asarray(position, np.float64) - np.asarray(self.position, np.float64)
        return float(np.linalg.norm(gap)) <= POSITION_TOLERANCE_MM

    def to_pixels(self, points: np.ndarray) -> np.ndarray | None:
        """``points`` (N, 3) in patient mm as (N, 2) image coordinates (x = column, y = row,
        pixel centres at +0.5), or None without the geometry."""
        if not self.has_geometry:
            return None
        assert self.orientation is not None and self.pixel_spacing is not None
        offset = np.asarray(points, np.float64) - np.asarray(self.position, np.float64)
        row_dir = np.asarray(self.orientation[:3], np.float64)
        col_dir = np.asarray(self.orientation[3:], np.float64)
        x = offset @ row_dir / self.pixel_spacing[1] + 0.5
        y = offset @ col_dir / self.pixel_spacing[0] + 0.5
        return np.stack([x, y], axis=1)


__all__ = ["ImagePlane", "Orientation", "Vec3"]
