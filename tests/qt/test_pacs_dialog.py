"""The query/retrieve dialog: nodes, echo, search, retrieve, open, and association failures.

Fast tests talk to an in-process pynetdicom PACS on 127.0.0.1 (tests/qt/fake_pacs.py) with
RadAssist's real client; the slow one runs the dialog against a real Orthanc in a private
network namespace (tests/qt/pacs_orthanc_scenario.py).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from PySide6.QtCore import QSettings, Qt

from desktop_app.infra.hashedpaths import instance_relpath
from desktop_app.pacs.dimse import FindMatch, Timeouts
from desktop_app.pacs.nodes import NodeConfig, PacsNode
from desktop_app.pacs.query import StudyRow
from desktop_app.pacs.store import LocalStore
from desktop_app.qt.pacs_dialog import NO_NODE, PacsDialog
from tests.qt.conftest import flush_deletes
from tests.qt.fake_pacs import AET, FakePacs, SilentPeer, free_port

FAST = Timeouts(connect=3, acse=3, dimse=10, network=10)


@pytest.fixture
def fake_pacs() -> Iterator[FakePacs]:
    pacs = FakePacs()
    yield pacs
    pacs.close()


def write_nodes(path: Path, *nodes: PacsNode) -> Path:
    config = NodeConfig(path)
    for node in nodes:
        config.add(node)
    config.save()
    return path


@pytest.fixture
def make_dialog(
    qtbot: Any, tmp_path: Path, qsettings: QSettings
) -> Iterator[Callable[..., PacsDialog]]:
    dialogs: list[PacsDialog] = []

    def make(*nodes: PacsNode, timeouts: Timeouts = FAST) -> PacsDialog:
        config = write_nodes(tmp_path / "pacs.json", *nodes)
        dialog = PacsDialog(
            config_path=config,
            store=LocalStore(tmp_path / "store"),
            settings=qsettings,
            timeouts=timeouts,
        )
        dialog.show()
        dialogs.append(dialog)
        return dialog

    yield make
    for dialog in dialogs:
        dialog.shutdown(timeout_ms=30_000)
        dialog.close()
        dialog.deleteLater()
    flush_deletes()


def fake_node(port: int, aet: str = AET) -> PacsNode:
    return PacsNode("fake", aet, "127.0.0.1", port)


def test_echo_reports_the_round_trip(qtbot: Any, make_dialog: Any, fake_pacs: FakePacs) -> None:
    dialog = make_dialog(fake_node(fake_pacs.port))
    with qtbot.waitSignal(dialog.echoFinished, timeout=15_000) as blocker:
        assert dialog.echo()
    assert re.fullmatch(r"✔ \d+ ms", blocker.args[0])
    assert dialog.echo_label.text() == blocker.args[0]


def test_search_fills_a_sortable_table_off_the_gui_thread(
    qtbot: Any, make_dialog: Any, fake_pacs: FakePacs
) -> None:
    dialog = make_dialog(fake_node(fake_pacs.port))
    threads: list[int] = []
    original = dialog.find_channel.submit

    def spy(fn: Any) -> int:
        def wrapped(progress: Any, stop: threading.Event) -> object:
            threads.append(threading.get_ident())
            return fn(progress, stop)

        return original(wrapped)

    dialog.find_channel.submit = spy  # type: ignore[method-assign]
    with qtbot.waitSignal(dialog.searchFinished, timeout=15_000) as blocker:
        assert dialog.search()
        assert not dialog.search_button.isEnabled() and dialog.stop_button.isEnabled()
    assert blocker.args == [2]
    assert threads and threads[0] != threading.get_ident()
    assert dialog.search_button.isEnabled() and not dialog.stop_button.isEnabled()
    proxy = dialog.proxy
    dialog.table.sortByColumn(7, Qt.SortOrder.AscendingOrder)
    shown = [proxy.index(r, 0).data() for r in range(proxy.rowCount())]
    counts = [proxy.index(r, 7).data() for r in range(proxy.rowCount())]
    assert counts == ["2", "3"]
    assert shown == ["QT, Alpha", "QT, Beta"]
    assert [proxy.index(r, 2).data() for r in range(2)] == ["2024-01-05", "2024-03-20"]
    assert dialog.status.text() == "2 studies found"


def test_the_query_form_becomes_matching_keys(
    qtbot: Any, make_dialog: Any, fake_pacs: FakePacs
) -> None:
    dialog = make_dialog(fake_node(fake_pacs.port))
    qtbot.keyClicks(dialog.patient_name, "QT^Be")
    dialog.date_preset.setCurrentIndex(dialog.date_preset.findData("range"))
    assert dialog.date_from.isEnabled()
    dialog.date_from.setDate(dialog.date_to.date().addDays(1))
    assert not dialog.search()
    assert dialog.last_error.startswith("the date range starts after it ends")
    dialog.date_preset.setCurrentIndex(0)
    assert dialog.query().filters() == {"PatientName": "QT^Be*"}
    with qtbot.waitSignal(dialog.searchFinished, timeout=15_000) as blocker:
        dialog.search()
    assert blocker.args == [1]
    assert dialog.rows[0].patient_id == "QT-0002"


def test_retrieve_brings_the_studies_into_the_store_by_hashed_uids(
    qtbot: Any, make_dialog: Any, fake_pacs: FakePacs, tmp_path: Path
) -> None:
    dialog = make_dialog(fake_node(fake_pacs.port))
    with qtbot.waitSignal(dialog.searchFinished, timeout=15_000):
        dialog.search()
    dialog.table.selectAll()
    progress: list[tuple[int, int]] = []
    dialog.retrieve_channel.progressed.connect(lambda d, t: progress.append((d, t)))
    opened: list[list[Path]] = []
    dialog.studiesRetrieved.connect(opened.append)
    with qtbot.waitSignal(dialog.retrieveFinished, timeout=30_000) as blocker:
        assert dialog.retrieve()
    summary = blocker.args[0]
    [folders] = opened
    assert (summary.stored, summary.failed, summary.problems) == (5, 0, ())
    store = LocalStore(tmp_path / "store")
    assert sorted(folders) == sorted(store.study_folder(s["uid"]) for s in fake_pacs.studies)
    for study in fake_pacs.studies:
        for ds in study["instances"]:
            rel = instance_relpath(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            assert pydicom.dcmread(store.root.joinpath(*rel.parts)).PatientID == study["id"]
    assert progress[-1] == (5, 5)
    assert dialog.status.text() == "Retrieved 5 instance(s) of 2 studies"


def test_retrieved_study_opens_in_the_main_window(
    qtbot: Any, make_window: Any, fake_pacs: FakePacs, data_dir: Path
) -> None:
    write_nodes(data_dir / "pacs.json", fake_node(fake_pacs.port))  # where the CLI keeps them
    window = make_window()
    [action] = [a for a in window.findChildren(type(window.acts["open_file"])) if
                a.objectName() == "act_pacs"]  # fmt: skip
    assert action.shortcut().toString() == "Ctrl+Shift+P"
    action.trigger()
    dialog = window.exports.pacs_dialog
    assert dialog.isVisible() and dialog.current_node().name == "fake"
    dialog.timeouts = lambda: FAST  # type: ignore[method-assign]
    qtbot.keyClicks(dialog.patient_id, "QT-0001")
    with qtbot.waitSignal(dialog.searchFinished, timeout=15_000):
        dialog.search()
    with qtbot.waitSignal(window.studies.indexReady, timeout=30_000) as blocker:
        dialog.retrieve()
    index = blocker.args[0]
    studies = {study.study_instance_uid for _, study, _ in index.iter_series()}
    assert studies == {fake_pacs.studies[0]["uid"]}
    assert len(list(index.iter_instances())) == 2
    assert window.prefs.recent_paths()[0] == str(
        LocalStore().study_folder(fake_pacs.studies[0]["uid"])
    )


@pytest.mark.parametrize("action", ["echo", "search"])
def test_refused_association_is_one_line_and_the_dialog_stays_usable(
    qtbot: Any, make_dialog: Any, action: str
) -> None:
    port = free_port()
    dialog = make_dialog(PacsNode("down", "NOBODY", "127.0.0.1", port))
    with qtbot.waitSignal(dialog.errorShown, timeout=15_000) as blocker:
        assert getattr(dialog, action)()
    message = blocker.args[0]
    assert "\n" not in message and "Traceback" not in message
    assert re.match(rf"^connection refused by 127\.0\.0\.1:{port} \(check that the PACS", message)
    assert dialog.status.text() == f"✖ {message}"
    assert dialog.search_button.isEnabled() and dialog.echo_button.isEnabled()
    assert not dialog.busy()


def test_unknown_called_ae_is_one_line(qtbot: Any, make_dialog: Any, fake_pacs: FakePacs) -> None:
    dialog = make_dialog(fake_node(fake_pacs.port, aet="NOT_THIS_ONE"))
    with qtbot.waitSignal(dialog.errorShown, timeout=15_000) as blocker:
        dialog.search()
    assert re.match(
        r"^NOT_THIS_ONE@127\.0\.0\.1:\d+ rejected the association \(Called AE title not "
        r"recognised.*\(check the node's AE title",
        blocker.args[0],
    )


def test_silent_peer_times_out_with_one_line(qtbot: Any, make_dialog: Any) -> None:
    peer = SilentPeer()
    try:
        dialog = make_dialog(
            PacsNode("silent", "SILENT", "127.0.0.1", peer.port),
            timeouts=Timeouts(connect=2, acse=1, dimse=2, network=2),
        )
        with qtbot.waitSignal(dialog.errorShown, timeout=15_000) as blocker:
            dialog.search()
    finally:
        peer.close()
    assert re.match(
        r"^SILENT@127\.0\.0\.1:\d+ accepted the connection but did not answer the association "
        r"request within 1 s \(",
        blocker.args[0],
    )


def test_stop_frees_the_dialog_while_the_worker_still_waits(qtbot: Any, make_dialog: Any) -> None:
    """The worker is stuck inside the association (the peer accepted and stays silent); the
    dialog still handles a click on Stop, is ready for the next search at once, and drops
    the abandoned search's late error."""
    peer = SilentPeer()
    try:
        dialog = make_dialog(
            PacsNode("silent", "SILENT", "127.0.0.1", peer.port),
            timeouts=Timeouts(connect=30, acse=30, dimse=30, network=30),
        )
        errors: list[str] = []
        dialog.errorShown.connect(errors.append)
        dialog.search()
        qtbot.waitUntil(peer.accepted.is_set, timeout=15_000)
        qtbot.mouseClick(dialog.stop_button, Qt.MouseButton.LeftButton)
        assert dialog.status.text() == "Search stopped"
        assert dialog.search_button.isEnabled() and not dialog.busy()
        assert dialog.find_channel.running  # the worker has not returned yet
    finally:
        peer.close()  # the association attempt now fails; its error must be dropped
    assert dialog.find_channel.wait_idle(30_000)
    flush_deletes()
    assert errors == []
    assert dialog.status.text() == "Search stopped"


