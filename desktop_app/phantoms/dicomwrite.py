"""Build and write synthetic DICOM objects (DX/CR radiographs and CT slices) with pydicom.

Everything here is deterministic: UIDs come from :func:`synthetic_uid` (pydicom's
``generate_uid`` with entropy sources), dates from the seed, and names are obviously fake
(``PHANTOM^0001``). Files are written atomically; paths never come from tag values.
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from desktop_app import __version__
from desktop_app.infra.atomicio import atomic_path
from desktop_app.infra.errors import ConfigError, ExportError

log = logging.getLogger(__name__)

DX_FOR_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.1")  # PS3.4 B.5, Digital X-Ray Image
CR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.1")  # PS3.4 B.5, Computed Radiography Image
MANUFACTURER = "RadAssist synthetic phantom"
Compression = Literal["none", "rle", "deflate"]
Photometric = Literal["MONOCHROME2", "MONOCHROME1"]
COMPRESSIONS: tuple[str, ...] = ("none", "rle", "deflate")
_EPOCH = _dt.date(2020, 1, 6)


def synthetic_uid(*parts: object) -> UID:
    """A UID that depends only on ``parts`` (PS3.5 9.1; pydicom's prefix, hashed entropy)."""
    return generate_uid(entropy_srcs=["radassist-synthetic", *(str(p) for p in parts)])


@dataclass(frozen=True)
class StudyIds:
    """Who and which study a synthetic object belongs to. Fake by construction."""

    patient_name: str
    patient_id: str
    patient_sex: str
    study_uid: UID
    series_uid: UID
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    accession: str

    @classmethod
    def for_patient(cls, patient_number: int, study_key: object = 0) -> StudyIds:
        """IDs for patient ``patient_number``; ``study_key`` tells that patient's studies apart."""
        if patient_number < 0:
            raise ConfigError(f"patient_number {patient_number} should be >= 0")
        digest = int(synthetic_uid("date", patient_number, study_key).split(".")[-1])
        day = _EPOCH + _dt.timedelta(days=digest % 1800)
        seconds = 7 * 3600 + digest // 1800 % (12 * 3600)
        return cls(
            patient_name=f"PHANTOM^{patient_number:04d}",
            patient_id=f"PH{patient_number:06d}",
            patient_sex="MF"[digest % 2],
            study_uid=synthetic_uid("study", patient_number, study_key),
            series_uid=synthetic_uid("series", patient_number, study_key),
            study_date=day.strftime("%Y%m%d"),
            study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
            accession=f"SYN{digest % 10**8:08d}",
        )


def _base_dataset(
    sop_class: UID, sop_uid: UID, ids: StudyIds, modality: str, series_number: int
) -> Dataset:
    """Patient, General Study, General Series, General Equipment and SOP Common modules
    (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1, C.7.5.1, C.12.1)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = f"RADASSIST_{__version__}"[:16]
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ids.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ids.study_time
    ds.AccessionNumber = ids.accession
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "synthetic"
    ds.SoftwareVersions = f"radassist {__version__}"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "SYNTHETIC PHANTOM - NOT A PATIENT"
    ds.PatientName = ids.patient_name
    ds.PatientID = ids.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ids.patient_sex
    ds.PatientIdentityRemoved = "YES"
    ds.StudyInstanceUID = ids.study_uid
    ds.SeriesInstanceUID = ids.series_uid
    ds.StudyID = ids.accession[-6:]
    ds.SeriesNumber = series_number
    ds.BurnedInAnnotation = "NO"
    return ds


def _set_pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int, signed: bool) -> None:
    """Image Pixel module (PS3.3 C.7.6.3), one frame of 16-bit grey."""
    if pixels.ndim != 2:
        raise ConfigError(f"pixels must be 2-D, got shape {pixels.shape}")
    dtype = np.dtype("<i2" if signed else "<u2")
    arr = np.ascontiguousarray(pixels, dtype=dtype)
    ds.SamplesPerPixel = 1
    ds.Rows, ds.Columns = (int(n) for n in arr.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = arr.tobytes()


def display_window(
    pixels: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.5
) -> tuple[float, float]:
    """(center, width) spanning the given percentiles: a default VOI window (PS3.3 C.11.2)."""
    lo, hi = np.percentile(pixels, [low_pct, high_pct])
    return float(round((lo + hi) / 2.0)), float(max(round(hi - lo), 1.0))


def dx_dataset(
    pixels: np.ndarray,
    *,
    ids: StudyIds,
    sop_uid: UID,
    pixel_spacing_mm: float,
    photometric: Photometric = "MONOCHROME2",
    modality: Literal["DX", "CR"] = "DX",
    instance_number: int = 1,
    bits_stored: int = 12,
) -> Dataset:
    """A DX (For Presentation) or CR image from a MONOCHROME2-sense array (bright = dense).

    ``photometric="MONOCHROME1"`` stores ``max - value`` so that the minimum is white
    (PS3.3 C.7.6.3.1.2); the window centre, Presentation LUT Shape and Pixel Intensity
    Relationship Sign follow (PS3.3 C.8.11.3.1.1, C.8.11.3.1.2).
    """
    if modality not in ("DX", "CR"):
        raise ConfigError(f"modality {modality!r} should be DX or CR")
    if photometric not in ("MONOCHROME2", "MONOCHROME1"):
        raise ConfigError(f"photometric {photometric!r} should be MONOCHROME2 or MONOCHROME1")
    top = (1 << bits_stored) - 1
    if pixels.size and (int(pixels.max()) > top or int(pixels.min()) < 0):
        raise ConfigError(f"pixel values must lie in 0..{top} for BitsStored {bits_stored}")
    rows, cols = pixels.shape
    # The window comes from the middle of the image: the black surround would widen it.
    center, width = display_window(
        pixels[rows // 5 : rows - rows // 5, cols // 5 : cols - cols // 5]
    )
    inverted = photometric == "MONOCHROME1"
    stored = (top - pixels.astype(np.int32)).astype(np.uint16) if inverted else pixels
    sop_class = DX_FOR_PRESENTATION if modality == "DX" else CR_IMAGE
    ds = _base_dataset(sop_class, sop_uid, ids, modality, series_number=1)
    ds.SeriesDescription = "PA CHEST (synthetic)"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.ImageLaterality = "U"  # PS3.3 C.8.11.5: the chest is unpaired
    region = Dataset()
    region.CodeValue = "51185008"
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = [region]
    ds.AcquisitionContextSequence = []
    ds.PatientOrientation = [
        "L",
        "F",
    ]  # PS3.3 C.7.6.1.1.1: rows run to the left, columns to the feet
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PhotometricInterpretation = photometric
    _set_pixels(ds, stored, bits_stored, signed=False)
    ds.PixelSpacing = [f"{pixel_spacing_mm:.10g}"] * 2
    ds.ImagerPixelSpacing = [f"{pixel_spacing_mm:.10g}"] * 2
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = top - center if inverted else center
    ds.WindowWidth = width
    ds.WindowCenterWidthExplanation = "SYNTHETIC DEFAULT"
    ds.LossyImageCompression = "00"
    ds.KVP = 120
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1 if inverted else -1
        ds.PresentationLUTShape = "INVERSE" if inverted else "IDENTITY"
        ds.DetectorType = "SCINTILLATOR"
    return ds


@dataclass(frozen=True)
class CtSliceGeometry:
    """Where one CT slice lies in patient space (PS3.3 C.7.6.2)."""

    position: tuple[float, float, float]  # Image Position (Patient) of the first pixel, mm
    orientation: tuple[float, float, float, float, float, float]  # row then column cosines
    pixel_spacing: tuple[float, float]  # row spacing, column spacing, mm
    slice_thickness: float
    spacing_between_slices: float
    gantry_tilt_deg: float
    frame_of_reference_uid: UID


def ct_dataset(
    hu: np.ndarray,
    *,
    ids: StudyIds,
    sop_uid: UID,
    geometry: CtSliceGeometry,
    instance_number: int,
    signed: bool = False,
) -> Dataset:
    """One CT Image (PS3.3 A.3) from an array of Hounsfield units.

    Stored values are ``HU + 1024`` with Rescale Intercept -1024 and slope 1 (PS3.3
    C.11.1.1.2): unsigned 12-bit (0..4095, i.e. -1024..3071 HU) by default, or signed
    16-bit with ``signed=True``.
    """
    shifted = hu.astype(np.int32) + 1024
    if signed:
        stored = np.clip(shifted, -32768, 32767).astype(np.int16)
        bits = 16
    else:
        stored = np.clip(shifted, 0, 4095).astype(np.uint16)
        bits = 12
    ds = _base_dataset(CTImageStorage, sop_uid, ids, "CT", series_number=2)
    ds.SeriesDescription = "CHEST CT PHANTOM (synthetic)"
    ds.BodyPartExamined = "CHEST"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = geometry.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    ds.InstanceNumber = instance_number
    ds.AcquisitionNumber = 1
    ds.ImagePositionPatient = [f"{v:.10g}" for v in geometry.position]
    ds.ImageOrientationPatient = [f"{v:.10g}" for v in geometry.orientation]
    ds.SliceLocation = f"{geometry.position[2]:.10g}"
    ds.SliceThickness = f"{geometry.slice_thickness:.10g}"
    ds.SpacingBetweenSlices = f"{geometry.spacing_between_slices:.10g}"
    ds.GantryDetectorTilt = f"{geometry.gantry_tilt_deg:.10g}"
    ds.KVP = 120
    ds.PhotometricInterpretation = "MONOCHROME2"
    _set_pixels(ds, stored, bits, signed=signed)
    ds.PixelSpacing = [f"{v:.10g}" for v in geometry.pixel_spacing]
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter = [40, -600]  # mediastinum and lung windows (multi-valued, PS3.3 C.11.2.1.2)
    ds.WindowWidth = [400, 1500]
    ds.WindowCenterWidthExplanation = ["MEDIASTINUM", "LUNG"]
    return ds


def save_dataset(ds: Dataset, path: str | Path, compression: Compression = "none") -> Path:
    """Write ``ds`` to ``path`` atomically, optionally RLE Lossless or Deflated (PS3.5 A.4.2,
    A.5). Compression keeps the SOP Instance UID: the pixels are unchanged."""
    if compression not in COMPRESSIONS:
        raise ConfigError(
            f"compression {compression!r} is not supported", hint=f"use one of {COMPRESSIONS}"
        )
    target = Path(path)
    if compression == "rle":
        ds.compress(RLELossless, generate_instance_uid=False)
    elif compression == "deflate":
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    try:
        with atomic_path(target) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
    except OSError as err:
        raise ExportError(
            f"can't write DICOM file: {err.strerror or err}",
            target,
            "check the folder exists, is writable and has free space",
        ) from err
    return target
