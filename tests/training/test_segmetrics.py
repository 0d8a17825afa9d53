"""Segmentation metrics on known masks equal hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.segmetrics import (
    bootstrap_mean_ci,
    dice_per_image,
    hd95_per_image,
    label_seg_metrics,
    lesion_counts,
    seg_split_metrics,
)


def two_lesions() -> np.ndarray:
    """One 32x32 image with two 4x4 lesions, far apart."""
    truth = np.zeros((1, 32, 32), bool)
    truth[0, 2:6, 2:6] = True
    truth[0, 20:24, 20:24] = True
    return truth


class TestPerfect:
    def test_dice_1_hd95_0_sensitivity_1_no_false_positives(self) -> None:
        truth = two_lesions()
        m = label_seg_metrics(truth, truth, n_boot=100, level=0.95, seed=0)
        assert m["dice"]["value"] == 1.0 and m["dice_positive"]["value"] == 1.0
        assert m["hd95_px"]["value"] == 0.0
        assert m["lesion_sensitivity"]["value"] == 1.0 and m["lesions"] == 2
        assert m["fp_per_image"]["value"] == 0.0


class TestOneMissedOfTwo:
    def test_sensitivity_half_and_dice_two_thirds(self) -> None:
        truth = two_lesions()
        pred = truth.copy()
        pred[0, 20:24, 20:24] = False
        m = label_seg_metrics(pred, truth, n_boot=100, level=0.95, seed=0)
        assert m["lesion_sensitivity"]["value"] == 0.5
        assert m["dice"]["value"] == pytest.approx(2 * 16 / (16 + 32))
        assert m["fp_per_image"]["value"] == 0.0
        # HD95 (MONAI, symmetric): the missed lesion's surface is ~20 px from the found one
        assert m["hd95_px"]["value"] > 15


class TestFalsePositives:
    def test_a_component_off_every_lesion_counts_once(self) -> None:
        truth = two_lesions()
        pred = truth.copy()
        pred[0, 28:30, 2:4] = True  # a false lesion
        pred[0, 6, 2:6] = True  # grows a true lesion: not a false positive
        lesions, found, false = lesion_counts(pred, truth)
        assert (lesions[0], found[0], false[0]) == (2, 2, 1)

    def test_any_overlap_finds_a_lesion(self) -> None:
        truth = two_lesions()
        pred = np.zeros_like(truth)
        pred[0, 5, 5] = True  # one pixel of the first lesion
        assert lesion_counts(pred, truth)[1][0] == 1


class TestDice:
    @pytest.mark.parametrize(
        ("pred_px", "truth_px", "overlap", "want"),
        [(0, 0, 0, 1.0), (4, 0, 0, 0.0), (0, 4, 0, 0.0), (4, 4, 4, 1.0), (4, 8, 4, 2 * 4 / 12)],
    )
    def test_table(self, pred_px: int, truth_px: int, overlap: int, want: float) -> None:
        pred = np.zeros((1, 4, 4), bool)
        truth = np.zeros((1, 4, 4), bool)
        truth.reshape(-1)[:truth_px] = True
        start = truth_px - overlap
        pred.reshape(-1)[start : start + pred_px] = True
        assert dice_per_image(pred, truth)[0] == pytest.approx(want)


class TestHd95:
    def test_a_shift_of_two_pixels_in_mm(self) -> None:
        truth = np.zeros((1, 32, 32), bool)
        truth[0, 10:20, 10:20] = True
        pred = np.roll(truth, 2, axis=1)  # two rows down
        px = hd95_per_image(pred, truth)[0]
        mm = hd95_per_image(pred, truth, np.asarray([[0.5, 0.7]]))[0]
        assert px == pytest.approx(2.0)
        assert mm == pytest.approx(1.0)  # 2 rows x 0.5 mm

    def test_undefined_where_a_mask_is_empty(self) -> None:
        truth = two_lesions()
        assert math.isnan(hd95_per_image(np.zeros_like(truth), truth)[0])

    def test_mm_reported_only_when_every_image_has_a_spacing(self) -> None:
        truth = np.concatenate([two_lesions(), two_lesions()])
        known = label_seg_metrics(truth, truth, n_boot=0, level=0.95, seed=0,
                                  spacing=np.full((2, 2), 0.8))  # fmt: skip
        assert known["hd95_mm"]["value"] == 0.0
        partly = label_seg_metrics(truth, truth, n_boot=0, level=0.95, seed=0,
                                   spacing=np.asarray([[0.8, 0.8], [np.nan, np.nan]]))  # fmt: skip
        assert "hd95_mm" not in partly


class TestBootstrap:
    def test_the_interval_holds_the_mean_and_is_seeded(self) -> None:
        values = np.linspace(0, 1, 50)
        lo, hi = bootstrap_mean_ci(values, n_boot=500, level=0.95, seed=3)
        assert lo < 0.5 < hi
        assert (lo, hi) == bootstrap_mean_ci(values, n_boot=500, level=0.95, seed=3)


def test_split_metrics_per_label_and_mean_dice() -> None:
    truth = two_lesions()[:, None].astype(np.uint8)  # (N, L, H, W)
    probs = truth.astype(np.float32) * 0.9
    out = seg_split_metrics(probs, truth, ["lesion"], {"lesion": 0.5}, n_boot=100, level=0.95,
                            seed=0, spacing=np.asarray([[1.0, 1.0]]))  # fmt: skip
    assert out["mean_dice"] == 1.0
    assert out["lesion"]["hd95_mm"]["value"] == 0.0
