"""One DICOM header -> :class:`InstanceInfo`: what the index keeps of an instance.

Geometry (Image Position and Orientation (Patient), PS3.3 C.7.6.2.1.1; per-frame positions of
enhanced objects, PS3.3 C.7.6.16.2.3; the RT Dose Grid Frame Offset Vector, PS3.3 C.8.8.3.2)
and the pixel layout (PS3.3 C.7.6.3), read tolerantly: an unparsable value becomes ``None``.

Two ways in, one result:

- :func:`instance_from_raw` + :class:`RawFields`, the index's common path: from the raw bytes
  of the ~30 top-level elements the structure walk copied (``dicomfile.scan_header`` with
  ``wanted=RAW_TAGS``), without a pydicom dataset (pydicom's parse of a header costs ~0.3 ms,
  several times the walk). It raises :class:`NeedsPydicom` for anything it can't answer
  exactly as the other path would;
- :func:`instance_from_header` + :class:`HeaderFields`, from a header pydicom has parsed
  (``dicomfile.read_header``). Plain values (US, IS, DS, UI, CS, DA, TM; PS3.5 6.2) are
  parsed from the raw bytes here too, because pydicom converts a value at ~15-20 us per
  element. Text that depends on the Specific Character Set (PN, LO, SH) and anything
  unexpected go through pydicom via ``dsvalues``, which never raises.
"""

from __future__ import annotations

import codecs
import math
import struct
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.values import convert_PN, convert_string

from desktop_app.dicom import dsvalues
from desktop_app.dicom.dicomfile import (
    PixelDataInfo,
    ScanResult,
    TopLevel,
    pixel_data_info,
    quiet_pydicom,
)
from desktop_app.dicom.pixels import has_pixel_data

Vec3 = tuple[float, float, float]
Orientation = tuple[float, float, float, float, float, float]


def decimal_strings(raw: bytes) -> tuple[float | None, ...]:
    """A DS/IS value's backslash-separated numbers (PS3.5 6.2); None where a part is not a
    finite number."""
    out: list[float | None] = []
    for part in raw.decode("ascii", "replace").split("\\"):
        try:
            number = float(part.strip(" \x00"))
        except ValueError:
            out.append(None)
            continue
        out.append(number if math.isfinite(number) else None)
    return tuple(out)


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
    if len(values) < n:
        return None
    first = values[:n]
    for v in first:
        if v is None or not math.isfinite(v):
            return None
    return tuple(map(float, first))  # type: ignore[arg-type]


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
        return decimal_strings(elem.value)

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
        if isinstance(value, bytes):  # pydicom could not decode it (kept as UN): no "b'..'"
            value = value.rstrip(b"\x00 ").decode("latin-1").split("\\")[0]
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

    def meta_uid(self, tag: int) -> str:
        """A File Meta (group 0002) UID; "" without File Meta."""
        meta = getattr(self.ds, "file_meta", None)
        return HeaderFields(meta).ascii(tag) if meta is not None else ""


class _Fields(Protocol):
    """What :func:`_make_instance` reads: :class:`HeaderFields` or :class:`RawFields`."""

    def ascii(self, tag: int) -> str: ...
    def us(self, tag: int) -> int | None: ...
    def integer(self, tag: int) -> int | None: ...
    def first_float(self, tag: int) -> float | None: ...
    def meta_uid(self, tag: int) -> str: ...


def _make_instance(
    path: Path,
    f: _Fields,
    *,
    pixels: bool,
    frames: int,
    geometry: tuple[
        Vec3 | None,
        Orientation | None,
        tuple[float, ...] | None,
        tuple[Vec3 | None, ...] | None,
        tuple[Orientation | None, ...] | None,
    ],
    file_size: int,
    pixel_data: PixelDataInfo | None,
) -> InstanceInfo:
    position, orientation, spacing, frame_pos, frame_orient = geometry
    transfer_syntax = f.meta_uid(0x00020010)
    # SOP Class UID (0008,0016), else the File Meta's Media Storage SOP Class UID (PS3.10 7.1)
    sop_class = f.ascii(0x00080016) or f.meta_uid(0x00020002)
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
        pixel_data=pixel_data,
    )


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
    return _make_instance(
        path,
        f,
        pixels=pixels,
        frames=frames,
        geometry=(position, orientation, spacing, frame_pos, frame_orient),
        file_size=file_size,
        pixel_data=pixel_data_info(ds),
    )


# --------------------------------------------------------------------------- without pydicom


class NeedsPydicom(Exception):
    """:class:`RawFields` can't promise pydicom's answer for this header: read it with
    pydicom (``dicomfile.read_header``) and use :func:`instance_from_header` instead."""


