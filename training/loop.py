"""The train/validate loop: epochs, validation, early stopping, checkpoints and resume, DDP.

One call of :func:`train_model` trains one network on one train/val split. Its parts live
beside it: the network, optimiser and schedule in ``training.optim``, the device and process
group in ``training.runtime``, checkpoints in ``training.checkpoints``, generator states in
``training.seeding`` and the batches in ``training.batches``.

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
  label from the training split ("prevalence"), averaged over the known targets (a NaN target,
  a public layout's uncertain label under ``uncertainty: ignore``, is masked out);
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

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.model.networks import set_backbone_trainable, unwrap
from training.augment import build_augmenter
from training.batches import EpochShuffleSampler, make_loader, predict_logits
from training.checkpoints import (
    BEST,
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    LAST,
    cpu_state,
    load_checkpoint,
    save_checkpoint,
)
from training.config import TrainConfig
from training.data import Dataset
from training.dataset import Stopped, UnitImageDataset
from training.metrics import nanmean, per_label_auroc
from training.optim import (
    build_model,
    make_optimizer,
    make_scheduler,
    pos_weight_from,
    set_frozen_bn_eval,
)
from training.runtime import Runtime, all_sum, gather_equal, gather_rows
from training.seeding import derived_seed, rng_state, seed_everything, set_rng_state

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict[str, Any], list[dict[str, Any]]], None]  # (entry, history)
ProgressFactory = Callable[[str], Progress | None]


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


@dataclass(frozen=True)
class TrainHooks:
    """How a run talks to its caller: per-epoch callback, progress bars, stop flag, TensorBoard."""

    on_epoch: EpochCallback | None = None
    progress_factory: ProgressFactory | None = None
    stop: StopFlag = None
    tensorboard_dir: Path | None = None


# --------------------------------------------------------------------------- training


class MaskedBCEWithLogits(nn.Module):
    """Multi-label BCE with logits averaged over the known targets only: a NaN target (a public
    layout's uncertain label read with ``uncertainty: ignore``) adds nothing to the loss or
    its gradient. With every target known it is ``nn.BCEWithLogitsLoss``'s mean;
    ``pos_weight`` weighs the positives as there."""

    def __init__(self, pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        known = ~torch.isnan(target)
        per = self.bce(logits, torch.where(known, target, torch.zeros_like(target)))
        return per.masked_fill(~known, 0.0).sum() / known.sum().clamp(min=1)


def known_prevalence(y: np.ndarray) -> list[float]:
    """Each label's positive fraction over its known (non-NaN) targets; 0 where none is known."""
    known = ~np.isnan(y)
    fraction = np.where(known, y, 0.0).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
    return [float(v) for v in fraction]


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
        hooks: TrainHooks | None = None,
    ) -> None:
        hooks = hooks or TrainHooks()
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
        self.on_epoch = hooks.on_epoch
        self.progress_factory = hooks.progress_factory
        self.stop = hooks.stop
        self.tensorboard_dir = hooks.tensorboard_dir
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
        self.batch_size = min(o.batch(), per_rank)
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
        prevalence = known_prevalence(self.label_matrix[self.train_idx])
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
        self.criterion = MaskedBCEWithLogits(pos_weight)
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
        self.train_loader = make_loader(
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
        unwrap(self.model).load_state_dict(ck["model"])
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

    def _step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        module: nn.Module,
        epoch: int,
        trainable: list[torch.nn.Parameter],
    ) -> tuple[float, torch.Tensor, torch.Tensor]:
        """One optimisation step on a batch: forward (autocast on CUDA), a finite-loss check,
        backward through the grad scaler, clipping, the optimizer and scheduler steps. Returns
        the loss, the logits and the targets on the device."""
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
        clip = self.config.optim.grad_clip_norm
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.item()), logits, y

    def _train_epoch(self, epoch: int, frozen: bool) -> tuple[float, np.ndarray, np.ndarray]:
        set_backbone_trainable(self.model, not frozen)
        module = self._training_module(not frozen)
        module.train()
        if frozen and self.config.optim.freeze_bn:
            set_frozen_bn_eval(self.model)
        torch.manual_seed(derived_seed(self.config.seed, epoch, 0xD0))
        self.sampler.set_epoch(epoch)
        self.train_ds.set_epoch(epoch)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        progress = self._progress(f"epoch {epoch + 1}/{self.epochs} train")
        total_loss, count = 0.0, 0
        probs, targets = [], []
        seen = 0
        for x, y, _ in self.train_loader:
            if stop_requested(self.stop):
                raise Stopped
            loss_value, logits, y = self._step(x, y, module, epoch, trainable)
            total_loss += loss_value * len(x)
            count += len(x)
            probs.append(torch.sigmoid(logits.detach().float()).cpu())
            targets.append(y.detach().cpu())
            seen += len(x)
            if progress is not None:
                progress(seen, self.steps_per_epoch * self.batch_size)
        total_loss, total_count = all_sum(self.runtime, [total_loss, float(count)])
        p = torch.cat(probs) if probs else torch.zeros((0, len(self.labels)))
        t = torch.cat(targets) if targets else torch.zeros((0, len(self.labels)))
        if self.runtime.distributed:
            # ranks hold equally many batches; gather them all for the train AUROC
            p = gather_equal(self.runtime, p)
            t = gather_equal(self.runtime, t)
        return total_loss / max(total_count, 1.0), t.numpy(), p.numpy()

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
        device = self.runtime.collective_device
        t = torch.from_numpy(logits).to(device)
        full = gather_rows(self.runtime, t, len(self.val_ds), len(self.val_idx))
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
            "model": cpu_state(self.model),
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
        try:
            while epoch < self.epochs and not early_stopped:
                try:
                    improved = self._run_epoch(epoch)
                except Stopped:
                    stopped = True
                    break
                epoch += 1
                early_stopped = self._stops_early(epoch)
                self._after_epoch(epoch, improved, early_stopped)
                if stop_requested(self.stop) and epoch < self.epochs and not early_stopped:
                    stopped = True
                    break
        finally:
            if self.writer is not None:
                self.writer.close()
        return self._result(early_stopped, stopped, start_time)

    def _run_epoch(self, epoch: int) -> bool:
        """Train and validate epoch ``epoch`` (0-based), append its history entry; whether it
        is the best so far. Raises Stopped when asked to stop mid-epoch."""
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        frozen = epoch < self.freeze_epochs
        lr_head, lr_backbone = self._lrs()
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
        score = self._validate_into(entry, epoch)
        improved = self._track_best(score, entry["val_loss"] if self.use_val else math.inf, epoch)
        entry["best"] = improved
        entry["seconds"] = time.perf_counter() - t0
        entry["cpu_seconds"] = time.process_time() - cpu0
        entry["images"] = self.steps_per_epoch * self.batch_size * self.runtime.world_size
        self.history.append(_json_ready(entry))
        return improved

    def _validate_into(self, entry: dict[str, Any], epoch: int) -> float:
        """Add the validation loss and AUROCs to ``entry``; return the score to maximise."""
        if not self.use_val:
            entry.update(val_loss=None, val_auroc={}, val_auroc_mean=None)
            return float(epoch)  # no validation: the last epoch is the best
        val_loss, epoch_probs = self._validate()
        aurocs = per_label_auroc(self.label_matrix[self.val_idx], epoch_probs, self.labels)
        entry.update(val_loss=val_loss, val_auroc=aurocs, val_auroc_mean=nanmean(aurocs.values()))
        return self._score(val_loss, aurocs)

    def _track_best(self, score: float, val_loss: float, epoch: int) -> bool:
        min_delta = self.config.early_stopping.min_delta if self.use_val else 0.0
        improved = score > self.best_metric + min_delta or (
            # a tie (e.g. a small validation set at AUROC 1.0): the lower loss wins
            self.use_val
            and self.monitor == "auroc"
            and score == self.best_metric
            and val_loss < self.best_loss
        )
        if improved:
            self.best_metric = score
            self.best_loss = val_loss
            self.best_epoch = epoch + 1
            self.bad_epochs = 0
            self.best_state = cpu_state(self.model)
        else:
            self.bad_epochs += 1
        return improved

    def _stops_early(self, epochs_done: int) -> bool:
        es = self.config.early_stopping
        if not (self.use_val and es.enabled and self.bad_epochs >= es.patience):
            return False
        if epochs_done >= self.epochs:
            return False
        note = (
            f"early stopping after epoch {epochs_done}: no improvement of the validation "
            f"{self.monitor} for {es.patience} epochs"
        )
        log.info("%s", note)
        self.notes.append(note)
        return True

    def _after_epoch(self, epochs_done: int, improved: bool, early_stopped: bool) -> None:
        """Checkpoints, TensorBoard and the caller's callback, after each complete epoch."""
        if improved and self.use_val:
            self._save_best(epochs_done)
        self._save(epochs_done, early_stopped)
        self._log_scalars(self.history[-1])
        if self.on_epoch is not None and self.runtime.is_main:
            self.on_epoch(self.history[-1], list(self.history))

    def _result(self, early_stopped: bool, stopped: bool, start_time: float) -> TrainResult:
        """The best weights (eval mode, backbone trainable again) and the run's record."""
        model = unwrap(self.model)
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
        hooks=TrainHooks(on_epoch, progress_factory, stop, tensorboard_dir),
    )
    return trainer.run(resume=resume)
