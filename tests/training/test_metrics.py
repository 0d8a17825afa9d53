"""training.metrics: AUROC (+ bootstrap CI), thresholds, Wilson CIs, ECE, confusion matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training import metrics as M


def _brute_auroc(y: np.ndarray, p: np.ndarray) -> float:
    pos, neg = p[y == 1], p[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


class TestAuroc:
    @pytest.mark.parametrize(
        ("y", "p", "expected"),
        [
            ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),
            ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),
            ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),
            ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
        ],
    )
    def test_known_values(self, y: list[int], p: list[float], expected: float) -> None:
        assert M.auroc(y, p) == pytest.approx(expected)

    def test_matches_pairwise_counting_with_ties(self) -> None:
        rng = np.random.default_rng(0)
        y = (rng.random(300) < 0.3).astype(float)
        p = np.round(rng.random(300) * 0.6 + 0.4 * y, 1)  # coarse: many ties
        assert M.auroc(y, p) == pytest.approx(_brute_auroc(y, p), abs=1e-12)

    def test_one_class_is_nan(self) -> None:
        assert math.isnan(M.auroc([1, 1, 1], [0.1, 0.2, 0.3]))

    def test_targets_must_be_binary(self) -> None:
        with pytest.raises(ValueError, match="targets must be 0 or 1"):
            M.auroc([0, 2], [0.1, 0.2])


class TestBootstrap:
    def test_ci_brackets_the_estimate_and_matches_naive_resampling(self) -> None:
        rng = np.random.default_rng(1)
        y = (rng.random(120) < 0.4).astype(float)
        p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
        lo, hi = M.bootstrap_auroc(y, p, n_boot=2000, seed=3)
        est = M.auroc(y, p)
        assert lo < est < hi
        # naive stratified resampling with the plain AUROC gives the same interval
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        r = np.random.default_rng(7)
        naive = []
        for _ in range(2000):
            idx = np.concatenate([r.choice(pos, pos.size), r.choice(neg, neg.size)])
            naive.append(M.auroc(y[idx], p[idx]))
        nlo, nhi = np.quantile(naive, [0.025, 0.975])
        assert lo == pytest.approx(nlo, abs=0.02) and hi == pytest.approx(nhi, abs=0.02)

    def test_seeded(self) -> None:
        y, p = [0, 0, 1, 1, 0, 1], [0.2, 0.6, 0.5, 0.9, 0.1, 0.7]
        assert M.bootstrap_auroc(y, p, seed=1) == M.bootstrap_auroc(y, p, seed=1)

    def test_perfect_separation_gives_a_degenerate_interval(self) -> None:
        assert M.bootstrap_auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (1.0, 1.0)

    def test_one_class_gives_nan(self) -> None:
        assert all(math.isnan(v) for v in M.bootstrap_auroc([0, 0], [0.1, 0.2]))


class TestThresholds:
    def test_youden_picks_the_best_cut_midway(self) -> None:
        y = [0, 0, 0, 1, 1, 1]
        p = [0.1, 0.2, 0.45, 0.55, 0.8, 0.9]
        t = M.choose_threshold(y, p, "youden")
        assert t.value == pytest.approx(0.5)  # midway between 0.55 and 0.45
        cm = M.confusion(y, p, t.value)
        assert cm == {"tp": 3, "fp": 0, "tn": 3, "fn": 0}

    def test_target_sensitivity(self) -> None:
        y = [0, 1, 0, 1, 0, 1, 1, 0, 1, 1]
        p = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        t = M.choose_threshold(y, p, "sensitivity", target_sensitivity=0.8)
        pred = np.asarray(p) >= t.value
        sens = (pred & (np.asarray(y) == 1)).sum() / 6
        assert sens >= 0.8
        assert t.value == pytest.approx(0.25)  # the highest cut reaching 5 of 6 positives

    def test_one_class_falls_back_to_half_with_a_note(self) -> None:
        t = M.choose_threshold([0, 0, 0], [0.1, 0.2, 0.3])
        assert t.value == 0.5 and "only one class" in t.note


class TestOtherMetrics:
    def test_wilson_interval(self) -> None:
        lo, hi = M.wilson_interval(8, 10)
        assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)  # textbook values
        assert all(math.isnan(v) for v in M.wilson_interval(0, 0))

    def test_ece(self) -> None:
        assert M.expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
        # everything at 0.8 but only half positive: |0.5 - 0.8|
        assert M.expected_calibration_error([0, 1, 0, 1], [0.8] * 4) == pytest.approx(0.3)

    def test_roc_curve_endpoints(self) -> None:
        fpr, tpr, thr = M.roc_curve([0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8])
        assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
        assert np.isinf(thr[0]) and np.all(np.diff(thr[1:]) < 0)
        assert np.trapezoid(tpr, fpr) == pytest.approx(M.auroc([0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8]))

    def test_label_metrics_bundle(self) -> None:
        y = np.array([0, 0, 1, 1, 1, 0])
        p = np.array([0.1, 0.6, 0.7, 0.8, 0.3, 0.2])
        m = M.label_metrics(y, p, 0.5, n_boot=200)
        assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 2, 1)
        assert m["sensitivity"]["value"] == pytest.approx(2 / 3)
        assert m["specificity"]["value"] == pytest.approx(2 / 3)
        assert m["auroc"]["value"] == pytest.approx(M.auroc(y, p))
        assert len(m["auroc"]["ci95"]) == 2 and m["n"] == 6 and m["positives"] == 3
