"""One DICOM header -> :class:`InstanceInfo`: what the index keeps of an instance.

Geometry (Image Position and Orientation (Patient), PS3.3 C.7.6.2.1.1; per-frame positions of
enhanced objects, PS3.3 C.7.6.16.2.3; the RT Dose Grid Frame Offset Vector, PS3.3 C.8.8.3.2)
and the pixel layout (PS3.3 C.7.6.3), read tolerantly: an unparsable value becomes ``None``.

Plain values (US, IS, DS, UI, CS, DA, TM; PS3.5 6.2) are parsed from the raw bytes, because
pydicom converts a value at ~15-20 us per element and the index reads ~30 elements of every
file (that doubled the cost of indexing). Text that depends on the Specific Character Set
(PN, LO, SH) and anything unexpected go through pydicom via ``dsvalues``, which never raises.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from desktop_app.core import dsvalues
from desktop_app.core.dicomfile import PixelDataInfo, pixel_data_info
from desktop_app.core.pixels import has_pixel_data

Vec3 = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class InstanceInfo:
    """What the index keeps of one SOP instance: geometry and pixel layout, no pixels.

    Positions and orientations are in the patient coordinate system (PS3.3 C.7.6.2.1.1):
    ``image_position`` is Image Position (Patient) (0020,0032), ``image_orientation`` the row
    and column direction cosines (0020,0037). For an enhanced multi-frame object
    (PS3.3 C.7.6.16.2.3) ``frame_positions`` holds one position per frame.
    """

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    modality: str
    instance_number: int | None
    has_pixels: bool
    rows: int
    columns: int
    number_of_frames: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    planar_configuration: int
    photometric: str
    transfer_syntax_uid: str
    image_position: Vec3 | None = None
    image_orientation: Orientation | None = None
    pixel_spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None
    frame_positions: tuple[Vec3 | None, ...] | None = None
    frame_orientations: tuple[Orientation | None, ...] | None = None
    acquisition_number: int | None = None
    file_size: int = 0
    pixel_data: PixelDataInfo | None = field(default=None, repr=False)

    @property
    def frame_count(self) -> int:
        """Frames this instance contributes as images (0 when it holds no pixels)."""
        return self.number_of_frames if self.has_pixels else 0


def _vec(values: tuple[float | None, ...], n: int) -> tuple[float, ...] | None:
    if len(values) < n or any(v is None for v in values[:n]):
        return None
    out = tuple(float(v) for v in values[:n] if v is not None)
    return out if all(math.isfinite(v) for v in out) else None


def _orientation(values: tuple[float | None, ...]) -> Orientation | None:
    vec = _vec(values, 6)
    if vec is None:
        return None
    row, col = vec[:3], vec[3:]
    if math.hypot(*row) < 1e-6 or math.hypot(*col) < 1e-6:
        return None  # all-zero cosines say nothing (PS3.3 C.7.6.2.1.1 requires unit vectors)
    return vec  # type: ignore[return-value]


def _position(values: tuple[float | None, ...]) -> Vec3 | None:
    return _vec(values, 3)  # type: ignore[return-value]


def _per_frame_geometry(
    ds: Dataset, frames: int, orientation: Orientation | None, position: Vec3 | None
) -> tuple[tuple[Vec3 | None, ...] | None, tuple[Orientation | None, ...] | None]:
    """Per-frame positions: enhanced functional groups (PS3.3 C.7.6.16.2.3/4) or the RT Dose
    Grid Frame Offset Vector (PS3.3 C.8.8.3.2)."""
    if frames <= 1:
        return None, None
    if dsvalues.sequence_length(ds, "PerFrameFunctionalGroupsSequence") >= frames or (
        dsvalues.sequence_item(ds, "SharedFunctionalGroupsSequence") is not None
    ):
        positions: list[Vec3 | None] = []
        orientations: list[Orientation | None] = []
        for k in range(frames):
            plane = dsvalues.functional_group(ds, k, "PlanePositionSequence")
            positions.append(
                _position(dsvalues.floats(plane, "ImagePositionPatient")) if plane else None
            )
            orient = dsvalues.functional_group(ds, k, "PlaneOrientationSequence")
            orientations.append(
                _orientation(dsvalues.floats(orient, "ImageOrientationPatient"))
                if orient
                else orientation
            )
        if any(p is not None for p in positions):
            return tuple(positions), tuple(orientations)
        return None, None
    offsets = dsvalues.floats(ds, "GridFrameOffsetVector")
    if (
        position is not None
        and orientation is not None
        and len(offsets) == frames
        and all(o is not None for o in offsets)
    ):
        normal = _normal(orientation)
        base = float(offsets[0])  # type: ignore[arg-type]
        pos = tuple(
            (
                position[0] + (float(o) - base) * normal[0],  # type: ignore[arg-type]
                position[1] + (float(o) - base) * normal[1],  # type: ignore[arg-type]
                position[2] + (float(o) - base) * normal[2],  # type: ignore[arg-type]
            )
            for o in offsets
        )
        return pos, (orientation,) * frames
    return None, None


def _normal(orientation: Orientation) -> Vec3:
    """Slice normal: row cosines x column cosines (PS3.3 C.7.6.2.1.1)."""
    r0, r1, r2, c0, c1, c2 = orientation
    return (r1 * c2 - r2 * c1, r2 * c0 - r0 * c2, r0 * c1 - r1 * c0)


class HeaderFields:
    """Fast, tolerant reads of one header's values (see the module docstring)."""

    _US = struct.Struct("<H"), struct.Struct(">H")

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds
        self._charset_plain: bool | None = None

    def _raw(self, tag: int) -> tuple[bool, RawDataElement | None]:
        """(present, raw element); the element is None when pydicom already converted it."""
        try:
            elem = self.ds.get_item(tag)
        except Exception:
            return True, None
        if elem is None:
            return False, None
        return True, elem if isinstance(elem, RawDataElement) else None

    def ascii(self, tag: int, vrs: frozenset[str] = frozenset({"UI", "CS", "DA", "TM"})) -> str:
        present, elem = self._raw(tag)
        if not present:
            return ""
        if elem is None or (elem.VR is not None and elem.VR not in vrs) or elem.value is None:
            return dsvalues.text(self.ds, tag)
        text = elem.value.decode("ascii", "replace").split("\\")[0]
        return " ".join(text.replace("\x00", " ").split())

    def us(self, tag: int) -> int | None:
        present, elem = self._raw(tag)
        if not present:
            return None
        if (
            elem is None
            or (elem.VR is not None and elem.VR != "US")
            or elem.value is None
            or len(elem.value) != 2
        ):
            return dsvalues.first_int(self.ds, tag)
        return int(self._US[0 if elem.is_little_endian else 1].unpack(elem.value)[0])

    def numbers(self, tag: int, vr: str) -> tuple[float | None, ...]:
        """IS or DS values (PS3.5 6.2: backslash-separated decimal strings)."""
        present, elem = self._raw(tag)
        if not present:
            return ()
        if elem is None or (elem.VR is not None and vr != elem.VR) or elem.value is None:
            return dsvalues.floats(self.ds, tag)
        out: list[float | None] = []
        for part in elem.value.decode("ascii", "replace").split("\\"):
            try:
                value = float(part.strip(" \x00"))
            except ValueError:
                out.append(None)
                continue
            out.append(value if math.isfinite(value) else None)
        return tuple(out)

    def _latin1(self) -> bool:
        """Whether text decodes as ISO 8859-1: no Specific Character Set (pydicom's default)
        or ISO_IR 100 (PS3.3 C.12.1.1.2); other character sets go through pydicom."""
        if self._charset_plain is None:
            present, elem = self._raw(0x00080005)
            plain = not present
            if elem is not None and elem.value is not None:
                charset = elem.value.decode("ascii", "replace").strip(" \x00")
                plain = charset in ("", "ISO_IR 6", "ISO_IR 100")
            self._charset_plain = plain
        return self._charset_plain

    def text(self, tag: int, vrs: frozenset[str] = frozenset({"LO", "SH", "LT", "CS"})) -> str:
        """A LO/SH/LT value's first value, stripped (descriptions, Patient ID)."""
        present, elem = self._raw(tag)
        if not present:
            return ""
        if (
            elem is None
            or elem.value is None
            or (elem.VR is not None and elem.VR not in vrs)
            or not self._latin1()
        ):
            return dsvalues.text(self.ds, tag)
        first = elem.value.decode("latin-1").split("\\")[0]
        return " ".join(first.replace("\x00", " ").split())

    def person_name(self) -> str:
        """Patient's Name (0010,0010) as one line (PS3.5 6.2.1: components joined by ^)."""
        present, elem = self._raw(0x00100010)
        if not present:
            return ""
        if (
            elem is not None
            and elem.value is not None
            and elem.VR in (None, "PN")
            and self._latin1()
        ):
            first = elem.value.decode("latin-1").split("\\")[0]
            return " ".join(first.replace("\x00", " ").split())
        value = dsvalues.raw_value(self.ds, 0x00100010)
        if value is None:
            return ""
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0] if len(value) else ""
        return " ".join(str(value).split())

    def integer(self, tag: int) -> int | None:
        values = self.numbers(tag, "IS")
        if not values or values[0] is None:
            return None
        number = values[0]
        return int(number) if number == int(number) and abs(number) <= 2**62 else None

    def first_float(self, tag: int) -> float | None:
        values = self.numbers(tag, "DS")
        return values[0] if values else None


