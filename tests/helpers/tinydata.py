"""Tiny seeded datasets for the training tests (no patient data): make-demo-data phantoms at
64-96 px, and configs small enough to train in seconds on two CPU cores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch

from training.config import TrainConfig, config_from_dict
from training.demo_data import DemoDataOptions, make_demo_dataset


def demo_dataset(
    root: Path,
    *,
    n: int = 24,
    size: int = 64,
    seed: int = 1,
    findings: tuple[str, ...] = ("nodule", "effusion", "cardiomegaly"),
    prevalence: float = 0.4,
    **options: object,
) -> Path:
    """Write a make-demo-data set under ``root``; return its manifest path."""
    dataset = make_demo_dataset(
        root,
        DemoDataOptions(
            n=n, seed=seed, size=size, findings=findings, prevalence=prevalence, **options
        ),  # type: ignore[arg-type]
    )
    return dataset.manifest


def tiny_config(manifest: Path | None = None, **sections: dict[str, object]) -> TrainConfig:
    """Lite0 at 64 px, 2 epochs, batch 8, one thread, no LR range test: seconds per run."""
    base: dict[str, object] = {
        "threads": 1,
        "device": "cpu",
        "model": {"pretrained": False},
        "preprocessing": {"image_size": 64},
        "optim": {"epochs": 2, "batch_size": 8},
        "evaluation": {"bootstrap": 200},
        "output": {"tensorboard": False, "plots": False},
        "recipe": {"lr_range_test": False},  # seconds per run: fit's lr falls back to 1e-3
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}  # type: ignore[dict-item]
        else:
            base[key] = value
    config = config_from_dict(base)
    if manifest is not None:
        config = replace(config, data=replace(config.data, manifest=str(manifest)))
    return config.resolved().validate()


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Training tests run on one torch thread (restored after): on two shared cores, OpenMP
    threads that spin while waiting made tiny steps many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