def test_no_node_configured(qtbot: Any, make_dialog: Any) -> None:
    dialog = make_dialog()
    assert dialog.status.text() == NO_NODE
    assert not dialog.echo_button.isEnabled() and not dialog.remove_button.isEnabled()
    assert not dialog.search()
    assert dialog.last_error == NO_NODE
    dialog.set_rows([StudyRow.from_match(FindMatch("STUDY", {"StudyInstanceUID": "1.2.3"}))])
    assert not dialog.retrieve()
    assert dialog.last_error == NO_NODE


def test_nodes_are_added_edited_and_removed_in_the_cli_file(
    qtbot: Any, make_dialog: Any, tmp_path: Path
) -> None:
    dialog = make_dialog()
    editor = dialog.edit_node(None)
    editor.name.setText("main")
    editor.aet.setText("MAINPACS")
    editor.host.setText("bad host!")
    editor.port.setValue(11112)
    editor.accept()
    assert editor.isVisible()
    assert editor.error.text() == (
        "✖ host 'bad host!' is not a host name or IP address (e.g. pacs.example.org or 192.0.2.10)"
    )
    editor.host.setText("127.0.0.1")
    editor.method.setCurrentIndex(editor.method.findData("move"))
    editor.our_aet.setText("READER1")
    editor.accept()
    flush_deletes()
    saved = NodeConfig.load(tmp_path / "pacs.json")
    assert saved.nodes["main"] == PacsNode("main", "MAINPACS", "127.0.0.1", 11112, "move")
    assert saved.local.ae_title == "READER1"
    assert dialog.node_combo.currentData() == "main"

    editor = dialog.edit_node(dialog.current_node())
    editor.name.setText("renamed")
    editor.port.setValue(4242)
    editor.accept()
    flush_deletes()
    saved = NodeConfig.load(tmp_path / "pacs.json")
    assert list(saved.nodes) == ["renamed"] and saved.nodes["renamed"].port == 4242

    assert dialog.remove_current_node(confirm=False)
    assert NodeConfig.load(tmp_path / "pacs.json").nodes == {}
    assert dialog.status.text() == NO_NODE