def instance_from_header(path: Path, ds: Dataset, file_size: int) -> InstanceInfo:
    """The InstanceInfo of a header read by ``dicomfile.read_header``; never raises for odd
    values (they become None)."""
    f = HeaderFields(ds)
    pixels = has_pixel_data(ds)
    frames = 0
    if pixels:
        n = f.integer(0x00280008)  # Number of Frames (PS3.3 C.7.6.6)
        frames = n if n is not None and n >= 1 else 1
    orientation = _orientation(f.numbers(0x00200037, "DS"))
    position = _position(f.numbers(0x00200032, "DS"))
    spacing = _vec(f.numbers(0x00280030, "DS"), 2)
    if pixels and frames > 1:
        frame_pos, frame_orient = _per_frame_geometry(ds, frames, orientation, position)
    else:
        frame_pos, frame_orient = None, None
    if orientation is None and frame_orient:
        orientation = next((o for o in frame_orient if o is not None), None)
    if position is None and frame_pos:
        position = frame_pos[0]
    enhanced = 0x52009229 in ds or 0x52009230 in ds  # functional groups, PS3.3 C.7.6.16
    if spacing is None and enhanced:
        measures = dsvalues.functional_group(ds, 0, "PixelMeasuresSequence")
        if measures is not None:
            spacing = _vec(dsvalues.floats(measures, "PixelSpacing"), 2)
    if (orientation is None or position is None) and frames == 1 and enhanced:
        plane = dsvalues.functional_group(ds, 0, "PlanePositionSequence")
        orient = dsvalues.functional_group(ds, 0, "PlaneOrientationSequence")
        if position is None and plane is not None:
            position = _position(dsvalues.floats(plane, "ImagePositionPatient"))
        if orientation is None and orient is not None:
            orientation = _orientation(dsvalues.floats(orient, "ImageOrientationPatient"))
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = HeaderFields(meta).ascii(0x00020010) if meta is not None else ""
    sop_class = f.ascii(0x00080016)
    if not sop_class and meta is not None:
        sop_class = HeaderFields(meta).ascii(0x00020002)
    return InstanceInfo(
        path=path,
        sop_instance_uid=f.ascii(0x00080018),
        sop_class_uid=sop_class,
        modality=f.ascii(0x00080060).upper(),
        instance_number=f.integer(0x00200013),
        has_pixels=pixels,
        rows=max(f.us(0x00280010) or 0, 0),
        columns=max(f.us(0x00280011) or 0, 0),
        number_of_frames=frames,
        samples_per_pixel=f.us(0x00280002) or 1,
        bits_allocated=f.us(0x00280100) or 0,
        bits_stored=f.us(0x00280101) or 0,
        pixel_representation=f.us(0x00280103) or 0,
        planar_configuration=f.us(0x00280006) or 0,
        photometric=f.ascii(0x00280004).upper(),
        transfer_syntax_uid=transfer_syntax,
        image_position=position,
        image_orientation=orientation,
        pixel_spacing=spacing,  # type: ignore[arg-type]
        slice_thickness=f.first_float(0x00180050),
        frame_positions=frame_pos,
        frame_orientations=frame_orient,
        acquisition_number=f.integer(0x00200012),
        file_size=file_size,
        pixel_data=pixel_data_info(ds),
    )