ENHANCED_TAGS = (0x52009229, 0x52009230)  # Shared/Per-frame Functional Groups, PS3.3 C.7.6.16
DIRECTORY_RECORD_SEQUENCE = 0x00041220  # PS3.3 F.3.2.2
_MEDIA_STORAGE_DIRECTORY = b"1.2.840.10008.1.3.10"  # PS3.4 B.5
RECORD_TAGS = frozenset(
    {
        0x00080020,  # Study Date
        0x00080021,  # Series Date
        0x00080030,  # Study Time
        0x00081030,  # Study Description
        0x0008103E,  # Series Description
        0x00100010,  # Patient's Name
        0x00100020,  # Patient ID
        0x00180015,  # Body Part Examined
        0x0020000D,  # Study Instance UID
        0x0020000E,  # Series Instance UID
        0x00200011,  # Series Number
    }
)
"""The tags ``index`` reads for the patient/study/series tree."""
RAW_TAGS = RECORD_TAGS | frozenset(
    {
        0x00080005,  # Specific Character Set
        0x00080016,  # SOP Class UID
        0x00080018,  # SOP Instance UID
        0x00080060,  # Modality
        0x00180050,  # Slice Thickness
        0x00200012,  # Acquisition Number
        0x00200013,  # Instance Number
        0x00200032,  # Image Position (Patient)
        0x00200037,  # Image Orientation (Patient)
        0x00280002,  # Samples per Pixel
        0x00280004,  # Photometric Interpretation
        0x00280006,  # Planar Configuration
        0x00280008,  # Number of Frames
        0x00280010,  # Rows
        0x00280011,  # Columns
        0x00280030,  # Pixel Spacing
        0x00280100,  # Bits Allocated
        0x00280101,  # Bits Stored
        0x00280103,  # Pixel Representation
        0x3004000C,  # Grid Frame Offset Vector
        DIRECTORY_RECORD_SEQUENCE,
        *ENHANCED_TAGS,
    }
)
"""The tags :class:`RawFields` reads: pass them to ``dicomfile.scan_header(wanted=...)``."""

# pydicom's raw value of an empty element (pydicom.dataelem.empty_value_for_VR(raw=True)):
# b"" for these VRs, None for the others and for implicit VR.
_EMPTY_AS_BYTES = frozenset(
    b"AE AS AT CS DA DT LO LT OB OD OF OL OV OW PN SH SQ ST TM UC UI UR UT UV SV".split()
)
_ASCII_VRS = frozenset({b"UI", b"CS", b"DA", b"TM"})
_TEXT_VRS = frozenset({b"LO", b"SH", b"LT", b"CS"})
_CODECS: dict[bytes, str | None] = {}


def _charset_codec(raw: bytes) -> str | None:
    """The Python codec pydicom decodes text with under Specific Character Set ``raw``
    (PS3.3 C.12.1.1.2) when a value holds no escape sequence (``pydicom.charset.decode_bytes``
    uses the first one); None when pydicom might refuse the value. Cached per value."""
    codec = _CODECS.get(raw, "?")
    if codec != "?":
        return codec
    try:
        with quiet_pydicom():
            names = convert_string(raw, True)  # how pydicom converts a CS value
            codec = convert_encodings(names)[0]  # how Dataset._character_set reads it
        try:
            codecs.lookup(codec)
        except LookupError:
            codec = default_encoding  # decode_bytes does the same
    except Exception:
        codec = None
    if len(_CODECS) < 256:
        _CODECS[raw] = codec
    return codec


_PN_CODECS: dict[str, bool] = {}


def _person_names_decode(codec: str) -> bool:
    """Whether pydicom's Person Name conversion (PS3.5 6.2.1) decodes plain text under
    ``codec`` as the codec does. Under ISO 2022 JIS it raises for some names (pydicom 3.0:
    e.g. "Ab^Cd^^"), and the name stays undecoded; so never for ISO 2022 codecs."""
    ok = _PN_CODECS.get(codec)
    if ok is None:
        ok = not codec.lower().replace("-", "").replace("_", "").startswith("iso2022")
        try:
            with quiet_pydicom():
                ok = ok and str(convert_PN(b"Ab^Cd=Ef^Gh", [codec])) == "Ab^Cd=Ef^Gh"
        except Exception:
            ok = False
        _PN_CODECS[codec] = ok
    return ok


_T = TypeVar("_T")
_MEMO: dict[tuple[object, ...], object] = {}
_MEMO_MAX = 8192  # entries; values over _MEMO_VALUE_MAX bytes are not kept: < 3 MiB in all
_MEMO_VALUE_MAX = 256


def _memoized(key: tuple[object, ...], compute: Callable[..., _T], *args: object) -> _T:
    """``compute(*args)``, remembered under ``key`` (whose second item is the raw element)."""
    found = _MEMO.get(key, _MEMO)
    if found is not _MEMO:
        return found  # type: ignore[return-value]
    value = compute(*args)
    _memo_put(key, value)
    return value


