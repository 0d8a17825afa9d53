"""Overlay planes (PS3.3 C.9.2, C.9.3): unpacking checked against pydicom, placement, frames,
and refusal of what a hostile file declares."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from desktop_app.dicom.limits import ReadLimits
from desktop_app.dicom.overlay_planes import overlay_planes, overlay_rgba
from tests.helpers.dicomfiles import pydicom_data_file, pydicom_test_file
from tests.helpers.presentation import add_overlay, mr_image, overlay_mask, pack_bits


class TestOverlayPlanes:
    @pytest.mark.parametrize(
        ("find", "name"),
        [
            (pydicom_data_file, "MR-SIEMENS-DICOM-WithOverlays.dcm"),  # pydicom-data
            (pydicom_test_file, "examples_overlay.dcm"),  # 300x484: rows != columns
        ],
    )
    def test_public_files_match_pydicom(self, find, name: str) -> None:
        ds = pydicom.dcmread(find(name))
        [plane], problems = overlay_planes(ds)
        assert problems == []
        assert np.array_equal(plane.mask(), ds.overlay_array(0x6000).astype(bool))
        assert plane.kind == "G" and plane.description == "Siemens MedCom Object Graphics"

    def test_made_overlay_and_origin(self) -> None:
        ds = mr_image(overlay=False)
        small = np.zeros((5, 7), dtype=bool)
        small[0, 0] = small[4, 6] = True
        add_overlay(ds, small, group=0x6002, origin=(10, 20), kind="R")
        [plane], _ = overlay_planes(ds)
        assert (plane.group, plane.rows, plane.columns, plane.kind) == (0x6002, 5, 7, "R")
        assert plane.top_left == (19, 9)  # origin row 10, column 20 (1-based) -> x 19, y 9
        assert np.array_equal(plane.mask_for(0), small)
        rgba = overlay_rgba(plane, 0, (1, 2, 3))
        assert rgba is not None and rgba.shape == (5, 7, 4)
        assert tuple(rgba[4, 6]) == (1, 2, 3, 255) and rgba[1, 1, 3] == 0

    def test_multi_frame_overlay_follows_image_frame_origin(self) -> None:
        ds = mr_image(overlay=False)
        frames = np.zeros((3, 6, 6), dtype=bool)  # 108 bits: frames not byte-aligned
        for k in range(3):
            frames[k, k, :] = True
        add_overlay(ds, frames, frame_origin=2)
        [plane], _ = overlay_planes(ds)
        assert (plane.frames, plane.all_frames) == (3, False)
        assert plane.mask_for(0) is None  # image frame 1 is before the overlay's first
        for k in range(3):
            mask = plane.mask_for(k + 1)
            assert mask is not None and np.array_equal(mask, frames[k])
        assert plane.mask_for(4) is None

    def test_single_frame_overlay_applies_to_every_frame(self) -> None:
        ds = mr_image(overlay=False)
        add_overlay(ds, overlay_mask())
        [plane], _ = overlay_planes(ds)
        assert plane.all_frames and plane.mask_for(7) is not None

    def test_no_overlay(self) -> None:
        assert overlay_planes(mr_image(overlay=False)) == ([], [])

    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            (lambda ds: ds.__setitem__((0x6000, 0x3000), pydicom.DataElement((0x6000, 0x3000), "OW", b"\x00" * 8)), "needs"),
            (lambda ds: ds.__setitem__((0x6000, 0x0010), pydicom.DataElement((0x6000, 0x0010), "US", 0)), "not positive"),
            (lambda ds: ds.__setitem__((0x6000, 0x0100), pydicom.DataElement((0x6000, 0x0100), "US", 16)), "Bits Allocated"),
            (lambda ds: ds.__delitem__((0x6000, 0x3000)), "no data"),
            (lambda ds: ds.__setitem__((0x6000, 0x0015), pydicom.DataElement((0x6000, 0x0015), "IS", -4)), "Number of Frames"),
        ],
    )  # fmt: skip
    def test_hostile_declarations_are_refused(self, change, reason: str) -> None:
        ds = mr_image()
        change(ds)
        planes, problems = overlay_planes(ds)
        assert planes == []
        assert (
            len(problems) == 1
            and problems[0].startswith("overlay 6000: ")
            and reason in problems[0]
        )

    def test_size_over_the_limit_is_refused_before_unpacking(self) -> None:
        ds = mr_image(overlay=False)
        add_overlay(ds, np.ones((64, 64), dtype=bool))
        planes, problems = overlay_planes(ds, ReadLimits(max_frame_pixels=1000))
        assert planes == [] and "over the limit" in problems[0]

    def test_a_huge_declared_overlay_with_little_data_is_refused(self) -> None:
        ds = mr_image(overlay=False)
        add_overlay(ds, np.ones((8, 8), dtype=bool))
        ds[0x6000, 0x0010].value = 8192
        ds[0x6000, 0x0011].value = 8192
        ds[0x6000, 0x3000].value = pack_bits(np.ones((8, 8), dtype=bool))
        planes, problems = overlay_planes(ds)
        assert planes == [] and "needs 8388608" in problems[0]
