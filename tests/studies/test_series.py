"""Series assembly: slice ordering, geometry splits and the warnings (no files needed)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from desktop_app.studies.index import InstanceInfo, Orientation, SeriesNode, Vec3
from desktop_app.studies.series import assemble, plane_name, slice_normal

AXIAL: Orientation = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL: Orientation = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL: Orientation = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def inst(
    n: int,
    *,
    position: Vec3 | None = None,
    orientation: Orientation | None = AXIAL,
    number: int | None = None,
    rows: int = 8,
    columns: int = 8,
    uid: str | None = None,
    name: str | None = None,
    frames: int = 1,
    frame_positions: tuple[Vec3 | None, ...] | None = None,
    has_pixels: bool = True,
) -> InstanceInfo:
    return InstanceInfo(
        path=Path(f"/data/{name or f'f{n:03d}.dcm'}"),
        sop_instance_uid=uid if uid is not None else f"1.2.3.{n}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        modality="CT",
        instance_number=number,
        has_pixels=has_pixels,
        rows=rows,
        columns=columns,
        number_of_frames=frames if has_pixels else 0,
        samples_per_pixel=1,
        bits_allocated=16,
        bits_stored=16,
        pixel_representation=1,
        planar_configuration=0,
        photometric="MONOCHROME2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        image_position=position,
        image_orientation=orientation,
        frame_positions=frame_positions,
        frame_orientations=(orientation,) * frames if frame_positions else None,
    )


def series_of(instances: list[InstanceInfo]) -> SeriesNode:
    return SeriesNode("1.2.3.4", modality="CT", instances=list(instances))


def axial_stack(z: list[float], **kwargs: object) -> list[InstanceInfo]:
    return [inst(i, position=(0.0, 0.0, zi), **kwargs) for i, zi in enumerate(z)]  # type: ignore[arg-type]


def z_of(stack_slices: list) -> list[float]:
    return [ref.position[2] for ref in stack_slices]


class TestOrdering:
    @pytest.mark.parametrize("seed", [0, 1, 2, 3])
    def test_shuffled_files_are_ordered_by_position(self, seed: int) -> None:
        z = [i * 1.25 for i in range(20)]
        files = axial_stack(z)
        random.Random(seed).shuffle(files)
        result = assemble(series_of(files))
        (stack,) = result.stacks
        assert stack.ordered_by == "position"
        assert z_of(stack.slices) == z[::-1]  # head first: the largest z (most superior)
        assert stack.runs == ("H", "F")
        assert stack.slice_spacing == pytest.approx(1.25)
        assert stack.warnings == []

    def test_position_beats_instance_number_and_file_name(self) -> None:
        # Instance numbers and names run opposite to the anatomy: position wins.
        files = [
            inst(i, position=(0.0, 0.0, float(i)), number=10 - i, name=f"z{9 - i}.dcm")
            for i in range(10)
        ]
        (stack,) = assemble(series_of(files)).stacks
        assert z_of(stack.slices) == [float(i) for i in range(9, -1, -1)]

    def test_order_follows_the_normal_not_z(self) -> None:
        # Coronal: normal = (1,0,0) x (0,0,-1) = (0,1,0), so y orders the slices, not z.
        normal = slice_normal(CORONAL)
        files = [
            inst(i, position=(0.0, 3.0 * k, 7.0), orientation=CORONAL)
            for i, k in enumerate([4, 1, 3, 0, 2])
        ]
        (stack,) = assemble(series_of(files)).stacks
        along = [np.dot(ref.position, normal) for ref in stack.slices]
        assert along == sorted(along)
        assert stack.plane == "coronal"
        assert stack.slice_spacing == pytest.approx(3.0)

    @pytest.mark.parametrize("tilt", [15.0, 30.0])
    def test_tilted_gantry_orders_along_the_tilted_normal(self, tilt: float) -> None:
        t = math.radians(tilt)
        orientation: Orientation = (1.0, 0.0, 0.0, 0.0, math.cos(t), -math.sin(t))
        dz = 2.0
        files = [inst(i, position=(0.0, 0.0, i * dz), orientation=orientation) for i in range(12)]
        random.Random(5).shuffle(files)
        (stack,) = assemble(series_of(files)).stacks
        assert stack.ordered_by == "position"
        # the normal (0, sin t, cos t) points mostly to the head: head first is descending
        along = [np.dot(ref.position, slice_normal(orientation)) for ref in stack.slices]
        assert along == sorted(along, reverse=True)
        assert stack.slice_spacing == pytest.approx(dz * math.cos(t))
        assert any("gantry tilt" in w for w in stack.warnings)
        assert stack.plane == ("axial" if tilt < 10 else "oblique")

    def test_instance_number_when_positions_are_missing(self) -> None:
        files = [inst(i, position=None, number=n) for i, n in enumerate([3, 1, 2, 5, 4])]
        (stack,) = assemble(series_of(files)).stacks
        assert stack.ordered_by == "instance number"
        assert [r.instance.instance_number for r in stack.slices] == [1, 2, 3, 4, 5]
        assert stack.slice_spacing is None

    def test_file_name_last_with_natural_order(self) -> None:
        names = ["img10.dcm", "img2.dcm", "img1.dcm"]
        files = [inst(i, position=None, name=nm) for i, nm in enumerate(names)]
        (stack,) = assemble(series_of(files)).stacks
        assert stack.ordered_by == "file name"
        assert [r.instance.path.name for r in stack.slices] == ["img1.dcm", "img2.dcm", "img10.dcm"]

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_position_ties_go_by_number_then_natural_file_name(self, seed: int) -> None:
        # Two slices at z=1 with Instance Number 7, and one at z=1 with number 2.
        specs = [("a10.dcm", 1.0, 7), ("a9.dcm", 1.0, 7), ("b.dcm", 1.0, 2), ("c.dcm", 0.0, 9)]
        random.Random(seed).shuffle(specs)
        files = [
            inst(i, position=(0.0, 0.0, z), number=n, name=nm) for i, (nm, z, n) in enumerate(specs)
        ]
        (stack,) = assemble(series_of(files)).stacks
        assert stack.ordered_by == "position"
        names = [r.instance.path.name for r in stack.slices]
        assert names == ["b.dcm", "a9.dcm", "a10.dcm", "c.dcm"]  # z=1 (superior) first

    def test_partial_positions_fall_back_with_a_warning(self) -> None:
        files = axial_stack([0.0, 1.0, 2.0])
        files.append(inst(9, position=None, number=4))
        files = [
            InstanceInfo(**{**f.__dict__, "instance_number": k + 1}) for k, f in enumerate(files)
        ]
        (stack,) = assemble(series_of(files)).stacks
        assert stack.ordered_by == "instance number"
        assert any("only 3 of 4 images have a position" in w for w in stack.warnings)


class TestProblems:
    def test_duplicate_positions_are_kept_and_reported(self) -> None:
        files = axial_stack([0.0, 1.0, 1.0, 2.0, 3.0])
        (stack,) = assemble(series_of(files)).stacks
        assert len(stack) == 5
        assert any("1 slice(s) share a position" in w for w in stack.warnings)
        assert stack.slice_spacing == pytest.approx(1.0)

    def test_duplicate_sop_instance_uids_are_kept_once(self) -> None:
        files = axial_stack([0.0, 1.0, 2.0])
        copy = inst(7, position=(0.0, 0.0, 1.0), uid=files[1].sop_instance_uid, name="copy.dcm")
        result = assemble(series_of([*files, copy]))
        (stack,) = result.stacks
        assert len(stack) == 3
        assert any("repeat a SOP Instance UID" in w for w in result.warnings)
        assert any("repeat a SOP Instance UID" in w for w in stack.warnings)

    def test_missing_slice_is_reported_with_a_count(self) -> None:
        z = [0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0]  # 4.0 and 5.0 missing
        (stack,) = assemble(series_of(axial_stack(z))).stacks
        assert stack.slice_spacing == pytest.approx(1.0)
        (warning,) = [w for w in stack.warnings if "missing" in w]
        assert warning.startswith("about 2 missing slice(s)")

    def test_uneven_spacing_is_reported(self) -> None:
        z = [0.0, 1.0, 2.0, 3.3, 4.3, 5.3]
        (stack,) = assemble(series_of(axial_stack(z))).stacks
        assert any(w.startswith("uneven slice spacing") for w in stack.warnings)
        assert not any("missing" in w for w in stack.warnings)

    def test_regular_spacing_with_rounding_noise_is_clean(self) -> None:
        z = [round(i * 0.625 + 1e-4 * (i % 3), 4) for i in range(30)]
        (stack,) = assemble(series_of(axial_stack(z))).stacks
        assert stack.warnings == []

    def test_mixed_sizes_are_split_with_a_warning_on_each_part(self) -> None:
        big = [inst(i, position=(0.0, 0.0, float(i)), rows=16, columns=16) for i in range(4)]
        small = [inst(10 + i, position=(0.0, 0.0, float(i)), rows=8, columns=8) for i in range(2)]
        result = assemble(series_of(big + small))
        assert [len(s) for s in result.stacks] == [4, 2]
        assert [(s.rows, s.columns) for s in result.stacks] == [(16, 16), (8, 8)]
        assert [(s.part, s.parts) for s in result.stacks] == [(1, 2), (2, 2)]
        for stack in result.stacks:
            assert "split into 2 parts" in stack.warnings[0]
            assert "2 image sizes" in stack.warnings[0]
        assert len(result.warnings) == 1

    def test_mixed_orientations_are_split(self) -> None:
        axial = axial_stack([0.0, 1.0, 2.0])
        scout = [inst(20, position=(0.0, 0.0, 0.0), orientation=CORONAL)]
        result = assemble(series_of(axial + scout))
        assert [s.plane for s in result.stacks] == ["axial", "coronal"]
        assert "2 orientations" in result.warnings[0]

    def test_orientation_noise_is_not_a_new_orientation(self) -> None:
        noisy: Orientation = (1.0, 1e-5, 0.0, 0.0, 0.99999, 2e-5)
        files = [*axial_stack([0.0, 1.0]), inst(5, position=(0.0, 0.0, 2.0), orientation=noisy)]
        result = assemble(series_of(files))
        assert len(result.stacks) == 1
        assert result.warnings == []


class TestMultiframe:
    def test_multiframe_object_is_a_volume_ordered_by_frame_positions(self) -> None:
        z = [4.0, 0.0, 2.0, 1.0, 3.0]
        mf = inst(
            0, position=(0.0, 0.0, 4.0), frames=5, frame_positions=tuple((0.0, 0.0, v) for v in z)
        )
        (stack,) = assemble(series_of([mf])).stacks
        assert stack.is_multiframe
        assert len(stack) == 5
        assert [r.frame for r in stack.slices] == [0, 4, 2, 3, 1]  # z 4, 3, 2, 1, 0
        assert stack.slice_spacing == pytest.approx(1.0)

    def test_multiframe_without_positions_keeps_frame_order(self) -> None:
        mf = inst(0, position=None, orientation=None, frames=4, number=1)
        (stack,) = assemble(series_of([mf])).stacks
        assert stack.ordered_by == "frame order"
        assert [r.frame for r in stack.slices] == [0, 1, 2, 3]

    def test_each_multiframe_object_is_its_own_stack(self) -> None:
        clips = [inst(i, position=None, orientation=None, frames=3, number=i + 1) for i in range(2)]
        singles = [inst(10 + i, position=(0.0, 0.0, float(i))) for i in range(2)]
        result = assemble(series_of(clips + singles))
        assert sorted(len(s) for s in result.stacks) == [2, 3, 3]
        assert sum(s.is_multiframe for s in result.stacks) == 2

    def test_objects_without_pixels_are_counted_not_stacked(self) -> None:
        sr = inst(9, has_pixels=False, position=None)
        result = assemble(series_of([sr, inst(1, position=(0.0, 0.0, 0.0))]))
        assert result.non_image_instances == 1
        assert result.image_count == 1


class TestPlaneName:
    @pytest.mark.parametrize(
        ("orientation", "plane"),
        [(AXIAL, "axial"), (CORONAL, "coronal"), (SAGITTAL, "sagittal"), (None, "")],
    )
    def test_plane(self, orientation: Orientation | None, plane: str) -> None:
        assert plane_name(orientation) == plane

    def test_oblique(self) -> None:
        c, s = math.cos(math.radians(40)), math.sin(math.radians(40))
        assert plane_name((1.0, 0.0, 0.0, 0.0, c, s)) == "oblique"
