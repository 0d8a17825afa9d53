"""File ▸ Query/Retrieve (PACS)…: pick a node, search its studies, retrieve them, open them.

Every network operation (C-ECHO, C-FIND, C-GET/C-MOVE) runs in a :class:`TaskChannel` worker on
a small thread pool of its own, under the node's timeouts (:class:`pacs.Timeouts`), so the
dialog never waits on the network: a refused, silent or rejecting PACS ends in a one-line
message in the dialog. Stop abandons the request at once (its late outcome is dropped) and asks
the worker to abort the association. Retrieved instances go into the local store by hashed
UIDs; when a retrieve ends, :attr:`PacsDialog.studiesRetrieved` carries the store folders of
the studies, which the main window opens. Patient names and IDs are shown, never logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QDate, QSettings, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QDialog,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop_app.infra.errors import ConfigError, PacsError, RadAssistError
from desktop_app.pacs.dimse import PacsClient, Timeouts
from desktop_app.pacs.nodes import NodeConfig, PacsNode
from desktop_app.pacs.query import (
    STUDY_COLUMNS,
    RetrievePlan,
    StudyQuery,
    StudyRow,
    preset_range,
    study_rows,
)
from desktop_app.pacs.store import LocalStore
from desktop_app.qt.pacs_jobs import RetrieveSummary, pacs_pool, retrieve_all
from desktop_app.qt.pacs_nodes import NodeEditor
from desktop_app.qt.plaintext import plain_label, shown, tooltip
from desktop_app.qt.theme import NEGATIVE, POSITIVE
from desktop_app.qt.workers import TaskChannel

log = logging.getLogger(__name__)

MODALITIES = ("", "CR", "CT", "DX", "MG", "MR", "NM", "PT", "US", "XA", "RF", "SR", "OT")
DATE_PRESETS = (
    ("Any date", "any"),
    ("Today", "today"),
    ("Yesterday", "yesterday"),
    ("Last 7 days", "last7"),
    ("Last 30 days", "last30"),
    ("Between…", "range"),
)
DEFAULT_TIMEOUT_S = 10.0
UID_ROLE = Qt.ItemDataRole.UserRole + 1
NO_NODE = "No PACS node is configured (add one with “Add…”)"

_PRIMARY = (
    "QPushButton:enabled { background: #27507a; border-color: #3d8bd9; font-weight: bold; }"
    "QPushButton:enabled:hover { background: #2d5d8c; }"
)


class PacsDialog(QDialog):
    """Query/retrieve against the configured PACS nodes.

    ``config_path``: the node file (default: the one the CLI uses, ``pacs.json`` in the data
    folder); ``store``: where retrieved instances go (default: the data folder's store);
    ``settings``: a QSettings for the last node and the timeout; ``timeouts``: fixed timeouts
    (tests) instead of the one from the timeout box.
    """

    studiesRetrieved = Signal(object)  # list[Path]: the store folder of each retrieved study
    echoFinished = Signal(str)  # the one-line outcome (success or error)
    searchFinished = Signal(int)  # number of studies shown
    retrieveFinished = Signal(object)  # RetrieveSummary
    errorShown = Signal(str)  # every one-line error the dialog shows

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        config_path: str | Path | None = None,
        store: LocalStore | None = None,
        settings: QSettings | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("pacsDialog")
        self.setWindowTitle("Query/Retrieve (PACS)")
        self.setWindowFlag(Qt.WindowType.WindowMaximizeButtonHint, True)
        self.resize(1120, 680)
        self._config_path = config_path
        self._store = store
        self._settings = settings
        self._fixed_timeouts = timeouts
        self.config = NodeConfig(Path(config_path) if config_path else Path())
        self._config_broken = False
        self.rows: list[StudyRow] = []
        self._active: dict[str, bool] = {"echo": False, "find": False, "retrieve": False}

        self.echo_channel = TaskChannel("pacs-echo", self, pacs_pool())
        self.find_channel = TaskChannel("pacs-find", self, pacs_pool())
        self.retrieve_channel = TaskChannel("pacs-retrieve", self, pacs_pool())

        layout = QVBoxLayout(self)
        layout.setSpacing(8)
        layout.addWidget(self._build_node_box())
        layout.addWidget(self._build_query_box())
        layout.addWidget(self._build_results(), 1)
        layout.addLayout(self._build_footer())
        self._wire_channels()
        find = QShortcut(QKeySequence("Ctrl+F"), self)
        find.activated.connect(lambda: self.patient_name.setFocus())
        self.reload_nodes()

    # ------------------------------------------------------------------ layout
    def _build_node_box(self) -> QGroupBox:
        box = QGroupBox("PACS node", self)
        row = QHBoxLayout(box)
        self.node_combo = QComboBox(box)
        self.node_combo.setObjectName("nodeCombo")
        self.node_combo.setMinimumWidth(340)
        self.node_combo.currentIndexChanged.connect(self._on_node_changed)
        self.add_button = QPushButton("Add…", box)
        self.add_button.setObjectName("addNodeButton")
        self.add_button.clicked.connect(lambda: self.edit_node(None))
        self.edit_button = QPushButton("Edit…", box)
        self.edit_button.setObjectName("editNodeButton")
        self.edit_button.clicked.connect(lambda: self.edit_node(self.current_node()))
        self.remove_button = QPushButton("Remove", box)
        self.remove_button.setObjectName("removeNodeButton")
        self.remove_button.clicked.connect(lambda: self.remove_current_node(confirm=True))
        self.timeout_spin = QDoubleSpinBox(box)
        self.timeout_spin.setObjectName("timeoutSpin")
        self.timeout_spin.setRange(1.0, 120.0)
        self.timeout_spin.setDecimals(0)
        self.timeout_spin.setSuffix(" s")
        self.timeout_spin.setToolTip(
            "How long to wait for the connection and the association; each reply may take "
            "up to six times as long"
        )
        self.timeout_spin.setValue(self._stored_timeout())
        self.timeout_spin.valueChanged.connect(self._store_timeout)
        self.echo_button = QPushButton("Echo", box)
        self.echo_button.setObjectName("echoButton")
        self.echo_button.setToolTip("C-ECHO: check that the node answers")
        self.echo_button.clicked.connect(self.echo)
        self.echo_label = QLabel("", box)
        self.echo_label.setObjectName("echoLabel")
        self.echo_label.setMinimumWidth(140)
        row.addWidget(self.node_combo, 1)
        row.addWidget(self.add_button)
        row.addWidget(self.edit_button)
        row.addWidget(self.remove_button)
        row.addSpacing(16)
        row.addWidget(QLabel("Timeout", box))
        row.addWidget(self.timeout_spin)
        row.addSpacing(16)
        row.addWidget(self.echo_button)
        row.addWidget(self.echo_label)
        return box

    def _build_query_box(self) -> QGroupBox:
        box = QGroupBox("Find studies", self)
        grid = QGridLayout(box)
        grid.setHorizontalSpacing(10)
        self.patient_name = QLineEdit(box)
        self.patient_name.setObjectName("patientNameEdit")
        self.patient_name.setPlaceholderText("e.g. DOE^J (starts with; * ? wildcards)")
        self.patient_id = QLineEdit(box)
        self.patient_id.setObjectName("patientIdEdit")
        self.patient_id.setPlaceholderText("exact, or with * and ?")
        self.accession = QLineEdit(box)
        self.accession.setObjectName("accessionEdit")
        self.date_preset = QComboBox(box)
        self.date_preset.setObjectName("datePreset")
        for text, key in DATE_PRESETS:
            self.date_preset.addItem(text, key)
        self.date_from = QDateEdit(box)
        self.date_from.setObjectName("dateFrom")
        self.date_to = QDateEdit(box)
        self.date_to.setObjectName("dateTo")
        today = QDate.currentDate()
        for edit, value in ((self.date_from, today.addDays(-30)), (self.date_to, today)):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setDate(value)
            edit.setEnabled(False)
        self.date_preset.currentIndexChanged.connect(self._on_date_preset)
        self.modality = QComboBox(box)
        self.modality.setObjectName("modalityCombo")
        self.modality.setEditable(True)
        for m in MODALITIES:
            self.modality.addItem(m or "Any")
        self.search_button = QPushButton("Search", box)
        self.search_button.setObjectName("searchButton")
        self.search_button.setDefault(True)
        self.search_button.setStyleSheet(_PRIMARY)
        self.search_button.setMinimumWidth(90)
        self.search_button.setAutoDefault(True)
        self.search_button.clicked.connect(self.search)
        self.clear_button = QPushButton("Clear", box)
        self.clear_button.setObjectName("clearButton")
        self.clear_button.clicked.connect(self.clear_form)
        for line in (self.patient_name, self.patient_id, self.accession):
            line.setClearButtonEnabled(True)
            line.returnPressed.connect(self.search)

        def label(text: str) -> QLabel:
            lab = QLabel(text, box)
            lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return lab

        dates = QHBoxLayout()
        dates.addWidget(self.date_preset)
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel(" to ", box))
        dates.addWidget(self.date_to)
        dates.addStretch(1)
        grid.addWidget(label("Patient name"), 0, 0)
        grid.addWidget(self.patient_name, 0, 1)
        grid.addWidget(label("Patient ID"), 0, 2)
        grid.addWidget(self.patient_id, 0, 3)
        grid.addWidget(label("Accession"), 0, 4)
        grid.addWidget(self.accession, 0, 5)
        grid.addWidget(label("Study date"), 1, 0)
        grid.addLayout(dates, 1, 1, 1, 3)
        grid.addWidget(label("Modality"), 1, 4)
        grid.addWidget(self.modality, 1, 5)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.search_button)
        grid.addLayout(buttons, 0, 6, 2, 1)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(3, 2)
        grid.setColumnStretch(5, 2)
        return box

    def _build_results(self) -> QTableView:
        self.model = QStandardItemModel(0, len(STUDY_COLUMNS), self)
        self.model.setHorizontalHeaderLabels(list(STUDY_COLUMNS))
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for column in (6, 7):  # the counts
            self.model.setHeaderData(
                column, Qt.Orientation.Horizontal, right, Qt.ItemDataRole.TextAlignmentRole
            )
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView(self)
        self.table.setObjectName("resultsTable")
        self.table.setStyleSheet("QTableView::item { padding-left: 3px; }")  # under the header
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(2, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        for column, width in enumerate((220, 130, 100, 90, 260, 110, 64, 80)):
            self.table.setColumnWidth(column, width)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.table.doubleClicked.connect(lambda _i: self.retrieve())
        return self.table

    def _build_footer(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.status = QLabel("", self)
        self.status.setObjectName("pacsStatus")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("pacsProgress")
        self.progress.setFixedWidth(220)
        self.progress.hide()
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop the search or retrieve (Esc)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        self.retrieve_button = QPushButton("Retrieve", self)
        self.retrieve_button.setObjectName("retrieveButton")
        self.retrieve_button.setToolTip(
            "Copy the selected studies into the local store and open them"
        )
        self.retrieve_button.setStyleSheet(_PRIMARY)
        self.retrieve_button.setAutoDefault(False)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.close_button = QPushButton("Close", self)
        self.close_button.setObjectName("closeButton")
        self.close_button.setAutoDefault(False)
        self.close_button.clicked.connect(self.close)
        row.addWidget(self.status, 1)
        row.addWidget(self.progress)
        row.addWidget(self.stop_button)
        row.addSpacing(12)
        row.addWidget(self.retrieve_button)
        row.addWidget(self.close_button)
        return row

    def _wire_channels(self) -> None:
        self.echo_channel.finished.connect(self._on_echo_done)
        self.echo_channel.failed.connect(self._on_echo_failed)
        self.echo_channel.cancelled.connect(lambda: self._end("echo"))
        self.find_channel.finished.connect(self._on_find_done)
        self.find_channel.failed.connect(lambda m: self._fail("find", m))
        self.find_channel.cancelled.connect(lambda: self._stopped("find", "Search stopped"))
        self.retrieve_channel.progressed.connect(self._on_retrieve_progress)
        self.retrieve_channel.finished.connect(self._on_retrieve_done)
        self.retrieve_channel.failed.connect(lambda m: self._fail("retrieve", m))
        self.retrieve_channel.cancelled.connect(
            lambda: self._stopped("retrieve", "Retrieve stopped; instances already received stay")
        )

    # ------------------------------------------------------------------ nodes
    def reload_nodes(self, select: str | None = None) -> None:
        """Re-read the node file (the CLI may have changed it) and refill the picker."""
        try:
            self.config = NodeConfig.load(self._config_path)
            self._config_broken = False
        except ConfigError as err:
            # Never overwrite a node file we could not read: the user may want to fix it.
            self.config = NodeConfig(err.path or Path())
            self._config_broken = True
            self.show_error(err.one_line())
        wanted = select or self._setting("pacs/node", "")
        self.node_combo.blockSignals(True)
        self.node_combo.clear()
        for node in sorted(self.config.nodes.values(), key=lambda n: n.name.lower()):
            self.node_combo.addItem(node.describe(), node.name)
        index = self.node_combo.findData(wanted)
        self.node_combo.setCurrentIndex(index if index >= 0 else 0)
        self.node_combo.blockSignals(False)
        if self._config_broken:
            pass  # the error line stays
        elif not self.config.nodes:
            self.node_combo.setPlaceholderText("no node configured")
            self.set_status(NO_NODE, "warning")
        elif self.status.property("kind") == "warning":
            self.set_status("")
        self._on_node_changed()

    def current_node(self) -> PacsNode | None:
        name = self.node_combo.currentData()
        return self.config.nodes.get(name) if name else None

    def _on_node_changed(self, _index: int = -1) -> None:
        self.echo_label.setText("")
        node = self.current_node()
        if node is not None and self._settings is not None:
            self._settings.setValue("pacs/node", node.name)
        self._update_buttons()

    def edit_node(self, node: PacsNode | None) -> NodeEditor:
        """Open the node editor (non-blocking); saving writes the node file atomically."""
        existing = set(self.config.nodes)
        editor = NodeEditor(node, self.config.local, existing, self)
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        editor.accepted.connect(lambda: self._save_node(editor, node.name if node else None))
        editor.open()
        self.node_editor = editor
        return editor

    def _save_node(self, editor: NodeEditor, old_name: str | None) -> None:
        new, local = editor.result_node, editor.result_local
        if new is None or local is None:
            return
        if old_name is not None and old_name != new.name:
            self.config.nodes.pop(old_name, None)
        self.config.add(new, replace_existing=True)
        self.config.local = local
        if self._write_config():
            self.reload_nodes(select=new.name)
            self.set_status(f"Saved node {new.describe()}", "ok")

    def remove_current_node(self, confirm: bool = True) -> bool:
        node = self.current_node()
        if node is None:
            return False
        if confirm:
            answer = QMessageBox.question(
                self, "Remove PACS node", f"Remove the node {node.describe()}?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        self.config.nodes.pop(node.name, None)
        if not self._write_config():
            return False
        self.reload_nodes()
        if self.config.nodes:
            self.set_status(f"Removed node {node.name}", "ok")
        return True

    def _write_config(self) -> bool:
        try:
            self.config.save()
        except (OSError, RadAssistError) as err:
            reason = err.one_line() if isinstance(err, RadAssistError) else str(err)
            self.show_error(f"can't save the PACS nodes: {reason}")
            return False
        return True

    # ------------------------------------------------------------------ timeouts / settings
    def _setting(self, key: str, default: str) -> str:
        if self._settings is None:
            return default
        value = self._settings.value(key, default)
        return default if value is None or isinstance(value, (list, tuple)) else str(value)

    def _stored_timeout(self) -> float:
        try:
            value = float(self._setting("pacs/timeout_s", str(DEFAULT_TIMEOUT_S)))
        except ValueError:
            value = DEFAULT_TIMEOUT_S
        return min(max(value, 1.0), 120.0)

    def _store_timeout(self, value: float) -> None:
        if self._settings is not None:
            self._settings.setValue("pacs/timeout_s", float(value))

    def timeouts(self) -> Timeouts:
        if self._fixed_timeouts is not None:
            return self._fixed_timeouts
        t = float(self.timeout_spin.value())
        return Timeouts(connect=t, acse=t, dimse=max(6 * t, 30.0), network=max(6 * t, 60.0))

    def _client(self) -> PacsClient | None:
        node = self.current_node()
        if node is None:
            self.show_error(NO_NODE)
            return None
        return PacsClient(node, self.config.local, self.timeouts())

    # ------------------------------------------------------------------ echo
    def echo(self) -> bool:
        client = self._client()
        if client is None:
            return False
        self._active["echo"] = True
        self.echo_label.setStyleSheet("")
        self.echo_label.setText("Echo…")
        self._update_buttons()
        self.echo_channel.submit(lambda _p, _s: client.echo())
        return True

    def _on_echo_done(self, seconds: float) -> None:
        if not self._end("echo"):
            return
        text = f"✔ {seconds * 1000:.0f} ms"
        self.echo_label.setStyleSheet(f"color: {NEGATIVE};")
        self.echo_label.setText(text)
        node = self.current_node()
        where = node.describe() if node else "the node"
        self.set_status(f"C-ECHO to {where} answered in {seconds * 1000:.0f} ms", "ok")
        self.echoFinished.emit(text)

    def _on_echo_failed(self, message: str) -> None:
        if not self._end("echo"):
            return
        self.echo_label.setStyleSheet(f"color: {POSITIVE};")
        self.echo_label.setText("✖ failed")
        self.show_error(message)
        self.echoFinished.emit(message)

    # ------------------------------------------------------------------ search
    def query(self) -> StudyQuery:
        """The form as a query (raises PacsError for a backwards date range)."""
        preset = self.date_preset.currentData()
        start: dt.date | None
        end: dt.date | None
        if preset == "range":
            start = self.date_from.date().toPython()  # type: ignore[assignment]
            end = self.date_to.date().toPython()  # type: ignore[assignment]
        else:
            start, end = preset_range(str(preset), dt.date.today())
        modality = self.modality.currentText().strip()
        return StudyQuery(
            patient_name=self.patient_name.text(),
            patient_id=self.patient_id.text(),
            date_from=start,
            date_to=end,
            modality="" if modality.lower() == "any" else modality,
            accession=self.accession.text(),
        )

    def search(self) -> bool:
        """C-FIND at study level in a worker; the table fills when it answers."""
        client = self._client()
        if client is None:
            return False
        try:
            filters = self.query().filters()
        except PacsError as err:
            self.show_error(err.one_line())
            return False
        self._active["find"] = True
        self._begin(f"Searching {client.node.describe()}…")

        def work(_progress: Callable[[int, int], None], stop: threading.Event) -> object:
            return study_rows(client.find("STUDY", filters, stop=stop))

        self.find_channel.submit(work)
        return True

    def _on_find_done(self, rows: list[StudyRow]) -> None:
        if not self._end("find"):
            return
        self.set_rows(rows)
        n = len(rows)
        self.set_status(
            f"{n} stud{'y' if n == 1 else 'ies'} found" if n else "No study matches", "ok"
        )
        log.info("PACS search: %d studies", n)
        self.searchFinished.emit(n)

    def set_rows(self, rows: list[StudyRow]) -> None:
        """Fill the results table (counts as numbers, so that they sort as numbers)."""
        self.rows = list(rows)
        sorting = self.table.isSortingEnabled()
        self.table.setSortingEnabled(False)
        self.model.removeRows(0, self.model.rowCount())
        for row in rows:
            items = []
            for column, value in enumerate(row.cells()):
                item = QStandardItem("" if value is None else shown(value))
                item.setData(-1 if value is None else value, Qt.ItemDataRole.UserRole)
                if column >= 6:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                if column == 0:
                    item.setData(row.study_uid, UID_ROLE)
                items.append(item)
            self.model.appendRow(items)
        self.table.setSortingEnabled(sorting)
        if rows:
            self.table.selectRow(0)
        self._update_buttons()

    def clear_form(self) -> None:
        for edit in (self.patient_name, self.patient_id, self.accession):
            edit.clear()
        self.date_preset.setCurrentIndex(0)
        self.modality.setCurrentIndex(0)

    def _on_date_preset(self, _index: int) -> None:
        custom = self.date_preset.currentData() == "range"
        self.date_from.setEnabled(custom)
        self.date_to.setEnabled(custom)

    # ------------------------------------------------------------------ retrieve
    def selected_rows(self) -> list[StudyRow]:
        by_uid = {r.study_uid: r for r in self.rows}
        rows = []
        for index in self.table.selectionModel().selectedRows(0):
            uid = self.proxy.mapToSource(index).data(UID_ROLE)
            if uid in by_uid:
                rows.append(by_uid[uid])
        return rows

    def retrieve(self) -> bool:
        """C-GET / C-MOVE the selected studies into the store, in a worker with progress."""
        if self._active["retrieve"]:
            return False
        rows = self.selected_rows()
        if not rows:
            self.show_error("Select one or more studies to retrieve")
            return False
        client = self._client()
        if client is None:
            return False
        try:
            store = self._store or LocalStore()
        except ConfigError as err:
            self.show_error(err.one_line())
            return False
        uids = [r.study_uid for r in rows]
        plan = RetrievePlan([r.n_instances for r in rows])
        self._active["retrieve"] = True
        how = "C-MOVE" if client.node.retrieve == "move" else "C-GET"
        self._begin(f"Retrieving {len(uids)} stud{'y' if len(uids) == 1 else 'ies'} ({how})…")
        self.progress.setRange(0, max(sum(plan.expected), 1))
        self.progress.setValue(0)
        self.progress.setFormat("%v/%m")

        def work(progress: Callable[[int, int], None], stop: threading.Event) -> object:
            return retrieve_all(client, store, uids, plan, progress, stop)

        self.retrieve_channel.submit(work)
        return True

    def _on_retrieve_progress(self, done: int, total: int) -> None:
        if self._active["retrieve"]:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

    def _on_retrieve_done(self, summary: RetrieveSummary) -> None:
        if not self._end("retrieve"):
            return
        kind = "warning" if (summary.failed or summary.problems) else "ok"
        self.set_status(summary.message(), kind)
        self.retrieveFinished.emit(summary)
        if summary.folders:
            self.studiesRetrieved.emit(list(summary.folders))

    # ------------------------------------------------------------------ state
    def busy(self) -> bool:
        return any(self._active.values())

    def stop(self) -> None:
        """Abandon the running search or retrieve now; the worker aborts its association when
        it next can, and whatever it reports afterwards is dropped."""
        for name, channel in (("find", self.find_channel), ("retrieve", self.retrieve_channel)):
            if self._active[name]:
                channel.cancel()
                self._stopped(name, "Search stopped" if name == "find" else "Retrieve stopped")

    def _begin(self, message: str) -> None:
        self.set_status(message)
        self.progress.setRange(0, 0)
        self.progress.setFormat("")
        self.progress.show()
        self._update_buttons()

    def _end(self, name: str) -> bool:
        """Mark ``name`` finished; False when it had been abandoned (drop its outcome)."""
        was_active = self._active[name]
        self._active[name] = False
        if not (self._active["find"] or self._active["retrieve"]):
            self.progress.hide()
        self._update_buttons()
        return was_active

    def _stopped(self, name: str, message: str) -> None:
        if self._end(name):
            self.set_status(message, "warning")

    def _fail(self, name: str, message: str) -> None:
        if self._end(name):
            self.show_error(message)

    def _update_buttons(self) -> None:
        has_node = self.current_node() is not None
        self.add_button.setEnabled(not self._config_broken)
        working = self._active["find"] or self._active["retrieve"]
        self.edit_button.setEnabled(has_node)
        self.remove_button.setEnabled(has_node)
        self.echo_button.setEnabled(has_node and not self._active["echo"])
        self.search_button.setEnabled(not working)
        self.stop_button.setEnabled(working)
        has_selection = bool(self.table.selectionModel().selectedRows(0))
        self.retrieve_button.setEnabled(has_selection and not working)

    def set_status(self, message: str, kind: str = "") -> None:
        color = {"ok": "#aab0b8", "warning": "#e0a030", "error": POSITIVE}.get(kind, "#aab0b8")
        self.status.setStyleSheet(f"color: {color};")
        self.status.setProperty("kind", kind)
        plain_label(self.status).setText(shown(message, None))
        self.status.setToolTip(tooltip(message))

    def show_error(self, message: str) -> None:
        """One line in the dialog (the caller's message is already one line)."""
        line = " ".join(message.split())
        log.warning("PACS dialog: %s", line)  # the core's messages carry no patient data
        self.last_error = line
        self.set_status(f"✖ {line}", "error")
        self.errorShown.emit(line)

    def keyPressEvent(self, event: object) -> None:  # type: ignore[override]
        key = getattr(event, "key", lambda: None)()
        if key == Qt.Key.Key_Escape and self.busy():
            self.stop()  # Esc stops a running search or retrieve before it closes the dialog
            return
        super().keyPressEvent(event)  # type: ignore[arg-type]

    def shutdown(self, timeout_ms: int = 0) -> bool:
        """Stop everything; wait up to ``timeout_ms`` for the workers (0: don't wait)."""
        for channel in (self.echo_channel, self.find_channel, self.retrieve_channel):
            channel.cancel()
        for name in self._active:
            self._active[name] = False
        if timeout_ms <= 0:
            return True
        return all(
            c.wait_idle(timeout_ms)
            for c in (self.echo_channel, self.find_channel, self.retrieve_channel)
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop()
        super().closeEvent(event)
