"""A segmentation run's label volume is packed for the review file in the inference worker, and
the review's save at the run's end reuses it instead of compressing it on the GUI thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import desktop_app.qt.inference as qt_inference
from desktop_app.review.lesionfiles import pack_labels, unpack_labels
from desktop_app.review.lesionreview import SeriesLesions
from tests.qt.test_lesion_display import run_window


def test_the_worker_packs_and_the_save_reuses_it(
    qtbot, make_window, lesion_ct: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed: list[tuple[bool, bytes]] = []

    def recording(series: SeriesLesions) -> bytes:
        data = pack_labels(series)
        packed.append((threading.current_thread() is threading.main_thread(), data))
        return data

    monkeypatch.setattr(qt_inference, "pack_labels", recording)
    window = run_window(qtbot, make_window, lesion_ct)
    assert [on_gui for on_gui, _ in packed] == [False]
    state = window.review.current_state()
    series = state.lesion_sets[window.shown.key]
    assert series._packed is not None and series._packed[1] is packed[0][1]
    restored = unpack_labels(packed[0][1], series.shape, sorted(series.lesions))
    assert (restored == series.labels).all()
