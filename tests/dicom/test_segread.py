"""DICOM SEG and RTSTRUCT reading: segments, masks mapped to images, contours mapped to pixels,
and the bounds that refuse hostile files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from desktop_app.dicom.imageplane import ImagePlane
from desktop_app.dicom.limits import ReadLimits
from desktop_app.dicom.rtstruct import read_structure_set
from desktop_app.dicom.segread import mask_edges, read_segmentation
from desktop_app.infra.errors import DicomReadError, LimitExceededError
from tests.helpers.dicomfiles import pydicom_test_file
from tests.helpers.segobjects import (
    NODULE_SLICES,
    copy_ct,
    ct_slices,
    nodule_masks,
    write_rtstruct,
    write_seg,
)


def plane(ds: Dataset, series: str | None = None) -> ImagePlane:
    return ImagePlane(
        str(ds.SOPInstanceUID),
        1,
        int(ds.Rows),
        int(ds.Columns),
        tuple(float(v) for v in ds.ImagePositionPatient),  # type: ignore[arg-type]
        tuple(float(v) for v in ds.ImageOrientationPatient),  # type: ignore[arg-type]
        (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])),
        series if series is not None else str(ds.SeriesInstanceUID),
        5.0,
    )


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Dataset]]:
    folder = tmp_path_factory.mktemp("segread")
    return folder, ct_slices(copy_ct(folder / "ct"))


class TestReadSegmentation:
    @pytest.mark.parametrize("fractional", [False, True])
    def test_segments_and_masks_on_their_images(
        self, ct: tuple[Path, list[Dataset]], fractional: bool
    ) -> None:
        folder, slices = ct
        seg = read_segmentation(
            write_seg(folder, slices, fractional=fractional, name=f"{fractional}.dcm")
        )
        assert seg.segmentation_type == ("FRACTIONAL" if fractional else "BINARY")
        assert [s.label for s in seg.segments.values()] == ["Nodule A", "Nodule B"]
        first = seg.segments[1]
        assert first.property_type is not None and first.property_type.value == "27925004"
        assert first.category is not None and first.category.scheme == "SCT"
        assert first.algorithm_type == "AUTOMATIC" and first.algorithm_name == "OtherTool"
        assert first.color == (40, 200, 255)
        expected = nodule_masks(slices)
        for k, ds in enumerate(slices):
            masks = {s.number: m for s, m in seg.masks_on(plane(ds))}
            if k in NODULE_SLICES:
                np.testing.assert_array_equal(masks[1], expected[k])
            else:
                assert 1 not in masks
        assert set(seg.masks_on(plane(slices[10]))[0][1].nonzero()[0]) == set(range(60, 80))
        assert seg.problems == []
        assert {f.source_sop_instance_uid for f in seg.frames} <= {d.SOPInstanceUID for d in slices}

    def test_frames_without_source_references_match_by_position(
        self, ct: tuple[Path, list[Dataset]], tmp_path: Path
    ) -> None:
        folder, slices = ct
        ds = pydicom.dcmread(write_seg(folder, slices, name="nosrc.dcm"))
        for item in ds.PerFrameFunctionalGroupsSequence:
            del item.DerivationImageSequence
        path = tmp_path / "nosrc.dcm"
        ds.save_as(path)
        seg = read_segmentation(path)
        assert all(not f.source_sop_instance_uid and f.position for f in seg.frames)
        k = NODULE_SLICES.start + 2
        masks = seg.masks_on(plane(slices[k]))
        np.testing.assert_array_equal(masks[0][1], nodule_masks(slices)[k])
        assert seg.masks_on(plane(slices[k], series="1.2.3.4")) == []  # not a referenced series
        by_image = seg.masks_by_image([plane(d) for d in slices])
        assert len(by_image) == len(NODULE_SLICES) + 1

    def test_a_mask_on_another_grid_is_not_drawn(self, ct: tuple[Path, list[Dataset]]) -> None:
        folder, slices = ct
        seg = read_segmentation(write_seg(folder, slices, name="grid.dcm"))
        p = plane(slices[20])
        other = ImagePlane(p.sop_instance_uid, 1, 128, 128, p.position, p.orientation)
        assert seg.masks_on(other) == []

    def test_not_a_segmentation(self) -> None:
        with pytest.raises(DicomReadError, match="not a DICOM Segmentation object"):
            read_segmentation(pydicom_test_file("CT_small.dcm"))

    @pytest.mark.parametrize(
        ("limits", "message"),
        [
            (ReadLimits(max_frames=2), "segmentation frames exceed the limit of 2"),
            (ReadLimits(max_frame_pixels=100 * 100), "exceed the 10000-pixel limit"),
            (ReadLimits(max_object_bytes=256 * 256 * 2), "over the limit of 131072"),
        ],
    )
    def test_bounds(self, ct: tuple[Path, list[Dataset]], limits: ReadLimits, message: str) -> None:
        folder, slices = ct
        path = write_seg(folder, slices, name="bounds.dcm")
        with pytest.raises(LimitExceededError, match=message):
            read_segmentation(path, limits=limits)

    def test_hostile_segment_sequence(self, ct: tuple[Path, list[Dataset]], tmp_path: Path) -> None:
        folder, slices = ct
        ds = pydicom.dcmread(write_seg(folder, slices, name="hostile.dcm"))
        ds.SegmentSequence[0].SegmentLabel = "evil\x1b]0;x\x07" + "A" * 500
        ds.SegmentSequence[1].SegmentNumber = 0  # invalid: its frames name no known segment
        ds.SegmentationType = "BINARY"
        path = tmp_path / "hostile.dcm"
        ds.save_as(path)
        seg = read_segmentation(path)
        assert len(seg.segments[1].label) == 64
        assert list(seg.segments) == [1]
        assert any("Segment Number" in p for p in seg.problems)
        assert any("name no known segment" in p for p in seg.problems)

    def test_unknown_segmentation_type(
        self, ct: tuple[Path, list[Dataset]], tmp_path: Path
    ) -> None:
        folder, slices = ct
        ds = pydicom.dcmread(write_seg(folder, slices, name="type.dcm"))
        ds.SegmentationType = "WHATEVER"
        path = tmp_path / "type.dcm"
        ds.save_as(path)
        with pytest.raises(DicomReadError, match="unknown Segmentation Type 'WHATEVER'"):
            read_segmentation(path)


class TestMaskEdges:
    def test_square_outline(self) -> None:
        mask = np.zeros((6, 6), dtype=bool)
        mask[1:3, 2:4] = True
        edges = mask_edges(mask)
        assert sorted(map(tuple, edges.tolist())) == [
            (2.0, 1.0, 2.0, 3.0),
            (2.0, 1.0, 4.0, 1.0),
            (2.0, 3.0, 4.0, 3.0),
            (4.0, 1.0, 4.0, 3.0),
        ]

    def test_noise_mask_has_no_outline(self) -> None:
        rng = np.random.default_rng(0)
        assert len(mask_edges(rng.random((1200, 1200)) > 0.5)) == 0


class TestReadStructureSet:
    def test_pydicom_rtstruct(self) -> None:
        ds = pydicom.dcmread(pydicom_test_file("rtstruct.dcm"), force=True)
        rt = read_structure_set(ds)
        assert [r.name for r in rt.rois.values()] == ["patient", "Isocenter 1", "Isocenter 2"]
        assert rt.rois[1].color == (220, 160, 120)
        assert [c.kind for c in rt.contours].count("POINT") == 2
        assert rt.contours[0].points.shape == (5, 3)
        assert rt.problems == []

    def test_contours_mapped_to_pixels(self, ct: tuple[Path, list[Dataset]]) -> None:
        folder, slices = ct
        rt = read_structure_set(pydicom.dcmread(write_rtstruct(folder, slices)))
        on = rt.polygons_on(plane(slices[20]))
        assert {roi.name for roi, _c, _p in on} == {"Lesion", "Body ring"}
        lesion = next(p for roi, _c, p in on if roi.name == "Lesion")
        np.testing.assert_allclose(lesion.mean(axis=0), (111.0, 151.0), atol=0.01)
        assert rt.polygons_on(plane(slices[10])) == []
        # the ring names no image: it is matched by plane, only within its referenced series
        assert [r.name for r, _c, _p in rt.polygons_on(plane(slices[20], "1.2.3"))] == ["Lesion"]
        assert rt.first_image() == (slices[NODULE_SLICES.start].SOPInstanceUID, 0)

    def test_hostile_contours_are_dropped(self, ct: tuple[Path, list[Dataset]]) -> None:
        folder, slices = ct
        ds = pydicom.dcmread(write_rtstruct(folder, slices, name="hostile_rt.dcm"))
        contours = ds.ROIContourSequence[0].ContourSequence
        contours[0].ContourData = ["nan"] * 72
        contours[1].ContourData = ["1e300"] * 72
        contours[2].NumberOfContourPoints = 10**9
        contours[3].ContourGeometricType = "WEIRD"
        ds.StructureSetROISequence[0].ROIName = "x" * 300
        ds.ROIContourSequence[0].ROIDisplayColor = [999, 0, 0]
        rt = read_structure_set(ds)
        assert len(rt.contours) == 2  # one lesion contour and the ring
        assert rt.problems == ["4 contour(s) with invalid data not shown"]
        assert len(rt.rois[1].name) == 64 and rt.rois[1].color == (255, 220, 0)
