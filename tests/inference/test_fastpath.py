"""The ONNX Runtime vs eager PyTorch check: NaN and infinity never count as "the same numbers"."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from desktop_app.inference.fastpath import build_cpu_path, max_difference, nonfinite

NAN, INF = float("nan"), float("inf")
SIZE = 16


def small_network(broken: bool) -> nn.Module:
    """Conv, batch norm, pooling, one logit; ``broken``: a negative running variance, so
    every output is NaN from finite weights (what a load-time tensor check can't see)."""
    torch.manual_seed(0)
    norm = nn.BatchNorm2d(4)
    network = nn.Sequential(
        nn.Conv2d(1, 4, 3), norm, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1)
    ).eval()
    if broken:
        assert norm.running_var is not None
        norm.running_var.fill_(-1.0)
    return network


class TestMaxDifference:
    @pytest.mark.parametrize(
        ("a", "b", "expected"),
        [
            ([1.0, 2.0], [1.0, 2.0], 0.0),
            ([1.0, 2.0 + 2e-4], [1.0, 2.0], 2e-4 / (1e-4 + 2e-4)),
            ([NAN, 1.0], [NAN, 1.0], INF),  # the same NaN is not the same number
            ([NAN], [0.0], INF),
            ([0.0], [NAN], INF),
            ([INF], [INF], INF),
            ([-INF], [1.0], INF),
            ([1.0, 2.0], [1.0], INF),  # shapes differ
        ],
    )
    def test_table(self, a: list[float], b: list[float], expected: float) -> None:
        assert max_difference(np.array(a), np.array(b)) == pytest.approx(expected)

    def test_what_a_plain_max_let_through(self) -> None:
        a = np.array([NAN, 1.0])
        assert not np.max(np.abs(a - a)) > 1.0  # the old check's comparison: NaN passed it
        assert max_difference(a, a) > 1.0


class TestNonfinite:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ([0.0, -3.5, 1e30], None),
            ([NAN, 1.0, INF, -INF, NAN, 2.0], "2 NaN, 2 infinite of 6 values"),
            (np.array([NAN], np.float32), "1 NaN, 0 infinite of 1 values"),
        ],
    )
    def test_table(self, values: object, expected: str | None) -> None:
        assert nonfinite(np.asarray(values)) == expected


class TestCpuPathCheck:
    def test_a_finite_network_runs_on_onnx_runtime(self) -> None:
        path = build_cpu_path(small_network(broken=False), SIZE, 1, backend="onnxruntime")
        assert path.runner.name == "onnxruntime" and path.warnings == []
        assert path.max_difference is not None and path.max_difference <= 1.0

    @pytest.mark.parametrize("backend", ["auto", "onnxruntime"])
    def test_a_network_whose_output_is_nan_never_passes(self, backend: str) -> None:
        path = build_cpu_path(small_network(broken=True), SIZE, 1, backend=backend)
        assert path.runner.name == "torch"
        assert path.warnings == [
            "the network's outputs on the check input are not finite "
            "(2 NaN, 0 infinite of 2 values); the model file's weights may be broken"
        ]
        assert not any("matches eager" in note for note in path.notes)
