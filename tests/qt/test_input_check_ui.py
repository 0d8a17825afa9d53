"""The GUI side of the input check (issue 13): a series outside the model's intended input is
not run, the panel says why in one line and offers "Run anyway"; a forced or out-of-distribution
run is shown greyed under a banner, the overlay corner says so, and the review, the audit record
and an export from the saved review keep the mark."""

from __future__ import annotations

from desktop_app.privacy.audit import AuditLog
from tests.qt.conftest import SAMPLE_CT, FakeRunner, open_and_wait

REASON = "This model is for chest CR/DX radiographs; this series is CT"


def _window(qtbot, make_window, **kw: object):  # type: ignore[no-untyped-def]
    runner = FakeRunner(**kw)  # type: ignore[arg-type]
    window = make_window(runner=lambda m, d: runner)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    return window, runner


def test_a_refused_series_says_why_and_runs_anyway_marked(qtbot, make_window, data_dir) -> None:
    window, runner = _window(qtbot, make_window, refuse=REASON)
    panel = window.findings
    with qtbot.waitSignal(window.runs.inferenceRefused, timeout=20_000) as refused:
        window.acts["run_inference"].trigger()
    assert refused.args == [REASON]
    assert panel.scope_banner.isVisibleTo(panel)
    assert panel.scope_banner.text() == f"⚠ Not run: {REASON}"
    assert panel.run_anyway_button.isVisibleTo(panel)
    assert not panel.cards and runner.forced == [False]
    assert not window.canvas.shapes()

    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        panel.run_anyway_button.click()
    assert runner.forced == [False, True]
    assert not panel.run_anyway_button.isVisibleTo(panel)
    assert panel.scope_banner.text().startswith("⚠ Outside the model's intended input (run anyway)")
    assert all(card.property("unreliable") for card in panel.cards.values())
    assert all(card.graphicsEffect().isEnabled() for card in panel.cards.values())
    corner = window.canvas.corner_text("tr")
    assert corner[1:3] == ["⚠ UNRELIABLE", "outside its intended input"]  # fits 1280 px
    assert all("unreliable" in s.text and s.dashed for s in window.canvas.shapes())
    state = window.review.current_state()
    assert state is not None
    check = state.input_check(window.shown.key)
    assert check is not None and check.forced and not check.applicable
    window.review.writer.flush()
    record = [r for r in AuditLog(data_dir / "audit.jsonl").records() if r["kind"] == "inference"]
    assert record[-1]["forced"] is True


def test_an_out_of_distribution_run_is_greyed_under_a_banner(qtbot, make_window) -> None:
    window, _ = _window(qtbot, make_window, out_of_distribution=True)
    panel = window.findings
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.acts["run_inference"].trigger()
    assert panel.scope_banner.text().startswith("⚠ Out of distribution")
    assert not panel.run_anyway_button.isVisibleTo(panel)
    assert all(card.property("unreliable") for card in panel.cards.values())


def test_a_run_in_scope_and_in_distribution_shows_no_banner(qtbot, make_window) -> None:
    window, _ = _window(qtbot, make_window)
    panel = window.findings
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.acts["run_inference"].trigger()
    assert not panel.scope_banner.isVisibleTo(panel)
    assert not any(card.property("unreliable") for card in panel.cards.values())
    assert not any("UNRELIABLE" in line for line in window.canvas.corner_text("tr"))


def test_both_warnings_are_lines_of_their_own(qtbot, make_window) -> None:
    window, _ = _window(qtbot, make_window, refuse=REASON, out_of_distribution=True)
    panel = window.findings
    with qtbot.waitSignal(window.runs.inferenceRefused, timeout=20_000):
        window.acts["run_inference"].trigger()
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        panel.run_anyway_button.click()
    lines = panel.scope_banner.text().split("\n")
    assert [line[:12] for line in lines] == ["⚠ Outside th", "⚠ Out of dis"]


def test_the_canvas_label_never_rounds_up_to_certainty() -> None:
    from desktop_app.qt.controllers.overlays import percent_text

    assert [percent_text(p) for p in (0.87, 0.994, 0.998, 0.99999, 1.0)] == [
        "87%", "99%", "99.8%", "99.9%", "100%",
    ]  # fmt: skip
