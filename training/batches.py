"""Batches for training and prediction: the seeded per-epoch order, the DataLoader, and the
logits of a whole dataset in its order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from training.dataset import Stopped, UnitImageDataset
from training.runtime import Runtime
from training.seeding import derived_seed


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """A permutation of ``range(n)`` drawn from a torch.Generator seeded by (seed, epoch)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(derived_seed(self.seed, self.epoch, 0x5A))
        return iter(torch.randperm(self.n, generator=g).tolist())


def make_loader(
    dataset: UnitImageDataset,
    batch_size: int,
    sampler: torch.utils.data.Sampler[int] | None,
    workers: int,
    drop_last: bool,
    seed: int,
    pin: bool,
) -> torch.utils.data.DataLoader[Any]:
    generator = torch.Generator()
    generator.manual_seed(derived_seed(seed, 0x10AD))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=pin,
        generator=generator,
        persistent_workers=False,
    )


def predict_logits(
    model: nn.Module,
    dataset: UnitImageDataset,
    runtime: Runtime,
    *,
    batch_size: int = 32,
    workers: int = 0,
    amp: bool = False,
    channels_last: bool = False,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> np.ndarray:
    """Logits (N, L) float32 for ``dataset`` in its order (this rank's items only)."""
    logits, _ = _predict(
        model, dataset, runtime, batch_size, workers, amp, channels_last, progress, stop, False
    )
    return logits


def predict_logits_and_features(
    model: nn.Module,
    dataset: UnitImageDataset,
    runtime: Runtime,
    *,
    batch_size: int = 32,
    workers: int = 0,
    channels_last: bool = False,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, L) and penultimate features (N, D), float32, from one forward pass in float32
    (what the app computes: the OOD statistics are fitted on exactly these features)."""
    logits, feats = _predict(
        model, dataset, runtime, batch_size, workers, False, channels_last, progress, stop, True
    )
    assert feats is not None
    return logits, feats


@torch.inference_mode()
def _predict(
    model: nn.Module,
    dataset: UnitImageDataset,
    runtime: Runtime,
    batch_size: int,
    workers: int,
    amp: bool,
    channels_last: bool,
    progress: Progress | None,
    stop: StopFlag,
    with_features: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    from desktop_app.model.networks import PenultimateFeatures, feature_dim

    was_training = model.training
    model.eval()
    loader = make_loader(dataset, batch_size, None, workers, False, 0, runtime.cuda)
    out, feats = [], []
    done = 0
    try:
        captured = PenultimateFeatures(model) if with_features else None
        with captured if captured is not None else contextlib.nullcontext():
            for x, _, _ in loader:
                if stop_requested(stop):
                    raise Stopped
                x = x.to(runtime.device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", enabled=amp and runtime.cuda):
                    logits = model(x)
                out.append(logits.float().cpu())
                if captured is not None and captured.value is not None:
                    feats.append(captured.value.float().cpu())
                done += len(x)
                if progress is not None:
                    progress(done, len(dataset))
    finally:
        model.train(was_training)
    if not out:
        width = feature_dim(model) if with_features else 0
        empty = np.zeros((0, width), np.float32) if with_features else None
        return np.zeros((0, dataset.labels.shape[1]), np.float32), empty
    return torch.cat(out).numpy(), torch.cat(feats).numpy() if with_features else None


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return torch.sigmoid(torch.as_tensor(logits, dtype=torch.float32)).numpy()