def test_an_unreadable_node_file_is_reported_and_not_overwritten(
    qtbot: Any, tmp_path: Path, qsettings: QSettings
) -> None:
    path = tmp_path / "pacs.json"
    path.write_text("{not json", encoding="utf-8")
    dialog = PacsDialog(config_path=path, settings=qsettings)
    try:
        assert dialog.last_error.startswith(f"{path}: the PACS configuration can't be read")
        assert not dialog.add_button.isEnabled()
    finally:
        dialog.close()
        dialog.deleteLater()
    assert path.read_text(encoding="utf-8") == "{not json"


@pytest.mark.slow
def test_round_trip_against_orthanc(tmp_path: Path) -> None:
    """Echo, search, retrieve and open in the main window, against a real Orthanc."""
    from tests.e2e.orthanc import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("RADASSIST_REQUIRE_ORTHANC"):
            pytest.fail(f"the Orthanc tests can't run: {reason}")
        pytest.skip(reason)
    from tests.qt.pacs_orthanc_scenario import run_in_namespace

    results = run_in_namespace(tmp_path / "work")
    assert "fatal" not in results, results.get("fatal")
    assert results["interfaces"] == ["lo"]
    steps = results["steps"]
    assert re.fullmatch(r"✔ \d+ ms", steps["echo"])
    assert steps["search_count"] == 1
    assert steps["row"] == {
        "patient": "E2E, Round Trip",
        "patient_id": "RA-E2E-0001",
        "n_series": 3,
        "n_instances": 5,
        "modality": "CT, MR",
    }
    assert steps["retrieved"] == 5
    assert steps["folders"] == [steps["expected_folder"]]
    assert steps["opened_studies"] == [steps["study_uid"]]
    assert steps["opened_instances"] == 5
    assert steps["shown_series"] is True
    for name, pattern in (
        ("refused", r"^connection refused by 127\.0\.0\.1:4243 \(check that the PACS"),
        (
            "unknown_ae",
            r"^NOT_ORTHANC@127\.0\.0\.1:4242 rejected the association \(Called AE title not "
            r"recognised",
        ),
    ):
        assert "\n" not in steps[name]
        assert re.match(pattern, steps[name]), steps[name]
