"""The train/validate loop: optimiser and schedule, checkpoints and resume, early stopping, DDP.

One call of :func:`train_model` trains one network on one train/val split:

- AdamW with four parameter groups (head and backbone, each with and without weight decay:
  biases and norm weights are not decayed); the backbone's learning rate is ``lr *
  backbone_lr_factor`` (discriminative learning rates);
- a per-step schedule: linear warm-up from 1 % over ``warmup_epochs``, then cosine down to
  ``lr * min_lr_ratio`` at the last step;
- a pretrained backbone can be frozen for ``freeze_backbone_epochs`` (its BatchNorm
  statistics too with ``freeze_bn``) so that the head settles before the backbone moves; off
  by default, because the head starts small (N(0, 0.01), bias at the prevalence's logit) and
  the learning rate warms up, and because on short schedules the frozen epoch and the
  BatchNorm shift at unfreezing cost more than they gave (measured: see defaults.yaml);
- multi-label BCE with logits, optionally with ``pos_weight = negatives / positives`` per
  label from the training split ("prevalence");
- gradient clipping (global norm); AMP (float16 autocast + GradScaler) only on CUDA;
  channels_last on CUDA and on the CPU (measured 1.7-1.8x faster training of Lite0 at 224 on
  this 2-core CPU);
- after each epoch: validation loss and per-label AUROC, early stopping on the mean validation
  AUROC (or loss; an epoch that ties the best AUROC with a lower validation loss counts as an
  improvement, which matters when a small validation set saturates at 1.0), and an atomic
  checkpoint ``last.pt`` (``best.pt`` when improved).

Determinism: the seed fixes the head's init, the loader order (a ``torch.Generator`` seeded
per epoch), the augmentation (per sample, per epoch) and dropout (the global torch generator
is re-seeded per epoch). Checkpoints hold the model, optimizer, scheduler, scaler, RNG states,
epoch, best metric and early-stopping counter, as tensors and plain containers only, so
``torch.load(weights_only=True)`` reads them; a resumed run ends with the same weights as an
uninterrupted one.

Distributed (``torchrun``): DistributedDataParallel with gloo on CPU and nccl on CUDA, a
DistributedSampler, validation sharded and gathered so that every rank takes the same
early-stopping decision, and only rank 0 writes files. The DDP wrapper is rebuilt when the
backbone is unfrozen (DDP only syncs parameters that required gradients when it was built).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from desktop_app.infra.atomicio import atomic_path
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.model.networks import (
    build_network,
    head_name,
    head_parameters,
    set_backbone_trainable,
)
from training.augment import build_augmenter
from training.config import TrainConfig
from training.data import Dataset
from training.dataset import Stopped, UnitImageDataset
from training.metrics import nanmean, per_label_auroc

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "radassist-checkpoint"
CHECKPOINT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"
WARMUP_START = 0.01

EpochCallback = Callable[[dict[str, Any], list[dict[str, Any]]], None]  # (entry, history)
ProgressFactory = Callable[[str], Progress | None]


# --------------------------------------------------------------------------- runtime


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

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.owns_process_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.owns_process_group = False


def _cuda_works(index: int) -> bool:
    try:
        torch.zeros(1, device=f"cuda:{index}").add_(1)
        torch.cuda.synchronize(index)
    except Exception as err:  # a broken driver raises all sorts
        log.warning(
            "CUDA failed at start (%s); training on the CPU", " ".join(str(err).split())[:200]
        )
        return False
    return True


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """auto: CUDA, then MPS, then CPU. A CUDA failure at start falls back to the CPU with one
    warning; asking for an absent accelerator warns and uses the CPU."""
    if preference not in ("auto", "cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {preference!r}", hint="choose auto, cpu, cuda or mps")
    if preference == "cpu":
        return torch.device("cpu")
    if preference in ("auto", "cuda"):
        if torch.cuda.is_available():
            index = local_rank % max(1, torch.cuda.device_count())
            if _cuda_works(index):
                return torch.device("cuda", index)
            return torch.device("cpu")
        if preference == "cuda":
            log.warning("CUDA was asked for but is not available; training on the CPU")
            return torch.device("cpu")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    if preference == "mps":
        log.warning("MPS was asked for but is not available; training on the CPU")
    return torch.device("cpu")


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def setup_runtime(config: TrainConfig) -> Runtime:
    """Pick the device, set CPU threads, and join the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    device = select_device(config.device, local_rank)
    if device.type == "cpu":
        threads = config.threads or max(1, usable_cpus() // max(1, local_world))
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


# --------------------------------------------------------------------------- seeding


def derived_seed(seed: int, *parts: int) -> int:
    state = np.random.SeedSequence([int(seed), *[int(p) for p in parts]])
    return int(state.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    """Python, numpy and torch generators (MONAI's set_determinism does the same)."""
    from monai.utils import set_determinism

    set_determinism(seed=int(seed) % (2**32 - 1))


def rng_state() -> dict[str, Any]:
    """The global generators' states as tensors and plain containers (weights_only-safe)."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())  # type: ignore[arg-type]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- model and optim


def build_model(
    config: TrainConfig, num_labels: int, prevalence: Sequence[float] | None = None
) -> nn.Module:
    """The network for ``config`` with a fine-tuning head and BatchNorm momentum.

    With ``init: default`` the new head starts small (weights N(0, 0.01)) with each bias at
    the logit of its label's training prevalence, so the first loss is the prevalence's
    entropy: MONAI's EfficientNet initialises its classifier TensorFlow-style (uniform in
    +-1/sqrt(outputs)), which for a handful of labels gives logits of +-30 on pretrained
    features and saturated, useless first epochs. BatchNorm momentum is set to
    ``model.bn_momentum`` (MONAI's EfficientNet uses 0.01, which on a few hundred images
    leaves the running statistics near ImageNet's for the whole run).
    """
    spec = config.preprocess_spec()
    m = config.model
    model = build_network(
        m.arch,
        num_labels,
        pretrained=m.pretrained,
        weights_path=m.weights,
        dropout=m.dropout,
        init=m.init,
        in_channels=spec.channels,
        image_size=spec.image_size,
    )
    if m.init == "default":
        head = getattr(model, head_name(model))
        nn.init.normal_(head.weight, mean=0.0, std=0.01)
        bias = torch.zeros(num_labels)
        if prevalence is not None:
            p = torch.as_tensor(np.asarray(prevalence, dtype=np.float64)).clamp(0.01, 0.99)
            bias = torch.log(p / (1 - p)).float()
        with torch.no_grad():
            head.bias.copy_(bias)
    if m.bn_momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = m.bn_momentum
    return model


def _no_decay(name: str, param: nn.Parameter) -> bool:
    return param.ndim <= 1  # biases and norm scales/shifts


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over four groups: head/backbone x decay/no-decay (group ``name`` says which)."""
    o = config.optim
    head_ids = {id(p) for p in head_parameters(model)}
    groups: dict[str, list[nn.Parameter]] = {
        "head": [],
        "head_no_decay": [],
        "backbone": [],
        "backbone_no_decay": [],
    }
    for name, param in model.named_parameters():
        part = "head" if id(param) in head_ids else "backbone"
        key = f"{part}_no_decay" if _no_decay(name, param) else part
        groups[key].append(param)
    param_groups = []
    for key, params in groups.items():
        if not params:
            continue
        lr = o.lr if key.startswith("head") else o.lr * o.backbone_lr_factor
        decay = 0.0 if key.endswith("no_decay") else o.weight_decay
        param_groups.append({"params": params, "lr": lr, "weight_decay": decay, "name": key})
    return torch.optim.AdamW(param_groups, lr=o.lr, weight_decay=o.weight_decay)


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Linear warm-up from 1 % to 1, then cosine from 1 to ``min_ratio`` at the last step."""
    if warmup_steps > 0 and step < warmup_steps:
        return WARMUP_START + (1.0 - WARMUP_START) * step / warmup_steps
    span = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    # a plain closure: LambdaLR then saves no function state, and a resumed run rebuilds it
    def factor(step: int) -> float:
        return lr_factor(step, total_steps, warmup_steps, min_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def pos_weight_from(labels: np.ndarray) -> torch.Tensor:
    """negatives / positives per label (1 where a label has no positives or no negatives)."""
    y = np.asarray(labels, dtype=np.float64)
    pos = y.sum(axis=0)
    neg = y.shape[0] - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1), 1.0)
    return torch.as_tensor(w, dtype=torch.float32)


def _set_frozen_bn_eval(model: nn.Module) -> None:
    """A frozen backbone is a fixed feature extractor: its BatchNorm must not update."""
    head_ids = {id(p) for p in head_parameters(model)}
    for module in _unwrap(model).modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
            id(p) in head_ids for p in module.parameters()
        ):
            module.eval()


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


# --------------------------------------------------------------------------- sampling


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


def _loader(
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


# --------------------------------------------------------------------------- distributed helpers


def _gather_rows(runtime: Runtime, rows: torch.Tensor, count: int, total: int) -> torch.Tensor:
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


def _all_sum(runtime: Runtime, values: list[float]) -> list[float]:
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
    device = runtime.device if runtime.cuda else torch.device("cpu")
    return _gather_rows(runtime, part.to(device), len(mine), len(idx)).cpu()


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path, mode=0o600) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and plain containers only."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"checkpoint can't be read ({type(err).__name__}: {' '.join(str(err).split())[:160]})",
            path,
            "delete it to start over, or resume from a copy",
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError("is not a RadAssist training checkpoint", path)
    if obj.get("version") != CHECKPOINT_VERSION:
        raise ConfigError(
            f"checkpoint version {obj.get('version')!r} is not {CHECKPOINT_VERSION}", path
        )
    return obj


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in _unwrap(model).state_dict().items()}


# --------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    model: nn.Module  # unwrapped, best (or last, without validation) weights, eval mode
    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float
    monitor: str
    epochs_run: int
    early_stopped: bool = False
    stopped: bool = False
    val_probs: np.ndarray | None = None  # best model on the val split, val order
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- prediction


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
    loader = _loader(dataset, batch_size, None, workers, False, 0, runtime.cuda)
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


# --------------------------------------------------------------------------- training


class Trainer:
    """State of one training run; :func:`train_model` is the entry point."""

    def __init__(
        self,
        config: TrainConfig,
        data: Dataset,
        units: torch.Tensor,
        train_idx: Sequence[int],
        val_idx: Sequence[int],
        out_dir: Path | None,
        runtime: Runtime,
        *,
        fixed_epochs: int | None = None,
        on_epoch: EpochCallback | None = None,
        progress_factory: ProgressFactory | None = None,
        stop: StopFlag = None,
        tensorboard_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.data = data
        self.labels = data.labels
        self.units = units
        self.train_idx = list(train_idx)
        self.val_idx = list(val_idx)
        self.out_dir = out_dir
        self.runtime = runtime
        self.epochs = fixed_epochs if fixed_epochs is not None else config.optim.epochs
        self.use_val = bool(self.val_idx) and fixed_epochs is None
        self.on_epoch = on_epoch
        self.progress_factory = progress_factory
        self.stop = stop
        self.tensorboard_dir = tensorboard_dir
        self.notes: list[str] = []
        self.spec = config.preprocess_spec()
        o = config.optim
        self.amp = o.amp and runtime.cuda
        # on the CPU too: Lite0 trains 1.7-1.8x faster in channels_last here (oneDNN)
        self.channels_last = o.channels_last
        y_all = data.label_matrix()
        self.label_matrix = y_all
        # DistributedSampler pads so that every rank gets ceil(n / world) items
        per_rank = math.ceil(len(self.train_idx) / runtime.world_size)
        if per_rank < 2:
            raise DataError(
                f"the train split has {len(self.train_idx)} image(s), too few to train on "
                f"{runtime.world_size} process(es)",
                data.source,
                "add more training images",
            )
        self.batch_size = min(o.batch_size, per_rank)
        # drop a ragged last batch: BatchNorm cannot train on a batch of one
        self.drop_last = per_rank > self.batch_size
        self.steps_per_epoch = (
            per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)
        )
        self.total_steps = self.steps_per_epoch * self.epochs
        self.warmup_steps = min(self.total_steps, round(o.warmup_epochs * self.steps_per_epoch))
        self.freeze_epochs = o.freeze_backbone_epochs if config.model.pretrained else 0

    # ---------------------------------------------------------------- setup

    def _setup(self) -> None:
        config = self.config
        seed_everything(config.seed)
        prevalence = self.label_matrix[self.train_idx].mean(axis=0)
        model = build_model(config, len(self.labels), prevalence)
        model.to(self.runtime.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.ddp: nn.Module | None = None
        self.ddp_trainable: bool | None = None
        self.optimizer = make_optimizer(model, config)
        self.scheduler = make_scheduler(
            self.optimizer, self.total_steps, self.warmup_steps, config.optim.min_lr_ratio
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        pos_weight = None
        if config.optim.class_weights == "prevalence":
            pos_weight = pos_weight_from(self.label_matrix[self.train_idx]).to(self.runtime.device)
        self.criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        augmenter = build_augmenter(config.augment, self.spec.image_size)
        self.train_ds = UnitImageDataset(
            self.units, self.label_matrix, self.train_idx, self.spec, augmenter, config.seed
        )
        val_shard = self.val_idx[self.runtime.rank :: self.runtime.world_size]
        self.val_ds = UnitImageDataset(self.units, self.label_matrix, val_shard, self.spec)
        if self.runtime.distributed:
            self.sampler: Any = torch.utils.data.distributed.DistributedSampler(
                self.train_ds,
                num_replicas=self.runtime.world_size,
                rank=self.runtime.rank,
                shuffle=True,
                seed=config.seed,
                drop_last=False,
            )
        else:
            self.sampler = EpochShuffleSampler(len(self.train_ds), config.seed)
        self.train_loader = _loader(
            self.train_ds,
            self.batch_size,
            self.sampler,
            config.data.workers,
            self.drop_last,
            config.seed,
            self.runtime.cuda,
        )
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.best_metric = -math.inf
        self.best_loss = math.inf
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.monitor = config.early_stopping.monitor
        self.writer: Any = None

    def _checkpoint_dir(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / "checkpoints"

    def _resume(self) -> bool:
        folder = self._checkpoint_dir()
        if folder is None or not (folder / LAST).is_file():
            return False
        ck = load_checkpoint(folder / LAST)
        if ck.get("training_hash") != self.config.training_hash():
            raise ConfigError(
                "the checkpoint was made with different training settings",
                folder / LAST,
                "resume with the same config (see DIR/config.yaml), or choose a new --out",
            )
        if ck.get("data_sha256") != self.data.sha256:
            raise ConfigError(
                "the manifest changed since the checkpoint was made",
                folder / LAST,
                "resume with the same data, or choose a new --out",
            )
        if ck.get("split_hash") != self._split_hash():
            raise ConfigError("the train/val split differs from the checkpoint's", folder / LAST)
        _unwrap(self.model).load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        if ck.get("total_steps") != self.total_steps:
            note = (
                f"epochs changed from {ck.get('epochs')} to {self.epochs} on resume: the cosine "
                "schedule is stretched from here on"
            )
            log.warning("%s", note)
            self.notes.append(note)
        self.start_epoch = int(ck["epoch"])
        self.best_metric = float(ck["best_metric"])
        self.best_loss = float(ck.get("best_loss", math.inf))
        self.best_epoch = int(ck["best_epoch"])
        self.bad_epochs = int(ck["bad_epochs"])
        self.monitor = str(ck.get("monitor", self.monitor))
        self.history = list(ck["history"])
        set_rng_state(ck["rng"])
        if (folder / BEST).is_file():
            best = load_checkpoint(folder / BEST)
            self.best_state = dict(best["model"])
        log.info("resumed after epoch %d from %s", self.start_epoch, folder / LAST)
        self.early_stopped_before = bool(ck.get("early_stopped", False))
        return True

    def _split_hash(self) -> str:
        import hashlib

        text = f"{self.train_idx}|{self.val_idx}"
        return hashlib.sha256(text.encode()).hexdigest()

    # ---------------------------------------------------------------- epochs

    def _training_module(self, trainable_backbone: bool) -> nn.Module:
        if not self.runtime.distributed:
            return self.model
        if self.ddp is None or self.ddp_trainable != trainable_backbone:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.runtime.device.index] if self.runtime.cuda else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
            self.ddp_trainable = trainable_backbone
        return self.ddp

    def _train_epoch(self, epoch: int, frozen: bool) -> tuple[float, np.ndarray, np.ndarray]:
        set_backbone_trainable(self.model, not frozen)
        module = self._training_module(not frozen)
        module.train()
        if frozen and self.config.optim.freeze_bn:
            _set_frozen_bn_eval(self.model)
        torch.manual_seed(derived_seed(self.config.seed, epoch, 0xD0))
        self.sampler.set_epoch(epoch)
        self.train_ds.set_epoch(epoch)
        clip = self.config.optim.grad_clip_norm
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        progress = self._progress(f"epoch {epoch + 1}/{self.epochs} train")
        total_loss, count = 0.0, 0
        probs, targets = [], []
        seen = 0
        for x, y, _ in self.train_loader:
            if stop_requested(self.stop):
                raise Stopped
            x = x.to(self.runtime.device, non_blocking=True)
            y = y.to(self.runtime.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", enabled=self.amp):
                logits = module(x)
            loss = self.criterion(logits.float(), y)
            if not torch.isfinite(loss):
                raise ConfigError(
                    f"the training loss became {loss.item()} in epoch {epoch + 1}",
                    hint="lower --lr, or check the data",
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            total_loss += float(loss.item()) * len(x)
            count += len(x)
            probs.append(torch.sigmoid(logits.detach().float()).cpu())
            targets.append(y.detach().cpu())
            seen += len(x)
            if progress is not None:
                progress(seen, self.steps_per_epoch * self.batch_size)
        total_loss, total_count = _all_sum(self.runtime, [total_loss, float(count)])
        p = torch.cat(probs) if probs else torch.zeros((0, len(self.labels)))
        t = torch.cat(targets) if targets else torch.zeros((0, len(self.labels)))
        if self.runtime.distributed:
            # ranks hold equally many batches; gather them all for the train AUROC
            p = self._gather_equal(p)
            t = self._gather_equal(t)
        return total_loss / max(total_count, 1.0), t.numpy(), p.numpy()

    def _gather_equal(self, rows: torch.Tensor) -> torch.Tensor:
        device = self.runtime.device if self.runtime.cuda else torch.device("cpu")
        rows = rows.to(device)
        gathered = [torch.zeros_like(rows) for _ in range(self.runtime.world_size)]
        torch.distributed.all_gather(gathered, rows)
        return torch.cat(gathered).cpu()

    def _validate(self) -> tuple[float, np.ndarray]:
        """Validation loss (the training criterion) and probabilities, in val order."""
        logits = predict_logits(
            self.model,
            self.val_ds,
            self.runtime,
            batch_size=max(self.batch_size, 32),
            workers=self.config.data.workers,
            amp=self.amp,
            channels_last=self.channels_last,
            progress=self._progress("validate"),
            stop=self.stop,
        )
        device = self.runtime.device if self.runtime.cuda else torch.device("cpu")
        t = torch.from_numpy(logits).to(device)
        full = _gather_rows(self.runtime, t, len(self.val_ds), len(self.val_idx))
        y = torch.from_numpy(self.label_matrix[self.val_idx]).to(device)
        with torch.no_grad():
            loss = float(self.criterion(full.float(), y))
        return loss, torch.sigmoid(full.float()).cpu().numpy()

    def _progress(self, label: str) -> Progress | None:
        if self.progress_factory is None or not self.runtime.is_main:
            return None
        return self.progress_factory(label)

    def _lrs(self) -> tuple[float, float]:
        head = backbone = math.nan
        for group in self.optimizer.param_groups:
            if group.get("name") == "head":
                head = float(group["lr"])
            elif group.get("name") == "backbone":
                backbone = float(group["lr"])
        return head, backbone

    def _score(self, val_loss: float, aurocs: dict[str, float]) -> float:
        if self.monitor == "auroc":
            mean = nanmean(aurocs.values())
            if math.isfinite(mean):
                return mean
            note = (
                "no label has both classes in the validation split, so AUROC is undefined; "
                "early stopping and the best epoch use the validation loss instead"
            )
            log.warning("%s", note)
            self.notes.append(note)
            self.monitor = "loss"
            self.best_metric = -math.inf
        return -val_loss

    def _save(self, epoch_done: int, early_stopped: bool) -> None:
        folder = self._checkpoint_dir()
        if folder is None or not self.runtime.is_main:
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": epoch_done,
            "epochs": self.epochs,
            "total_steps": self.total_steps,
            "model": _cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "best_metric": float(self.best_metric),
            "best_loss": float(self.best_loss),
            "best_epoch": int(self.best_epoch),
            "bad_epochs": int(self.bad_epochs),
            "monitor": self.monitor,
            "early_stopped": bool(early_stopped),
            "history": self.history,
            "training_hash": self.config.training_hash(),
            "data_sha256": self.data.sha256,
            "split_hash": self._split_hash(),
            "labels": list(self.labels),
        }
        save_checkpoint(folder / LAST, payload)

    def _save_best(self, epoch_done: int) -> None:
        folder = self._checkpoint_dir()
        if folder is None or not self.runtime.is_main or self.best_state is None:
            return
        save_checkpoint(
            folder / BEST,
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "epoch": epoch_done,
                "metric": float(self.best_metric),
                "monitor": self.monitor,
                "model": self.best_state,
                "labels": list(self.labels),
            },
        )

    def _open_writer(self) -> None:
        if self.tensorboard_dir is None or not self.runtime.is_main:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency; a broken install must not stop training
            log.warning("TensorBoard is not importable; no TensorBoard logs are written")
            return
        self.writer = SummaryWriter(log_dir=str(self.tensorboard_dir))

    def _log_scalars(self, entry: dict[str, Any]) -> None:
        if self.writer is None:
            return
        step = entry["epoch"]
        w = self.writer
        w.add_scalar("loss/train", entry["train_loss"], step)
        if entry.get("val_loss") is not None:
            w.add_scalar("loss/val", entry["val_loss"], step)
        for split in ("train", "val"):
            for label, value in (entry.get(f"{split}_auroc") or {}).items():
                if value is not None and math.isfinite(value):
                    w.add_scalar(f"auroc_{split}/{label}", value, step)
        w.add_scalar("lr/head", entry["lr"], step)
        if entry.get("backbone_lr") is not None and math.isfinite(entry["backbone_lr"]):
            w.add_scalar("lr/backbone", entry["backbone_lr"], step)
        w.flush()

    def run(self, resume: bool = False) -> TrainResult:
        start_time = time.perf_counter()
        self._setup()
        self.early_stopped_before = False
        resumed = self._resume() if resume else False
        if resume and not resumed:
            log.info("nothing to resume in %s: starting from scratch", self._checkpoint_dir())
        self._open_writer()
        early_stopped = self.early_stopped_before
        stopped = False
        epoch = self.start_epoch
        es = self.config.early_stopping
        try:
            while epoch < self.epochs and not early_stopped:
                t0 = time.perf_counter()
                cpu0 = time.process_time()
                frozen = epoch < self.freeze_epochs
                lr_head, lr_backbone = self._lrs()
                try:
                    train_loss, ty, tp = self._train_epoch(epoch, frozen)
                    entry: dict[str, Any] = {
                        "epoch": epoch + 1,
                        "train_loss": train_loss,
                        "train_auroc": per_label_auroc(ty, tp, self.labels),
                        "lr": lr_head,
                        "backbone_lr": 0.0 if frozen else lr_backbone,
                        "backbone_frozen": frozen,
                    }
                    entry["train_auroc_mean"] = nanmean(entry["train_auroc"].values())
                    if self.use_val:
                        val_loss, epoch_probs = self._validate()
                        aurocs = per_label_auroc(
                            self.label_matrix[self.val_idx], epoch_probs, self.labels
                        )
                        entry.update(
                            val_loss=val_loss,
                            val_auroc=aurocs,
                            val_auroc_mean=nanmean(aurocs.values()),
                        )
                        score = self._score(val_loss, aurocs)
                    else:
                        entry.update(val_loss=None, val_auroc={}, val_auroc_mean=None)
                        score = float(epoch)  # no validation: the last epoch is the best
                except Stopped:
                    stopped = True
                    break
                val_loss_now = entry["val_loss"] if self.use_val else math.inf
                improved = score > self.best_metric + (es.min_delta if self.use_val else 0.0) or (
                    # a tie (e.g. a small validation set at AUROC 1.0): the lower loss wins
                    self.use_val
                    and self.monitor == "auroc"
                    and score == self.best_metric
                    and val_loss_now < self.best_loss
                )
                if improved:
                    self.best_metric = score
                    self.best_loss = val_loss_now
                    self.best_epoch = epoch + 1
                    self.bad_epochs = 0
                    self.best_state = _cpu_state(self.model)
                else:
                    self.bad_epochs += 1
                entry["best"] = improved
                entry["seconds"] = time.perf_counter() - t0
                entry["cpu_seconds"] = time.process_time() - cpu0
                entry["images"] = self.steps_per_epoch * self.batch_size * self.runtime.world_size
                self.history.append(_json_ready(entry))
                epoch += 1
                if (
                    self.use_val
                    and es.enabled
                    and self.bad_epochs >= es.patience
                    and epoch < self.epochs
                ):
                    early_stopped = True
                    note = (
                        f"early stopping after epoch {epoch}: no improvement of the validation "
                        f"{self.monitor} for {es.patience} epochs"
                    )
                    log.info("%s", note)
                    self.notes.append(note)
                if improved and self.use_val:
                    self._save_best(epoch)
                self._save(epoch, early_stopped)
                self._log_scalars(self.history[-1])
                if self.on_epoch is not None and self.runtime.is_main:
                    self.on_epoch(self.history[-1], list(self.history))
                if stop_requested(self.stop) and epoch < self.epochs and not early_stopped:
                    stopped = True
                    break
        finally:
            if self.writer is not None:
                self.writer.close()
        model = _unwrap(self.model)
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        model.eval()
        val_probs = None
        if self.use_val and not stopped and self.history:
            _, val_probs = self._validate()
        set_backbone_trainable(model, True)
        return TrainResult(
            model=model,
            history=self.history,
            best_epoch=self.best_epoch,
            best_metric=self.best_metric,
            monitor=self.monitor,
            epochs_run=len(self.history),
            early_stopped=early_stopped,
            stopped=stopped,
            val_probs=val_probs,
            seconds=time.perf_counter() - start_time,
            notes=self.notes,
        )


def _json_ready(entry: dict[str, Any]) -> dict[str, Any]:
    """Floats stay floats (NaN becomes None), so history is JSON- and weights_only-safe."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, bool) or v is None or isinstance(v, int | str):
            return v
        f = float(v)
        return f if math.isfinite(f) else None

    return {k: clean(v) for k, v in entry.items()}


def train_model(
    config: TrainConfig,
    data: Dataset,
    units: torch.Tensor,
    train_idx: Sequence[int],
    val_idx: Sequence[int],
    out_dir: Path | None,
    runtime: Runtime,
    *,
    resume: bool = False,
    fixed_epochs: int | None = None,
    on_epoch: EpochCallback | None = None,
    progress_factory: ProgressFactory | None = None,
    stop: StopFlag = None,
    tensorboard_dir: Path | None = None,
) -> TrainResult:
    """Train one network on ``train_idx``, validating on ``val_idx`` (see the module docstring).

    ``units``: the cached unit images of the whole dataset (``training.dataset.load_units``).
    ``out_dir``: checkpoints go to ``out_dir/checkpoints`` (rank 0 only); None writes nothing.
    ``fixed_epochs``: train exactly this many epochs without validation or early stopping
    (the final model after k-fold cross-validation).
    ``stop``: checked between batches; a stopped run keeps the last complete epoch's
    checkpoint and returns ``stopped=True``.
    """
    trainer = Trainer(
        config,
        data,
        units,
        train_idx,
        val_idx,
        out_dir,
        runtime,
        fixed_epochs=fixed_epochs,
        on_epoch=on_epoch,
        progress_factory=progress_factory,
        stop=stop,
        tensorboard_dir=tensorboard_dir,
    )
    return trainer.run(resume=resume)


def clone_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(_unwrap(model))
