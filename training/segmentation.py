"""``fit --task segmentation``: 2-D segmentation training on the classification run's loop and
run folder, writing a segmentation model file.

- Data: ``training.segdata`` (a manifest's ``mask`` column of PNG, NIfTI, SEG or RTSTRUCT
  masks, an MSD / nnU-Net or images + masks folder, or SIIM-ACR's RLE), split per patient
  (case) and stratified on "has foreground" like classification;
- network: ``unet-lite0`` (MONAI's FlexibleUNet over the ImageNet EfficientNet-Lite0 encoder,
  ``desktop_app.model.segnetworks``), or the same network from scratch (``--no-pretrained``);
- loss: MONAI's ``DiceCELoss`` (sigmoid; Dice over the batch, so empty masks are no problem,
  plus binary cross-entropy per pixel);
- the loop is ``training.loop.Trainer`` (checkpoints, exact resume, early stopping, DDP, the
  schedule) with the segmentation parts swapped in: the model-selection metric is the mean
  validation Dice per image at 0.5;
- the open recipe keys take the static recipe (``TrainConfig.resolved``): batch 8, lr 1e-3,
  the architecture's 224 px, augmentation strength 1;
- after training: Dice, HD95, lesion sensitivity and false positives per image on val and
  test with bootstrap CIs (``training.segmetrics``), the model file (manifest ``task:
  segmentation``, thresholds 0.5 per pixel, per-slice OOD statistics of the pooled encoder
  features: ``training.applicability.fit_seg_ood``), model card, metrics.json and loss curves.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from desktop_app.infra.atomicio import atomic_write_text
from desktop_app.infra.cancel import StopFlag, stop_requested
from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.model.networks import build_network, unwrap
from training.batches import EpochShuffleSampler, make_loader
from training.config import TrainConfig
from training.data import split_dataset
from training.dataset import Stopped
from training.evaluate import predict_masks
from training.loop import ProgressFactory, Trainer, TrainHooks, TrainResult
from training.optim import make_optimizer, make_scheduler
from training.pipeline import (
    MODEL_CARD,
    MODEL_FILE,
    Fit,
    FitOutcome,
    check_out_dir,
)
from training.runtime import all_sum, gather_rows
from training.seeding import derived_seed, seed_everything
from training.segdata import PairDataset, SegDataset, build_pair_augmenter, load_pairs
from training.segmetrics import dice_per_image, false_positive_clause, seg_split_metrics

log = logging.getLogger(__name__)

PIXEL_THRESHOLD = 0.5


def network_dropout(arch: str, dropout: float) -> float:
    """The dropout a segmentation network is built with: none in a 2-D UNet's decoder
    (``model.dropout`` is the classification head's, before it; a UNet has no such head)."""
    from desktop_app.model.archs import is_volume

    return dropout if is_volume(arch) else 0.0


THRESHOLD_RULE = "0.5 per pixel (sigmoid): not tuned on validation data"


class SegTrainer(Trainer):
    """``Trainer`` with a UNet, Dice+CE, image+mask batches and validation Dice."""

    def __init__(self, masks: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.masks = masks

    def _setup(self) -> None:
        from monai.losses import DiceCELoss

        c, m, rt = self.config, self.config.model, self.runtime
        seed_everything(c.seed)
        model = build_network(
            m.arch, len(self.labels), pretrained=m.pretrained, init=m.init,
            dropout=network_dropout(m.arch, m.dropout),
            in_channels=self.spec.channels, image_size=self.spec.image_size,
        )  # fmt: skip
        if m.bn_momentum is not None:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.momentum = m.bn_momentum
        model.to(rt.device)
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.ddp: nn.Module | None = None
        self.ddp_trainable: bool | None = None
        self.optimizer = make_optimizer(self.model, c)
        self.scheduler = make_scheduler(
            self.optimizer, self.total_steps, self.warmup_steps, c.optim.min_lr_ratio
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.criterion = DiceCELoss(sigmoid=True, batch=True)  # type: ignore[assignment]
        augmenter = build_pair_augmenter(c.augment, self.spec.image_size)
        self.train_ds = PairDataset(  # type: ignore[assignment]
            self.units, self.masks, self.train_idx, self.spec, augmenter, c.seed
        )
        val_shard = self.val_idx[rt.rank :: rt.world_size]
        self.val_ds = PairDataset(  # type: ignore[assignment]
            self.units, self.masks, val_shard, self.spec
        )
        if rt.distributed:
            self.sampler: Any = torch.utils.data.distributed.DistributedSampler(
                self.train_ds, num_replicas=rt.world_size, rank=rt.rank, shuffle=True,
                seed=c.seed, drop_last=False,
            )  # fmt: skip
        else:
            self.sampler = EpochShuffleSampler(len(self.train_ds), c.seed)
        self.train_loader = make_loader(
            self.train_ds, self.batch_size, self.sampler, c.data.workers, self.drop_last,
            c.seed, rt.cuda,
        )  # fmt: skip
        self.history: list[dict[str, Any]] = []
        self.start_epoch, self.best_epoch, self.bad_epochs = 0, 0, 0
        self.best_metric, self.best_loss = -math.inf, math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.monitor = c.early_stopping.monitor
        self.writer: Any = None

    def _train_epoch(self, epoch: int, frozen: bool) -> tuple[float, np.ndarray, np.ndarray]:
        module = self._training_module(True)
        module.train()
        torch.manual_seed(derived_seed(self.config.seed, epoch, 0xD0))
        self.sampler.set_epoch(epoch)
        self.train_ds.set_epoch(epoch)
        progress = self._progress(f"epoch {epoch + 1}/{self.epochs} train")
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        total, count = 0.0, 0
        for x, y, _ in self.train_loader:
            if stop_requested(self.stop):
                raise Stopped
            total += self._step(x, y, module, epoch, trainable)[0] * len(x)
            count += len(x)
            if progress is not None:
                progress(count, self.steps_per_epoch * self.batch_size)
        total, n = all_sum(self.runtime, [total, float(count)])
        return total / max(n, 1.0), np.zeros((0, 0)), np.zeros((0, 0))

    def _validate(self) -> tuple[float, np.ndarray]:
        """Validation loss and per-image Dice at 0.5 (mean over labels), in val order."""
        self.model.eval()
        loss_sum, dices = 0.0, []
        loader = torch.utils.data.DataLoader(self.val_ds, batch_size=max(self.batch_size, 16))
        with torch.no_grad():
            for x, y, _ in loader:
                x, y = x.to(self.runtime.device), y.to(self.runtime.device)
                with torch.autocast("cuda", enabled=self.amp):
                    logits = self.model(x).float()
                loss_sum += float(self.criterion(logits, y)) * len(x)
                pred = (torch.sigmoid(logits) >= PIXEL_THRESHOLD).cpu().numpy()
                truth = y.cpu().numpy() > 0
                per = [dice_per_image(pred[:, j], truth[:, j]) for j in range(pred.shape[1])]
                dices.append(np.mean(per, axis=0))
        local = np.concatenate(dices) if dices else np.zeros(0)
        loss_sum, n = all_sum(self.runtime, [loss_sum, float(len(local))])
        t = torch.from_numpy(local[:, None]).to(self.runtime.collective_device)
        full = gather_rows(self.runtime, t, len(self.val_ds), len(self.val_idx))
        return loss_sum / max(n, 1.0), full.cpu().numpy()[:, 0]

    def _run_epoch(self, epoch: int) -> bool:
        t0 = time.perf_counter()
        lr, _ = self._lrs()
        train_loss, _, _ = self._train_epoch(epoch, False)
        entry: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "lr": lr,
                                 "backbone_lr": lr, "backbone_frozen": False}  # fmt: skip
        score = self._validate_into(entry, epoch)
        improved = self._track_best(score, entry["val_loss"] if self.use_val else math.inf, epoch)
        entry.update(best=improved, seconds=time.perf_counter() - t0)
        entry["images"] = self.steps_per_epoch * self.batch_size * self.runtime.world_size
        self.history.append({k: _clean(v) for k, v in entry.items()})
        return improved

    def _validate_into(self, entry: dict[str, Any], epoch: int) -> float:
        if not self.use_val:
            entry.update(val_loss=None, val_dice=None)
            return float(epoch)
        val_loss, dice = self._validate()
        entry.update(val_loss=val_loss, val_dice=float(dice.mean()) if dice.size else None)
        return -val_loss if self.monitor == "loss" else float(entry["val_dice"] or 0.0)

    def _result(self, early_stopped: bool, stopped: bool, start_time: float) -> TrainResult:
        result = super()._result(early_stopped, stopped, start_time)
        result.val_probs = None  # per-image Dice, not probabilities
        return result


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def finish_fit(
    fit: Fit,
    result: TrainResult,
    thresholds: dict[str, float],
    final: dict[str, Any],
    start: float,
    write_model: Callable[[], Path],
) -> FitOutcome:
    """A segmentation fit's last steps (2-D and 3-D): the metrics, the model file
    (``write_model``), the loss curves and metrics.json."""
    fit.metrics.update(
        history=[{k: _clean(v) for k, v in e.items()} for e in result.history],
        thresholds=thresholds, threshold_rule=THRESHOLD_RULE, final=final,
        seconds=round(time.perf_counter() - start, 1),
        training={"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                  "monitor": result.monitor, "early_stopped": result.early_stopped,
                  "train_seconds": round(result.seconds, 1)},
    )  # fmt: skip
    model_path = write_model()
    fit.metrics["model_file"] = model_path.name
    fit._plots(fit.out_dir, result.history, {}, {})
    fit._write_metrics(fit.out_dir, fit.metrics)
    return FitOutcome(fit.out_dir, model_path, fit.metrics, result.history,
                      seconds=fit.metrics["seconds"], notes=fit.notes)  # fmt: skip


class SegmentationFit(Fit):
    """``Fit`` for ``data.task: segmentation`` (see the module docstring)."""

    #: the recipe keys the user left open (``RECIPE_FLAGS`` names), said in the recipe line
    recipe_defaults: tuple[str, ...] = ()

    def _run(self, start: float) -> FitOutcome:
        out, c = self.out_dir, self.config
        check_out_dir(out, self.resume)
        self._open_run_folder()
        seg, splits = self._load_seg()
        data = seg.data
        for line in (data_line(seg), split_line(data, splits, c.seed),
                     recipe_line(c, self.recipe_defaults)):  # fmt: skip
            if line:
                self._info(line)
        self.metrics = {
            "task": "segmentation", "labels": list(data.labels),
            "device": str(self.runtime.device), "world_size": self.runtime.world_size,
            "data": self._data_summary(data, splits), "notes": self.notes,
        }  # fmt: skip
        try:
            units, masks, spacing = load_pairs(
                seg, c.preprocess_spec(), workers=max(1, c.data.workers or 2),
                progress=self._progress("decode + preprocess (once)"), stop=self.stop,
            )  # fmt: skip
        except Stopped:
            return self._stopped([])
        self.metrics["decode_seconds"] = round(time.perf_counter() - start, 2)
        tb = out / "tensorboard" if c.output.tensorboard else None
        trainer = SegTrainer(
            masks, c, data, units, splits.train, splits.val, out, self.runtime,
            hooks=TrainHooks(self._epoch_callback(out, "", c.optim.epochs), self.progress_factory,
                             self.stop, tb),
        )  # fmt: skip
        result = trainer.run(resume=self.resume)
        self.notes += result.notes
        if result.stopped:
            self._write_metrics(out, {**self.metrics, "history": result.history, "stopped": True})
            return self._stopped(result.history)
        if not self.main:
            return FitOutcome(out, None, self.metrics, result.history, notes=self.notes)
        return self._finish_seg(seg, splits, units, masks, spacing, result, start)

    def _load_seg(self) -> tuple[SegDataset, Any]:
        from training.segdata import read_segmentation_data

        c = self.config
        if not c.data.manifest:
            raise ConfigError("no training data given", hint="pass --data MANIFEST")
        seg = read_segmentation_data(c.data.manifest, c.data.labels)
        splits = split_dataset(
            seg.data, seed=c.seed, val_fraction=c.data.val_fraction,
            test_fraction=c.data.test_fraction,
        )  # fmt: skip
        if not seg.data.label_matrix(splits.train).any():
            raise DataError(
                "no mask of the train split has any foreground",
                seg.data.source,
                "check the mask files: nonzero pixels are foreground",
            )
        if not splits.test:
            self.notes.append(
                "there is no test split: the model file carries validation metrics only"
            )
        return seg, splits

    def _finish_seg(
        self, seg: SegDataset, splits: Any, units: torch.Tensor, masks: torch.Tensor,
        spacing: np.ndarray, result: TrainResult, start: float,
    ) -> FitOutcome:  # fmt: skip
        c, data = self.config, seg.data
        ev, spec = c.evaluation, c.preprocess_spec()
        thresholds = dict.fromkeys(data.labels, PIXEL_THRESHOLD)
        final: dict[str, Any] = {}
        for name in ("val", "test"):
            idx: Sequence[int] = getattr(splits, name)
            if not idx:
                continue
            ds = PairDataset(units, masks, idx, spec)
            probs, truth = predict_masks(result.model, ds, self.runtime.device, 16)
            final[name] = seg_split_metrics(
                probs, truth, data.labels, thresholds, n_boot=ev.bootstrap, level=ev.ci_level,
                seed=c.seed, spacing=spacing[list(idx)],
            )  # fmt: skip
        try:
            ood = self._fit_ood(unwrap(result.model), units, splits)
        except Stopped:
            return self._stopped(result.history)
        return finish_fit(self, result, thresholds, final, start, lambda: self._write_seg_model(
            data, splits, unwrap(result.model), thresholds, final, ood))  # fmt: skip

    def _fit_ood(self, model: nn.Module, units: torch.Tensor, splits: Any) -> Any:
        """The per-slice OOD statistics (``training.applicability.fit_seg_ood``); their flag
        rates go into metrics.json."""
        from training.applicability import fit_seg_ood
        from training.ood import MIN_TRAIN_IMAGES

        t0 = time.perf_counter()
        ood, rates = fit_seg_ood(
            self.config.applicability, model, units, splits.train, splits.val,
            self.config.preprocess_spec(), self.runtime.device, stop=self.stop,
        )  # fmt: skip
        if ood is not None:
            self.metrics["ood"] = {"threshold": ood.threshold, "flag_rate": rates,
                                   "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        elif self.config.applicability.ood:
            self.notes.append(
                f"no OOD statistics: the train split has {len(splits.train)} slices, fewer "
                f"than the {MIN_TRAIN_IMAGES} they need; images unlike them are not flagged"
            )
        return ood

    def _write_seg_model(
        self, data: Any, splits: Any, model: nn.Module, thresholds: dict[str, float],
        final: dict[str, Any], ood: Any = None,
    ) -> Path:  # fmt: skip
        from desktop_app.model.modelfile import (
            ModelManifest,
            save_model_file,
        )
        from desktop_app.model.networks import arch_args
        from training.intended import intended_input_for

        c, spec = self.config, self.config.preprocess_spec()
        classes = ", ".join(data.labels)
        # Not DEFAULT_INTENDED_USE: that one speaks of findings on radiographs.
        intended = c.output.intended_use or (
            f"Outlines {classes} on 2-D images, one probability per pixel, for a qualified "
            "reader to review; every outline must be confirmed by that reader. Research use "
            "only, not for diagnosis."
        )
        if data.synthetic and c.output.intended_use is None:
            intended = "Demonstration only: trained on synthetic phantoms. " + intended
        summary = dict(self.metrics["data"])
        summary["training"] = self.metrics.get("training", {})
        summary["config"] = {"arch": c.model.arch, "pretrained": c.model.pretrained,
                             "epochs": c.optim.epochs, "batch_size": c.optim.batch_size,
                             "lr": c.optim.lr, "seed": c.seed, "image_size": spec.image_size,
                             "loss": "DiceCELoss (sigmoid, batch Dice + BCE)"}  # fmt: skip
        manifest = ModelManifest(
            name=c.output.name or self.out_dir.resolve().name or "radassist-segmentation",
            architecture=c.model.arch,
            arch_args=arch_args(c.model.arch, len(data.labels), in_channels=spec.channels,
                                image_size=spec.image_size,
                                dropout=network_dropout(c.model.arch, c.model.dropout)),
            labels=tuple(data.labels), preprocessing=spec, thresholds=thresholds,
            threshold_rule=THRESHOLD_RULE, version=c.output.version, metrics=final,
            training_data=summary, intended_use=intended,
            intended_input=intended_input_for(
                [data.records[i] for i in splits.train], c.applicability
            ),
            task="segmentation",
        )  # fmt: skip
        path = self.out_dir / MODEL_FILE
        save_model_file(path, model, manifest, ood=ood)
        atomic_write_text(self.out_dir / MODEL_CARD, segmentation_card(path))
        return path


def segmentation_card(path: Path) -> str:
    """The model card of the segmentation model file at ``path``: the generic card with the
    "What it segments" section before "Model"."""
    from desktop_app.model.modelfile import model_card_markdown, read_manifest

    manifest = read_manifest(path)
    section = segmentation_card_section(
        manifest.labels, manifest.preprocessing.image_size, manifest.ood is not None
    )
    return model_card_markdown(manifest).replace("\n## Model\n", "\n" + section + "\n## Model\n", 1)


def segmentation_card_section(labels: Sequence[str], size: int, ood: bool = False) -> str:
    """The model card's "What it segments" section."""
    scored = (
        "- Out-of-distribution score: per slice, of the encoder's deepest feature map "
        'global-average-pooled (the "penultimate features" below); a series whose median '
        "slice is over the threshold is shown as unlike the training data, and each slice over "
        "it is marked\n"
        if ood
        else ""
    )
    return (
        "## What it segments\n\n"
        f"- Classes: {', '.join(labels)} (one sigmoid map per class; a pixel is foreground "
        "where its probability reaches the class threshold)\n"
        f"- Output: per-pixel logits (N, {len(labels)}, {size}, {size}) over the padded "
        "network input; map them back with the preprocessing's geometry\n"
        "- Metrics: per-image Dice (empty-empty counts as 1), HD95 in network pixels (and mm "
        "where the images give their pixel spacing), lesion sensitivity (a true lesion is "
        "found when any predicted pixel overlaps it) and false positive lesions per image "
        "(8-connected components), 95 % bootstrap CIs over images (Wilson for sensitivity)\n"
        + scored
    )


LAYOUT_TITLES = {"folders": "images + masks folders", "msd": "MSD / nnU-Net folder"}
# recipe key -> the fit flag that sets it
RECIPE_FLAGS = {"image_size": "--image-size", "batch_size": "--batch-size", "lr": "--lr",
                "epochs": "--epochs"}  # fmt: skip


def data_line(seg: SegDataset) -> str:
    """What fit found in ``--data``: the layout, the pairs and the reader's notes (images left
    out, masks united, JPEG masks thresholded)."""
    from training.segmasks import LabelImage

    data = seg.data
    title = LAYOUT_TITLES.get(data.kind) or data.source.name
    n = len(data.records)
    what = f"{n} image/mask pair{'' if n == 1 else 's'}"
    if data.kind == "msd":
        cases = len({r.patient for r in data.records})
        what = f"{n} slice{'' if n == 1 else 's'} of {cases} case{'' if cases == 1 else 's'}"
    lossy = sum(1 for m in seg.masks if isinstance(m, LabelImage)
                and m.path.suffix.lower() in (".jpg", ".jpeg"))  # fmt: skip
    if lossy:
        what += " (JPEG masks thresholded at half their maximum)"
    return "; ".join([f"{title}: {what}", *data.notes])


def split_line(data: Any, splits: Any, seed: int) -> str:
    """The split sizes and how they were made: ``split 14/3/3 (train/val/test) by image
    (seed 0)``."""
    sizes = "/".join(str(len(getattr(splits, name))) for name in ("train", "val", "test"))
    if data.has_split:
        how = "from the data's own split (column or folders)"
    else:
        unit = {"folders": "image", "msd": "case"}.get(data.kind)
        unit = unit or ("patient" if data.has_patient_ids else "row")
        how = f"by {unit} (seed {seed})"
    return f"split {sizes} (train/val/test) {how}"


def recipe_line(config: TrainConfig, defaults: Sequence[str]) -> str | None:
    """The recipe trained, when some of it are defaults the user did not set (``defaults``:
    ``RECIPE_FLAGS`` keys); None when every key was given."""
    if not defaults:
        return None
    o, epochs = config.optim, config.optim.epochs
    start = "pretrained" if config.model.pretrained else "from scratch"
    values = {"image_size": f"{config.preprocess_spec().image_size} px",
              "batch_size": f"batch {o.batch_size}", "lr": f"lr {o.lr:g}",
              "epochs": f"{epochs} epoch{'' if epochs == 1 else 's'}"}  # fmt: skip
    keys = [k for k in RECIPE_FLAGS if k in defaults]
    return (
        f"{config.model.arch} ({start}) at {', '.join(values.values())} (defaults: "
        f"{', '.join(values[k] for k in keys)}; {', '.join(RECIPE_FLAGS[k] for k in keys)} "
        "to change)"
    )


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """What fit prints at the end of a segmentation run."""
    lines = [f"thresholds: {metrics['threshold_rule']}"]
    for split, block in metrics.get("final", {}).items():
        for label, m in block.items():
            if not isinstance(m, dict):
                continue

            def fmt(entry: dict[str, Any], digits: int = 3) -> str:
                v, ci = entry.get("value"), entry.get("ci95") or [None, None]
                if v is None:
                    return "n/a"
                lo, hi = (("n/a" if x is None else f"{x:.{digits}f}") for x in ci)
                return f"{v:.{digits}f} [{lo}, {hi}]"

            mm = f" ({fmt(m['hd95_mm'], 1)} mm)" if "hd95_mm" in m else ""
            many = false_positive_clause(m["fp_per_image"].get("value"))
            lines.append(
                f"{split} {label}: Dice {fmt(m['dice'])}; Dice (positive images) "
                f"{fmt(m['dice_positive'])}; HD95 {fmt(m['hd95_px'], 1)} px{mm}; lesion sensitivity "
                f"{fmt(m['lesion_sensitivity'])} of {m['lesions']}{' ' + many if many else ''}; FP/image "
                f"{fmt(m['fp_per_image'], 2)} ({m['images']} {'volumes' if 'cases' in m else 'images'})"
            )
    return lines


def run_segmentation_fit(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    on_epoch: Callable[[str, dict[str, Any], int], None] | None = None,
    progress_factory: ProgressFactory | None = None,
    stop: StopFlag = None,
    on_info: Callable[[str], None] | None = None,
    recipe_defaults: Sequence[str] = (),
) -> FitOutcome:
    """``training.pipeline.run_fit`` for ``data.task: segmentation`` (same arguments, and
    ``recipe_defaults``: the ``RECIPE_FLAGS`` keys the user left open, said in one line); a 3-D
    architecture is ``training.seg3d.run_volume_fit``."""
    from desktop_app.model.archs import is_volume

    if is_volume(config.model.arch):
        raise ConfigError(
            f"run_segmentation_fit trains 2-D networks; {config.model.arch} is 3-D",
            hint="call training.seg3d.run_volume_fit",
        )
    fit = SegmentationFit(
        config, Path(out_dir), resume=resume, on_epoch=on_epoch,
        progress_factory=progress_factory, stop=stop, on_info=on_info,
    )  # fmt: skip
    fit.recipe_defaults = tuple(recipe_defaults)
    return fit.run()
