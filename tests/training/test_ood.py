"""training.ood: Ledoit-Wolf shrinkage, the Mahalanobis Gaussian and its validation threshold."""

from __future__ import annotations

import numpy as np
import pytest

from desktop_app.infra.errors import DataError
from training.ood import fit_ood, ledoit_wolf, mahalanobis


def _reference_ledoit_wolf(x: np.ndarray) -> float:
    """The shrinkage as scikit-learn writes it (sklearn.covariance.ledoit_wolf_shrinkage)."""
    n, d = x.shape
    x = x - x.mean(0)
    x2 = x**2
    trace = x2.sum(0) / n
    mu = trace.sum() / d
    beta_ = (x2.T @ x2).sum()
    delta_ = ((x.T @ x) ** 2).sum() / n**2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * trace.sum() + d * mu**2) / d
    return float(min(beta, delta) / delta)


class TestLedoitWolf:
    @pytest.mark.parametrize(("n", "d"), [(40, 120), (400, 20), (30, 30)])
    def test_matches_the_reference_formula(self, n: int, d: int) -> None:
        rng = np.random.default_rng(n + d)
        x = rng.normal(size=(n, d)) * np.linspace(0.2, 4.0, d) + 3.0
        mean, cov, shrinkage = ledoit_wolf(x)
        assert shrinkage == pytest.approx(_reference_ledoit_wolf(x), rel=1e-9)
        np.testing.assert_allclose(mean, x.mean(0))
        sample = np.cov(x, rowvar=False, bias=True)
        mu = np.trace(sample) / d
        np.testing.assert_allclose(cov, (1 - shrinkage) * sample + shrinkage * mu * np.eye(d))

    def test_fewer_images_than_dimensions_is_invertible(self) -> None:
        x = np.random.default_rng(0).normal(size=(20, 200))
        _, cov, shrinkage = ledoit_wolf(x)
        assert 0 < shrinkage <= 1
        assert np.linalg.cond(cov) < 1e3


class TestFitOod:
    def test_threshold_flags_about_five_percent_of_like_images(self) -> None:
        rng = np.random.default_rng(1)
        scale = np.linspace(0.5, 2.0, 64)
        train, val, test = (rng.normal(size=(n, 64)) * scale for n in (800, 400, 2000))
        ood = fit_ood(train, val, 95.0)
        assert ood.spec.method == "mahalanobis" and ood.spec.feature_dim == 64
        assert float(ood.flags(ood.score(test)).mean()) == pytest.approx(0.05, abs=0.025)
        far = rng.normal(size=(100, 64)) * scale + 3.0
        assert ood.flags(ood.score(far)).all()
        assert "95th percentile of the validation split" in ood.spec.threshold_rule
        assert ood.spec.stats["train_images"] == 800 and ood.spec.stats["val_images"] == 400

    def test_the_app_scores_the_stored_float32_values(self) -> None:
        rng = np.random.default_rng(2)
        train, val = rng.normal(size=(50, 300)), rng.normal(size=(30, 300))
        ood = fit_ood(train, val)
        assert ood.mean.dtype == np.float32 and ood.precision.dtype == np.float32
        np.testing.assert_allclose(ood.score(val), mahalanobis(val, ood.mean, ood.precision))
        assert int(ood.flags(ood.score(val)).sum()) == 2  # 5 % of 30, rounded up by the cut

    def test_no_validation_falls_back_to_train_and_says_so(self) -> None:
        train = np.random.default_rng(3).normal(size=(40, 8))
        ood = fit_ood(train, np.zeros((0, 8)))
        assert "train (no validation split)" in ood.spec.threshold_rule

    def test_too_few_or_non_finite_features_are_refused(self) -> None:
        with pytest.raises(DataError, match="at least 10 training images, not 3"):
            fit_ood(np.ones((3, 4)), np.ones((3, 4)))
        bad = np.random.default_rng(4).normal(size=(20, 4))
        bad[3, 2] = np.nan
        with pytest.raises(DataError, match="NaN or infinite"):
            fit_ood(bad, bad)
