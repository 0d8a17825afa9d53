"""training.sitecal: the site rule, the version of a site-calibrated model, refusals, and one
label's measurement (plain arrays); training.metrics' specificity rule."""

from __future__ import annotations

import numpy as np
import pytest

from desktop_app.infra.errors import ConfigError
from training.metrics import choose_threshold, confusion
from training.sitecal import (
    SiteRule,
    calibrate_site,
    measure_label,
    next_site_version,
    parse_rule,
    refusal,
)


class TestParseRule:
    @pytest.mark.parametrize(
        ("text", "rule"),
        [
            ("youden", SiteRule("youden")),
            ("Sensitivity:0.9", SiteRule("sensitivity", 0.9)),
            ("specificity:0.95", SiteRule("specificity", 0.95)),
        ],
    )
    def test_valid(self, text: str, rule: SiteRule) -> None:
        assert parse_rule(text) == rule

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("f1", "unknown --rule 'f1'"),
            ("youden:0.5", "unknown --rule 'youden:0.5'"),
            ("sensitivity", "unknown --rule 'sensitivity'"),
            ("specificity:1", "the specificity target must be a number between 0 and 1"),
            ("sensitivity:x", "the sensitivity target must be a number between 0 and 1"),
        ],
    )
    def test_invalid(self, text: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            parse_rule(text)

    def test_text_round_trips(self) -> None:
        assert parse_rule(SiteRule("sensitivity", 0.9).text) == SiteRule("sensitivity", 0.9)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("1", "1-site1"),
        ("1-site1", "1-site2"),
        ("2.0-site9", "2.0-site10"),
        ("a-site", "a-site-site1"),
    ],
)
def test_next_site_version(before: str, after: str) -> None:
    assert next_site_version(before) == after


def test_refusal_names_the_label_and_what_is_needed() -> None:
    assert refusal("nodule", 12, 30, 10) is None
    assert refusal("nodule", 1, 4, 5) == (
        "label 'nodule' not calibrated: 1 positive case and 4 negative cases, at least 5 of "
        "each needed to choose a threshold; it keeps its threshold"
    )


class TestSpecificityRule:
    def test_lowest_threshold_keeping_the_specificity(self) -> None:
        y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
        p = np.linspace(0.05, 0.95, 10)
        t = choose_threshold(y, p, "specificity", target_specificity=0.8)
        cm = confusion(y, p, t.value)
        assert cm["tn"] / (cm["tn"] + cm["fp"]) >= 0.8
        lower = choose_threshold(y, p, "specificity", target_specificity=0.6).value
        assert lower < t.value  # a looser target admits a lower (more sensitive) cut
        assert confusion(y, p, lower) == {"tp": 5, "fp": 2, "tn": 3, "fn": 0}
        assert confusion(y, p, t.value) == {"tp": 5, "fp": 1, "tn": 4, "fn": 0}

    def test_unreachable_specificity_is_a_cut_above_every_score(self) -> None:
        y = np.array([0, 1, 0, 1])
        p = np.array([0.9, 0.2, 0.3, 0.1])
        t = choose_threshold(y, p, "specificity", target_specificity=0.99)
        assert t.value > 0.9 and "above every score" in t.note


class TestMeasureLabel:
    def _cases(self, seed: int = 0, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        y = (rng.random(n) < 0.3).astype(float)
        z = 2.5 * (2 * y - 1) + rng.normal(0, 1.5, n)
        return y, 1 / (1 + np.exp(-z / 3.0))  # under-confident: T = 3 was too much

    def test_temperature_is_refitted_and_calibration_improves(self) -> None:
        y, p = self._cases()
        result = measure_label(
            y, p, threshold_before=0.5, temperature_before=3.0, rule=SiteRule("youden"), n_boot=0
        )
        e = result.entry
        assert result.temperature is not None and result.temperature < 3.0
        assert e["ece_after"] < e["ece_before"]
        assert e["auroc"]["value"] > 0.9 and e["auroc"]["ci95"] == [None, None]
        assert e["n"] == 200 and e["positives"] == int(y.sum())
        assert e["prevalence"] == pytest.approx(y.mean(), abs=1e-4)

    def test_without_temperatures_only_the_threshold_moves(self) -> None:
        y, p = self._cases(1)
        result = measure_label(
            y, p, threshold_before=0.9, temperature_before=None, rule=SiteRule("youden"), n_boot=50
        )
        assert (
            result.temperature is None and result.entry["ece_after"] == result.entry["ece_before"]
        )
        assert result.threshold == choose_threshold(y, p, "youden").value
        sens = result.entry["sensitivity"]
        lo, hi = sens["ci95"]
        assert lo < sens["value"] < hi

    def test_sensitivity_target_is_reached(self) -> None:
        y, p = self._cases(2)
        e = measure_label(
            y, p, threshold_before=0.5, temperature_before=1.0,
            rule=SiteRule("sensitivity", 0.95), n_boot=0,
        ).entry  # fmt: skip
        assert e["sensitivity"]["value"] >= 0.95


def test_calibrate_site_keeps_refused_labels() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(60) < 0.5).astype(float)
    p = np.clip(y * 0.3 + rng.random(60) * 0.7, 0, 1)
    site = calibrate_site(
        {"a": (y, p), "b": (np.array([1.0, 0.0]), np.array([0.8, 0.1]))},
        labels=("a", "b", "c"),
        thresholds={"a": 0.5, "b": 0.4, "c": 0.3},
        temperatures=None,
        rule=SiteRule("youden"),
        n_boot=0,
        provenance={"source": "manifest", "n_cases": 60},
    )
    assert site.calibrated == ["a"] and set(site.refused) == {"b", "c"}
    assert site.thresholds["b"] == 0.4 and site.thresholds["c"] == 0.3
    assert site.block["refused"]["c"] == {"positives": 0, "negatives": 0, "needed": 10}
    assert site.block["source"] == "manifest" and site.block["rule"] == "youden"
    assert site.temperatures is None
