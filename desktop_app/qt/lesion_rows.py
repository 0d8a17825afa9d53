"""LesionListWidget: a segmentation's lesions in the findings panel, one row each ("L1 nodule —
7.2 cm³ · 24 mm · mean 48 HU (max 95) · Im 17–20 · p 0.93") with Accept / Reject (a reason from
the false-positive list) and the verdict; a click on a row goes to the lesion's largest slice.
The widget shows and emits; the lesion controller applies the verdicts to the review."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop_app.inference.lesiontext import format_volume, slice_span
from desktop_app.qt.lesion_overlay import ACCEPTED, REJECTED, LesionView
from desktop_app.qt.plaintext import plain_label, shown
from desktop_app.review.state import reasons_for

ACCEPTED_COLOR = "#5fb36b"
REJECTED_COLOR = "#8a9099"
MUTED = "#aab0b8"


def lesion_text(view: LesionView, namer: Callable[[int], str]) -> str:
    """The row's measurements after its name (each part only when known)."""
    parts = []
    if view.volume_mm3 is not None:
        parts.append(format_volume(view.volume_mm3))
    if view.longest_diameter_mm is not None:
        parts.append(f"{view.longest_diameter_mm:.0f} mm")
    if view.mean_value is not None:
        extra = f" (max {view.max_value:.0f})" if view.max_value is not None else ""
        parts.append(f"mean {view.mean_value:.0f} HU{extra}")
    lo, hi = sorted((view.first_slice, view.last_slice))
    parts.append(slice_span(namer(lo), namer(hi)))
    if view.confidence is not None:
        parts.append(f"p\u00a0{view.confidence:.2f}")  # the model's mean probability inside it
    return " · ".join(parts)


def verdict_line(view: LesionView) -> tuple[str, str]:
    """The verdict in words and its colour."""
    source = "drawn by the reader · " if view.source == "reader" else ""
    if view.verdict == ACCEPTED:
        return f"{source}✓ Accepted", ACCEPTED_COLOR
    if view.verdict == REJECTED:
        why = reasons_for(True).get(view.reason or "", view.reason or "")
        return f"{source}✗ Rejected" + (f" — {why}" if why else ""), REJECTED_COLOR
    return f"{source}Pending review", MUTED


