"""Segmentation data's types (SegDataset, the one class's name) and its masks and images read
from their sources: PNG/JPEG label images, NIfTI (2-D,
or a slice of a volume seen as the viewer sees an axial DICOM slice), DICOM SEG and RTSTRUCT
matched to the image they reference.

Which pixels are foreground:

- a label image (PNG, TIFF, GIF, BMP, JPEG): nonzero pixels (0/1, 0/255 and label values
  alike, and an instance map's ids); ``values`` pick label values instead (an nnU-Net 2-D
  ``labelsTr`` PNG holds 0..n). A lossy mask (JPEG; or one with more than
  :data:`LOSSY_LEVELS` grey levels and its brightest in the top half of its range: a JPEG mask
  saved again as PNG, an antialiased one) is thresholded at half its brightest value; a JPEG
  one is empty when that value is under a quarter of its range (compression noise). Several
  files of one image (BUSI's ``x_mask.png`` + ``x_mask_1.png``, Montgomery's left and right
  lung) are united;
- NIfTI: nonzero voxels, or those equal to one of ``values``. A NIfTI *volume* that is the
  mask of a NIfTI image is reoriented like its image (:func:`read_volume`); a NIfTI mask of a
  PNG/JPEG/DICOM image is taken as stored: array axes (rows, columns[, slice]);
- DICOM SEG (PS3.3 A.51): the frames whose source image is the row's image (by SOP Instance
  UID, else by plane position; ``desktop_app.dicom.segread``), any segment, or the segments
  whose label is one of ``names``;
- DICOM RTSTRUCT (PS3.3 A.19): the CLOSED_PLANAR contours on the row's image's plane
  (``desktop_app.dicom.rtstruct``), rasterised with ``skimage.draw.polygon`` (a pixel is inside
  when its centre is); contours of one ROI combine even-odd, so an inner contour is a hole;
  any ROI, or those named in ``names``.

Bounds, checked before a byte of data is read (a hostile file may declare anything): a NIfTI
header (:func:`open_nifti`) must declare at most 4 dimensions, each at least 1 (further ones
of 1 allowed), a scalar integer or float data type (not complex or RGB), at most
:data:`MAX_VOLUME_VOXELS` voxels in its first three dimensions and :data:`MAX_VOLUME_BYTES`
bytes of data (the viewer's budget for one object, ``desktop_app.dicom.limits``; 3-D
training allows fewer, ``training.seg3ddata.MAX_VOXELS``), finite voxel sizes and affine, and its data must start within
:data:`MAX_NIFTI_OFFSET` bytes (extensions); nibabel then reads only the declared bytes, so a
.nii.gz inflates to at most that (a gzip bomb's surplus is never read). A label image may
declare at most ``desktop_app.model.imageio.MAX_RASTER_PIXELS`` pixels, and fewer than Pillow's
decompression bomb warning. DICOM SEG and RTSTRUCT are read by the viewer's bounded readers
(``desktop_app.dicom.segread``, ``desktop_app.dicom.rtstruct``).
"""

from __future__ import annotations

import gzip
import math
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from desktop_app.dicom.imageplane import ImagePlane
from desktop_app.dicom.limits import DEFAULT_LIMITS
from desktop_app.infra.errors import DataError, RadAssistError
from training.records import LABEL_PATTERN, Dataset

