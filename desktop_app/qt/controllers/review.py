"""ReviewController: the reader's review of the findings — per study, saved on every change."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPoint, Qt, Signal
from PySide6.QtWidgets import QMenu, QWidget

from desktop_app.infra.errors import describe
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.privacy.audit import AuditLog
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.overlays import OverlayController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.controllers.view import ViewController
from desktop_app.qt.findings_panel import FindingsPanelWidget
from desktop_app.qt.viewer import ViewerWidget
from desktop_app.review.state import (
    REJECT_REASONS,
    FindingReview,
    ReviewState,
)
from desktop_app.review.store import ReviewStore
from desktop_app.review.writer import ReviewWriter

Box = tuple[float, float, float, float]


class _WriterRelay(QObject):
    """Carries the review writer's error lines (from its thread) to the GUI thread."""

    error = Signal(str)


def default_store(problems: list[str]) -> ReviewStore:
    """The user data folder's review store; a temporary one (and a problem line) if broken."""
    try:
        return ReviewStore()
    except Exception as err:  # a broken data folder must not stop the viewer
        folder = Path(tempfile.mkdtemp(prefix="radassist-reviews-"))
        problems.append(
            f"reviews can't be kept in the data folder ({describe(err)}); this session's "
            f"reviews go to {folder} — copy them before you log out"
        )
        return ReviewStore(folder)


def default_audit(problems: list[str]) -> AuditLog | None:
    try:
        return AuditLog()
    except Exception as err:
        problems.append(f"no audit trail this session: {describe(err)}")
        return None


