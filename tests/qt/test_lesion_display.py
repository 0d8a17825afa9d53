"""The viewer shows a segmentation's lesions: rows in the findings panel, masks on the slices
they cross, the marker strip beside the slider, next/previous lesion, verdicts per lesion."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from desktop_app.inference.lesions import MaskGeometry, find_lesions
from desktop_app.qt.lesion_overlay import (
    LesionSlices,
    LesionView,
    lesion_mask_items,
    views_from_table,
)
from desktop_app.qt.lesion_rows import format_volume, lesion_text, slice_span
from desktop_app.review.lesionreview import SeriesLesions
from desktop_app.review.runner import RunOutput
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import SeriesVolume
from tests.qt.conftest import LESION_CT_ROWS, LESION_CT_SLICES, FakeRunner, open_and_wait

SLICES, ROWS = LESION_CT_SLICES, LESION_CT_ROWS
# two lesions: L1 (larger) on slices 3-5, L2 on slices 8-9
LESION_SLICES = [3, 4, 5, 8, 9]


def lesion_mask(empty: bool = False) -> np.ndarray:
    mask = np.zeros((SLICES, ROWS, ROWS), dtype=bool)
    if not empty:
        mask[3:6, 10:20, 10:22] = True
        mask[4, 10:21, 10:23] = True  # its largest slice
        mask[8:10, 40:46, 40:46] = True
    return mask


class LesionRunner(FakeRunner):
    """The fake model, as a segmentation model: its run carries lesions to review."""

    empty = False

    def run(
        self,
        stack: SliceStack,
        volume: SeriesVolume,
        series_key: str,
        progress: Callable[[int, int], None],
        stop: threading.Event,
        force: bool = False,
    ) -> RunOutput:
        out = super().run(stack, volume, series_key, progress, stop, force)
        geometry = MaskGeometry.from_stack(stack)
        values = np.stack([volume.frame(i).values for i in range(len(volume))])
        table = find_lesions(
            lesion_mask(self.empty), geometry, values=values, value_unit="HU", with_labels=True
        )
        assert table.labels is not None
        lesions = SeriesLesions.from_table(
            series_key, stack.series_instance_uid, "nodule", table, table.labels, geometry
        )
        return dataclasses.replace(out, lesions=lesions)


class EmptyRunner(LesionRunner):
    empty = True


def run_window(
    qtbot, make_window, folder: Path, runner: type[FakeRunner] = LesionRunner, **kw: object
):
    """A window on ``folder`` after a run of ``runner`` (made with ``kw``, e.g.
    ``out_of_distribution=True``)."""
    window = make_window(runner=lambda m, d: runner(m, d, **kw))
    open_and_wait(qtbot, window, [folder])
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.runs.run_inference()
    return window


def show_slice(qtbot, window, index: int) -> None:
    if window.viewer.index == index and window.viewer._frame_index == index:
        return
    with qtbot.waitSignal(window.viewer.frameShown, timeout=10_000):
        window.viewer.set_index(index)


class TestFormatting:
    @pytest.mark.parametrize(
        ("mm3", "text"), [(640.4, "640 mm³"), (7.25, "7.2 mm³"), (7200.0, "7.2 cm³")]
    )
    def test_volume_in_mm3_under_1000_else_cm3(self, mm3: float, text: str) -> None:
        assert format_volume(mm3) == text

    def test_row_text_names_what_each_number_is(self) -> None:
        view = LesionView(1, "nodule", 16, 19, 17, 6996.0, 24.6, 50.0, 84.0, 0.98)
        text = lesion_text(view, lambda i: f"Im {i + 1}")
        assert text == "7.0 cm³ · 25 mm · mean 50 HU (max 84) · Im 17–20 · p\u00a00.98"

    def test_slice_span_uses_the_viewer_numbering(self) -> None:
        assert slice_span("Im 17", "Im 20") == "Im 17–20"
        assert slice_span("Im 17", "Im 17") == "Im 17"
        assert slice_span("#3", "Im 4") == "#3–Im 4"


class TestLesionSlices:
    def test_slices_and_largest_slice_per_lesion(self) -> None:
        labels = np.zeros((SLICES, 8, 8), np.uint16)
        labels[2, :2, :2] = 1
        labels[3, :3, :3] = 1
        labels[7, 5:, 5:] = 2
        where = LesionSlices.of(labels)
        assert where.slices_of(1) == [2, 3]
        assert where.largest(1) == 3
        assert where.ticks() == [(2, 1), (3, 1), (7, 2)]
        assert where.on_slice(7) == [2]
        assert LesionSlices.of(np.zeros((3, 4, 4), np.uint16)).ticks() == []

    def test_mask_items_one_per_lesion_on_the_slice(self) -> None:
        plane = np.zeros((8, 8), np.uint16)
        plane[1:3, 1:3] = 1
        plane[5:7, 5:7] = 3
        items = lesion_mask_items(plane, {}, selected=3)
        assert [(i.lesion_id, i.label, i.selected) for i in items] == [
            (1, "L1", False),
            (3, "L3", True),
        ]
        assert all(len(i.edges) == 4 for i in items)
        assert items[0].color != items[1].color
        assert lesion_mask_items(np.zeros((8, 8), np.uint16), {}) == []


class TestLesionDisplay:
    def test_rows_list_each_lesion_with_its_measurements(
        self, qtbot, make_window, lesion_ct: Path
    ) -> None:
        window = run_window(qtbot, make_window, lesion_ct)
        rows = window.findings.lesions
        assert rows.isVisible()
        assert list(rows.rows) == [1, 2]
        first = rows.rows[1].title.text()
        assert first.startswith("L1 nodule — ")
        pattern = r"L1 nodule — [\d.]+ (mm|cm)³ · \d+ mm · mean -?\d+ HU \(max -?\d+\) · "
        assert re.match(pattern, first), first
        stack = window.viewer.context.stack
        span = slice_span(stack.short_label(3), stack.short_label(5))
        assert span in first
        assert rows.rows[2].verdict.text() == "Pending review"
        assert rows.summary.text().startswith("2 lesions: 0 accepted, 0 rejected, 2 pending")
        assert rows.rows[1].accept_button.isEnabled()
        assert not window.findings.summary.text().startswith("No findings")

    def test_overlay_on_a_lesion_slice_and_none_on_an_empty_one(
        self, qtbot, make_window, lesion_ct: Path
    ) -> None:
        window = run_window(qtbot, make_window, lesion_ct)
        layer = window.lesions.layer
        show_slice(qtbot, window, 4)
        assert [m.lesion_id for m in layer.scene.masks] == [1]
        assert layer.drawn()
        show_slice(qtbot, window, 9)
        assert [m.lesion_id for m in layer.scene.masks] == [2]
        show_slice(qtbot, window, 0)
        assert layer.scene.masks == []
        assert not layer.drawn()
        show_slice(qtbot, window, 4)
        window.acts["toggle_heatmap"].setChecked(False)
        window.acts["toggle_outline"].setChecked(False)
        assert not layer.drawn()  # H and O off: no fill, no contour
        window.acts["toggle_outline"].setChecked(True)
        assert layer.drawn()

    def test_strip_ticks_match_the_lesion_slices_and_a_click_goes_there(
        self, qtbot, make_window, lesion_ct: Path
    ) -> None:
        window = run_window(qtbot, make_window, lesion_ct)
        strip = window.viewer.lesion_strip
        assert strip.isVisible()
        assert strip.tick_slices() == LESION_SLICES
        show_slice(qtbot, window, 0)
        x = strip.x_of(8)
        assert strip.x_of(3) < x < strip.x_of(11)
        with qtbot.waitSignal(window.viewer.frameShown, timeout=10_000):
            qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=QPoint(x, strip.height() // 2))
        assert window.viewer.index == 8

    @pytest.mark.parametrize("runner", [LesionRunner, FakeRunner])
    def test_the_research_use_notice_shows_with_lesions_as_with_findings(
        self, qtbot, make_window, lesion_ct: Path, runner: type[FakeRunner]
    ) -> None:
        """A segmentation's lesions are a model's output like a finding's box: the image's
        corner says research use only on every slice of the series, shapes or not."""
        window = run_window(qtbot, make_window, lesion_ct, runner)
        bare = [i for i in range(SLICES) if i not in LESION_SLICES]
        for index in bare:
            show_slice(qtbot, window, index)
            if not window.canvas.shapes():
                break
        assert not window.canvas.shapes() and not window.lesions.layer.scene.masks
        notice = "AI overlay — research use only" in window.canvas.corner_text("tr")
        assert notice == (runner is LesionRunner)

    def test_a_click_on_a_lesion_selects_it_and_the_slice_stays(
        self, qtbot, make_window, lesion_ct: Path
    ) -> None:
        window = run_window(qtbot, make_window, lesion_ct)
        show_slice(qtbot, window, 9)
        canvas = window.canvas
        assert window.lesions.selected is None
        qtbot.mouseClick(
            canvas,
            Qt.MouseButton.LeftButton,
            pos=canvas.image_to_widget(QPointF(43.5, 42.5)).toPoint(),
        )
        assert window.lesions.selected == 2 and window.findings.lesions.selected == 2
        assert window.viewer.index == 9
        assert window.statusBar().currentMessage().startswith("L2 ")
        qtbot.mouseClick(
            canvas,
            Qt.MouseButton.LeftButton,
            pos=canvas.image_to_widget(QPointF(2.5, 60.5)).toPoint(),
        )
        assert window.lesions.selected == 2  # beside every lesion: nothing changes

    def test_next_and_previous_lesion_go_to_the_largest_slice_and_wrap(
        self, qtbot, make_window, lesion_ct: Path
    ) -> None:
        window = run_window(qtbot, make_window, lesion_ct)
        show_slice(qtbot, window, 0)
        lesions, nxt, prev = window.lesions, window.acts["next_lesion"], window.acts["prev_lesion"]
        assert nxt.shortcut().toString() == "Alt+Down"
        nxt.trigger()
        assert (lesions.selected, window.viewer.index) == (1, 4)
        assert window.statusBar().currentMessage().startswith("Lesion 1 of 2 · L1 nodule")
        nxt.trigger()
        assert (lesions.selected, window.viewer.index) == (2, 8)
        assert window.statusBar().currentMessage().startswith("Lesion 2 of 2")
        nxt.trigger()
        assert (lesions.selected, window.viewer.index) == (1, 4)  # wrapped
        prev.trigger()
        assert (lesions.selected, window.viewer.index) == (2, 8)  # and back
        qtbot.waitUntil(lambda: window.viewer._frame_index == 8, timeout=10_000)
        assert [m.selected for m in lesions.layer.scene.masks] == [True]
        assert window.viewer.lesion_strip.selected_slices == frozenset({8, 9})

    def test_clicking_a_row_goes_to_its_lesion(self, qtbot, make_window, lesion_ct: Path) -> None:
        window = run_window(qtbot, make_window, lesion_ct)
        show_slice(qtbot, window, 0)
        row = window.findings.lesions.rows[2]
        qtbot.mouseClick(row, Qt.MouseButton.LeftButton, pos=QPoint(4, 4))
        assert window.lesions.selected == 2
        assert window.viewer.index == 8
        assert row.property("selected") is True

    def test_accept_and_reject_change_the_verdict(
        self, qtbot, make_window, lesion_ct: Path
    ) -> None:
        window = run_window(qtbot, make_window, lesion_ct)
        key = window.shown.key
        state = window.review.current_state()
        rows = window.findings.lesions
        qtbot.mouseClick(rows.rows[1].accept_button, Qt.MouseButton.LeftButton)
        assert state.lesions_for(key)[0].verdict == "accepted"
        assert state.lesions_for(key)[0].reviewer == "Dr Test"
        assert rows.rows[1].verdict.text() == "✓ Accepted"
        rows.rows[2].reasons.actions()[0].trigger()  # the reject button's first reason
        rejected = state.lesions_for(key)[1]
        assert rejected.verdict == "rejected" and rejected.reason
        assert rows.rows[2].verdict.text().startswith("✗ Rejected — ")
        assert rows.summary.text().startswith("2 lesions: 1 accepted, 1 rejected, 0 pending")
        show_slice(qtbot, window, 8)
        (item,) = window.lesions.layer.scene.masks
        assert item.rejected and item.label == "L2 ✗"
        assert not item.fill.pixelColor(42, 42).alpha()  # no fill on a rejected lesion
        qtbot.mouseClick(rows.rows[2].reject_button, Qt.MouseButton.LeftButton)  # "Undo ✗"
        assert state.lesions_for(key)[1].verdict == "pending"
        assert window.review.writer.flush()

    def test_no_lesion_found_says_so_with_the_model(
        self, qtbot, make_window, lesion_ct: Path
    ) -> None:
        window = run_window(qtbot, make_window, lesion_ct, EmptyRunner)
        rows = window.findings.lesions
        assert rows.isVisible() and not rows.rows
        assert rows.summary.text() == "No lesion found · Model: fake-model 0.1"
        assert not window.viewer.lesion_strip.isVisible()

    def test_a_classifier_run_shows_no_lesion_rows(
        self, qtbot, make_window, lesion_ct: Path
    ) -> None:
        window = run_window(qtbot, make_window, lesion_ct, FakeRunner)
        assert not window.findings.lesions.isVisible()
        assert window.lesions.layer.scene.masks == []

    def test_an_engine_table_is_shown_unreviewed(self, qtbot, make_window, lesion_ct: Path) -> None:
        window = make_window()
        open_and_wait(qtbot, window, [lesion_ct])
        stack = window.viewer.context.stack
        table = find_lesions(lesion_mask(), MaskGeometry.from_stack(stack), with_labels=True)
        assert [v.largest_slice for v in views_from_table(table, "nodule")] == [4, 8]
        window.lesions.take_table(window.shown.key, table, table.labels, "nodule", "Model: x")
        rows = window.findings.lesions
        assert list(rows.rows) == [1, 2]
        assert not rows.rows[1].accept_button.isEnabled()
        assert window.viewer.lesion_strip.tick_slices() == LESION_SLICES