NIFTI_SUFFIXES = (".nii", ".nii.gz")
JPEG_SUFFIXES = (".jpg", ".jpeg")
SEG_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")
RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
DEFAULT_CLASS = "lesion"
LOSSY_LEVELS = 16  # more grey levels than a label image holds: JPEG noise or antialiasing
MAX_VOLUME_VOXELS = 2**30  # one volume's first three dimensions (1024 x 1024 x 1024)
MAX_VOLUME_BYTES = DEFAULT_LIMITS.max_object_bytes  # one NIfTI's data, all channels (2 GiB)
MAX_NIFTI_OFFSET = 2**26  # where the data may start: header + extensions (64 MiB)
MAX_VOXEL_MM = 1.0e5  # a voxel over 100 m is nonsense (desktop_app.dicom.rtstruct.MAX_MM)
NIFTI_HINT = "give a .nii or .nii.gz file"


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: Path) -> str:
    """``case_001.nii.gz`` -> ``case_001``."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@dataclass(frozen=True)
class VolumeSlice:
    """Axial slice ``index`` of a NIfTI file (0-based, inferior to superior after
    :func:`read_volume`), channel ``channel`` of a 4-D image; ``values``: the label values that
    are foreground when it is a mask (empty: any nonzero)."""

    path: Path
    index: int
    channel: int = 0
    values: tuple[int, ...] = ()


@dataclass(frozen=True)
class LabelImage:
    """A 2-D mask file: PNG/TIFF/GIF/JPEG, or a NIfTI taken as stored (``index``: its slice
    along the last axis when it is 3-D); ``values`` as for VolumeSlice; ``more``: further mask
    files of the same image whose foreground is added (of the same size)."""

    path: Path
    index: int | None = None
    values: tuple[int, ...] = ()
    more: tuple[Path, ...] = ()


@dataclass(frozen=True)
class DicomMask:
    """A DICOM SEG or RTSTRUCT that references the row's (DICOM) image; ``names``: the segment
    labels or ROI names that are foreground (empty: all), matched case-insensitively."""

    path: Path
    kind: str  # "seg" or "rtstruct"
    names: tuple[str, ...] = ()


# A mask source: one of the above, or SIIM-ACR run-length strings (training.layouts.siim).
MaskSource = VolumeSlice | LabelImage | DicomMask | tuple[str, ...]


@dataclass
class SegDataset:
    """A classification ``Dataset`` (records, labels = segment classes, label 1 where the mask
    has foreground), each record's mask source (``training.segmasks``) and, for a record that
    is a slice of a NIfTI volume, that slice (``images``; empty or None: ``record.path`` is a
    2-D image)."""

    data: Dataset
    masks: list[MaskSource]
    images: list[VolumeSlice | None] = field(default_factory=list)

    def image_of(self, i: int) -> VolumeSlice | None:
        return self.images[i] if self.images else None


def class_name(labels: Sequence[str] | None, source: Path, default: str = DEFAULT_CLASS) -> str:
    """The one segment class: ``--labels NAME``, else ``default``."""
    if labels is None:
        return default
    if len(labels) != 1 or not LABEL_PATTERN.match(labels[0]):
        raise DataError(
            f"--labels {','.join(labels)}: a segmentation manifest has one mask per image, so "
            "one class",
            source,
            "name the class with one --labels NAME, or leave it out (lesion)",
        )
    return labels[0]


def _fail(path: Path, reason: str, hint: str) -> DataError:
    return DataError(reason, path, hint)


# --------------------------------------------------------------------------- NIfTI


def _data_offset(path: Path) -> float | None:
    """Where the data of a NIfTI-1/-2 single file starts (vox_offset), from the raw header;
    None when the first bytes are no NIfTI header (nibabel then says why)."""
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(176)
    except (OSError, EOFError, ValueError):
        return None
    for order in "<>":
        if len(head) >= 112 and struct.unpack(f"{order}i", head[:4])[0] == 348:
            return float(struct.unpack(f"{order}f", head[108:112])[0])
        if len(head) >= 176 and struct.unpack(f"{order}i", head[:4])[0] == 540:
            return float(struct.unpack(f"{order}q", head[168:176])[0])
    return None


def open_nifti(path: Path, hint: str = NIFTI_HINT) -> Any:
    """``path``'s nibabel image, its header checked against the budget (module docstring)
    before any data is read; nibabel's own log lines are kept off the terminal."""
    import nibabel as nib

    offset = _data_offset(path)
    if offset is not None and not (math.isfinite(offset) and offset <= MAX_NIFTI_OFFSET):
        raise _fail(
            path,
            f"NIfTI header says its data starts at byte {offset:.0f}, past the limit of "
            f"{MAX_NIFTI_OFFSET} (huge extensions)",
            hint,
        )
    try:
        with nib.imageglobals.LoggingOutputSuppressor():
            image: Any = nib.load(str(path))
            header = image.header
            shape = tuple(int(s) for s in header.get_data_shape())
            dtype = np.dtype(header.get_data_dtype())
            zooms = [float(z) for z in header.get_zooms()[:3]]
            affine = np.asarray(image.affine, dtype=float)
    except (
        OSError, ValueError, EOFError, OverflowError, MemoryError,
        nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
    ) as err:  # fmt: skip
        raise _fail(path, f"NIfTI can't be read: {err}", hint) from None
    check_nifti_header(path, shape, dtype, zooms, affine, hint)
    return image


