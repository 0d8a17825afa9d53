"""ReviewController: the reader's truth per label — per study, saved and audited on every change."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPoint, Qt, Signal
from PySide6.QtWidgets import QDialog, QMenu, QWidget

from desktop_app.infra.errors import describe
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.privacy.audit import AuditLog
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.canvas import ImageCanvas
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.overlays import OverlayController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.controllers.view import ViewController
from desktop_app.qt.findings_panel import FindingsPanelWidget, label_text
from desktop_app.qt.reader_dialog import ReaderNameDialog
from desktop_app.qt.viewer import ViewerWidget
from desktop_app.review.state import (
    ABSENT,
    PENDING,
    PRESENT,
    UNCERTAIN,
    FindingReview,
    ReviewState,
    reasons_for,
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
    """Holds the review state of each study opened and applies the reader's verdicts (present /
    absent / uncertain per label), missed findings, notes, boxes and thresholds to the shown
    one; the writer saves (atomically) and audits each. The first verdict of a session without
    a reader's name asks for it once (:class:`ReaderNameDialog`, not blocking: the verdict is
    applied when the dialog closes)."""

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
        self.view = view
        self.overlays = overlays
        self.feedback = feedback
        self.reviews: dict[str, ReviewState] = {}  # study UID -> state
        self.selected: str | None = None
        self.reason_menu: QMenu | None = None
        self.label_menu: QMenu | None = None
        self.reader_dialog: ReaderNameDialog | None = None
        self._asked_reader = False
        self.adding_label: str | None = None  # "Add finding": the label whose box is drawn
        self.startup_problems: list[str] = []
        self.store = store or default_store(self.startup_problems)
        self.audit = audit if audit is not None else default_audit(self.startup_problems)
        self._writer_relay = _WriterRelay(self)
        self._writer_relay.error.connect(feedback.show_error)
        self.writer = ReviewWriter(self.store, self.audit, self._writer_relay.error.emit)

        panel.findingSelected.connect(self.select_finding)
        panel.thresholdChanged.connect(self.set_threshold)
        panel.truthRequested.connect(self._on_panel_truth)
        panel.clearRequested.connect(self.clear_finding)
        panel.noteEdited.connect(self.set_note)
        panel.editBoxRequested.connect(lambda _fid: view.toggle_edit_tool())
        panel.resetBoxRequested.connect(lambda fid: self.edit_box(fid, None))
        self.canvas.shapeClicked.connect(self.select_finding)
        self.canvas.boxEdited.connect(self._on_box_edited)
        self.canvas.boxDrawn.connect(self._on_box_drawn)
        viewer.frameShown.connect(lambda _i: self.redraw())

    # ------------------------------------------------------------------ state
    def reviewer(self) -> str:
        return str(self.prefs.get("review/reviewer"))

    def set_reader_name(self, name: str) -> None:
        """Keep the reader's name in Settings; the open reviews take it from now on."""
        self.prefs.set("review/reviewer", name)
        self.prefs.sync()
        for state in self.reviews.values():
            state.reviewer = name

    def with_reader(self, apply: Callable[[], None]) -> None:
        """Call ``apply`` (a verdict) once the reader is named: at once when Settings hold a
        name (or it was asked already this session), else after the reader's name dialog
        closes (OK keeps the name; Cancel records the verdict without one)."""
        if self.reviewer() or self._asked_reader:
            apply()
            return
        if self.reader_dialog is not None:
            return  # already asking: this key press is dropped, the first verdict waits
        self._asked_reader = True
        dialog = ReaderNameDialog(self.host)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def done(result: int) -> None:
            self.reader_dialog = None
            if result == QDialog.DialogCode.Accepted and dialog.name():
                self.set_reader_name(dialog.name())
            else:
                self.feedback.message("verdicts are recorded without a reader's name (Settings)")
            apply()

        dialog.finished.connect(done)
        self.reader_dialog = dialog
        dialog.open()

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
        if state is not None and state.lesion_problems:  # the rest of the review is there
            self.feedback.show_error(state.lesion_problems[0])
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
            truth=finding.truth,
            verdict=finding.verdict,
            probability=round(finding.probability, 6),
            threshold=finding.verdict_threshold,
            agreement=state.agreement(finding),
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
        if f.shown_slice_index != self.viewer.index:
            self.viewer.set_index(f.shown_slice_index)
        box = f.shown_box
        if box is not None and (state.positive(f) or f.truth == PRESENT):  # negatives: quiet
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
    def set_truth(self, finding_id: str, truth: str, reason: str | None = None) -> None:
        """The reader's verdict on a label. One that disagrees with the model's call and has
        no reason asks for one first (a menu of the reasons that fit the call)."""
        state = self.current_state()
        if state is None:
            return
        try:
            f = state.find(finding_id)
        except KeyError:
            return
        positive = state.positive(f)
        disagrees = truth != UNCERTAIN and (truth == PRESENT) != positive
        if disagrees and not reason:
            self._ask_reason(finding_id, truth, positive)
            return
        self.with_reader(
            lambda: self._apply_truth(finding_id, truth, reason if disagrees else None)
        )

    def _apply_truth(self, finding_id: str, truth: str, reason: str | None) -> None:
        state = self.current_state()
        if state is None:
            return
        try:
            f = state.set_truth(finding_id, truth, reason, self.reviewer())
        except (KeyError, ValueError) as err:
            self.feedback.show_error(str(err))
            return
        if reason:
            self.panel.reason.setCurrentIndex(max(0, self.panel.reason.findData(reason)))
        action = "uncertain" if truth == UNCERTAIN else "reject" if reason else "accept"
        self._changed(f, action, **({"reason": reason} if reason else {}))

    def accept_finding(self, finding_id: str) -> None:
        """Agree with the model's call: present when positive, absent when negative."""
        state = self.current_state()
        if state is not None:
            with contextlib.suppress(KeyError):
                f = state.find(finding_id)
                self.set_truth(finding_id, PRESENT if state.positive(f) else ABSENT)

    def reject_finding(self, finding_id: str, reason: str) -> None:
        """Disagree with the model's call, for ``reason``."""
        state = self.current_state()
        if state is not None:
            with contextlib.suppress(KeyError):
                f = state.find(finding_id)
                self.set_truth(finding_id, ABSENT if state.positive(f) else PRESENT, reason)

    def _on_panel_truth(self, finding_id: str, truth: str, reason: str) -> None:
        self.set_truth(finding_id, truth, reason or None)

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

    def uncertain_selected(self) -> None:
        if self.selected is not None:
            self.set_truth(self.selected, UNCERTAIN)

    def clear_selected(self) -> None:
        if self.selected is not None:
            self.clear_finding(self.selected)

    def reject_selected(self, reason: str | None = None) -> None:
        """Disagree with the model's call on the selected label; without a reason, a menu of
        the reasons that fit the call pops up at the finding (keys 1–5 pick one; Esc leaves
        the label as it was)."""
        state, fid = self.current_state(), self.selected
        if state is None or fid is None:
            return
        if reason is not None:
            self.reject_finding(fid, reason)
            return
        with contextlib.suppress(KeyError):
            positive = state.positive(state.find(fid))
            self._ask_reason(fid, ABSENT if positive else PRESENT, positive)

    def _ask_reason(self, finding_id: str, truth: str, positive: bool) -> None:
        menu = QMenu(self.host)
        menu.setObjectName("reasonMenu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for i, (code, text) in enumerate(reasons_for(positive).items(), start=1):
            act = menu.addAction(f"&{i}  {text}")
            act.triggered.connect(
                lambda _c=False, c=code, f=finding_id, t=truth: self.set_truth(f, t, c)
            )
        card = self.panel.cards.get(finding_id)
        where = card.mapToGlobal(QPoint(20, card.height())) if card else self.host.cursor().pos()
        menu.popup(where)
        self.reason_menu = menu

    # ------------------------------------------------------------------ missed findings
    def start_add_finding(self, label: str | None = None) -> None:
        """ "Add finding": pick the label (a menu), then drag its box on the shown image. N
        again while drawing cancels."""
        if self.adding_label is not None:
            self._end_add_finding()
            return
        state, key = self.current_state(), self.shown.key
        findings = state.for_series(key) if state is not None and key is not None else []
        if not findings:
            self.feedback.show_error(
                "run the model on this series first (Ctrl+Enter): a missed finding is recorded "
                "against one of the model's labels"
            )
            return
        if label is None:
            menu = QMenu(self.host)
            menu.setObjectName("addFindingMenu")
            menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            for f in findings:  # the model's label order
                act = menu.addAction(label_text(f.label))
                act.triggered.connect(lambda _c=False, lb=f.label: self.start_add_finding(lb))
            centre = self.canvas.rect().center()
            menu.popup(self.canvas.mapToGlobal(centre))
            self.label_menu = menu
            return
        if label not in {f.label for f in findings}:
            self.feedback.show_error(f"the model has no label {label!r} on this series")
            return
        self.adding_label = label
        self.canvas.tool = ImageCanvas.TOOL_DRAW
        self.canvas.setCursor(Qt.CursorShape.CrossCursor)
        self.panel.set_message(
            f"Add finding: drag the box of {label_text(label)} on this image (N again cancels)",
            "warning",
        )

    def _end_add_finding(self) -> None:
        self.adding_label = None
        self.view.set_tool(ImageCanvas.TOOL_PAN)
        self.canvas.unsetCursor()
        self.panel.set_message("", "info")

    def _on_box_drawn(self, box: Sequence[float]) -> None:
        label = self.adding_label
        if label is None:
            return
        self._end_add_finding()
        x, y, w, h = box
        self.with_reader(lambda: self.add_missed_finding(label, (x, y, w, h)))

    def add_missed_finding(self, label: str, box: Box) -> None:
        """Record ``label`` present at ``box`` on the shown image, with no model box."""
        state, entry = self.current_state(), self.shown.entry
        if state is None or entry is None:
            return
        index = self.viewer.index
        ref = entry.stack.slices[index]
        try:
            f = state.add_missed(
                entry.key,
                label,
                box,
                slice_index=index,
                sop_instance_uid=ref.instance.sop_instance_uid,
                frame=ref.frame,
                reviewer=self.reviewer(),
            )
        except (KeyError, ValueError) as err:
            self.feedback.show_error(str(err))
            return
        self.selected = f.finding_id
        self.panel.select(f.finding_id)
        self._changed(f, "add_finding", box=[round(v, 1) for v in box])

    def mark_remaining_absent(self) -> None:
        """A normal study: every label of the shown series without a verdict is absent."""
        state, key = self.current_state(), self.shown.key
        if state is None or key is None:
            return
        if not any(f.truth == PENDING for f in state.for_series(key)):
            self.feedback.message("every label of this series has a verdict already", 4000)
            return
        self.with_reader(lambda: self._apply_remaining_absent(key))

    def _apply_remaining_absent(self, key: str) -> None:
        state = self.current_state()
        if state is None or self.shown.key != key:
            return
        ids = state.mark_remaining_absent(key, self.reviewer())
        called = [fid for fid in ids if state.positive(state.find(fid))]
        self.save(state)
        for fid in ids:
            f = state.find(fid)
            self.writer.audit(
                "review",
                study_hash=uid_hash(state.study_uid),
                series_hash=uid_hash(f.series_uid),
                label=f.label,
                action="all_absent",
                truth=f.truth,
                verdict=f.verdict,
                probability=round(f.probability, 6),
                threshold=f.verdict_threshold,
                agreement=state.agreement(f),
                reviewer=f.reviewer,
                model_sha256=state.model.sha256 if state.model else "",
            )
        self.panel.refresh()
        self.redraw()
        extra = f" ({len(called)} of them the model calls positive)" if called else ""
        self.feedback.message(f"{len(ids)} label(s) marked absent{extra}", 6000)
        for fid in ids:
            self.reviewChanged.emit(fid)
