"""training.calibration: temperature scaling per label and ECE before/after."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import (
    binary_nll,
    calibrated_probs,
    calibration_report,
    fit_temperature,
    fit_temperatures,
    logits_of,
)
from training.metrics import auroc, expected_calibration_error


def _overconfident(n: int, seed: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z) and the logits ``scale * z`` (scale > 1: overconfident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.float64)
    return scale * z, y


class TestFitTemperature:
    def test_recovers_the_overconfidence_factor(self) -> None:
        logits, y = _overconfident(20000, 0, 3.0)
        assert fit_temperature(logits, y) == pytest.approx(3.0, rel=0.08)

    def test_underconfident_scores_get_t_below_one(self) -> None:
        logits, y = _overconfident(20000, 1, 0.5)
        assert fit_temperature(logits, y) == pytest.approx(0.5, rel=0.08)

    def test_lowers_nll_and_ece_on_held_out_data(self) -> None:
        fit_logits, fit_y = _overconfident(3000, 2, 4.0)
        test_logits, test_y = _overconfident(3000, 3, 4.0)
        t = fit_temperature(fit_logits, fit_y)
        assert binary_nll(test_logits / t, test_y) < binary_nll(test_logits, test_y)
        before = expected_calibration_error(test_y, 1 / (1 + np.exp(-test_logits)))
        after = expected_calibration_error(test_y, 1 / (1 + np.exp(-test_logits / t)))
        assert after < 0.05 < before

    @pytest.mark.parametrize("positives", [0, 4])
    def test_too_few_of_a_class_keeps_one(self, positives: int) -> None:
        logits = np.linspace(-3, 3, 100)
        y = np.zeros(100)
        y[:positives] = 1
        assert fit_temperature(logits, y) == 1.0

    def test_huge_logits_do_not_overflow(self) -> None:
        logits = np.array([-800.0, -500.0, 400.0, -450.0, 900.0] * 10)
        y = np.array([0.0, 0.0, 1.0, 1.0, 1.0] * 10)
        t = fit_temperature(logits, y)
        assert np.isfinite(t) and 0.25 <= t <= 100.0

    def test_perfect_separation_keeps_one(self) -> None:
        logits = np.r_[np.linspace(-4, -0.5, 50), np.linspace(0.5, 4, 50)]
        y = np.r_[np.zeros(50), np.ones(50)]
        assert fit_temperature(logits, y) == 1.0

    def test_sharpening_is_bounded(self) -> None:
        logits, y = _overconfident(20000, 6, 0.05)
        assert fit_temperature(logits, y) == 0.25


class TestCalibratedProbs:
    def test_ranking_unchanged_and_same_as_the_app(self) -> None:
        logits, y = _overconfident(500, 4, 3.0)
        two = np.stack([logits, -logits], axis=1)
        labels = ("a", "b")
        temps = fit_temperatures(two, np.stack([y, 1 - y], axis=1), labels)
        p = calibrated_probs(two, labels, temps)
        assert auroc(y, p[:, 0]) == pytest.approx(auroc(y, 1 / (1 + np.exp(-logits))))
        expected = 1.0 / (1.0 + np.exp(-two / np.array([temps["a"], temps["b"]])))
        np.testing.assert_allclose(p, expected, atol=1e-6)

    def test_no_temperatures_is_the_plain_sigmoid(self) -> None:
        z = np.array([[-2.0, 0.0, 3.0]], dtype=np.float32).T
        np.testing.assert_allclose(calibrated_probs(z, ("a",), None), 1 / (1 + np.exp(-z)), 1e-6)

    def test_logits_of_inverts_the_sigmoid(self) -> None:
        z = np.array([-5.0, -0.3, 0.0, 2.0, 8.0])
        np.testing.assert_allclose(logits_of(1 / (1 + np.exp(-z))), z, atol=1e-6)


class TestReport:
    def test_ece_before_and_after_per_split(self) -> None:
        logits, y = _overconfident(2000, 5, 3.0)
        labels = ("nodule",)
        temps = {"nodule": 3.0}
        report = calibration_report(
            {"val": (y[:, None], logits[:, None]), "test": (y[:0, None], logits[:0, None])},
            labels,
            temps,
        )
        row = report["nodule"]
        assert row["temperature"] == 3.0
        assert row["val_ece_after"] < row["val_ece_before"]
        assert row["val_nll_after"] < row["val_nll_before"]
        assert "test_ece_before" not in row  # an empty split is left out
