"""Segmentations and structure sets other tools write, made here over a copy of the CT sample:
a BINARY and a FRACTIONAL SEG with highdicom, and an RT Structure Set with pydicom. Imported
by tests/dicom/test_segread.py, tests/exports/test_seg.py, tests/qt/test_seg_display.py and
docs/screenshots/make_seg.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CT = ROOT / "resources" / "sample" / "ct_phantom"
RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
NODULE_SLICES = range(18, 23)  # indices of the z-sorted slices the test nodule crosses


def copy_ct(folder: Path) -> list[Path]:
    """The CT sample's slices copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in sorted(SAMPLE_CT.glob("*.dcm")):
        out.append(Path(shutil.copy(path, folder / path.name)))
    return out


def ct_slices(files: list[Path]) -> list[Dataset]:
    """The slices sorted by z (foot to head)."""
    datasets = [pydicom.dcmread(p) for p in files]
    return sorted(datasets, key=lambda d: float(d.ImagePositionPatient[2]))


def nodule_masks(slices: list[Dataset], centre: tuple[int, int] = (150, 110)) -> np.ndarray:
    """(slices, rows, cols) bool: a disc on :data:`NODULE_SLICES`, widest in the middle."""
    rows, cols = int(slices[0].Rows), int(slices[0].Columns)
    yy, xx = np.mgrid[:rows, :cols]
    masks = np.zeros((len(slices), rows, cols), dtype=bool)
    middle = (NODULE_SLICES.start + NODULE_SLICES.stop - 1) / 2
    for k in NODULE_SLICES:
        radius = 12 - 3 * abs(k - middle)
        masks[k] = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    return masks


def _description(number: int, label: str) -> hd.seg.SegmentDescription:
    algorithm = hd.AlgorithmIdentificationSequence(
        name="OtherTool", version="2.1", family=codes.cid7162.ArtificialIntelligence
    )
    desc = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(40, 200, 255),
    )
    return desc


def write_seg(
    folder: Path, slices: list[Dataset], *, fractional: bool = False, name: str = "seg.dcm"
) -> Path:
    """A SEG of :func:`nodule_masks` (one segment "Nodule A") and a second segment
    ("Nodule B", a square on slice 10) written by highdicom, as another tool would."""
    first = nodule_masks(slices)
    second = np.zeros_like(first)
    second[10, 60:80, 170:190] = True
    stacked = np.stack([first, second], axis=-1)
    kind = hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else "BINARY"
    pixels = stacked.astype(np.float32) * 0.8 if fractional else stacked
    seg = hd.seg.Segmentation(
        source_images=slices,
        pixel_array=pixels,
        segmentation_type=kind,
        segment_descriptions=[_description(1, "Nodule A"), _description(2, "Nodule B")],
        series_instance_uid=generate_uid(),
        series_number=50,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="Other tool",
        manufacturer_model_name="Segmenter",
        software_versions="2.1",
        device_serial_number="1",
        series_description="Other tool SEG",
    )
    path = folder / name
    seg.save_as(path)
    return path


def _contour(points_mm: np.ndarray, image: Dataset | None) -> Dataset:
    item = Dataset()
    item.ContourGeometricType = "CLOSED_PLANAR"
    item.NumberOfContourPoints = len(points_mm)
    item.ContourData = [f"{v:.3f}" for v in points_mm.ravel()]
    if image is not None:
        ref = Dataset()
        ref.ReferencedSOPClassUID = image.SOPClassUID
        ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
        item.ContourImageSequence = [ref]
    return item


def circle_mm(image: Dataset, centre_px: tuple[float, float], radius_px: float) -> np.ndarray:
    """A 24-point circle around pixel (x, y) ``centre_px`` in ``image``'s plane, in mm."""
    origin = np.asarray([float(v) for v in image.ImagePositionPatient])
    spacing = [float(v) for v in image.PixelSpacing]
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    x = centre_px[0] + radius_px * np.cos(angles)
    y = centre_px[1] + radius_px * np.sin(angles)
    return np.stack(
        [origin[0] + x * spacing[1], origin[1] + y * spacing[0], np.full_like(x, origin[2])],
        axis=1,
    )


def write_rtstruct(folder: Path, slices: list[Dataset], name: str = "rtstruct.dcm") -> Path:
    """An RT Structure Set: ROI "Lesion" (red) drawn on the nodule slices with Contour Image
    Sequence, and ROI "Body ring" (green) on slice 20 with no image reference (matched by its
    plane)."""
    first = slices[0]
    ds = Dataset()
    ds.SOPClassUID = RTSTRUCT_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyID"):
        setattr(ds, keyword, first.get(keyword, ""))
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 60
    ds.SeriesDescription = "Other tool RTSTRUCT"
    ds.StructureSetLabel = "Plan"
    ds.StructureSetName = "Plan"
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    study.RTReferencedSeriesSequence = [series]
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = first.get("FrameOfReferenceUID", generate_uid())
    frame_ref.RTReferencedStudySequence = [study]
    ds.ReferencedFrameOfReferenceSequence = [frame_ref]
    rois, contours = [], []
    for number, roi_name, color in ((1, "Lesion", [255, 0, 0]), (2, "Body ring", [0, 255, 0])):
        roi = Dataset()
        roi.ROINumber = number
        roi.ROIName = roi_name
        roi.ROIGenerationAlgorithm = "MANUAL"
        roi.ReferencedFrameOfReferenceUID = frame_ref.FrameOfReferenceUID
        rois.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = color
        if number == 1:
            item.ContourSequence = [
                _contour(circle_mm(slices[k], (110.5, 150.5), 10), slices[k]) for k in NODULE_SLICES
            ]
        else:
            item.ContourSequence = [_contour(circle_mm(slices[20], (128, 128), 90), None)]
        contours.append(item)
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = contours
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path
