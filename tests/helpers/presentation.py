"""Objects other tools write, made here with pydicom and highdicom: an image with an overlay
plane, a GSPS with graphic and text annotations on it, and a TID 1500 SR with a region on it.
Imported by tests/dicom/test_overlay_planes.py, test_gsps.py, test_srcontent.py,
tests/qt/test_sr_panel.py and docs/screenshots/make_overlays.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
MR_CLASS = "1.2.840.10008.5.1.4.1.1.4"
ROWS = COLUMNS = 64


def pack_bits(mask: np.ndarray) -> bytes:
    """A bool array packed as Overlay Data (little-endian bit order, PS3.5 8.1.1), padded
    to an even length."""
    data = np.packbits(np.asarray(mask, dtype=bool).ravel(), bitorder="little").tobytes()
    return data + b"\x00" * (len(data) % 2)


def overlay_mask(rows: int = ROWS, columns: int = COLUMNS) -> np.ndarray:
    """A frame around the image and a cross in its middle."""
    mask = np.zeros((rows, columns), dtype=bool)
    mask[2, 2:-2] = mask[-3, 2:-2] = mask[2:-2, 2] = mask[2:-2, -3] = True
    mask[rows // 2, columns // 4 : 3 * columns // 4] = True
    mask[rows // 4 : 3 * rows // 4, columns // 2] = True
    return mask


def add_overlay(
    ds: Dataset,
    masks: np.ndarray,
    group: int = 0x6000,
    origin: tuple[int, int] = (1, 1),
    frame_origin: int | None = None,
    kind: str = "G",
    description: str = "Scanner graphics",
) -> Dataset:
    """Put ``masks`` ((rows, cols) or (frames, rows, cols)) into overlay group ``group``."""
    masks = np.asarray(masks, dtype=bool)
    frames = masks.shape[0] if masks.ndim == 3 else None
    rows, cols = masks.shape[-2:]
    ds.add_new((group, 0x0010), "US", rows)
    ds.add_new((group, 0x0011), "US", cols)
    ds.add_new((group, 0x0040), "CS", kind)
    ds.add_new((group, 0x0050), "SS", list(origin))
    ds.add_new((group, 0x0100), "US", 1)
    ds.add_new((group, 0x0102), "US", 0)
    ds.add_new((group, 0x0022), "LO", description)
    if frames is not None:
        ds.add_new((group, 0x0015), "IS", frames)
        ds.add_new((group, 0x0051), "US", frame_origin or 1)
    ds.add_new((group, 0x3000), "OW", pack_bits(masks))
    return ds


def mr_image(
    study_uid: str | None = None,
    series_uid: str | None = None,
    number: int = 1,
    overlay: bool = True,
) -> Dataset:
    """A 64x64 MR slice (a bright disc) with an overlay plane unless told not to."""
    yy, xx = np.mgrid[0:ROWS, 0:COLUMNS]
    pixels = (np.hypot(xx - 32, yy - 32) < 24).astype(np.uint16) * 800 + 100
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MR_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = MR_CLASS
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientName = "Overlay^Phantom"
    ds.PatientID = "PHANTOM-OV"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "RadAssist tests"
    ds.Modality = "MR"
    ds.SeriesNumber = 3
    ds.SeriesDescription = "T1 with overlay"
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0.0, 0.0, float(number)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 1.0
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype("<u2").tobytes()
    if overlay:
        add_overlay(ds, overlay_mask())
    return ds


def gsps_for(
    images: Sequence[Dataset],
    *,
    graphics: Sequence[tuple[str, Sequence[float], str]] = (),
    texts: Sequence[
        tuple[str, tuple[float, float, float, float] | None, tuple[float, float] | None, str]
    ] = (),
    layer_lab: tuple[int, int, int] | None = (65535, 0, 65535),
    label: str = "ANNOTATED",
) -> Dataset:
    """A GSPS referencing ``images`` with one annotation item on layer "LAYER1": graphics
    ``(type, data, units)`` and texts ``(text, box, anchor, units)``."""
    first = images[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = GSPS_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = GSPS_CLASS
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "StudyTime"):
        setattr(ds, keyword, getattr(first, keyword))
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "PR"
    ds.SeriesNumber = 90
    ds.SeriesDescription = "Measurements"
    ds.InstanceNumber = 1
    ds.ContentLabel = label
    ds.ContentDescription = "Reader annotations"
    ds.ContentCreatorName = "Other^Viewer"
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = first.SeriesInstanceUID
    ref_series.ReferencedImageSequence = [_ref(im) for im in images]
    ds.ReferencedSeriesSequence = [ref_series]
    layer = Dataset()
    layer.GraphicLayer = "LAYER1"
    layer.GraphicLayerOrder = 1
    if layer_lab is not None:
        layer.GraphicLayerRecommendedDisplayCIELabValue = list(layer_lab)
    ds.GraphicLayerSequence = [layer]
    item = Dataset()
    item.GraphicLayer = "LAYER1"
    objects = []
    for kind, data, units in graphics:
        obj = Dataset()
        obj.GraphicAnnotationUnits = units
        obj.GraphicDimensions = 2
        obj.NumberOfGraphicPoints = len(data) // 2
        obj.GraphicData = [float(v) for v in data]
        obj.GraphicType = kind
        obj.GraphicFilled = "N"
        objects.append(obj)
    if objects:
        item.GraphicObjectSequence = objects
    text_items = []
    for text, box, anchor, units in texts:
        obj = Dataset()
        obj.UnformattedTextValue = text
        if box is not None:
            obj.BoundingBoxAnnotationUnits = units
            obj.BoundingBoxTopLeftHandCorner = list(box[:2])
            obj.BoundingBoxBottomRightHandCorner = list(box[2:])
            obj.BoundingBoxTextHorizontalJustification = "LEFT"
        if anchor is not None:
            obj.AnchorPointAnnotationUnits = units
            obj.AnchorPoint = list(anchor)
            obj.AnchorPointVisibility = "Y"
        text_items.append(obj)
    if text_items:
        item.TextObjectSequence = text_items
    ds.GraphicAnnotationSequence = [item]
    return ds


def _ref(image: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = image.SOPClassUID
    ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return ref


def tid1500_sr(image: Dataset, polygon: Sequence[tuple[float, float]]) -> Dataset:
    """A TID 1500 measurement report by highdicom: one planar ROI group on ``image`` with a
    closed POLYLINE region, an area in mm2 and a finding "Nodule"."""
    points = np.asarray([*polygon, polygon[0]], dtype=np.float32)
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=points,
        source_image=hd.sr.SourceImageForRegion.from_source_image(image),
    )
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="lesion 1"),
        referenced_region=region,
        finding_type=codes.SCT.Nodule,
        measurements=[
            hd.sr.Measurement(name=codes.SCT.Area, value=42.5, unit=codes.UCUM.SquareMillimeter)
        ],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="Other CAD"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[group],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[image],
        content=report[0],
        series_number=91,
        series_instance_uid=generate_uid(),
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="Other CAD vendor",
        series_description="CAD report",
        is_complete=True,
    )


def write_study(folder: Path) -> dict[str, Path]:
    """An MR slice with an overlay, a GSPS and a TID 1500 SR on it, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    image = mr_image()
    gsps = gsps_for(
        [image],
        graphics=[
            ("CIRCLE", [32.0, 32.0, 32.0, 20.0], "PIXEL"),
            ("POLYLINE", [8.0, 56.0, 24.0, 56.0], "PIXEL"),
            ("ELLIPSE", [0.25, 0.5, 0.75, 0.5, 0.5, 0.4, 0.5, 0.6], "DISPLAY"),
        ],
        texts=[("12 mm", None, (24.0, 56.0), "PIXEL")],
    )
    sr = tid1500_sr(image, [(40.0, 12.0), (54.0, 12.0), (54.0, 24.0), (40.0, 24.0)])
    paths = {"image": folder / "image.dcm", "gsps": folder / "gsps.dcm", "sr": folder / "sr.dcm"}
    image.save_as(paths["image"], enforce_file_format=True)
    gsps.save_as(paths["gsps"], enforce_file_format=True)
    sr.save_as(paths["sr"], enforce_file_format=True)
    return paths