def out_of_memory(path: Path, image: Any) -> DataError:
    """The one line for a volume within the budget that this machine can't hold."""
    shape = "x".join(str(s) for s in image.header.get_data_shape())
    return _fail(
        path,
        f"not enough memory to read the NIfTI volume {shape} ({image.header.get_data_dtype()})",
        "close other programs, or crop the volume to the region of interest",
    )


def check_nifti_header(
    path: Path, shape: tuple[int, ...], dtype: np.dtype[Any], zooms: Sequence[float],
    affine: np.ndarray, hint: str = NIFTI_HINT,
) -> None:  # fmt: skip
    """Refuse in one line a header whose declared dimensions, data type, size, voxel sizes or
    affine are out of bounds (the module docstring)."""
    text = "x".join(str(s) for s in shape)
    if len(shape) < 1 or any(s < 1 for s in shape):
        raise _fail(path, f"NIfTI header declares dimensions {text or 'none'}", hint)
    if len(shape) > 4 and any(s != 1 for s in shape[4:]):
        raise _fail(
            path,
            f"NIfTI of {len(shape)} dimensions ({text}) is not a 2-D or 3-D volume",
            "give a 2-D or 3-D volume (or a 4-D one of channels)",
        )
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise _fail(
            path,
            f"NIfTI data type {(dtype.fields and 'RGB') or dtype} is not a scalar integer or float",
            "give grey values or labels (an integer or float NIfTI)",
        )
    voxels = math.prod(shape[:3])
    nbytes = math.prod(shape) * dtype.itemsize
    if voxels > MAX_VOLUME_VOXELS or nbytes > MAX_VOLUME_BYTES:
        raise _fail(
            path,
            f"NIfTI volume {text} ({dtype}) declares {voxels} voxels and {nbytes} bytes, over "
            f"the limit of {MAX_VOLUME_VOXELS} voxels or {MAX_VOLUME_BYTES} bytes",
            "crop the volume to the region of interest or resample it coarser",
        )
    if not all(math.isfinite(z) and 0 < z <= MAX_VOXEL_MM for z in zooms):
        raise _fail(
            path,
            f"NIfTI voxel size {' x '.join(f'{z:g}' for z in zooms)} mm is not a size over 0 "
            f"and up to {MAX_VOXEL_MM:g} mm",
            "fix pixdim in the header (the voxel size in mm)",
        )
    if not np.all(np.isfinite(affine)):
        raise _fail(path, "NIfTI affine (qform/sform) is not finite", "fix the header's affine")


def read_volume(path: Path, channel: int = 0) -> tuple[np.ndarray, tuple[float, float]]:
    """A NIfTI file as (slices, rows, columns) in its stored dtype, and (row, column) spacing
    in mm.

    The image is brought to the closest canonical (RAS+) orientation with nibabel, then each
    axial slice is laid out as the viewer shows an axial DICOM slice (PS3.3 C.7.6.2.1.1: columns
    toward the patient's left, rows toward posterior): ``data[::-1, ::-1, k].T``. An image and
    its label read here line up whatever their stored orientations, as long as they share
    world space. A 2-D file is one slice; a 4-D file gives channel ``channel``.
    """
    import nibabel as nib

    loaded = open_nifti(path)
    try:
        with nib.imageglobals.LoggingOutputSuppressor():
            image = nib.as_closest_canonical(loaded)
            data = np.asanyarray(image.dataobj)
        zooms = tuple(float(z) for z in image.header.get_zooms()[:2])
    except (OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError) as err:
        raise _fail(path, f"NIfTI can't be read: {err}", NIFTI_HINT) from None
    except MemoryError:
        raise out_of_memory(path, loaded) from None
    if data.ndim == 4:
        if not 0 <= channel < data.shape[3]:
            raise _fail(
                path,
                f"channel {channel} asked of a NIfTI with {data.shape[3]} channels",
                "pick a channel the file has",
            )
        data = data[..., channel]
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise _fail(
            path, f"NIfTI of shape {data.shape} is not 2-D or 3-D", "give a 2-D or 3-D mask"
        )
    spacing = (zooms[1], zooms[0]) if len(zooms) == 2 else (1.0, 1.0)
    return np.ascontiguousarray(data[::-1, ::-1, :].transpose(2, 1, 0)), spacing


