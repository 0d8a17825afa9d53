"""File ▸ Export…: the current study's four exports, written by the core in a worker."""

from __future__ import annotations

import json
from pathlib import Path

from desktop_app.infra.hashedpaths import uid_hash
from tests.qt.conftest import SAMPLE_CT, open_and_wait


def test_export_writes_the_four_formats_off_the_gui_thread(qtbot, make_window, tmp_path) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    assert not window.exports.export_current_study(str(tmp_path / "early"))  # nothing to export yet
    assert "Nothing to export" in window.feedback.last_error
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.runs.run_inference()
    state = window.review.current_state()
    nodule = f"{window.shown.key}:nodule"
    window.review.accept_finding(nodule)
    export = next(a for a in window.menuBar().actions() if a.text() == "&File").menu()
    assert "&Export…" in [a.text() for a in export.actions()]
    assert window.exports.export_current_study(str(tmp_path / "out"))
    with qtbot.waitSignal(window.exports.channel.finished, timeout=30_000) as blocker:
        pass
    result = blocker.args[0]
    assert result.folder == tmp_path / "out" / uid_hash(state.study_uid)
    assert result.sr is not None and result.pdf is not None and result.json is not None
    doc = json.loads(Path(result.json).read_text("utf-8"))
    agreements = {
        f["label"]: f["reader"]["agreement"] for s in doc["series"] for f in s["findings"]
    }
    assert agreements["nodule"] == "TP"  # present, as the model called it
