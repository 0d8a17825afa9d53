"""FindingsPanelWidget: the model's findings for the shown series, and the reader's review.

One card per label: probability (a bar with the operating threshold marked), a live threshold
slider that re-decides the model's call at once (``review.state``; the model is not run again),
the reader's verdict (present / absent / uncertain) with its agreement with the call (TP / FP /
TN / FN, re-derived when the threshold moves; the verdict itself never changes), and, when the
model carries a site calibration, the site's sensitivity and specificity. Below the cards, the
selected label's review: present, absent, uncertain, clear, the reason (the list fits the
model's call), edit the box, and a free-text note. The panel only shows state and emits what
the reader asked for; the review controller applies it to the review state.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal, SignalInstance
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGraphicsOpacityEffect,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from desktop_app import RESEARCH_USE_NOTICE
from desktop_app.inference.overlays import label_colour
from desktop_app.qt.lesion_rows import LesionListWidget
from desktop_app.qt.plaintext import plain_label, shown
from desktop_app.qt.theme import ACCENT, NEGATIVE, POSITIVE, WARNING
from desktop_app.review.sitecal import site_calibration_text
from desktop_app.review.state import (
    ABSENT,
    PENDING,
    PRESENT,
    REJECT_REASONS,
    UNCERTAIN,
    FindingReview,
    ReviewState,
    agreement,
    reasons_for,
)

SLIDER_STEPS = 1000
ACCEPTED_COLOR = "#5fb36b"
REJECTED_COLOR = "#8a9099"


def label_text(label: str) -> str:
    """A model label as shown (plain text: put it into rich text through ``html.escape``)."""
    return shown(label.replace("_", " ").capitalize(), 80)


def label_color(index: int) -> str:
    """The colour of the label at ``index`` in the model's label order: the same as in the
    exported overlay images (``inference.overlays.label_colour``)."""
    r, g, b = label_colour(index)
    return f"#{r:02x}{g:02x}{b:02x}"


TRUTH_TEXT = {PRESENT: "✓ Present", ABSENT: "✗ Absent", UNCERTAIN: "? Uncertain"}
AGREEMENT_TEXT = {
    "TP": "agrees (TP)",
    "TN": "agrees (TN)",
    "FP": "model false positive (FP)",
    "FN": "model false negative (FN)",
}


def verdict_text(finding: FindingReview, positive: bool | None = None) -> str:
    """The reader's verdict in words, with the reason, whether the box was drawn for a missed
    finding, and (given the model's call now) the agreement with it."""
    if finding.truth == PENDING:
        return "Pending review"
    text = f"Reader: {TRUTH_TEXT[finding.truth]}"
    if finding.added:
        text += " (missed by the model, box drawn)"
    if finding.reason:
        text += f" — {REJECT_REASONS.get(finding.reason, finding.reason)}"
    call = agreement(finding.truth, positive) if positive is not None else None
    if call is not None:
        text += f" · {AGREEMENT_TEXT[call]}"
    return text


def finding_color(finding: FindingReview, positive: bool) -> str:
    """The colour of a finding everywhere (card, outline, box): verdict first, then result."""
    if finding.truth == PRESENT:
        return ACCEPTED_COLOR
    if finding.truth == ABSENT:
        return REJECTED_COLOR
    if finding.truth == UNCERTAIN:
        return WARNING
    return POSITIVE if positive else NEGATIVE


class ProbabilityBar(QWidget):
    """A bar filled to the probability, with the operating threshold as a tick."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.probability = 0.0
        self.threshold = 0.5
        self.color = QColor(POSITIVE)
        self.setFixedHeight(8)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_values(self, probability: float, threshold: float, color: str) -> None:
        self.probability, self.threshold, self.color = probability, threshold, QColor(color)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#2a2c30"))
        p.drawRoundedRect(r, 3, 3)
        fill = QRectF(r)
        fill.setWidth(r.width() * min(max(self.probability, 0.0), 1.0))
        p.setBrush(self.color)
        p.drawRoundedRect(fill, 3, 3)
        x = r.left() + r.width() * min(max(self.threshold, 0.0), 1.0)
        p.setPen(QPen(QColor("#f2f3f5"), 2))
        p.drawLine(QPointF(x, r.top() - 1), QPointF(x, r.bottom() + 1))
        p.end()


class FindingCard(QFrame):
    """One label's finding on the shown series."""

    clicked = Signal(str)  # finding id
    thresholdMoved = Signal(str, float, bool)  # label, value, final (slider released)

    def __init__(self, finding: FindingReview, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.finding_id = finding.finding_id
        self.label = finding.label
        self.setObjectName("findingCard")
        self.setProperty("selected", False)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.name = QLabel(label_text(finding.label), self)
        self.name.setObjectName("findingName")
        self.prob = QLabel("", self)
        self.prob.setObjectName("findingProbability")
        self.prob.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.result = QLabel("", self)
        self.result.setObjectName("findingResult")
        self.result.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.result.setFixedWidth(88)
        self.bar = ProbabilityBar(self)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("thresholdSlider")
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setPageStep(50)
        self.slider.setToolTip("Operating threshold for this label (live: the model is not re-run)")
        self.threshold = QLabel("", self)
        self.threshold.setObjectName("thresholdValue")
        self.threshold.setMinimumWidth(34)
        self.threshold.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.verdict = QLabel("", self)
        self.verdict.setObjectName("findingVerdict")
        self.verdict.setWordWrap(True)
        self.verdict.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.where = QLabel("", self)
        self.where.setObjectName("findingWhere")
        self.where.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.site = QLabel("", self)
        self.site.setObjectName("siteCalibration")
        self.site.setWordWrap(True)
        self.site.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.site.setStyleSheet("color: #aab0b8;")
        self.site.hide()

        grid = QGridLayout(self)
        grid.setContentsMargins(10, 8, 10, 8)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(5)
        grid.addWidget(self.name, 0, 0)
        grid.addWidget(self.prob, 0, 1)
        grid.addWidget(self.result, 0, 2)
        grid.addWidget(self.bar, 1, 0, 1, 3)
        thr_row = QHBoxLayout()
        thr_row.setSpacing(8)
        caption = QLabel("Threshold", self)
        caption.setObjectName("caption")
        thr_row.addWidget(caption)
        thr_row.addWidget(self.slider, 1)
        thr_row.addWidget(self.threshold)
        grid.addLayout(thr_row, 2, 0, 1, 3)
        grid.addWidget(self.verdict, 3, 0, 1, 2)
        grid.addWidget(self.where, 3, 1, 1, 2)
        grid.addWidget(self.site, 4, 0, 1, 3)
        grid.setColumnStretch(0, 1)

        self._model_threshold = finding.model_threshold
        self.slider.valueChanged.connect(self._on_slider)
        self.slider.sliderReleased.connect(
            lambda: self.thresholdMoved.emit(self.label, self.slider.value() / SLIDER_STEPS, True)
        )

    def update_from(
        self,
        finding: FindingReview,
        threshold: float,
        positive: bool,
        mark: str = "#ffffff",
        where: str = "",
    ) -> None:
        """``where`` names the finding's slice as the viewer does ("Im 17")."""
        where = where or f"#{finding.slice_index + 1}"
        self._model_threshold = finding.model_threshold
        self.prob.setText(f"{finding.probability * 100:.1f} %")
        self.result.setText("POSITIVE" if positive else "negative")
        self.result.setProperty("positive", positive)
        color = finding_color(finding, positive)
        self.result.setStyleSheet(
            f"color: {'#101113' if positive else NEGATIVE}; background: "
            f"{POSITIVE if positive else 'transparent'}; border: 1px solid "
            f"{POSITIVE if positive else NEGATIVE}; border-radius: 3px; padding: 1px 4px; "
            "font-weight: bold;"
        )
        self.bar.set_values(finding.probability, threshold, color)
        self.slider.blockSignals(True)
        self.slider.setValue(round(threshold * SLIDER_STEPS))
        self.slider.blockSignals(False)
        self._show_threshold(threshold)
        self.verdict.setText(verdict_text(finding, positive))
        self.verdict.setStyleSheet(
            f"color: {finding_color(finding, positive) if finding.decided else '#aab0b8'};"
        )
        changed = abs(threshold - finding.model_threshold) > 1e-9
        model = f"model {finding.model_threshold:.2f} · " if changed else ""
        self.where.setText(f"{model}{where}")
        self.setToolTip(
            f"{label_text(finding.label)}: probability {finding.probability:.3f}, operating "
            f"threshold {threshold:.2f} (the model's: {finding.model_threshold:.2f}); "
            f"maximum on {where}"
        )
        self.name.setText(
            f"<span style='color:{mark}'>●</span>&nbsp;<span style='color:{color}'>"
            f"<b>{html.escape(label_text(finding.label))}</b></span>"
        )

    def set_unreliable(self, unreliable: bool) -> None:
        """Grey the card out: its run was outside the model's intended input or its images
        unlike the training data, so its probability is not to be trusted."""
        if unreliable == self.property("unreliable"):
            return
        self.setProperty("unreliable", unreliable)
        effect = self.graphicsEffect()
        if effect is None:
            effect = QGraphicsOpacityEffect(self)
            effect.setOpacity(0.45)
            self.setGraphicsEffect(effect)
        effect.setEnabled(unreliable)
        self.result.setToolTip(
            "Unreliable: see the warning above the findings" if unreliable else ""
        )

    def set_site_text(self, text: str | None) -> None:
        """The site's measured sensitivity and specificity for this label (None: hide)."""
        plain_label(self.site).setText(shown(text or "", None))
        self.site.setVisible(bool(text))

    def _show_threshold(self, value: float) -> None:
        self.threshold.setText(f"{value:.2f}")

    def _on_slider(self, value: int) -> None:
        final = not self.slider.isSliderDown()
        self.thresholdMoved.emit(self.label, value / SLIDER_STEPS, final)

    def set_selected(self, selected: bool) -> None:
        self.setProperty("selected", selected)
        self.style().unpolish(self)
        self.style().polish(self)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.clicked.emit(self.finding_id)
        super().mousePressEvent(event)


class FindingsPanelWidget(QWidget):
    """The right-hand panel: notice, model, cards, and the selected finding's review."""

    findingSelected = Signal(str)
    thresholdChanged = Signal(str, float, bool)  # label, value, final
    truthRequested = Signal(str, str, str)  # finding id, truth, reason code ("": none chosen)
    clearRequested = Signal(str)
    noteEdited = Signal(str, str)  # finding id, text
    editBoxRequested = Signal(str)
    resetBoxRequested = Signal(str)
    runRequested = Signal()
    runAnywayRequested = Signal()  # run a series outside the model's intended input, marked
    modelInfoRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findingsPanel")
        self.notice = QLabel(f"⚠ {RESEARCH_USE_NOTICE}", self)
        self.notice.setObjectName("panelNotice")
        self.notice.setWordWrap(True)
        self.model_label = QLabel("Model: not loaded", self)
        self.model_label.setObjectName("modelLabel")
        self.model_label.setWordWrap(True)
        self.info_button = QPushButton("Model info", self)
        self.run_button = QPushButton("▶ Run model", self)
        self.run_button.setObjectName("runButton")
        self.message = QLabel("", self)
        self.message.setObjectName("panelMessage")
        self.message.setWordWrap(True)
        self.summary = QLabel("", self)
        self.summary.setObjectName("findingsSummary")
        # Why the findings must not be trusted (or why the model did not run): never hidden
        # behind a status-bar message, and kept while the series is shown.
        self.scope_banner = QLabel("", self)
        self.scope_banner.setObjectName("scopeBanner")
        self.scope_banner.setWordWrap(True)
        self.scope_banner.setStyleSheet(
            f"background: #3a2a10; color: {WARNING}; border: 1px solid {WARNING}; "
            "border-radius: 4px; padding: 6px;"
        )
        self.scope_banner.hide()
        self.run_anyway_button = QPushButton("Run anyway (every output marked out of scope)", self)
        self.run_anyway_button.setObjectName("runAnywayButton")
        self.run_anyway_button.hide()
        self._refusal = ""
        # names a slice of the shown stack as the viewer does ("Im 17"); the window sets it
        self.slice_namer: Callable[[int], str] = lambda index: f"#{index + 1}"
        self.cards_host = QWidget(self)
        self.cards_layout = QVBoxLayout(self.cards_host)
        self.cards_layout.setContentsMargins(0, 0, 0, 0)
        self.cards_layout.setSpacing(6)
        # a segmentation's lesions, one row each, above the label cards (LesionController)
        self.lesions = LesionListWidget(self.cards_host)
        self.cards_layout.addWidget(self.lesions)
        self.cards_layout.addStretch(1)
        self.cards_scroll = QScrollArea(self)
        self.cards_scroll.setWidgetResizable(True)
        self.cards_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.cards_scroll.setWidget(self.cards_host)
        self.cards_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.review_box = self._build_review_box()

        head = QHBoxLayout()
        head.addWidget(self.model_label, 1)
        head.addWidget(self.info_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(8)
        layout.addWidget(self.notice)
        layout.addLayout(head)
        layout.addWidget(self.run_button)
        layout.addWidget(self.message)
        layout.addWidget(self.scope_banner)
        layout.addWidget(self.run_anyway_button)
        layout.addWidget(self.summary)
        layout.addWidget(self.cards_scroll, 1)
        layout.addWidget(self.review_box)

        self.cards: dict[str, FindingCard] = {}
        self.label_colors: dict[str, str] = {}
        self.state: ReviewState | None = None
        self.site_calibration: dict[str, object] | None = None
        self.series_key: str | None = None
        self.selected: str | None = None
        self._note_timer = QTimer(self)
        self._note_timer.setSingleShot(True)
        self._note_timer.setInterval(300)
        self._note_timer.timeout.connect(self._emit_note)
        self._note_for: str | None = None

        self.info_button.clicked.connect(self.modelInfoRequested)
        self.run_button.clicked.connect(self.runRequested)
        self.run_anyway_button.clicked.connect(self.runAnywayRequested)
        self.present_button.clicked.connect(lambda: self._emit_truth(PRESENT))
        self.absent_button.clicked.connect(lambda: self._emit_truth(ABSENT))
        self.uncertain_button.clicked.connect(lambda: self._emit_truth(UNCERTAIN))
        self.clear_button.clicked.connect(lambda: self._emit_for(self.clearRequested))
        self.edit_button.clicked.connect(lambda: self._emit_for(self.editBoxRequested))
        self.reset_box_button.clicked.connect(lambda: self._emit_for(self.resetBoxRequested))
        self.note.textChanged.connect(self._on_note_changed)
        self.set_state(None, None)

    def _build_review_box(self) -> QFrame:
        """The selected finding's review: verdict buttons, reason, box edit, note."""
        box = QFrame(self)
        box.setObjectName("reviewBox")
        self.review_title = QLabel("No finding selected", box)
        self.review_title.setObjectName("reviewTitle")
        self.present_button = QPushButton("✓ Present", box)
        self.present_button.setObjectName("presentButton")
        self.absent_button = QPushButton("✗ Absent", box)
        self.absent_button.setObjectName("absentButton")
        self.uncertain_button = QPushButton("? (Q)", box)
        self.uncertain_button.setObjectName("uncertainButton")
        self.uncertain_button.setToolTip("Uncertain (Q)")
        self.clear_button = QPushButton("Clear (U)", box)
        self.reason = QComboBox(box)
        self.reason.setObjectName("reasonCombo")
        self._set_reasons(True)
        self.reason.setPlaceholderText("Reason (asked when you disagree)")
        self.reason.setCurrentIndex(-1)
        self.edit_button = QPushButton("Edit box  (E)", box)
        self.edit_button.setCheckable(True)
        self.reset_box_button = QPushButton("Model's box", box)
        self.note = QPlainTextEdit(box)
        self.note.setObjectName("noteEdit")
        self.note.setPlaceholderText("Note on this finding (saved as you type)…  (C)")
        self.note.setTabChangesFocus(True)
        self.note.setFixedHeight(64)
        self.decided = QLabel("", box)
        self.decided.setObjectName("decidedLabel")
        self.decided.setWordWrap(True)
        reason_caption = QLabel("Reason", box)
        reason_caption.setObjectName("caption")
        rb = QVBoxLayout(box)
        rb.setContentsMargins(10, 8, 10, 8)
        rb.setSpacing(6)
        rb.addWidget(self.review_title)
        for row_widgets in (
            (
                (self.present_button, 1),
                (self.absent_button, 1),
                (self.uncertain_button, 0),
                (self.clear_button, 0),
            ),
            ((reason_caption, 0), (self.reason, 1)),
            ((self.edit_button, 1), (self.reset_box_button, 1)),
        ):
            row = QHBoxLayout()
            for widget, stretch in row_widgets:
                row.addWidget(widget, stretch)
            rb.addLayout(row)
        rb.addWidget(self.note)
        rb.addWidget(self.decided)
        return box

    def sizeHint(self) -> QSize:
        return QSize(380, 600)

    # ------------------------------------------------------------------ content
    def set_model_text(self, text: str) -> None:
        plain_label(self.model_label).setText(shown(text, None))

    def set_site_calibration(self, block: dict[str, object] | None) -> None:
        """The loaded model's site calibration (its manifest's ``site_calibration``; None when
        it has none): each card then shows the site's sensitivity and specificity."""
        self.site_calibration = block
        self.refresh()

    def set_message(self, text: str, kind: str = "info") -> None:
        """A line under the run button: progress, "no findings yet", or an error."""
        color = {"error": POSITIVE, "warning": WARNING}.get(kind, "#aab0b8")
        self.message.setStyleSheet(f"color: {color};")
        plain_label(self.message).setText(shown(text, None))
        self.message.setVisible(bool(text))

    def show_refusal(self, reason: str) -> None:
        """The model was not run on the shown series: ``reason`` (one line) and "Run anyway"."""
        self._refusal = reason
        self.refresh()

    def _scope_lines(self) -> list[str]:
        """The banner's lines: a refusal, or what the saved run's input check says."""
        if self._refusal:
            return [f"Not run: {self._refusal}"]
        check = self.state.input_check(self.series_key) if self.state else None
        return check.warnings() if check is not None else []

    def _show_banner(self) -> None:
        lines = self._scope_lines()
        # each line escaped on its own: the break between them is ours
        text = "\n".join(f"⚠ {shown(line, None)}" for line in lines)
        plain_label(self.scope_banner).setText(text)
        self.scope_banner.setVisible(bool(lines))
        self.run_anyway_button.setVisible(bool(self._refusal))

    def set_state(self, state: ReviewState | None, series_key: str | None) -> None:
        """Show ``state``'s findings on ``series_key`` (rebuilds the cards unless the same
        findings are shown already: a re-run then only refreshes them)."""
        self.flush_note()
        if series_key != self.series_key or (
            state is not None and state.for_series(series_key or "")
        ):
            self._refusal = ""  # another series, or findings now: the refusal is past
        findings = state.for_series(series_key) if state and series_key else []
        same = (
            state is self.state
            and series_key == self.series_key
            and [f.finding_id for f in sorted(findings, key=lambda f: -f.probability)]
            == list(self.cards)
        )
        self.state = state
        self.series_key = series_key
        if same and findings:
            self.refresh()
            return
        for card in self.cards.values():
            card.setParent(None)
            card.deleteLater()
        self.cards.clear()
        self.label_colors = {f.label: label_color(i) for i, f in enumerate(findings)}
        findings.sort(key=lambda f: -f.probability)
        for f in findings:
            card = FindingCard(f, self.cards_host)
            card.clicked.connect(self.findingSelected)
            card.thresholdMoved.connect(self.thresholdChanged)
            self.cards_layout.insertWidget(self.cards_layout.count() - 1, card)
            self.cards[f.finding_id] = card
        if self.selected not in self.cards:
            self.selected = None
        self.refresh()

    def finding_ids(self) -> list[str]:
        """The shown findings, in panel order (highest probability first)."""
        return list(self.cards)

    def refresh(self) -> None:
        """Re-read every shown finding from the state (after any change)."""
        state = self.state
        self._show_banner()
        check = state.input_check(self.series_key) if state else None
        unreliable = check is not None and check.flagged
        self.lesions.set_unreliable(unreliable)
        if state is not None:
            for fid, card in self.cards.items():
                card.set_unreliable(unreliable)
                f = state.find(fid)
                card.update_from(
                    f,
                    state.threshold(f.label),
                    state.positive(f),
                    self.label_colors.get(f.label, "#ffffff"),
                    self.slice_namer(f.slice_index),
                )
                card.set_site_text(site_calibration_text(self.site_calibration, f.label))
                card.set_selected(fid == self.selected)
        shown = [state.find(fid) for fid in self.cards] if state else []
        if shown and state is not None:
            pos = sum(1 for f in shown if state.positive(f))
            by = {t: sum(1 for f in shown if f.truth == t) for t in (PRESENT, ABSENT, UNCERTAIN)}
            pending = len(shown) - sum(by.values())
            missed = sum(1 for f in shown if state.agreement(f) == "FN")
            self.summary.setText(
                f"{pos} positive of {len(shown)}  ·  reader: {by[PRESENT]} present, "
                f"{by[ABSENT]} absent, {by[UNCERTAIN]} uncertain, {pending} pending"
                + (f"  ·  {missed} missed by the model" if missed else "")
            )
        elif self._refusal or not self.lesions.isHidden():
            self.summary.setText("")  # the banner, or the lesion rows, say what there is
        else:
            self.summary.setText("No findings for this series yet — run the model (Ctrl+Enter)")
        self.summary.setVisible(bool(self.summary.text()))
        self._refresh_review_box()

    def select(self, finding_id: str | None) -> None:
        if finding_id is not None and finding_id not in self.cards:
            return
        if finding_id != self.selected:
            self.flush_note()
        self.selected = finding_id
        for fid, card in self.cards.items():
            card.set_selected(fid == finding_id)
        if finding_id is not None:
            self.cards_scroll.ensureWidgetVisible(self.cards[finding_id])
        self._refresh_review_box(load_note=True)

    def _refresh_review_box(self, load_note: bool = False) -> None:
        f = self._selected_finding()
        enabled = f is not None
        for w in (
            self.present_button,
            self.absent_button,
            self.uncertain_button,
            self.clear_button,
            self.reason,
            self.edit_button,
            self.reset_box_button,
            self.note,
        ):
            w.setEnabled(enabled)
        if f is None:
            self.review_title.setText("Select a finding to review it (J / K)")
            self.decided.setText("")
            if load_note or self.note.toPlainText():
                self.note.blockSignals(True)
                self.note.setPlainText("")
                self.note.blockSignals(False)
            return
        state = self.state
        assert state is not None
        positive = state.positive(f)
        self._set_reasons(positive)
        agree, disagree = "(A)", "(D)"
        self.present_button.setText(f"✓ Present  {agree if positive else disagree}")
        self.absent_button.setText(f"✗ Absent  {disagree if positive else agree}")
        self.review_title.setText(
            f"<b>{label_text(f.label)}</b> — {f.probability * 100:.1f} % · "
            f"{'positive' if positive else 'negative'} · {self.slice_namer(f.slice_index)}"
        )
        self.reset_box_button.setEnabled(f.edited_box is not None)
        self.reset_box_button.setText("Remove drawn box" if f.added else "Model's box")
        self.reason.setCurrentIndex(self.reason.findData(f.reason) if f.reason else -1)
        when = (f.updated or "").replace("T", " ")[:19]
        by = f" by {f.reviewer}" if f.reviewer else ""
        self.decided.setText(
            f"{verdict_text(f)}{by} · {when} UTC" if f.updated else "Not reviewed yet"
        )
        if f.edited_box is not None and not f.added:
            self.decided.setText(self.decided.text() + " · box edited")
        if f.verdict_threshold is not None and f.verdict_probability is not None:
            call = "positive" if f.model_positive_at_verdict else "negative"
            self.decided.setText(
                self.decided.text() + f" · model then: {call} "
                f"(p {f.verdict_probability:.3f}, threshold {f.verdict_threshold:.2f})"
            )
        if load_note:
            self.note.blockSignals(True)
            self.note.setPlainText(f.note)
            self.note.blockSignals(False)

    def _selected_finding(self) -> FindingReview | None:
        if self.state is None or self.selected is None:
            return None
        try:
            return self.state.find(self.selected)
        except KeyError:
            return None

    # ------------------------------------------------------------------ actions
    def _emit_for(self, signal: SignalInstance) -> None:
        if self.selected is not None:
            signal.emit(self.selected)

    def _emit_truth(self, truth: str) -> None:
        """The reader's verdict on the selected label, with the reason shown ("" if none is
        chosen: the controller asks for one when the verdict disagrees with the model)."""
        if self.selected is not None:
            self.truthRequested.emit(self.selected, truth, self.current_reason())

    def _set_reasons(self, positive: bool) -> None:
        """Offer the reasons that fit a disagreement with this call (false positive or false
        negative), keeping the shown one when it is in both lists."""
        codes = reasons_for(positive)
        if [self.reason.itemData(i) for i in range(self.reason.count())] == list(codes):
            return
        current = self.reason.currentData()
        self.reason.blockSignals(True)
        self.reason.clear()
        for code, text in codes.items():
            self.reason.addItem(text, code)
        self.reason.setCurrentIndex(self.reason.findData(current) if current in codes else -1)
        self.reason.blockSignals(False)

    def current_reason(self) -> str:
        data = self.reason.currentData()
        return str(data) if data else ""

    def focus_note(self) -> None:
        if self.note.isEnabled():
            self.note.setFocus()

    def _on_note_changed(self) -> None:
        self._note_for = self.selected
        self._note_timer.start()

    def _emit_note(self) -> None:
        if self._note_for is not None:
            self.noteEdited.emit(self._note_for, self.note.toPlainText())
        self._note_for = None

    def flush_note(self) -> None:
        """Deliver a note still being typed (before the selection or the series changes)."""
        if self._note_timer.isActive():
            self._note_timer.stop()
            self._emit_note()


__all__ = ["ACCENT", "FindingCard", "FindingsPanelWidget", "ProbabilityBar", "finding_color"]