def foreground(values: np.ndarray, picked: Sequence[int]) -> np.ndarray:
    """Bool mask: nonzero, or equal to one of ``picked``."""
    if picked:
        return np.isin(values, np.asarray(picked))
    return np.asarray(values) != 0


def read_label_image(source: LabelImage) -> np.ndarray:
    """A 2-D mask file's foreground (LabelImage's rules, ``more`` united), at the size it has."""
    out = _one_label_image(source)
    for path in source.more:
        extra = _one_label_image(LabelImage(path, source.index, source.values))
        if extra.shape != out.shape:
            raise _fail(
                path,
                f"mask is {extra.shape[1]}x{extra.shape[0]} but {source.path.name}, a mask of "
                f"the same image, is {out.shape[1]}x{out.shape[0]}",
                "give every mask of an image at the image's size",
            )
        out |= extra
    return out


def _full_scale(peak: float) -> float:
    return next((f for f in (1.0, 255.0, 65535.0) if peak <= f), peak)


def lossy_foreground(values: np.ndarray) -> np.ndarray:
    """A JPEG mask's foreground: at least half its brightest value, none when that value is
    under a quarter of the range it is stored in (1, 255 or 65535: an empty mask's
    compression noise)."""
    peak = float(values.max()) if values.size else 0.0
    if peak <= 0 or peak < _full_scale(peak) / 4:
        return np.zeros(values.shape, dtype=bool)
    return np.asarray(values >= peak / 2)


def looks_lossy(values: np.ndarray) -> bool:
    """A 0/255 (or 0/65535) mask gone lossy, not a label image: more than LOSSY_LEVELS grey
    levels and a brightest value in the top half of its range. An instance map (ids 1..n) is
    a label image: its ids are kept as nonzero foreground."""
    if values.size == 0:
        return False
    peak = float(values.max())
    if peak < _full_scale(peak) / 2:
        return False
    if values.dtype.kind in "ui" and float(values.min()) >= 0 and peak <= 65535:
        levels = int(np.count_nonzero(np.bincount(values.ravel().astype(np.int64))))
    else:
        levels = len(np.unique(values))
    return levels > LOSSY_LEVELS


def _one_label_image(source: LabelImage) -> np.ndarray:
    if is_nifti(source.path):
        import nibabel as nib

        loaded = open_nifti(source.path, "give a .nii(.gz) mask")
        try:
            data = np.asanyarray(loaded.dataobj)
        except MemoryError:
            raise out_of_memory(source.path, loaded) from None
        except (OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError) as err:
            raise _fail(
                source.path, f"NIfTI can't be read: {err}", "give a .nii(.gz) mask"
            ) from None
        if source.index is not None:
            if data.ndim != 3 or not 0 <= source.index < data.shape[2]:
                raise _fail(
                    source.path,
                    f"slice {source.index} asked of a NIfTI mask of shape {data.shape}",
                    "the slice column counts from 0 along the mask's last axis",
                )
            data = data[:, :, source.index]
        data = np.squeeze(data)
        if data.ndim != 2:
            raise _fail(
                source.path,
                f"NIfTI mask of shape {data.shape} is not 2-D",
                "give a 2-D mask, or a 3-D one with a slice column",
            )
        return foreground(data, source.values)
    values = _raster_values(source.path)
    if values.ndim == 3:
        values = values.max(axis=2)
    if not source.values and (source.path.suffix.lower() in JPEG_SUFFIXES or looks_lossy(values)):
        return lossy_foreground(values)
    return foreground(values, source.values)


def _raster_values(path: Path) -> np.ndarray:
    """A label image's values, its declared size checked first as
    ``desktop_app.model.imageio`` checks an image (Pillow's decompression bomb warning is an
    error, and over MAX_RASTER_PIXELS is refused before decoding)."""
    from desktop_app.model.imageio import open_raster

    with open_raster(
        path,
        noun="mask",
        unreadable="mask can't be read",
        hint="give a PNG mask of the image's size",
        too_big_hint="give a mask of the image's size",
    ) as im:
        keep = im.mode in ("L", "P", "I", "I;16", "1")
        return np.asarray(im if keep else im.convert("L"))


