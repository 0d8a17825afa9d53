"""Where this process trains: the device (chosen by ``desktop_app.inference.devices``), CPU
threads, and under ``torchrun`` the process group and the collectives the loop needs."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from desktop_app.inference.devices import FallbackWords, choose_device
from desktop_app.infra.cpus import available_cpus
from training.config import TrainConfig

log = logging.getLogger(__name__)

# The words `radassist-train` has always used when it falls back to the CPU.
TRAINING_WORDS = FallbackWords(
    cuda_missing="CUDA was asked for but is not available; training on the CPU",
    mps_missing="MPS was asked for but is not available; training on the CPU",
    cuda_index="CUDA device {index} does not exist ({count} found); training on the CPU",
    cuda_failed="CUDA failed at start ({reason}); training on the CPU",
)


@dataclass
class Runtime:
    """Where this process trains: device and (under torchrun) its rank."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_process_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def collective_device(self) -> torch.device:
        """Where tensors go for a collective: the GPU under NCCL, else the CPU (gloo)."""
        return self.device if self.cuda else torch.device("cpu")

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.owns_process_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.owns_process_group = False


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """auto: CUDA, then MPS, then CPU. A CUDA failure at start (a smoke-test kernel) falls back
    to the CPU with one warning; asking for an absent accelerator warns and uses the CPU."""
    choice = choose_device(preference, local_rank=local_rank, smoke_test=True, words=TRAINING_WORDS)
    if choice.warning is not None:
        log.warning("%s", choice.warning)
    return choice.device


def setup_runtime(config: TrainConfig) -> Runtime:
    """Pick the device, set CPU threads, and join the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    device = select_device(config.device, local_rank)
    if device.type == "cpu":
        threads = config.threads or max(1, available_cpus() // max(1, local_world))
        torch.set_num_threads(threads)
        log.info("training on the CPU with %d threads", threads)
    runtime = Runtime(device, rank, world, local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
        runtime.owns_process_group = True
        log.info("rank %d of %d joined (%s)", rank, world, backend)
    return runtime


# --------------------------------------------------------------------------- collectives


def gather_rows(runtime: Runtime, rows: torch.Tensor, count: int, total: int) -> torch.Tensor:
    """Gather every rank's (count, ...) rows into rank order; shards are ``idx[r::world]``."""
    if not runtime.distributed:
        return rows
    world = runtime.world_size
    width = math.ceil(total / world)
    padded = torch.zeros((width, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[:count] = rows
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    torch.distributed.all_gather(gathered, padded)
    out = torch.zeros((total, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    for r in range(world):
        n_r = len(range(r, total, world))
        out[r::world] = gathered[r][:n_r]
    return out


def all_sum(runtime: Runtime, values: list[float]) -> list[float]:
    if not runtime.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=runtime.device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def share_units(
    runtime: Runtime, load: Callable[[Sequence[int]], torch.Tensor], indices: Sequence[int]
) -> torch.Tensor:
    """Each rank decodes ``indices[rank::world]``; the unit images are then all-gathered.

    ``load(subset)`` returns the (len(subset), S, S) unit images of ``subset``.
    """
    idx = list(indices)
    if not runtime.distributed:
        return load(idx)
    mine = idx[runtime.rank :: runtime.world_size]
    part = load(mine)
    device = runtime.collective_device
    return gather_rows(runtime, part.to(device), len(mine), len(idx)).cpu()


def gather_equal(runtime: Runtime, rows: torch.Tensor) -> torch.Tensor:
    """All ranks' equally many rows, concatenated in rank order (on the CPU)."""
    device = runtime.collective_device
    rows = rows.to(device)
    gathered = [torch.zeros_like(rows) for _ in range(runtime.world_size)]
    torch.distributed.all_gather(gathered, rows)
    return torch.cat(gathered).cpu()
