"""3-D segmentation training (``fit --task segmentation --arch segresnet3d``): NIfTI volumes
resampled to the data's median spacing, trained on patches, scored by sliding window. The data,
patches, sliding window and metrics are ``training.seg3ddata``'s; ``training.evaluate`` scores a
3-D model file with them.

- Data: an MSD / nnU-Net raw folder (``imagesTr`` + ``labelsTr``, read with
  ``training.seglayouts``'s case rules and ``dataset.json`` labels) or a manifest whose rows are
  volumes (a NIfTI ``path`` and ``mask``, optional ``patient_id`` / ``split``, no ``slice``
  column). Each case is read once with nibabel, brought to the closest canonical orientation
  and laid out (slice, row, column) like ``segmasks.read_volume``; a label on another grid
  than its image, or a volume over :data:`MAX_VOXELS` (:data:`MAX_TOTAL_VOXELS` for all of
  them), is refused in one line.
- Spacing: every case is resampled to the median (slice, row, column) spacing of the cases'
  headers (nnU-Net's fingerprint rule; ``scipy.ndimage.zoom``, linear; the label as 0/1
  cut at 0.5; ``grid_mode`` so a structure keeps its size in mm).
- Intensity: CT (dataset.json's modality, else HU-like values: a volume reaching -500 or
  below) is clipped to the 0.5-99.5 percentile window of the train split's foreground and
  scaled to [0, 1] (nnU-Net's CT rule); anything else gets a per-volume percentile z-score
  (clip to 0.5-99.5, then zero mean, unit variance). The window is stored in the model file.
- Patches: cubes of ``image_size`` voxels, centred on foreground and on background 1:1 by
  MONAI's ``RandCropByPosNegLabeld`` (its index lists computed once per case and capped at
  :data:`INDEX_CAP`, as the full background list of a 512^2 x 300 CT is 600 MB), padded where
  the volume is smaller, flipped along each axis with p 0.5; :data:`PATCHES_PER_CASE` patches a
  train case per epoch, seeded from (seed, epoch, index), so resume is exact.
- Network: MONAI's 3-D ``SegResNet`` (``init_filters`` 8), from scratch (no 3-D ImageNet weights
  exist), ``DiceCELoss``; the loop is ``training.segmentation.SegTrainer`` (checkpoints, exact
  resume, early stopping on validation Dice, the schedule) with 3-D patches swapped in.
- Validation and test: MONAI's ``sliding_window_inference`` over whole resampled volumes (ROI =
  patch, overlap 0.25, gaussian weights), then per case Dice, HD95 in mm, lesion-wise
  sensitivity and false positives per volume (26-connected components) with bootstrap CIs
  over cases (Wilson for the sensitivity), on the resampled grid.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from desktop_app.infra.atomicio import atomic_write_text
from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.model.archs import volume_arch_args
from desktop_app.model.networks import apply_init, build_from_arch_args, unwrap
from training.batches import EpochShuffleSampler, make_loader
from training.data import split_dataset
from training.dataset import Stopped
from training.loop import TrainHooks, TrainResult
from training.optim import make_optimizer, make_scheduler
from training.pipeline import (
    MODEL_CARD,
    MODEL_FILE,
    Fit,
    FitOutcome,
    check_out_dir,
)
from training.seeding import seed_everything
from training.seg3ddata import (
    PATCHES_PER_CASE,
    WINDOW_PERCENTILES,
    PatchDataset,
    VolumeData,
    ct_window,
    load_volume_data,
    normalize,
    predict_volumes,
    sliding_window_logits,
    split_metrics_3d,
)
from training.segmentation import PIXEL_THRESHOLD, THRESHOLD_RULE, SegTrainer, finish_fit
from training.segmetrics import dice_per_image

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the loop


class VolumeTrainer(SegTrainer):
    """``SegTrainer`` on 3-D patches (``PatchDataset``) with sliding-window validation."""

    def __init__(
        self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
        net_args: dict[str, Any], *args: Any, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(torch.empty(0), *args, **kwargs)  # no 2-D masks
        self.images, self.volume_masks, self.net_args = images, masks, net_args
        self.patch = int(net_args["image_size"])
        self.channels_last = False  # a 2-D memory format
        o = self.config.optim
        patches = len(self.train_idx) * PATCHES_PER_CASE
        self.batch_size = min(o.batch(), patches)
        self.drop_last = patches > self.batch_size
        self.steps_per_epoch = (
            patches // self.batch_size if self.drop_last else math.ceil(patches / self.batch_size)
        )
        self.total_steps = self.steps_per_epoch * self.epochs
        self.warmup_steps = min(self.total_steps, round(o.warmup_epochs * self.steps_per_epoch))

    def _setup(self) -> None:
        from monai.losses import DiceCELoss

        c = self.config
        seed_everything(c.seed)
        model = build_from_arch_args(c.model.arch, self.net_args)
        if c.model.init != "default":
            apply_init(model, c.model.init)
        self.model = model.to(self.runtime.device)
        self.ddp: nn.Module | None = None
        self.ddp_trainable: bool | None = None
        # from scratch: the whole network learns at the peak LR (no backbone to protect)
        self.optimizer = make_optimizer(
            self.model, replace(c, optim=replace(c.optim, backbone_lr_factor=1.0))
        )
        self.scheduler = make_scheduler(
            self.optimizer, self.total_steps, self.warmup_steps, c.optim.min_lr_ratio
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.criterion = DiceCELoss(sigmoid=True, batch=True)  # type: ignore[assignment]
        self.train_ds = PatchDataset(  # type: ignore[assignment]
            self.images, self.volume_masks, self.train_idx, self.patch, c.seed
        )
        self.sampler = EpochShuffleSampler(len(self.train_ds), c.seed)
        self.train_loader = make_loader(
            self.train_ds, self.batch_size, self.sampler, c.data.workers, self.drop_last,
            c.seed, self.runtime.cuda,
        )  # fmt: skip
        self.history: list[dict[str, Any]] = []
        self.start_epoch, self.best_epoch, self.bad_epochs = 0, 0, 0
        self.best_metric, self.best_loss = -math.inf, math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.monitor = c.early_stopping.monitor
        self.writer: Any = None

    def _validate(self) -> tuple[float, np.ndarray]:
        """Mean validation loss and per-case Dice at 0.5 over whole volumes (sliding window)."""
        loss_sum, dices = 0.0, []
        for i in self.val_idx:
            logits = sliding_window_logits(
                self.model, self.images[i], self.patch, self.runtime.device
            )
            truth = torch.from_numpy(self.volume_masks[i][None, None].astype(np.float32))
            loss_sum += float(self.criterion(logits.cpu(), truth))
            pred = (torch.sigmoid(logits) >= PIXEL_THRESHOLD).cpu().numpy()[0, 0]
            dices.append(float(dice_per_image(pred[None], self.volume_masks[i][None])[0]))
        return loss_sum / max(len(dices), 1), np.asarray(dices)


# --------------------------------------------------------------------------- fit


class VolumeSegmentationFit(Fit):
    """``fit`` for a 3-D segmentation architecture (see the module docstring)."""

    def _run(self, start: float) -> FitOutcome:
        out, c = self.out_dir, self.config
        if self.runtime.distributed:
            raise ConfigError(
                f"{c.model.arch} trains in one process", hint="run fit without torchrun"
            )
        check_out_dir(out, self.resume)
        self._open_run_folder()
        if not c.data.manifest:
            raise ConfigError("no training data given", hint="pass --data FOLDER")
        try:
            vols = load_volume_data(
                c.data.manifest, c.data.labels, progress=self._progress("read + resample (once)"),
                stop=self.stop,
            )  # fmt: skip
        except Stopped:
            return self._stopped([])
        data = vols.data
        splits = split_dataset(
            data, seed=c.seed, val_fraction=c.data.val_fraction,
            test_fraction=c.data.test_fraction,
        )  # fmt: skip
        if not data.label_matrix(splits.train).any():
            raise DataError(
                "no label volume of the train split has any foreground", data.source,
                "check the label files: nonzero voxels (or dataset.json's labels) are foreground",
            )  # fmt: skip
        if not splits.test:
            self.notes.append(
                "there is no test split: the model file carries validation metrics only"
            )
        ct = vols.modality == "CT"
        window = ct_window([vols.images[i] for i in splits.train],
                           [vols.masks[i] for i in splits.train], c.seed) if ct else None  # fmt: skip
        images = [normalize(img, window) for img in vols.images]
        vols.images = []  # the raw copies go: only the normalised ones stay in memory
        net_args = volume_arch_args(
            c.model.arch, 1, image_size=c.preprocess_spec().image_size, spacing=vols.spacing,
            window=None if window is None else (window[0], window[1]),
        )  # fmt: skip
        self.metrics = {
            "task": "segmentation", "labels": list(data.labels), "dims": 3,
            "device": str(self.runtime.device), "world_size": 1,
            "data": self._data_summary(data, splits), "notes": self.notes,
            "volume": {"spacing_mm": list(vols.spacing), "patch": net_args["image_size"],
                       "modality": vols.modality, "modality_source": vols.modality_source,
                       "window": window, "shapes": [list(m.shape) for m in vols.masks]},
            "decode_seconds": round(time.perf_counter() - start, 2),
        }  # fmt: skip
        trainer = VolumeTrainer(
            images, vols.masks, net_args, c, data, torch.empty(0), splits.train, splits.val,
            out, self.runtime,
            hooks=TrainHooks(self._epoch_callback(out, "", c.optim.epochs),
                             self.progress_factory, self.stop, None),
        )  # fmt: skip
        result = trainer.run(resume=self.resume)
        self.notes += result.notes
        if result.stopped:
            self._write_metrics(out, {**self.metrics, "history": result.history, "stopped": True})
            return self._stopped(result.history)
        return self._finish(vols, images, splits, net_args, result, start)

    def _finish(  # type: ignore[override]
        self, vols: VolumeData, images: list[np.ndarray], splits: Any,
        net_args: dict[str, Any], result: TrainResult, start: float,
    ) -> FitOutcome:  # fmt: skip
        c, data, ev = self.config, vols.data, self.config.evaluation
        final: dict[str, Any] = {}
        for name in ("val", "test"):
            idx: Sequence[int] = getattr(splits, name)
            if not idx:
                continue
            probs = predict_volumes(result.model, [images[i] for i in idx],
                                    net_args["image_size"], self.runtime.device, self.stop)  # fmt: skip
            final[name] = split_metrics_3d(
                probs, [vols.masks[i] for i in idx], data.labels, vols.spacing,
                n_boot=ev.bootstrap, level=ev.ci_level, seed=c.seed,
            )  # fmt: skip
        thresholds = dict.fromkeys(data.labels, PIXEL_THRESHOLD)
        return finish_fit(self, result, thresholds, final, start, lambda: self._write_volume_model(
            vols, splits, unwrap(result.model), net_args, final))  # fmt: skip

    def _write_volume_model(
        self, vols: VolumeData, splits: Any, model: nn.Module, net_args: dict[str, Any],
        final: dict[str, Any],
    ) -> Path:  # fmt: skip
        from desktop_app.model.applicability import IntendedInput
        from desktop_app.model.modelfile import (
            ModelManifest,
            model_card_markdown,
            read_manifest,
            save_model_file,
        )
        from desktop_app.model.preprocessing import PreprocessSpec

        c, data = self.config, vols.data
        spec = PreprocessSpec(
            image_size=net_args["image_size"], channels=1, output_scaling="none",
            normalization="window" if net_args["window"] is not None else "percentile",
            percentiles=WINDOW_PERCENTILES,
        )  # fmt: skip
        what = vols.modality or "3-D"
        intended = c.output.intended_use or (
            f"Outlines {', '.join(data.labels)} in {what} volumes, one probability per voxel, "
            "for a qualified reader to review; every outline must be confirmed by that reader. "
            "Research use only, not for diagnosis."
        )
        summary = dict(self.metrics["data"])
        summary["training"] = self.metrics.get("training", {})
        summary["volume"] = self.metrics["volume"]
        summary["config"] = {"arch": c.model.arch, "pretrained": False, "epochs": c.optim.epochs,
                             "batch_size": c.optim.batch_size, "lr": c.optim.lr, "seed": c.seed,
                             "patch": net_args["image_size"],
                             "loss": "DiceCELoss (sigmoid, batch Dice + BCE)"}  # fmt: skip
        manifest = ModelManifest(
            name=c.output.name or self.out_dir.resolve().name or "radassist-segmentation-3d",
            architecture=c.model.arch, arch_args=net_args, labels=tuple(data.labels),
            preprocessing=spec, thresholds=dict.fromkeys(data.labels, PIXEL_THRESHOLD),
            threshold_rule=THRESHOLD_RULE, version=c.output.version, metrics=final,
            training_data=summary, intended_use=intended,
            intended_input=IntendedInput(
                modalities=(vols.modality,) if vols.modality else (), image_kind="slice",
                source=f"fit (3-D NIfTI volumes; modality from {vols.modality_source or 'nothing: unknown'})",
            ),
            task="segmentation",
        )  # fmt: skip
        path = self.out_dir / MODEL_FILE
        save_model_file(path, model, manifest)
        card = model_card_markdown(read_manifest(path)).replace(
            "\n## Model\n", "\n" + volume_card_section(data.labels, net_args) + "\n## Model\n", 1
        )
        atomic_write_text(self.out_dir / MODEL_CARD, card)
        return path


def volume_card_section(labels: Sequence[str], net_args: dict[str, Any]) -> str:
    """The model card's "What it segments" section of a 3-D model."""
    p, sp, window = net_args["image_size"], net_args["spacing"], net_args["window"]
    intensity = (
        f"clipped to [{window[0]:.0f}, {window[1]:.0f}] (the train split's foreground 0.5-99.5 "
        "percentiles) and scaled to [0, 1]"
        if window is not None
        else "clipped to each volume's 0.5-99.5 percentiles, then zero mean and unit variance"
    )
    return (
        "## What it segments\n\n"
        f"- Classes: {', '.join(labels)} (one sigmoid map per class; a voxel is foreground where "
        "its probability reaches 0.5)\n"
        f"- 3-D: MONAI SegResNet (init_filters {net_args['init_filters']}) trained from scratch: "
        "no ImageNet (or other) pretrained 3-D weights exist for it\n"
        f"- Input: a volume resampled to {' x '.join(f'{v:.3g}' for v in sp)} mm (slice x row x "
        f"column), intensities {intensity}; patches of {p}^3 voxels, sliding-window inference "
        "(overlap 0.25, gaussian)\n"
        "- This version of the app runs 2-D models only: score this one with "
        "`radassist-train evaluate`\n"
        "- Metrics: per-volume Dice, HD95 in mm, lesion sensitivity (26-connected components; a "
        "lesion is found when any predicted voxel overlaps it) and false positive lesions per "
        "volume, on the resampled grid, 95 % bootstrap CIs over cases (Wilson for sensitivity)\n"
    )


def run_volume_fit(config: Any, out_dir: str | Path, **kwargs: Any) -> FitOutcome:
    """``training.segmentation.run_segmentation_fit`` for a 3-D architecture (same arguments)."""
    return VolumeSegmentationFit(config, Path(out_dir), **kwargs).run()