# --------------------------------------------------------------------------- DICOM SEG / RTSTRUCT


class _ObjectCache:
    """The last few parsed SEG/RTSTRUCT objects, by path (one SEG usually serves a series)."""

    def __init__(self, size: int = 4) -> None:
        self.size, self.items, self.lock = size, OrderedDict[Path, Any](), threading.Lock()

    def get(self, path: Path, load: Callable[[Path], Any]) -> Any:
        with self.lock:
            if path in self.items:
                self.items.move_to_end(path)
                return self.items[path]
        value = load(path)
        with self.lock:
            self.items[path] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


_OBJECTS = _ObjectCache()


def dicom_mask_kind(path: Path) -> str | None:
    """ "seg" or "rtstruct" for a DICOM SEG/RTSTRUCT file, None for anything else."""
    from desktop_app.dicom.dicomfile import read_header

    if is_nifti(path) or path.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif"):
        return None
    try:
        sop_class = str(read_header(path).get("SOPClassUID", ""))
    except RadAssistError:
        return None
    if sop_class in SEG_CLASSES:
        return "seg"
    return "rtstruct" if sop_class == RTSTRUCT_CLASS else None


def image_plane(image: Path) -> ImagePlane:
    """The DICOM image's plane, from its header (what SEG frames and contours are matched to)."""
    from desktop_app.dicom import dsvalues
    from desktop_app.dicom.dicomfile import read_header

    try:
        ds = read_header(image)
    except RadAssistError as err:
        raise _fail(
            image,
            f"the image of a SEG/RTSTRUCT mask must be DICOM: {err.reason}",
            "give DICOM images",
        ) from None

    def triple(keyword: str, n: int) -> Any:
        values = dsvalues.floats(ds, keyword)
        known = [float(v) for v in values if v is not None]
        return tuple(known) if len(known) == n == len(values) else None

    spacing = triple("PixelSpacing", 2)
    thickness = dsvalues.first_float(ds, "SpacingBetweenSlices") or dsvalues.first_float(
        ds, "SliceThickness"
    )
    return ImagePlane(
        sop_instance_uid=dsvalues.text(ds, "SOPInstanceUID"),
        rows=dsvalues.first_int(ds, "Rows") or 0,
        columns=dsvalues.first_int(ds, "Columns") or 0,
        position=triple("ImagePositionPatient", 3),
        orientation=triple("ImageOrientationPatient", 6),
        pixel_spacing=spacing,
        series_instance_uid=dsvalues.text(ds, "SeriesInstanceUID"),
        slice_spacing=thickness,
    )


def _names_filter(source: DicomMask, available: Sequence[str], what: str) -> set[str] | None:
    if not source.names:
        return None
    wanted = {n.casefold() for n in source.names}
    have = {a.casefold() for a in available}
    if not wanted & have:
        raise _fail(
            source.path,
            f"no {what} named {', '.join(source.names)}; it has: {', '.join(available) or 'none'}",
            f"pick one of its {what} names with --labels, or leave --labels out (any {what})",
        )
    return wanted


def _seg_mask(source: DicomMask, plane: ImagePlane, image: Path) -> np.ndarray:
    from desktop_app.dicom.segread import read_segmentation

    try:
        seg = _OBJECTS.get(source.path, read_segmentation)
    except RadAssistError as err:
        raise _fail(source.path, f"SEG can't be read: {err.reason}", "give a DICOM SEG") from None
    wanted = _names_filter(source, [s.label for s in seg.segments.values()], "segment")
    referenced = (
        plane.sop_instance_uid in seg.referenced_images
        or plane.series_instance_uid in seg.referenced_series
        or any(f.source_sop_instance_uid == plane.sop_instance_uid for f in seg.frames)
    )
    if not referenced:
        raise _fail(
            source.path,
            f"the SEG does not reference image {image.name}",
            "give the SEG made on this image's series, or fix the row's path",
        )
    if (seg.rows, seg.columns) != (plane.rows, plane.columns):
        raise _fail(
            source.path,
            f"SEG frames are {seg.columns}x{seg.rows} but image {image.name} is "
            f"{plane.columns}x{plane.rows}",
            "give the SEG made on this image",
        )
    out = np.zeros((plane.rows, plane.columns), dtype=bool)
    for segment, mask in seg.masks_on(plane):
        if wanted is None or segment.label.casefold() in wanted:
            out |= mask
    return out


