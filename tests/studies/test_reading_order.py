"""Reading order and slice names: head first for axial whatever the scanner wrote, sensible
directions for coronal, sagittal and unknown geometry, and Instance Numbers as slice names."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from desktop_app.studies.index import Orientation, index_paths
from desktop_app.studies.series import assemble, location_direction, order_direction
from tests.studies.test_series import AXIAL, CORONAL, SAGITTAL, inst, series_of

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CT = ROOT / "resources" / "sample" / "ct_phantom"
# Feet-first supine: the scanner writes the row cosine as -x, so its normal points to the feet.
AXIAL_FFS: Orientation = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL_FLIPPED: Orientation = (-1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL_FLIPPED: Orientation = (0.0, -1.0, 0.0, 0.0, 0.0, -1.0)


class TestDirection:
    @pytest.mark.parametrize(
        ("orientation", "axis", "first", "runs"),
        [
            (AXIAL, 2, "largest", ("H", "F")),
            (AXIAL_FFS, 2, "largest", ("H", "F")),
            (CORONAL, 1, "smallest", ("A", "P")),
            (CORONAL_FLIPPED, 1, "smallest", ("A", "P")),
            (SAGITTAL, 0, "smallest", ("R", "L")),
            (SAGITTAL_FLIPPED, 0, "smallest", ("R", "L")),
        ],
    )
    def test_the_reader_order_whatever_the_normal_sign(
        self, orientation: Orientation, axis: int, first: str, runs: tuple[str, str]
    ) -> None:
        values = [3.0 * k for k in range(8)]
        files = []
        for i, v in enumerate(values):
            position = [10.0, -20.0, 30.0]
            position[axis] = v
            files.append(inst(i, position=tuple(position), orientation=orientation))  # type: ignore[arg-type]
        random.Random(axis).shuffle(files)
        (stack,) = assemble(series_of(files)).stacks
        along = [ref.position[axis] for ref in stack.slices]  # type: ignore[index]
        assert along == sorted(along, reverse=first == "largest")
        assert stack.runs == runs
        assert stack.slice_spacing == pytest.approx(3.0)

    def test_location_is_the_patient_coordinate_of_the_main_axis(self) -> None:
        assert location_direction(AXIAL) == pytest.approx((0.0, 0.0, 1.0))
        assert location_direction(AXIAL_FFS) == pytest.approx((0.0, 0.0, 1.0))
        assert order_direction(AXIAL_FFS) == pytest.approx((0.0, 0.0, -1.0))
        files = [inst(i, position=(5.0, 5.0, z), number=i + 1) for i, z in enumerate([-2.5, 7.5])]
        (stack,) = assemble(series_of(files)).stacks
        assert [stack.location(i) for i in range(2)] == [7.5, -2.5]

    def test_unknown_geometry_goes_by_instance_number_and_has_no_location(self) -> None:
        files = [
            inst(i, position=None, orientation=None, number=n) for i, n in enumerate([3, 1, 2])
        ]
        (stack,) = assemble(series_of(files)).stacks
        assert stack.ordered_by == "instance number"
        assert stack.runs is None
        assert [stack.slice_label(i) for i in range(3)] == [
            "Im 1 (of 3)",
            "Im 2 (of 3)",
            "Im 3 (of 3)",
        ]


class TestSliceNames:
    def test_without_instance_numbers_the_place_is_named(self) -> None:
        files = [inst(i, position=(0.0, 0.0, float(i))) for i in range(3)]
        (stack,) = assemble(series_of(files)).stacks
        assert stack.short_label(0) == "#1"
        assert stack.slice_label(0) == "#1 (of 3) · +2.0 mm"

    def test_frames_of_a_multiframe_object_are_named_by_frame(self) -> None:
        mf = inst(
            0,
            position=(0.0, 0.0, 0.0),
            frames=3,
            number=5,
            frame_positions=tuple((0.0, 0.0, float(z)) for z in (0, 1, 2)),
        )
        (stack,) = assemble(series_of([mf])).stacks
        assert [stack.short_label(i) for i in range(3)] == ["Fr 3", "Fr 2", "Fr 1"]

    def test_index_of_resolves_a_stored_reference(self) -> None:
        files = [inst(i, position=(0.0, 0.0, float(i)), number=i + 1) for i in range(5)]
        (stack,) = assemble(series_of(files)).stacks
        assert stack.index_of("1.2.3.4") == 0  # z=4, the most superior
        assert stack.index_of("1.2.3.0") == 4
        assert stack.index_of("9.9") is None


class TestSampleCt:
    """The bundled phantom: Instance Number 1 is the top slice (resources/sample/README.md)."""

    def test_head_first_with_instance_numbers_and_locations(self) -> None:
        index = index_paths([SAMPLE_CT])
        ((_, _, series),) = list(index.iter_series())
        (stack,) = assemble(series).stacks
        numbers = [ref.instance.instance_number for ref in stack.slices]
        assert numbers == list(range(1, 41))
        assert stack.slice_label(0) == "Im 1 (of 40) · +97.5 mm"  # Home: the head end
        assert stack.slice_label(39) == "Im 40 (of 40) · -97.5 mm"  # End: the feet
        truth = json.loads((SAMPLE_CT / "truth.json").read_text())["lesions"][0]
        lesion = range(truth["first_slice"], truth["last_slice"] + 1)
        assert [stack.short_label(i) for i in lesion] == ["Im 17", "Im 18", "Im 19", "Im 20"]
        # the lesion's centre z = 10 mm lies within its slices' span
        locations = [stack.location(i) for i in lesion]
        assert max(locations) >= 10.0 >= min(locations)  # type: ignore[type-var]
