"""The lesion size floor (``find_lesions(min_diameter_mm=...)``, the engine's 3 mm), the lesions'
Instance Numbers, and lesions in words (``lesiontext``): what the viewer and `predict` both say."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from desktop_app.inference.engine import InferenceEngine
from desktop_app.inference.lesions import (
    MIN_DIAMETER_MM,
    MIN_VOXELS_UNKNOWN_SPACING,
    SCHEMA_VERSION,
    Lesion,
    LesionTable,
    MaskGeometry,
    find_lesions,
)
from desktop_app.inference.lesiontext import (
    MANY_LESIONS,
    crowd_warning,
    format_volume,
    lesion_line,
    slice_span,
)
from desktop_app.studies.index import index_paths
from desktop_app.studies.series import assemble
from desktop_app.studies.volume import SeriesVolume
from tests.helpers.modelchoice import ct_series, make_ct_segmenter

FLAT = MaskGeometry(pixel_spacing=(1.0, 1.0), slice_spacing=1.0)


def _sphere(shape: tuple[int, int, int], centre: tuple[int, int, int], radius: float) -> np.ndarray:
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def _specks_and_a_nodule() -> np.ndarray:
    mask = _sphere((12, 40, 40), (6, 20, 20), 5.0)
    for k, (r, c) in enumerate([(2, 2), (2, 35), (35, 2), (35, 35), (10, 30)]):
        mask[k, r, c] = True  # one-voxel specks
    mask[9, 30:32, 5:7] = True  # a 2 x 2 speck: 2.2 mm across
    return mask


class TestMinimumDiameter:
    def test_specks_are_not_lesions_and_a_note_counts_them(self) -> None:
        mask = _specks_and_a_nodule()
        table = find_lesions(mask, FLAT, min_diameter_mm=3.0, with_labels=True)
        assert len(table) == 1
        assert table.lesions[0].longest_diameter_mm >= 9.0
        assert table.min_diameter_mm == 3.0
        assert "6 component(s) under 3 mm longest axial diameter" in table.notes[0]
        assert table.labels is not None
        assert int(table.labels.max()) == 1
        assert not table.labels[0, 2, 2] and not table.labels[9, 30, 5]  # specks left out

    def test_without_a_floor_every_component_is_a_lesion(self) -> None:
        table = find_lesions(_specks_and_a_nodule(), FLAT)
        assert len(table) == 7
        assert table.min_diameter_mm == 0.0 and table.notes == ()

    def test_the_floor_is_the_measured_diameter_not_the_bounding_box(self) -> None:
        # a plus of 5 pixels: its box's diagonal is 4.2 mm, its diameter 3.0 mm
        mask = np.zeros((1, 9, 9), dtype=bool)
        mask[0, 4, 3:6] = True
        mask[0, 3:6, 4] = True
        kept = find_lesions(mask, FLAT, min_diameter_mm=3.0)
        assert len(kept) == 1 and kept.lesions[0].longest_diameter_mm == pytest.approx(3.0)
        dropped = find_lesions(mask, FLAT, min_diameter_mm=3.1)
        assert len(dropped) == 0 and "1 component(s)" in dropped.notes[0]

    def test_spacing_counts_a_speck_of_few_pixels_is_wide_at_coarse_spacing(self) -> None:
        mask = np.zeros((1, 9, 9), dtype=bool)
        mask[0, 4, 4:6] = True  # 2 pixels: 2 mm at 1 mm, 8 mm at 4 mm
        assert len(find_lesions(mask, FLAT, min_diameter_mm=3.0)) == 0
        coarse = MaskGeometry(pixel_spacing=(4.0, 4.0), slice_spacing=1.0)
        assert len(find_lesions(mask, coarse, min_diameter_mm=3.0)) == 1

    def test_ids_stay_largest_first_and_max_lesions_still_caps(self) -> None:
        mask = np.zeros((1, 60, 60), dtype=bool)
        for k in range(9):  # squares of side 2..10 px, apart from each other
            r, c = 6 * (k // 3) * 3 // 2, 20 * (k % 3)
            side = 2 + k
            mask[0, r : r + side, c : c + side] = True
        table = find_lesions(mask, FLAT, min_diameter_mm=3.0, max_lesions=3)
        sizes = [lesion.voxels for lesion in table.lesions]
        assert [lesion.id for lesion in table.lesions] == [1, 2, 3]
        assert sizes == sorted(sizes, reverse=True) == [100, 81, 64]
        assert any("the 3 largest are measured" in note for note in table.notes)

    def test_the_bundled_ct_sample_nodule_and_demo_sized_nodules_pass_the_floor(self) -> None:
        # the demo's smallest nodule: 4 mm radius at 1.5 mm pixels and 2.5 mm slices
        geometry = MaskGeometry(pixel_spacing=(1.5, 1.5), slice_spacing=2.5)
        z, y, x = np.indices((9, 30, 30))
        small = ((z - 4) * 2.5) ** 2 + ((y - 15) * 1.5) ** 2 + ((x - 15) * 1.5) ** 2 <= 4.0**2
        table = find_lesions(small, geometry, min_diameter_mm=MIN_DIAMETER_MM)
        assert len(table) == 1 and table.lesions[0].longest_diameter_mm > 6.0


class TestTableJson:
    def test_instance_numbers_and_the_floor_round_trip(self) -> None:
        geometry = MaskGeometry(
            pixel_spacing=(1.0, 1.0), slice_spacing=1.0, instance_numbers=(11, 12, 13, 14)
        )
        mask = np.zeros((4, 8, 8), dtype=bool)
        mask[1:3, 2:6, 2:6] = True
        table = find_lesions(mask, geometry, min_diameter_mm=3.0)
        lesion = table.lesions[0]
        assert (lesion.first_slice, lesion.last_slice) == (1, 2)
        assert (lesion.first_instance_number, lesion.last_instance_number) == (12, 13)
        data = json.loads(json.dumps(table.to_json()))
        assert data["schema_version"] == SCHEMA_VERSION == "1.1"
        assert data["min_diameter_mm"] == 3.0
        assert data["lesions"][0]["first_instance_number"] == 12
        assert LesionTable.from_json(data) == table

    def test_instance_numbers_of_other_slices_are_not_used(self) -> None:
        geometry = MaskGeometry(
            pixel_spacing=(1.0, 1.0), slice_spacing=1.0, instance_numbers=(11, 12, 13, 14)
        )  # a crop's geometry that kept the whole stack's numbers
        table = find_lesions(np.ones((2, 4, 4), dtype=bool), geometry)
        assert table.lesions[0].first_instance_number is None

    def test_a_1_0_table_without_the_new_fields_still_reads(self) -> None:
        table = find_lesions(np.ones((2, 4, 4), dtype=bool), FLAT)
        data = table.to_json()
        data["schema_version"] = "1.0"
        del data["min_diameter_mm"]
        for item in data["lesions"]:
            del item["first_instance_number"], item["last_instance_number"]
        back = LesionTable.from_json(data)
        assert back.min_diameter_mm == 0.0
        assert back.lesions[0].first_instance_number is None


def _lesion(**fields: object) -> Lesion:
    base: dict[str, object] = dict(
        id=1, voxels=10, volume_mm3=6996.0, area_mm2=400.0, longest_diameter_mm=24.6,
        short_axis_mm=20.0, diameter_slice=17, diameter_line=(0.0, 0.0, 1.0, 1.0),
        first_slice=16, last_slice=19, box=(0, 0, 1, 1), centroid=(17.5, 0.0, 0.0),
        mean_value=48.4, max_value=95.0, mean_probability=0.931,
        first_instance_number=17, last_instance_number=20,
    )  # fmt: skip
    base.update(fields)
    return Lesion(**base)  # type: ignore[arg-type]


class TestLesionLine:
    def test_the_viewer_row_with_instance_numbers(self) -> None:
        text = lesion_line(_lesion(), "HU")
        assert text == "7.0 cm³ · 25 mm · mean 48 HU (max 95) · Im 17–20 · p 0.93"

    def test_a_namer_names_the_slices_as_the_viewer_does(self) -> None:
        text = lesion_line(_lesion(), "HU", lambda i: f"Fr {i + 1}")
        assert "Fr 17–20" in text

    @pytest.mark.parametrize(
        ("first", "last", "expected"),
        [(17, 17, "Im 17"), (20, 17, "Im 17–20"), (None, None, "#17–#20")],
    )
    def test_spans(self, first: int | None, last: int | None, expected: str) -> None:
        text = lesion_line(_lesion(first_instance_number=first, last_instance_number=last))
        assert text.split(" · ")[-2] == expected

    def test_without_a_unit_or_volume(self) -> None:
        text = lesion_line(_lesion(volume_mm3=None, mean_probability=None, max_probability=None))
        assert text == "25 mm · mean 48 (max 95) · Im 17–20"

    @pytest.mark.parametrize(
        ("mm3", "text"), [(None, ""), (6.0, "6.0 mm³"), (640.0, "640 mm³"), (7210.0, "7.2 cm³")]
    )
    def test_volumes(self, mm3: float | None, text: str) -> None:
        assert format_volume(mm3) == text

    def test_slice_span_of_different_prefixes(self) -> None:
        assert slice_span("Im 9", "#12") == "Im 9–#12"


class TestCrowdWarning:
    def test_up_to_the_limit_no_warning(self) -> None:
        assert crowd_warning(MANY_LESIONS) is None

    def test_over_it_one_line(self) -> None:
        assert crowd_warning(157) == (
            "157 lesions: far more than a reader expects; is this model made for this input?"
        )


class TestEngineFloor:
    def test_a_dicom_run_uses_the_3_mm_floor_and_names_slices_by_instance_number(
        self, tmp_path: Path
    ) -> None:
        model = make_ct_segmenter(tmp_path / "seg.safetensors")
        folder = ct_series(tmp_path / "ct", slices=3)
        (_, _, series), *_ = list(index_paths([str(folder)]).iter_series())
        volume = SeriesVolume(assemble(series).stacks[0], keep=True)
        result = InferenceEngine(model, device="cpu").run(volume)
        table = result.lesions
        assert table is not None and table.min_diameter_mm == MIN_DIAMETER_MM
        assert table.min_voxels == 1
        numbers = [ref.instance.instance_number for ref in volume.stack.slices]
        lesion = table.lesions[0]
        assert lesion.first_instance_number == numbers[0]
        assert lesion.last_instance_number == numbers[-1]

    def test_a_png_without_spacing_uses_a_pixel_floor(self, tmp_path: Path) -> None:
        from PIL import Image

        model = make_ct_segmenter(tmp_path / "seg.safetensors")
        png = tmp_path / "slice.png"
        Image.fromarray(np.full((48, 48), 100, dtype=np.uint8)).save(png)
        result = InferenceEngine(model, device="cpu").run(png, force=True)
        table = result.lesions
        assert table is not None
        assert table.min_voxels == MIN_VOXELS_UNKNOWN_SPACING and table.min_diameter_mm == 0.0