def _memo_put(key: tuple[object, ...], value: object) -> None:
    entry = key[1]
    if isinstance(entry, tuple) and len(entry[1] or b"") > _MEMO_VALUE_MAX:
        return
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = value


class RawFields:
    """:class:`HeaderFields`' answers from the bytes that ``dicomfile.scan_header`` copied
    (``wanted=RAW_TAGS``), without a pydicom dataset: ~0.3 ms less per file.

    Each method follows its :class:`HeaderFields` namesake rule for rule. Where that one
    asks pydicom (a VR it does not expect, text under a Specific Character Set, a value
    pydicom converted while reading), this one gives pydicom's answer only where it is sure
    of it (empty values; printable text decoded with the character set's codec, PS3.5 6.1)
    and raises :class:`NeedsPydicom` otherwise. The constructor raises it for what it never
    handles: big endian, deflated, no File Meta, anything the structure walk noted, a
    command group, enhanced multi-frame functional groups and DICOMDIRs.
    tests/dicom/test_headerinfo_raw.py checks that both give the same InstanceInfo and tree
    fields on the public corpora and on headers made to be odd.

    Answers are pure functions of (VR, value bytes[, codec]) and are remembered (bounded):
    the files of a series repeat most of their values.
    """

    _US = struct.Struct("<H")

    def __init__(self, scan: ScanResult, top: TopLevel) -> None:
        values = top.values
        if (
            scan.deflated
            or not scan.little_endian
            or not scan.has_meta
            or scan.notes
            or top.command_group
            or DIRECTORY_RECORD_SEQUENCE in values
            or ENHANCED_TAGS[0] in values
            or ENHANCED_TAGS[1] in values
        ):
            raise NeedsPydicom
        self.scan = scan
        self.top = top
        self.values = values
        self._codec: str | None = None
        charset = values.get(0x00080005)
        if charset is not None:
            vr, value = charset
            if vr not in (None, b"CS") or value is None:
                raise NeedsPydicom
            codec = _charset_codec(value)
            if codec is None:
                raise NeedsPydicom
            self._codec = codec

    def _raw(self, tag: int) -> tuple[bytes | None, bytes | None] | None:
        """(VR, value as pydicom's RawDataElement holds it) or None when absent."""
        entry = self.values.get(tag)
        if entry is None:
            return None
        vr, value = entry
        if value is None:
            raise NeedsPydicom  # a sequence, undefined length or a huge value
        if not value:
            return vr, (b"" if vr in _EMPTY_AS_BYTES else None)
        return entry

    def _value(self, tag: int, vrs: Collection[bytes]) -> bytes | None:
        """The value bytes of ``tag``: None when absent, or empty with a VR pydicom reads as
        None (an empty value of the other VRs is ``b""``, as pydicom holds it); NeedsPydicom
        when its VR is not one of ``vrs`` (pydicom would convert it some other way)."""
        raw = self._raw(tag)
        if raw is None:
            return None
        vr, value = raw
        if vr is not None and vr not in vrs:
            raise NeedsPydicom
        return value

    def _converted(self, value: bytes, codec: str) -> str:
        """pydicom's text for a value it converted (decoded, trailing padding stripped, first
        value), joined to one line as ``dsvalues.text`` does; only for printable text."""
        if b"\x1b" in value:
            raise NeedsPydicom  # ISO 2022 escape sequences: pydicom switches codecs
        if value.endswith(b"\x00"):
            value = value[:-1]
        try:
            text = value.decode(codec)
        except UnicodeDecodeError:
            raise NeedsPydicom from None
        if not text.isprintable():
            raise NeedsPydicom
        return " ".join(text.split("\\")[0].split())

    def ascii(self, tag: int, vrs: frozenset[bytes] = _ASCII_VRS) -> str:
        return _memoized(("ascii", self.values.get(tag), vrs), self._ascii, tag, vrs)

    def _ascii(self, tag: int, vrs: frozenset[bytes] = _ASCII_VRS) -> str:
        value = self._value(tag, vrs)
        if value is None:
            return ""  # dsvalues.text of an absent or empty element
        text = value.decode("ascii", "replace").split("\\")[0]
        return " ".join(text.replace("\x00", " ").split())

    def us(self, tag: int) -> int | None:
        return _memoized(("us", self.values.get(tag)), self._us, tag)

    def _us(self, tag: int) -> int | None:
        value = self._value(tag, (b"US",))
        if value is None:
            return None  # dsvalues.first_int of an absent or empty element
        if len(value) != 2:
            raise NeedsPydicom
        return int(self._US.unpack(value)[0])

    def numbers(self, tag: int, vr: bytes) -> tuple[float | None, ...]:
        return _memoized(("numbers", self.values.get(tag), vr), self._numbers, tag, vr)

    def _numbers(self, tag: int, vr: bytes) -> tuple[float | None, ...]:
        value = self._value(tag, (vr,))
        if value is None:
            return ()  # dsvalues.floats of an absent or empty element
        return decimal_strings(value)

    def text(self, tag: int, vrs: frozenset[bytes] = _TEXT_VRS) -> str:
        return _memoized(("text", self.values.get(tag), vrs, self._codec), self._text, tag, vrs)

    def _text(self, tag: int, vrs: frozenset[bytes] = _TEXT_VRS) -> str:
        value = self._value(tag, vrs)
        if value is None:
            return ""
        if self._codec is not None:  # pydicom decoded it (HeaderFields: dsvalues.text)
            return self._converted(value, self._codec)
        first = value.decode("latin-1").split("\\")[0]
        return " ".join(first.replace("\x00", " ").split())

    def person_name(self) -> str:
        return _memoized(
            ("person_name", self.values.get(0x00100010), self._codec), self._person_name
        )

    def _person_name(self) -> str:
        value = self._value(0x00100010, (b"PN",))
        if value is None:
            return ""
        if self._codec is not None:
            if not _person_names_decode(self._codec):
                raise NeedsPydicom
            return self._converted(value, self._codec)
        first = value.decode("latin-1").split("\\")[0]
        return " ".join(first.replace("\x00", " ").split())

    def integer(self, tag: int) -> int | None:
        values = self.numbers(tag, b"IS")
        if not values or values[0] is None:
            return None
        number = values[0]
        return int(number) if number == int(number) and abs(number) <= 2**62 else None

    def first_float(self, tag: int) -> float | None:
        values = self.numbers(tag, b"DS")
        return values[0] if values else None

    def meta_uid(self, tag: int) -> str:
        """A File Meta UID as ``HeaderFields(ds.file_meta).ascii`` gives it. pydicom converts
        the Transfer Syntax UID and the first meta element while reading."""
        meta = self.top.meta
        entry = meta.get(tag)
        if entry is None:
            return ""
        vr, value = entry
        if vr != b"UI" or value is None:
            raise NeedsPydicom
        if tag == 0x00020010 or tag == min(meta):
            return self._converted(value.rstrip(b"\x00 "), "ascii")
        text = value.decode("ascii", "replace").split("\\")[0]
        return " ".join(text.replace("\x00", " ").split())

    def floats_strict(self, tag: int) -> tuple[float, ...]:
        """A DS element's values where pydicom's DSfloat gives the same numbers; else
        NeedsPydicom (used for the Grid Frame Offset Vector)."""
        values = self.numbers(tag, b"DS")
        if any(v is None for v in values):
            raise NeedsPydicom
        return values  # type: ignore[return-value]


