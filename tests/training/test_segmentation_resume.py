"""A segmentation fit stopped part-way and resumed ends with the same weights as an
uninterrupted one (the classification loop's exact resume, tests/training/test_resume.py)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.training.test_segmentation_fit import write_discs
from training.config import TrainConfig, config_from_dict
from training.segmentation import run_segmentation_fit


def _config(manifest: Path) -> TrainConfig:
    return config_from_dict(
        {
            "data": {"task": "segmentation", "manifest": str(manifest)},
            "model": {"arch": "unet-lite0", "pretrained": True},
            "preprocessing": {"image_size": 32},
            "optim": {"epochs": 2, "batch_size": 6, "lr": 0.003},
            "evaluation": {"bootstrap": 0},
            "output": {"tensorboard": False},
            "device": "cpu",
        }
    )


def _stop_after_checks(n: int) -> Callable[[], bool]:
    counter = itertools.count(1)
    return lambda: next(counter) >= n


def _weights(out: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(out / "checkpoints" / "last.pt", weights_only=True)[
        "model"
    ]
    return state


@pytest.mark.slow
# stop checks: one per image while decoding (24), then per batch: 2 train batches, 1 validation,
# 1 after the epoch. 28: right after epoch 1; 29: in epoch 2, one step lost and redone
@pytest.mark.parametrize("checks", [28, 29])
def test_a_stopped_segmentation_fit_resumes_to_the_same_weights(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, checks: int
) -> None:
    config = _config(write_discs(tmp_path / "data", 24))
    whole = run_segmentation_fit(config, tmp_path / "whole")
    assert whole.model_path is not None
    stopped = run_segmentation_fit(config, tmp_path / "split", stop=_stop_after_checks(checks))
    assert stopped.model_path is None  # stopped: no model file yet
    with caplog.at_level(logging.INFO, logger="training.loop"):
        resumed = run_segmentation_fit(config, tmp_path / "split", resume=True)
    # it went on from the stopped run's checkpoint (not a fresh start with the same seed)
    assert "resumed after epoch 1" in caplog.text
    assert resumed.model_path is not None
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    assert max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel()) == 0
