"""File ▸ Export… (Ctrl+E): the dialog's formats, de-identification, PACS destination and default
folder (the data folder's exports/), and what happens after: the chosen formats written, the SR
and captures C-STOREd to the chosen node, the export folder opened through the normal open
path so that its objects join the browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from desktop_app.pacs.nodes import NodeConfig, PacsNode
from desktop_app.qt.export_dialog import ExportChoice, ExportDialog, default_export_dir
from tests.qt.conftest import SAMPLE_XR, open_and_wait
from tests.qt.fake_pacs import free_port

STORE_AET = "STORESCP"


class StoreScp:
    """A Storage SCP on 127.0.0.1 that keeps what it is sent (a real C-STORE exchange)."""

    def __init__(self) -> None:
        self.received: list[pydicom.Dataset] = []
        self.port = free_port()
        ae = AE(ae_title=STORE_AET)
        for context in AllStoragePresentationContexts:
            name = context.abstract_syntax.name  # type: ignore[union-attr]
            if "SR" in name or "Secondary Capture" in name:
                ae.add_supported_context(context.abstract_syntax)
        self.server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
        )

    def _on_store(self, event: Any) -> int:
        self.received.append(event.dataset)
        return 0x0000

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def store_scp(data_dir: Path) -> Iterator[StoreScp]:
    scp = StoreScp()
    config = NodeConfig.load()
    config.add(PacsNode("archive", STORE_AET, "127.0.0.1", scp.port))
    config.save()
    yield scp
    scp.close()


def _dialog(qtbot, initial: ExportChoice | None = None, nodes: list[str] | None = None):  # type: ignore[no-untyped-def]
    dialog = ExportDialog(initial or ExportChoice(), nodes or [])
    qtbot.addWidget(dialog)
    return dialog


class TestExportDialog:
    def test_defaults_all_formats_into_the_data_folders_exports(self, qtbot, data_dir) -> None:
        dialog = _dialog(qtbot)
        assert default_export_dir() == data_dir / "exports"
        assert dialog.folder.text() == str(data_dir / "exports")
        assert all(b.isChecked() for b in dialog.format_boxes.values())
        assert set(dialog.format_boxes) == {"sr", "sc", "pdf", "json"}  # exports.FORMATS
        assert dialog.keep_ids.isChecked() and not dialog.dates.isEnabled()
        assert not dialog.node.isEnabled()
        assert dialog.node.currentText().startswith("No PACS nodes configured")
        assert dialog.choice() == ExportChoice(out_dir=data_dir / "exports")

    def test_choices_are_read_back(self, qtbot, tmp_path) -> None:
        dialog = _dialog(qtbot, nodes=["archive", "research"])
        dialog.format_boxes["pdf"].setChecked(False)
        dialog.format_boxes["sc"].setChecked(False)
        dialog.deidentify.setChecked(True)
        assert dialog.dates.isEnabled()
        dialog.dates.setCurrentIndex(dialog.dates.findData("remove"))
        dialog.node.setCurrentIndex(dialog.node.findData("research"))
        dialog.folder.setText(str(tmp_path))
        dialog.open_folder.setChecked(False)
        assert dialog.choice() == ExportChoice(
            out_dir=tmp_path, formats=("sr", "json"), deidentify=True, dates="remove",
            node="research", open_folder=False, add_to_browser=True,
        )  # fmt: skip

    def test_de_identified_exports_go_outside_the_data_folder(self, qtbot, tmp_path) -> None:
        dialog = _dialog(qtbot)
        dialog.deidentify.setChecked(True)
        assert not dialog.export_button.isEnabled()
        assert "outside RadAssist's data folder" in dialog.warning.text()
        dialog.folder.setText(str(tmp_path))
        assert dialog.export_button.isEnabled() and dialog.warning.isHidden()

    def test_pacs_needs_a_dicom_format_and_export_needs_one_format(self, qtbot) -> None:
        dialog = _dialog(qtbot, nodes=["archive"])
        dialog.node.setCurrentIndex(1)
        dialog.format_boxes["sr"].setChecked(False)
        dialog.format_boxes["sc"].setChecked(False)
        assert not dialog.node.isEnabled() and dialog.choice().node == ""
        dialog.format_boxes["pdf"].setChecked(False)
        dialog.format_boxes["json"].setChecked(False)
        assert not dialog.export_button.isEnabled()
        dialog.format_boxes["json"].setChecked(True)
        assert dialog.export_button.isEnabled()
        dialog.folder.setText("  ")
        assert not dialog.export_button.isEnabled()


def test_ctrl_e_opens_the_dialog_on_the_last_choices(
    qtbot, make_window, qsettings, store_scp, tmp_path
) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_XR])
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.runs.run_inference()
    assert window.acts["export"].shortcut().toString() == "Ctrl+E"
    qsettings.setValue("export/formats", ["json"])
    seen: dict[str, object] = {}

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ExportDialog)
        seen["formats"] = [n for n, b in dialog.format_boxes.items() if b.isChecked()]
        seen["nodes"] = [dialog.node.itemData(i) for i in range(dialog.node.count())]
        seen["folder"] = dialog.folder.text()
        dialog.folder.setText(str(tmp_path / "picked"))
        dialog.open_folder.setChecked(False)  # no file manager in tests
        dialog.add_to_browser.setChecked(False)
        dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()

    QTimer.singleShot(0, answer)
    with qtbot.waitSignal(window.exports.channel.finished, timeout=60_000) as done:
        window.acts["export"].trigger()
    assert seen == {"formats": ["json"], "nodes": ["", "archive"],
                    "folder": str(default_export_dir())}  # fmt: skip
    result = done.args[0]
    assert result.json is not None and result.sr is None and result.pdf is None
    assert result.folder.parent == tmp_path / "picked"
    assert qsettings.value("export/folder") == str(tmp_path / "picked")  # remembered


def test_cancelling_the_dialog_exports_nothing(qtbot, make_window, data_dir) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_XR])
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.runs.run_inference()

    def cancel() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, ExportDialog)
        dialog.reject()

    QTimer.singleShot(0, cancel)
    assert not window.exports.export_current_study()
    assert not (data_dir / "exports").exists()


def test_export_sends_to_pacs_and_lists_the_export(qtbot, make_window, store_scp, tmp_path) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_XR])
    shown = window.shown.key
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.runs.run_inference()
    window.review.accept_finding(f"{shown}:nodule")
    choice = ExportChoice(
        out_dir=tmp_path, formats=("sr", "sc", "json"), deidentify=True, node="archive",
        open_folder=False, add_to_browser=True,
    )  # fmt: skip
    with qtbot.waitSignal(window.exports.channel.finished, timeout=60_000) as done:
        assert window.exports.export_current_study(choice=choice)
    result = done.args[0]
    assert result.folder.parent == tmp_path and result.deidentified
    assert result.sr is not None and result.sc and result.pdf is None
    with qtbot.waitSignal(window.exports.sendDone, timeout=30_000) as sent:
        pass
    n = 1 + len(result.sc)
    assert sent.args[0] == f"Sent {n} of {n} DICOM objects to the PACS"
    assert {str(ds.SOPInstanceUID) for ds in store_scp.received} == {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in [result.sr, *result.sc]
    }
    # the export folder went through the normal open path: its objects are in the index,
    # its captures in the browser, and the view did not move
    qtbot.waitUntil(
        lambda: any(
            i.path == result.sr
            for i in window.studies.index.iter_instances()  # type: ignore[union-attr]
        ),
        timeout=20_000,
    )
    assert window.shown.key == shown
    listed = {e.stack.slices[0].instance.path for e in window.studies.entries}
    assert set(result.sc) <= listed