def instance_from_raw(path: Path, f: RawFields, file_size: int) -> InstanceInfo:
    """:func:`instance_from_header` from raw bytes: the same InstanceInfo, or NeedsPydicom.

    Enhanced multi-frame objects and DICOMDIRs never get here (``RawFields`` refuses them);
    the RT Dose Grid Frame Offset Vector (PS3.3 C.8.8.3.2) does.
    """
    meta = f.top.meta
    if _MEDIA_STORAGE_DIRECTORY in (meta.get(0x00020002, (None, b""))[1] or b""):
        raise NeedsPydicom  # maybe a DICOMDIR: index.py decides with pydicom
    pixel_data = f.scan.pixel
    pixels = pixel_data is not None
    frames = 0
    if pixels:
        n = f.integer(0x00280008)
        frames = n if n is not None and n >= 1 else 1
    orientation = _orientation(f.numbers(0x00200037, b"DS"))
    position = _position(f.numbers(0x00200032, b"DS"))
    spacing = _vec(f.numbers(0x00280030, b"DS"), 2)
    frame_pos: tuple[Vec3 | None, ...] | None = None
    frame_orient: tuple[Orientation | None, ...] | None = None
    if pixels and frames > 1:
        offsets = f.floats_strict(0x3004000C)
        if position is not None and orientation is not None and len(offsets) == frames:
            normal = _normal(orientation)
            base = offsets[0]
            frame_pos = tuple(
                (
                    position[0] + (o - base) * normal[0],
                    position[1] + (o - base) * normal[1],
                    position[2] + (o - base) * normal[2],
                )
                for o in offsets
            )
            frame_orient = (orientation,) * frames
    if orientation is None and frame_orient:
        orientation = next((o for o in frame_orient if o is not None), None)
    if position is None and frame_pos:
        position = frame_pos[0]
    return _make_instance(
        path,
        f,
        pixels=pixels,
        frames=frames,
        geometry=(position, orientation, spacing, frame_pos, frame_orient),
        file_size=file_size,
        pixel_data=pixel_data,
    )