def _rtstruct_mask(source: DicomMask, plane: ImagePlane, image: Path) -> np.ndarray:
    from skimage.draw import polygon

    from desktop_app.dicom.dicomfile import read_header
    from desktop_app.dicom.rtstruct import read_structure_set

    def load(path: Path) -> Any:
        return read_structure_set(read_header(path))

    try:
        structure = _OBJECTS.get(source.path, load)
    except RadAssistError as err:
        raise _fail(
            source.path, f"RTSTRUCT can't be read: {err.reason}", "give an RTSTRUCT"
        ) from None
    wanted = _names_filter(source, [r.name for r in structure.rois.values()], "ROI")
    referenced = plane.series_instance_uid in structure.referenced_series or any(
        sop == plane.sop_instance_uid for c in structure.contours for sop, _ in c.images
    )
    if not referenced:
        raise _fail(
            source.path,
            f"the RTSTRUCT does not reference image {image.name}",
            "give the RTSTRUCT drawn on this image's series, or fix the row's path",
        )
    if not plane.has_geometry:
        raise _fail(
            image,
            "image has no Image Position/Orientation (Patient) or Pixel Spacing",
            "RTSTRUCT contours are in patient mm: give images with their plane geometry",
        )
    shape = (plane.rows, plane.columns)
    per_roi: dict[int, np.ndarray] = {}
    for roi, contour, pixels in structure.polygons_on(plane):
        if not contour.closed or (wanted is not None and roi.name.casefold() not in wanted):
            continue
        inside = np.zeros(shape, dtype=bool)
        rr, cc = polygon(pixels[:, 1] - 0.5, pixels[:, 0] - 0.5, shape=shape)
        inside[rr, cc] = True
        have = per_roi.get(roi.number)
        per_roi[roi.number] = inside if have is None else have ^ inside
    out = np.zeros(shape, dtype=bool)
    for mask in per_roi.values():
        out |= mask
    return out


# --------------------------------------------------------------------------- one entry point


def read_mask(
    source: MaskSource,
    image: Path,
    shape: tuple[int, int],
    volume: Callable[[Path], np.ndarray] | None = None,
) -> np.ndarray:
    """``source``'s bool mask for ``image`` (its pixels ``shape``) on the image's grid.

    ``volume(path)`` returns a NIfTI volume already read (:func:`read_volume`); without it the
    file is read here. Raises DataError naming the file when the mask can't be read, does not
    reference the image, or is not the image's size."""
    if isinstance(source, tuple):
        from training.layouts.siim import union_mask

        return union_mask(source, width=shape[1], height=shape[0])
    if isinstance(source, VolumeSlice):
        data = volume(source.path) if volume is not None else read_volume(source.path)[0]
        if not 0 <= source.index < data.shape[0]:
            raise _fail(
                source.path,
                f"slice {source.index} asked of a volume of {data.shape[0]} slices",
                "the slice column counts axial slices from 0 (inferior to superior)",
            )
        mask = foreground(data[source.index], source.values)
    elif isinstance(source, DicomMask):
        plane = image_plane(image)
        reader = _seg_mask if source.kind == "seg" else _rtstruct_mask
        mask = reader(source, plane, image)
    else:
        mask = read_label_image(source)
    if mask.shape != shape:
        raise _fail(
            source.path,
            f"mask is {mask.shape[1]}x{mask.shape[0]} but its image {image.name} is "
            f"{shape[1]}x{shape[0]}",
            "give a mask of the image's size (a NIfTI volume: the image volume's shape)",
        )
    return mask


def mask_source(
    path: Path, *, index: int | None, values: Sequence[int], names: Sequence[str],
    image_is_volume: bool,
) -> MaskSource:  # fmt: skip
    """What the manifest's ``mask`` value ``path`` is (see the module docstring)."""
    if is_nifti(path):
        if image_is_volume:
            return VolumeSlice(path, index or 0, values=tuple(values))
        return LabelImage(path, index, tuple(values))
    kind = dicom_mask_kind(path)
    if kind is not None:
        return DicomMask(path, kind, tuple(names))
    return LabelImage(path, None, tuple(values))
