"""A segmentation run whose slices are unlike its model's training data: the lesion rows'
summary says the run is unreliable, under the findings panel's out-of-distribution warning, and
its lesions on the image are dashed and marked "⚠"."""

from __future__ import annotations

from pathlib import Path

from tests.qt.test_lesion_display import LesionRunner, run_window, show_slice


def test_flagged_run_marks_the_lesion_summary(qtbot, make_window, lesion_ct: Path) -> None:
    window = run_window(qtbot, make_window, lesion_ct, out_of_distribution=True)
    rows = window.findings.lesions
    assert rows.isVisible() and list(rows.rows) == [1, 2]
    assert rows.summary.text().startswith("⚠ Unreliable (see the warning above) · 2 lesions: ")
    assert "Out of distribution" in window.findings.scope_banner.text()
    show_slice(qtbot, window, 4)  # the model's lesion is dashed and marked, as its findings are
    (item,) = window.lesions.layer.scene.masks
    assert item.unreliable and item.label.startswith("L1") and item.label.endswith("⚠")


def test_unflagged_run_leaves_the_summary_plain(qtbot, make_window, lesion_ct: Path) -> None:
    window = run_window(qtbot, make_window, lesion_ct, LesionRunner)
    assert window.findings.lesions.summary.text().startswith("2 lesions: ")
    show_slice(qtbot, window, 4)
    (item,) = window.lesions.layer.scene.masks
    assert not item.unreliable and "⚠" not in item.label
