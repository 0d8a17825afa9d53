"""Batches for training and prediction: the seeded per-epoch order, the DataLoader, and the
logits of a whole dataset in its order."""

from __future__ import annotations

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


@torch.inference_mode()
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
    was_training = model.training
    model.eval()
    loader = make_loader(dataset, batch_size, None, workers, False, 0, runtime.cuda)
    out = []
    done = 0
    try:
        for x, _, _ in loader:
            if stop_requested(stop):
                raise Stopped
            x = x.to(runtime.device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", enabled=amp and runtime.cuda):
                logits = model(x)
            out.append(logits.float().cpu())
            done += len(x)
            if progress is not None:
                progress(done, len(dataset))
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, dataset.labels.shape[1]), np.float32)
    return torch.cat(out).numpy()


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return torch.sigmoid(torch.as_tensor(logits, dtype=torch.float32)).numpy()
