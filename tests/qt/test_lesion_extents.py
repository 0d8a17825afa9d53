"""Where each lesion lies, counted inside its box (``lesion_extents``) instead of over the
whole label volume: the same slices and voxel counts as the full count, after a run, after
brush and eraser strokes, and in the viewer after a segmentation run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop_app.inference.lesions import MaskGeometry, find_lesions
from desktop_app.qt.lesion_overlay import LesionSlices, lesion_extents
from desktop_app.review.lesionreview import SeriesLesions
from tests.qt.test_lesion_display import ROWS, lesion_mask, run_window

NOW = "2026-01-01T00:00:00Z"


def counts(where: LesionSlices) -> dict[int, list[int]]:
    return {lesion_id: c.tolist() for lesion_id, c in sorted(where.counts.items())}


def series_lesions() -> SeriesLesions:
    table = find_lesions(
        lesion_mask(), MaskGeometry(pixel_spacing=(0.7, 0.7), slice_spacing=2.5), with_labels=True
    )
    assert table.labels is not None
    return SeriesLesions.from_table("s#1", "1.2.3", "nodule", table, table.labels, None)


def boxed(series: SeriesLesions) -> LesionSlices:
    return LesionSlices.of(series.labels, lesion_extents(series.ordered(), series.labels.shape))


def disc(cy: int, cx: int, radius: int) -> np.ndarray:
    yy, xx = np.ogrid[:ROWS, :ROWS]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


class TestLesionExtents:
    def test_a_run_counts_as_the_full_volume_does(self) -> None:
        series = series_lesions()
        where = boxed(series)
        assert counts(where) == counts(LesionSlices.of(series.labels))
        assert where.ticks() == [(3, 1), (4, 1), (5, 1), (8, 2), (9, 2)]
        assert where.largest(1) == 4

    def test_the_engine_table_counts_as_the_full_volume_does(self) -> None:
        table = find_lesions(
            lesion_mask(), MaskGeometry(pixel_spacing=(1.0, 1.0), slice_spacing=1.0),
            with_labels=True,
        )  # fmt: skip
        assert table.labels is not None
        extents = lesion_extents(table.lesions, table.labels.shape)
        assert sorted(extents) == [1, 2]
        assert counts(LesionSlices.of(table.labels, extents)) == counts(
            LesionSlices.of(table.labels)
        )

    # each stroke: (slice, disc centre row, col, radius, lesion id or None for a new one, erase)
    STROKES = [
        (6, 15, 15, 3, 1, False),  # L1 grows onto a slice it did not cross
        (3, 15, 16, 8, 1, True),  # L1 erased off slice 3
        (1, 50, 12, 4, None, False),  # the reader draws a missed lesion (L3)
        (9, 42, 42, 10, None, True),  # eraser of every lesion: L2 leaves slice 9
        (4, 12, 12, 4, 2, False),  # L2 painted over L1 on slice 4
    ]

    @pytest.mark.parametrize("upto", range(1, len(STROKES) + 1))
    def test_after_brush_and_eraser_strokes(self, upto: int) -> None:
        series = series_lesions()
        for slice_index, cy, cx, radius, lesion_id, erase in self.STROKES[:upto]:
            series.paint(
                slice_index, disc(cy, cx, radius), lesion_id, erase=erase, reviewer="r", now=NOW
            )
        assert counts(boxed(series)) == counts(LesionSlices.of(series.labels))

    def test_the_whole_volume_when_a_lesion_has_no_box(self) -> None:
        class NoBox:
            lesion_id, box, slices = 4, None, (2, 2)

        assert lesion_extents([NoBox()], (5, 6, 7)) == {4: (0, 5, 0, 6, 0, 7)}

    def test_a_lesion_without_a_box_is_counted_over_the_volume(self) -> None:
        class NoBox:
            lesion_id, box, slices = 2, None, (0, 0)

        series = series_lesions()
        extents = {**lesion_extents(series.ordered(), series.labels.shape)}
        extents.update(lesion_extents([NoBox()], series.labels.shape))
        where = LesionSlices.of(series.labels, extents)
        assert counts(where) == counts(LesionSlices.of(series.labels))

    def test_a_lesion_not_in_the_volume_has_no_slices(self) -> None:
        class Gone:
            lesion_id, box, slices = 9, (1, 1, 2, 2), (0, 1)

        labels = np.zeros((3, 4, 4), np.uint16)
        where = LesionSlices.of(labels, lesion_extents([Gone()], labels.shape))
        assert where.counts == {} and where.ticks() == []


class TestViewerCountsInsideBoxes:
    def test_after_a_run_the_strip_and_overlay_match_the_full_count(
        self, qtbot, make_window, lesion_ct: Path
    ) -> None:
        window = run_window(qtbot, make_window, lesion_ct)
        lesions = window.lesions
        assert lesions.labels is not None and lesions.where is not None
        assert counts(lesions.where) == counts(LesionSlices.of(lesions.labels))
        assert lesions.strip.tick_slices() == [3, 4, 5, 8, 9]
