"""Tag values and peer text in the GUI: escaped before setText, never rendered as rich text
(qt.plaintext); the PACS dialog against a hostile peer shows escaped rows, stores only the
study asked for and says how many instances it refused (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import config
from PySide6.QtCore import Qt

from desktop_app.infra.safetext import is_safe
from desktop_app.pacs.nodes import PacsNode
from desktop_app.pacs.store import LocalStore
from desktop_app.qt.canvas import ImageCanvas
from desktop_app.qt.findings_panel import label_text
from desktop_app.qt.pacs_dialog import UID_ROLE
from desktop_app.qt.plaintext import rich, shown, tooltip
from desktop_app.qt.study_browser import StudyBrowserWidget
from desktop_app.studies.index import index_paths
from tests.helpers.hostile_pacs import AET, N_OTHER_SERIES, N_OWN, STUDY, HostilePacs
from tests.qt.test_pacs_dialog import make_dialog  # noqa: F401  (the fixture)

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
HTML_AND_CONTROLS = "<b>bold</b><img src='x'>\x1b[31m\u202eevil\nline"


class TestPlainText:
    def test_shown(self) -> None:
        assert shown(HTML_AND_CONTROLS) == "<b>bold</b><img src='x'>\\e[31m\\u202eevil\\nline"
        assert shown("x" * 500).endswith("…") and len(shown("x" * 500)) == 200
        assert shown(None) == ""

    def test_rich_and_tooltip(self) -> None:
        assert rich("<b>&") == "&lt;b&gt;&amp;"
        tip = tooltip("<i>a</i>", "b\x1b")
        assert tip == "<qt>&lt;i&gt;a&lt;/i&gt;<br>b\\e</qt>"

    def test_label_text(self) -> None:
        assert label_text("nodule\x1b[2J\u202e") == "Nodule\\e[2j\\u202e"


def test_corners_are_escaped(qtbot: Any) -> None:
    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.set_corner_text("tl", [HTML_AND_CONTROLS, ""])
    assert canvas._corners["tl"] == [shown(HTML_AND_CONTROLS)]


def test_study_browser_escapes_tag_values(qtbot: Any, tmp_path: Path) -> None:
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    with config.disable_value_validation():
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = "<b>Doe</b>\x1b[31m\u202eJane"
        ds.StudyDescription = "<img src='x'>\x1b]0;t\x07"
        ds.SeriesDescription = "ser\x00ies"
    ds.save_as(tmp_path / "evil.dcm", enforce_file_format=True)
    browser = StudyBrowserWidget()
    qtbot.addWidget(browser)
    browser.populate(index_paths([tmp_path]))
    patient = browser.topLevelItem(0)
    study = patient.child(0)
    series = study.child(0)
    texts = [patient.text(0), study.text(0), series.text(0), series.text(1)]
    assert all(is_safe(t) for t in texts), texts
    assert patient.text(0).startswith("<b>Doe</b>\\e[31m\\u202eJane")
    assert "ser\\x00ies" in series.text(0)
    for item in (patient, study, series):
        tip = item.toolTip(0)
        assert tip.startswith("<qt>") and "<b>" not in tip and "<img" not in tip
    browser.shutdown()


@pytest.fixture
def hostile() -> Iterator[HostilePacs]:
    peer = HostilePacs(matches=3)
    yield peer
    peer.close()


def test_pacs_dialog_against_a_hostile_peer(
    qtbot: Any,
    make_dialog: Any,  # noqa: F811
    hostile: HostilePacs,
    tmp_path: Path,
) -> None:
    dialog = make_dialog(PacsNode("evil", AET, "127.0.0.1", hostile.port))
    with qtbot.waitSignal(dialog.searchFinished, timeout=15_000) as blocker:
        assert dialog.search()
    assert blocker.args == [3]
    proxy = dialog.proxy
    cells = [
        str(proxy.index(r, c).data() or "")
        for r in range(proxy.rowCount())
        for c in range(proxy.columnCount())
    ]
    assert all(is_safe(c) for c in cells), [c for c in cells if not is_safe(c)]
    assert all(len(c) <= 200 for c in cells)
    assert any(c.startswith("Doe, \\e[31mRed") for c in cells)
    assert dialog.status.textFormat() == Qt.TextFormat.PlainText

    dialog.table.clearSelection()
    row = next(r for r in range(proxy.rowCount()) if proxy.index(r, 0).data(UID_ROLE) == STUDY)
    dialog.table.selectRow(row)
    with qtbot.waitSignal(dialog.retrieveFinished, timeout=60_000) as blocker:
        assert dialog.retrieve()
    summary = blocker.args[0]
    store = LocalStore(tmp_path / "store")
    assert summary.stored == N_OWN + N_OTHER_SERIES
    assert summary.folders == (store.study_folder(STUDY),)
    assert [p.name for p in store.root.iterdir()] == [store.study_folder(STUDY).name]
    assert "6 instances of other studies were refused" in dialog.status.text()