class ReviewController(QObject):
    """Holds the review state of each study opened and applies the reader's verdicts, notes,
    boxes and thresholds to the shown one; the writer saves (atomically) and audits each."""

    reviewChanged = Signal(str)  # finding id

    def __init__(
        self,
        host: QWidget,
        shown: Shown,
        prefs: AppSettings,
        panel: FindingsPanelWidget,
        viewer: ViewerWidget,
        view: ViewController,
        overlays: OverlayController,
        feedback: Feedback,
        *,
        store: ReviewStore | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        super().__init__(host)
        self.host = host
        self.shown = shown
        self.prefs = prefs
        self.panel = panel
        self.viewer = viewer
        self.canvas = viewer.canvas
        self.overlays = overlays
        self.feedback = feedback
        self.reviews: dict[str, ReviewState] = {}  # study UID -> state
        self.selected: str | None = None
        self.reason_menu: QMenu | None = None
        self.startup_problems: list[str] = []
        self.store = store or default_store(self.startup_problems)
        self.audit = audit if audit is not None else default_audit(self.startup_problems)
        self._writer_relay = _WriterRelay(self)
        self._writer_relay.error.connect(feedback.show_error)
        self.writer = ReviewWriter(self.store, self.audit, self._writer_relay.error.emit)

        panel.findingSelected.connect(self.select_finding)
        panel.thresholdChanged.connect(self.set_threshold)
        panel.acceptRequested.connect(self.accept_finding)
        panel.rejectRequested.connect(self._on_panel_reject)
        panel.clearRequested.connect(self.clear_finding)
        panel.noteEdited.connect(self.set_note)
        panel.editBoxRequested.connect(lambda _fid: view.toggle_edit_tool())
        panel.resetBoxRequested.connect(lambda fid: self.edit_box(fid, None))
        self.canvas.shapeClicked.connect(self.select_finding)
        self.canvas.boxEdited.connect(self._on_box_edited)
        viewer.frameShown.connect(lambda _i: self.redraw())

    # ------------------------------------------------------------------ state
    def reviewer(self) -> str:
        return str(self.prefs.get("review/reviewer"))

    def current_state(self) -> ReviewState | None:
        uid = self.shown.study_uid
        return self.reviews.get(uid) if uid is not None else None

    def review_for(self, study_uid: str, create: bool = False) -> ReviewState | None:
        """The study's review: kept, else loaded from the store (a file that can't be read is
        quarantined and reported), else a new one when ``create``."""
        state = self.reviews.get(study_uid)
        if state is not None:
            return state
        try:
            state = self.store.load(study_uid)
        except Exception as err:
            moved = None
            with contextlib.suppress(OSError):
                moved = self.store.quarantine(study_uid)
            self.feedback.show_error(
                describe(err) + (f" — kept as {moved.name}" if moved is not None else "")
            )
            state = None
        if state is None and create:
            state = ReviewState(study_uid, reviewer=self.reviewer())
        if state is not None:
            self.reviews[study_uid] = state
        return state

    def save(self, state: ReviewState) -> None:
        self.writer.save(state)

    def redraw(self) -> None:
        """The shown slice's overlays, after the review, the slice or the selection changed."""
        self.overlays.redraw(self.current_state(), self.shown.key, self.selected)

    def _changed(self, finding: FindingReview, action: str, **extra: Any) -> None:
        state = self.current_state()
        if state is None:
            return
        self.save(state)
        self.writer.audit(
            "review",
            study_hash=uid_hash(state.study_uid),
            series_hash=uid_hash(finding.series_uid),
            label=finding.label,
            action=action,
            verdict=finding.verdict,
            reviewer=finding.reviewer or self.reviewer(),
            model_sha256=state.model.sha256 if state.model else "",
            **extra,
        )
        self.panel.refresh()
        self.redraw()
        self.reviewChanged.emit(finding.finding_id)

    # ------------------------------------------------------------------ selection
    def select_finding(self, finding_id: str) -> None:
        """Select a finding: jump to its slice and centre its box (unless the box is already
        well inside the view, so that stepping through findings doesn't jolt the image)."""
        state = self.current_state()
        if state is None:
            return
        try:
            f = state.find(finding_id)
        except KeyError:
            return
        self.selected = finding_id
        self.panel.select(finding_id)
        if f.slice_index != self.viewer.index:
            self.viewer.set_index(f.slice_index)
        box = f.shown_box
        if box is not None:
            x, y, w, h = box
            centre = (x + w / 2, y + h / 2)
            if not self.canvas.box_in_view((*centre, 0.0, 0.0), margin=0.15):
                self.canvas.center_on(*centre)
        self.redraw()

    def step_finding(self, delta: int) -> None:
        ids = self.panel.finding_ids()
        if not ids:
            return
        if self.selected in ids:
            i = (ids.index(self.selected) + delta) % len(ids)
        else:
            i = 0 if delta > 0 else len(ids) - 1
        self.select_finding(ids[i])

    # ------------------------------------------------------------------ verdicts
    def accept_finding(self, finding_id: str) -> None:
        state = self.current_state()
        if state is not None:
            self._changed(state.accept(finding_id, self.reviewer()), "accept")

    def reject_finding(self, finding_id: str, reason: str) -> None:
        state = self.current_state()
        if state is None:
            return
        self.panel.reason.setCurrentIndex(max(0, self.panel.reason.findData(reason)))
        self._changed(state.reject(finding_id, reason, self.reviewer()), "reject", reason=reason)

    def _on_panel_reject(self, finding_id: str, reason: str) -> None:
        if reason:
            self.reject_finding(finding_id, reason)
        else:
            self.select_finding(finding_id)
            self.reject_selected()

    def clear_finding(self, finding_id: str) -> None:
        state = self.current_state()
        if state is not None:
            self._changed(state.clear_verdict(finding_id, self.reviewer()), "clear")

    def set_note(self, finding_id: str, text: str) -> None:
        state = self.current_state()
        if state is None:
            return
        try:
            f = state.set_note(finding_id, text, self.reviewer())
        except (KeyError, ValueError) as err:
            self.feedback.show_error(str(err))
            return
        self._changed(f, "note", note_chars=len(text))

    def edit_box(self, finding_id: str, box: Box | None) -> None:
        state = self.current_state()
        if state is None:
            return
        try:
            f = state.edit_box(finding_id, box, self.reviewer())
        except (KeyError, ValueError) as err:
            self.feedback.show_error(str(err))
            return
        self._changed(f, "edit_box", box=[round(v, 1) for v in box] if box is not None else None)

    def _on_box_edited(self, finding_id: str, box: Sequence[float]) -> None:
        x, y, w, h = box
        self.edit_box(finding_id, (x, y, w, h))

    def set_threshold(self, label: str, value: float, final: bool = True) -> None:
        """The live slider: re-decide ``label`` at ``value`` at once; save when final."""
        state = self.current_state()
        if state is None:
            return
        state.set_threshold(label, value)
        self.panel.refresh()
        self.redraw()
        if final:
            self.save(state)
            self.writer.audit(
                "review",
                study_hash=uid_hash(state.study_uid),
                label=label,
                action="threshold",
                threshold=round(value, 4),
                reviewer=self.reviewer(),
                model_sha256=state.model.sha256 if state.model else "",
            )

    def accept_selected(self) -> None:
        if self.selected is not None:
            self.accept_finding(self.selected)

    def clear_selected(self) -> None:
        if self.selected is not None:
            self.clear_finding(self.selected)

    def reject_selected(self, reason: str | None = None) -> None:
        """Reject the selected finding; without a reason, a menu of the reason codes pops up
        at the finding (keys 1–5 pick one; Esc leaves the finding as it was)."""
        fid = self.selected
        if fid is None:
            return
        if reason is not None:
            self.reject_finding(fid, reason)
            return
        menu = QMenu(self.host)
        menu.setObjectName("reasonMenu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for i, (code, text) in enumerate(REJECT_REASONS.items(), start=1):
            act = menu.addAction(f"&{i}  {text}")
            act.triggered.connect(lambda _c=False, c=code, f=fid: self.reject_finding(f, c))
        card = self.panel.cards.get(fid)
        where = card.mapToGlobal(QPoint(20, card.height())) if card else self.host.cursor().pos()
        menu.popup(where)
        self.reason_menu = menu
