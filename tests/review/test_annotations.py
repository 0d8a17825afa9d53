"""Reader annotations: measurements over modality values, JSON in the review file (schema 3),
schema-2 files upgraded, and undo/redo."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from desktop_app.review.annotations import (
    ANGLE,
    ARROW,
    ELLIPSE,
    KEY_IMAGE,
    RECTANGLE,
    Annotation,
    History,
    RoiStats,
    angle_degrees,
    check_points,
    ellipse_axes,
    format_area,
    measured,
    moved,
    rectangle_polyline,
    roi_mask,
    roi_stats,
    with_point,
)
from desktop_app.review.state import SCHEMA_VERSION, ModelRef, ReviewState
from desktop_app.review.store import ReviewStore

STUDY = "1.2.826.0.1.3680043.8.498.1"
KEY = "1.2.3#1"


def annotation(kind: str, points: tuple[tuple[float, float], ...], **kw: object) -> Annotation:
    fields: dict[str, object] = {
        "id": f"a-{kind}",
        "kind": kind,
        "series_key": KEY,
        "series_uid": "1.2.3",
        "sop_instance_uid": "1.2.3.4",
        "frame": 0,
        "slice_index": 5,
        "points": points,
    }
    fields.update(kw)
    return Annotation(**fields)  # type: ignore[arg-type]


class TestRoiStats:
    def test_rectangle_statistics_are_those_of_the_pixels_inside_in_hu(self) -> None:
        values = np.full((20, 30), -1000.0, dtype=np.float32)
        values[5:10, 10:20] = np.arange(50, dtype=np.float32).reshape(5, 10)
        stats = roi_stats(RECTANGLE, ((10, 5), (20, 10)), values, None, modality="CT")
        inside = np.arange(50, dtype=np.float64)
        assert stats.pixels == 50
        assert stats.area == pytest.approx(50.0)
        assert stats.area_unit == "px2"
        assert stats.mean == pytest.approx(inside.mean())
        assert stats.sd == pytest.approx(inside.std())
        assert (stats.minimum, stats.maximum) == (0.0, 49.0)
        assert stats.value_unit == "HU"

    def test_the_corners_may_be_given_in_any_order(self) -> None:
        values = np.random.default_rng(0).normal(size=(40, 40))
        a = roi_stats(RECTANGLE, ((3, 4), (25, 30)), values, None)
        b = roi_stats(RECTANGLE, ((25, 30), (3, 4)), values, None)
        assert a == b

    def test_ellipse_counts_the_pixel_centres_inside_and_its_area_is_pi_a_b(self) -> None:
        values = np.zeros((200, 200))
        stats = roi_stats(ELLIPSE, ((20, 40), (180, 120)), values, None)
        assert stats.area == pytest.approx(math.pi * 80 * 40)
        assert stats.pixels == pytest.approx(math.pi * 80 * 40, rel=0.01)
        assert stats.value_unit == ""

    def test_ellipse_mask_leaves_the_box_corners_out(self) -> None:
        mask, window = roi_mask(ELLIPSE, ((0, 0), (10, 10)), (10, 10))
        assert window == (slice(0, 10), slice(0, 10))
        assert not mask[0, 0] and not mask[9, 9] and mask[5, 5]

    def test_area_is_in_mm2_with_pixel_spacing_row_then_column(self) -> None:
        values = np.zeros((50, 50))
        stats = roi_stats(RECTANGLE, ((0, 0), (10, 20)), values, (0.5, 2.0))
        # 10 px wide x 2.0 mm (column spacing), 20 px high x 0.5 mm (row spacing)
        assert stats.area == pytest.approx(200.0)
        assert stats.area_unit == "mm2"
        assert stats.lines()[0] == "Area 200.0 mm²"

    def test_pixels_outside_the_image_are_not_counted(self) -> None:
        values = np.ones((10, 10))
        stats = roi_stats(RECTANGLE, ((-5, -5), (5, 5)), values, None)
        assert stats.pixels == 25
        assert stats.area == pytest.approx(100.0)  # the drawn shape's area

    def test_an_roi_off_the_image_has_an_area_and_no_statistics(self) -> None:
        stats = roi_stats(RECTANGLE, ((50, 50), (60, 60)), np.ones((10, 10)), None)
        assert (stats.pixels, stats.mean, stats.sd) == (0, None, None)

    def test_colour_images_get_the_area_only(self) -> None:
        rgb = np.zeros((10, 10, 3), dtype=np.uint8)
        stats = roi_stats(ELLIPSE, ((0, 0), (8, 8)), rgb, (1.0, 1.0))
        assert stats.mean is None and stats.area == pytest.approx(math.pi * 16)

    @pytest.mark.parametrize(
        "points",
        [((0, 0), (0.5, 10)), ((0, 0),), ((0, 0), (float("nan"), 3))],
        ids=["flat", "one point", "nan"],
    )
    def test_a_degenerate_roi_is_refused(self, points: tuple[tuple[float, float], ...]) -> None:
        with pytest.raises(ValueError, match=r"ROI|point"):
            check_points(RECTANGLE, points)

    @pytest.mark.parametrize(
        ("area", "unit", "text"),
        [(12.345, "mm2", "12.3 mm²"), (1234.0, "mm2", "12.34 cm²"), (56.4, "px2", "56 px²")],
    )
    def test_area_text(self, area: float, unit: str, text: str) -> None:
        assert format_area(area, unit) == text


class TestAngle:
    def test_a_right_angle(self) -> None:
        assert angle_degrees(((10, 0), (0, 0), (0, 10))) == pytest.approx(90.0)

    def test_straight_is_180(self) -> None:
        assert angle_degrees(((-5, 0), (0, 0), (5, 0))) == pytest.approx(180.0)

    def test_anisotropic_pixels_are_measured_in_mm(self) -> None:
        # 45° in pixels; rows are 2 mm apart, columns 1 mm: atan(2) in mm space
        deg = angle_degrees(((10, 0), (0, 0), (10, 10)), spacing=(2.0, 1.0))
        assert deg == pytest.approx(math.degrees(math.atan(2.0)))

    def test_measured_fills_the_angle(self) -> None:
        a = measured(annotation(ANGLE, ((10, 0), (0, 0), (0, 10))), None, None)
        assert a.angle == pytest.approx(90.0)
        assert a.label_lines() == ["90.0°"]


class TestEditing:
    def test_moving_shifts_every_point(self) -> None:
        a = moved(annotation(ARROW, ((1, 2), (3, 4))), 10, -1)
        assert a.points == ((11, 1), (13, 3))

    def test_a_handle_moves_one_point(self) -> None:
        a = with_point(annotation(ANGLE, ((1, 2), (3, 4), (5, 6))), 1, (0, 0))
        assert a.points == ((1, 2), (0.0, 0.0), (5, 6))

    def test_measurements_follow_an_edit(self) -> None:
        values = np.zeros((40, 40))
        values[20:, :] = 100.0
        a = measured(annotation(RECTANGLE, ((0, 0), (10, 10))), values, None, "CT")
        assert a.stats is not None and a.stats.mean == 0.0
        b = measured(moved(a, 0, 20), values, None, "CT")
        assert b.stats is not None and b.stats.mean == 100.0

    def test_scoord_shapes(self) -> None:
        assert ellipse_axes(((0, 0), (10, 4))) == ((0, 2), (10, 2), (5, 0), (5, 4))
        assert ellipse_axes(((0, 0), (4, 10))) == ((2, 0), (2, 10), (0, 5), (4, 5))
        poly = rectangle_polyline(((10, 10), (0, 0)))
        assert poly[0] == poly[-1] == (0, 0) and len(poly) == 5


class TestReviewFile:
    def _state(self) -> ReviewState:
        state = ReviewState(STUDY, reviewer="Dr A")
        values = np.arange(100, dtype=np.float32).reshape(10, 10)
        roi = measured(annotation(ELLIPSE, ((1, 1), (8, 8))), values, (0.7, 0.7), "CT")
        state.put_annotation(roi)
        state.put_annotation(annotation(ARROW, ((2, 2), (6, 6)), text="the lesion"))
        state.put_annotation(annotation(ANGLE, ((1, 0), (0, 0), (0, 1)), angle=90.0))
        state.put_annotation(annotation(KEY_IMAGE, ()))
        return state

    def test_round_trip_through_the_store(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path)
        state = self._state()
        store.save(state)
        data = json.loads(store.path_for(STUDY).read_text())
        assert data["schema_version"] == SCHEMA_VERSION == 4
        assert [a["kind"] for a in data["annotations"]] == [ELLIPSE, ARROW, ANGLE, KEY_IMAGE]
        back = store.load(STUDY)
        assert back is not None
        assert back.annotations == state.annotations
        roi = back.annotations[0]
        assert isinstance(roi.stats, RoiStats) and roi.stats.value_unit == "HU"
        assert roi.reviewer == "Dr A" and roi.created is not None

    def test_a_schema_2_file_is_upgraded_with_no_annotations(self) -> None:
        data = ReviewState(STUDY).to_dict()
        del data["annotations"]
        data["schema_version"] = 2
        state = ReviewState.from_dict(data)
        assert state.annotations == []

    def test_an_unknown_kind_is_refused(self) -> None:
        data = self._state().to_dict()
        data["annotations"][0]["kind"] = "freehand"
        with pytest.raises(ValueError, match="unknown annotation kind 'freehand'"):
            ReviewState.from_dict(data)

    def test_put_replaces_by_id_and_remove_deletes(self) -> None:
        state = self._state()
        arrow = state.annotation("a-arrow")
        state.put_annotation(moved(arrow, 1, 1))
        assert state.annotation("a-arrow").points == ((3, 3), (7, 7))
        assert len(state.annotations) == 4
        state.remove_annotation("a-arrow")
        with pytest.raises(KeyError):
            state.annotation("a-arrow")

    def test_annotations_are_found_by_image(self) -> None:
        state = self._state()
        assert len(state.annotations_on(KEY, "1.2.3.4", 0, 99)) == 4
        assert state.annotations_on(KEY, "1.2.3.4", 1, 5) == []  # another frame
        assert state.annotations_on("other#1", "1.2.3.4", 0, 5) == []
        no_uid = annotation(ARROW, ((0, 0), (1, 1)), sop_instance_uid="", id="x")
        assert no_uid.on_image("", 0, 5) and not no_uid.on_image("", 0, 6)

    def test_a_new_model_keeps_the_readers_annotations(self) -> None:
        state = self._state()
        state.model = ModelRef("old", "1", "a" * 64)
        state.merge_findings([], ModelRef("new", "2", "b" * 64))
        assert len(state.annotations) == 4


class TestHistory:
    def test_undo_and_redo(self) -> None:
        history = History()
        a, b = annotation(ARROW, ((0, 0), (1, 1))), annotation(KEY_IMAGE, ())
        current: list[Annotation] = []
        history.record(current)
        current = [a]
        history.record(current)
        current = [a, b]
        undone = history.undo(current)
        assert undone == [a]
        assert history.undo(undone) == []
        assert history.undo([]) is None
        assert history.redo([]) == [a]
        assert history.can_redo

    def test_a_new_change_drops_the_redo_steps(self) -> None:
        history = History()
        history.record([])
        assert history.undo([annotation(KEY_IMAGE, ())]) == []
        history.record([])
        assert not history.can_redo

    def test_the_number_of_steps_is_bounded(self) -> None:
        history = History(limit=3)
        for _ in range(10):
            history.record([])
        steps = 0
        while history.undo([]) is not None:
            steps += 1
        assert steps == 3
