"""review.sitecal: the findings panel's line for a model's site calibration."""

from __future__ import annotations

import pytest

from desktop_app.review.sitecal import site_calibration_text

ENTRY = {
    "n": 143,
    "sensitivity": {"value": 0.82, "ci95": [0.70, 0.90]},
    "specificity": {"value": 0.91, "ci95": [0.86, 0.95]},
}


@pytest.mark.parametrize(
    ("source", "cases"), [("reviews", "143 reviewed cases"), ("manifest", "143 labelled images")]
)
def test_the_line_names_what_was_measured(source: str, cases: str) -> None:
    block = {"source": source, "labels": {"nodule": ENTRY}}
    assert site_calibration_text(block, "nodule") == (
        f"at this site: sensitivity 0.82 (0.70–0.90), specificity 0.91 (0.86–0.95) on {cases}"
    )


@pytest.mark.parametrize(
    "block",
    [None, {}, {"labels": {}}, {"labels": {"nodule": {"sensitivity": "high"}}}],
)
def test_nothing_usable_is_no_line(block: object) -> None:
    assert site_calibration_text(block, "nodule") is None  # type: ignore[arg-type]
