"""Regenerate the GUI screenshots in this folder (browser, viewer, findings, review, tags).

Run under a real X server so that Qt's xcb platform draws what a user sees:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_screenshots.py \
        [--model FILE] [--out docs/screenshots]

It opens the bundled sample studies (synthetic phantoms, no patient data) in a MainWindow on
fresh temporary settings and data folder, runs the model (``--model`` or the bundled one),
scripts a few review actions and grabs the window after each step.
"""

from __future__ import annotations

import argparse
import sys

from shots import SAMPLE, Session, grab, open_and_show, parse_args, wait


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the bundled one)")
    args = parse_args(__doc__, parser)
    out = args.out
    session = Session()
    sys.setswitchinterval(0.002)
    window = session.window(args.width, args.height, model=args.model or "")
    if not open_and_show(window, [SAMPLE], timeout_s=300):
        print("error: the samples did not open", file=sys.stderr)
        return 1
    xr = next(e for e in window.studies.entries if e.modality in ("DX", "CR"))
    ct = next(e for e in window.studies.entries if e.modality == "CT")
    window.studies.show_stack(ct.key)
    wait(lambda: window.viewer.frame is not None, 300)
    wait(lambda: all(window.browser.has_thumbnail(e.key) for e in window.studies.entries), 60)
    window.acts["toggle_tags"].trigger()
    wait(lambda: len(window.tags.rows) > 0, 30)
    grab(window, out / "browser.png")
    window.tags.search.setText("0028,10")
    wait(lambda: "of" in window.tags.status.text(), 5)
    grab(window, out / "tags.png")
    window.tags.search.setText("")
    window.findings_dock.raise_()

    window.studies.show_stack(xr.key)
    wait(lambda: window.viewer.frame is not None, 300)
    done: list[str] = []
    failed: list[str] = []
    window.runs.inferenceDone.connect(done.append)
    window.runs.inferenceFailed.connect(failed.append)
    window.runs.run_inference()
    if not wait(lambda: bool(done or failed), 600) or failed:
        print(f"error: inference failed: {failed[0] if failed else 'timeout'}", file=sys.stderr)
        return 1
    grab(window, out / "viewer.png")

    state = window.review.current_state()
    assert state is not None
    findings = sorted(state.for_series(xr.key), key=lambda f: -f.probability)
    # The findings panel: where the model gave a below-threshold label a real score (5 % or
    # more), a reader lowers its threshold with the live slider; a label at ~0 % is left alone
    # (making it "positive" at threshold 0 would only show a meaningless box).
    second = findings[1] if len(findings) > 1 else None
    if second is not None and second.probability >= 0.05:
        card = window.findings.cards[second.finding_id]
        card.slider.setValue(max(0, round(second.probability * 1000) - 50))
    else:
        second = None
    window.review.select_finding(findings[0].finding_id)
    grab(window, out / "findings.png")

    # The review: accept the top finding with a note, reject another, edit the box.
    window.review.accept_finding(findings[0].finding_id)
    window.review.set_note(
        findings[0].finding_id, "Well-defined, about 2 cm; compare with prior films."
    )
    if second is not None:
        window.review.reject_finding(second.finding_id, "fp_normal_anatomy")
    window.review.select_finding(findings[0].finding_id)
    window.findings.select(findings[0].finding_id)
    window.acts["tool_edit"].trigger()
    grab(window, out / "review.png")
    window.review.writer.flush()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