class LesionRowWidget(QFrame):
    """One lesion: colour dot, name and measurements, verdict, Accept / Reject."""

    clicked = Signal(int)  # lesion id
    acceptRequested = Signal(int)
    rejectRequested = Signal(int, str)  # lesion id, reason code
    clearRequested = Signal(int)

    def __init__(self, view: LesionView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lesion_id = view.lesion_id
        self.view = view
        self.setObjectName("lesionRow")
        self.setProperty("selected", False)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.dot = QLabel("●", self)
        self.title = plain_label(QLabel("", self))
        self.title.setObjectName("lesionTitle")
        self.title.setWordWrap(True)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.verdict = plain_label(QLabel("", self))
        self.verdict.setObjectName("lesionVerdict")
        self.verdict.setWordWrap(True)
        self.verdict.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.accept_button = QPushButton("✓ Accept", self)
        self.accept_button.setObjectName("lesionAccept")
        self.reject_button = QPushButton("✗ Reject", self)
        self.reject_button.setObjectName("lesionReject")
        self.reasons = QMenu(self.reject_button)
        for code, text in reasons_for(True).items():
            action = self.reasons.addAction(text)
            action.triggered.connect(
                lambda _c=False, code=code: self.rejectRequested.emit(self.lesion_id, code)
            )
        top = QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(self.dot, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.title, 1)
        bottom = QHBoxLayout()
        bottom.setSpacing(6)
        bottom.addWidget(self.verdict, 1)
        bottom.addWidget(self.accept_button)
        bottom.addWidget(self.reject_button)
        box = QVBoxLayout(self)
        box.setContentsMargins(8, 6, 8, 6)
        box.setSpacing(4)
        box.addLayout(top)
        box.addLayout(bottom)
        self.accept_button.clicked.connect(self._on_accept)
        self.reject_button.clicked.connect(self._on_reject)

    def update_from(self, view: LesionView, namer: Callable[[int], str], reviewable: bool) -> None:
        self.view = view
        self.dot.setStyleSheet(f"color: {view.color};")
        label = view.label.replace("_", " ")
        self.title.setText(shown(f"{view.name} {label} — {lesion_text(view, namer)}", 200))
        text, color = verdict_line(view)
        self.verdict.setText(text)
        self.verdict.setStyleSheet(f"color: {color};")
        self.accept_button.setText("Undo ✓" if view.verdict == ACCEPTED else "✓ Accept")
        self.reject_button.setText("Undo ✗" if view.verdict == REJECTED else "✗ Reject")
        for button in (self.accept_button, self.reject_button):
            button.setEnabled(reviewable)
            button.setToolTip("" if reviewable else "Reviewing lesions needs a saved review")
        why = (
            f"; p {view.confidence:.2f}: the model's mean probability inside it"
            if view.confidence is not None
            else ""
        )
        self.setToolTip(f"{view.name}: go to its largest slice, {namer(view.largest_slice)}{why}")

    def _on_accept(self) -> None:
        if self.view.verdict == ACCEPTED:
            self.clearRequested.emit(self.lesion_id)
        else:
            self.acceptRequested.emit(self.lesion_id)

    def _on_reject(self) -> None:
        if self.view.verdict == REJECTED:
            self.clearRequested.emit(self.lesion_id)
        else:
            self.reasons.popup(
                self.reject_button.mapToGlobal(self.reject_button.rect().bottomLeft())
            )

    def set_selected(self, selected: bool) -> None:
        self.setProperty("selected", selected)
        self.setStyleSheet(
            f"#lesionRow {{ border: 2px solid {self.view.color}; }}" if selected else ""
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.clicked.emit(self.lesion_id)
        super().mousePressEvent(event)


class LesionListWidget(QWidget):
    """The lesion rows of the shown series, under a one-line summary (hidden when the series
    has no segmentation result)."""

    lesionClicked = Signal(int)
    acceptRequested = Signal(int)
    rejectRequested = Signal(int, str)
    clearRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lesionList")
        self.summary = plain_label(QLabel("", self))
        self.summary.setObjectName("lesionSummary")
        self.summary.setWordWrap(True)
        self.rows_layout = QVBoxLayout()
        self.rows_layout.setSpacing(4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.summary)
        layout.addLayout(self.rows_layout)
        self.rows: dict[int, LesionRowWidget] = {}
        self.views: list[LesionView] = []
        self.selected: int | None = None
        self.namer: Callable[[int], str] = lambda index: f"#{index + 1}"
        self.unreliable = False
        self._summary_text = ""
        self.hide()

    def set_unreliable(self, unreliable: bool) -> None:
        """Mark the summary when the series' run is flagged (out of its model's intended input,
        or slices unlike its training data): the findings panel's warning says which."""
        if unreliable != self.unreliable:
            self.unreliable = unreliable
            self._show_summary()

    def _show_summary(self) -> None:
        mark = "⚠ Unreliable (see the warning above) · " if self.unreliable else ""
        self.summary.setText(shown(mark + self._summary_text, 340))

    def set_lesions(
        self,
        views: Sequence[LesionView] | None,
        model_text: str = "",
        reviewable: bool = False,
    ) -> None:
        """Show ``views`` (None: the series has no segmentation result: hide)."""
        if views is None:
            self._clear_rows()
            self.views = []
            self.hide()
            return
        ids = [v.lesion_id for v in views]
        if ids != list(self.rows):
            self._clear_rows()
            for view in views:
                row = LesionRowWidget(view, self)
                row.clicked.connect(self.lesionClicked)
                row.acceptRequested.connect(self.acceptRequested)
                row.rejectRequested.connect(self.rejectRequested)
                row.clearRequested.connect(self.clearRequested)
                self.rows_layout.addWidget(row)
                self.rows[view.lesion_id] = row
        self.views = list(views)
        for view in views:
            self.rows[view.lesion_id].update_from(view, self.namer, reviewable)
        model = f" · {model_text}" if model_text else ""
        if not views:
            self._summary_text = f"No lesion found{model}"
        else:
            accepted = sum(v.verdict == ACCEPTED for v in views)
            rejected = sum(v.verdict == REJECTED for v in views)
            pending = len(views) - accepted - rejected
            noun = "lesion" if len(views) == 1 else "lesions"
            self._summary_text = (
                f"{len(views)} {noun}: {accepted} accepted, {rejected} rejected, "
                f"{pending} pending{model}"
            )
        self._show_summary()
        if self.selected not in self.rows:
            self.selected = None
        self.select(self.selected)
        self.show()

    def _clear_rows(self) -> None:
        for row in self.rows.values():
            row.setParent(None)
            row.deleteLater()
        self.rows.clear()

    def select(self, lesion_id: int | None) -> None:
        self.selected = lesion_id if lesion_id in self.rows else None
        for lid, row in self.rows.items():
            row.set_selected(lid == self.selected)


__all__ = [
    "LesionListWidget",
    "LesionRowWidget",
    "format_volume",
    "lesion_text",
    "slice_span",
    "verdict_line",
]
