"""The fit pipeline: data -> per-patient splits -> cached images -> training (or k folds) ->
operating thresholds -> metrics with CIs -> model file, model card, plots and metrics.json.

Output folder ``DIR``::

    config.yaml            the resolved config (every value used; a comment above each
                           value fit chose says why)
    fingerprint.json       the dataset fingerprint (training.fingerprint)
    recipe.json            fit's choices and reasons, the LR range test's curve
    checkpoints/last.pt    every epoch, atomically (resume from here)
    checkpoints/best.pt    the best epoch's weights
    metrics.json           per-epoch history (rewritten every epoch), splits, final metrics
    loss_curves.png        train/val loss and AUROC per epoch
    roc_curves.png         validation and test ROC curves with the operating points
    predictions.csv        validation and test probabilities per image
    tensorboard/           TensorBoard event files
    model.safetensors      the model file (desktop_app.model.modelfile)
    model_card.md          generated from the model file's manifest

k-fold cross-validation (``folds >= 2``): the patients of train+val are dealt into K folds;
fold k trains on the others with early stopping on fold k (``DIR/fold_k/`` holds its
checkpoints, metrics and curves). The folds give the cross-validated estimate (mean ± sd of
the fold AUROCs, and pooled out-of-fold metrics with CIs). The final model is then retrained
on all of train+val for the median best epoch of the folds (``DIR/final/``), with operating
thresholds chosen on the pooled out-of-fold predictions; the test split, untouched by all of
this, scores the final model.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from desktop_app.infra.atomicio import atomic_write_json, atomic_write_text
from desktop_app.infra.cancel import Progress, StopFlag
from desktop_app.infra.cpus import available_cpus
from desktop_app.infra.errors import ConfigError, DataError
from training import autoconfig
from training.applicability import (
    Applicability,
    SplitOutputs,
    calibrated_metrics,
    fit_applicability,
    score_splits,
)
from training.calibration import logits_of
from training.config import TrainConfig, write_config
from training.data import (
    Dataset,
    Splits,
    kfold_by_patient,
    read_dataset,
    single_class_labels,
    split_dataset,
)
from training.dataset import Stopped, load_units
from training.evaluate import ThresholdChoice, roc_points
from training.fingerprint import compute_fingerprint, summary_lines, write_fingerprint
from training.loop import EpochCallback, ProgressFactory, TrainResult, train_model
from training.metrics import per_label_auroc, split_metrics
from training.runtime import setup_runtime, share_units

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
MODEL_CARD = "model_card.md"
METRICS = "metrics.json"
CONFIG = "config.yaml"


@dataclass
class FitOutcome:
    out_dir: Path
    model_path: Path | None
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    stopped: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def check_out_dir(out_dir: Path, resume: bool) -> None:
    """Refuse to overwrite an earlier run unless resuming it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError("exists and is not a folder", out_dir, "choose a folder for --out")
    if resume:
        return
    earlier = [
        p
        for p in (out_dir / "checkpoints" / "last.pt", out_dir / MODEL_FILE, out_dir / "final")
        if p.exists()
    ] + sorted(out_dir.glob("fold_*/checkpoints/last.pt"))
    if earlier:
        raise ConfigError(
            "already holds a training run",
            out_dir,
            "add --resume to continue it, or choose a new --out",
        )


def check_resumable(out_dir: Path, config: TrainConfig) -> None:
    """Refuse --resume with other training settings before anything is overwritten."""
    stored = out_dir / CONFIG
    if not stored.is_file():
        return
    from training.config import load_config_file

    before = load_config_file(stored)
    if before.training_hash() != config.training_hash():
        changed = _first_difference(before.resolved().to_dict(), config.resolved().to_dict())
        raise ConfigError(
            f"--resume with other training settings than the run in this folder ({changed})",
            out_dir,
            "resume with the same settings (see config.yaml), or choose a new --out",
        )


def _first_difference(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> str:
    for key in a:
        if isinstance(a[key], dict) and isinstance(b.get(key), dict):
            found = _first_difference(a[key], b[key], f"{prefix}{key}.")
            if found:
                return found
        elif a[key] != b.get(key) and key not in ("device", "threads", "workers", "epochs", "dir"):
            return f"{prefix}{key}: {a[key]!r} then, {b.get(key)!r} now"
    return ""


def _fmt_auc(v: Any) -> str:
    return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):.3f}"


def epoch_line(entry: dict[str, Any], epochs: int, prefix: str = "") -> str:
    """One human line per epoch: losses, val AUROC per label, learning rate, time."""
    parts = [f"{prefix}epoch {entry['epoch']}/{epochs}", f"train loss {entry['train_loss']:.4f}"]
    if "val_dice" in entry:  # segmentation
        if entry.get("val_loss") is not None:
            parts.append(
                f"val loss {entry['val_loss']:.4f}  val Dice {_fmt_auc(entry['val_dice'])}"
            )
    elif entry.get("val_loss") is not None:
        parts.append(f"val loss {entry['val_loss']:.4f}")
        aucs = " ".join(f"{k} {_fmt_auc(v)}" for k, v in entry.get("val_auroc", {}).items())
        parts.append(f"val AUROC {aucs} (mean {_fmt_auc(entry.get('val_auroc_mean'))})")
    lr = f"lr {entry['lr']:.2e}"
    lr += " (backbone frozen)" if entry.get("backbone_frozen") else f"/{entry['backbone_lr']:.2e}"
    parts += [lr, f"{entry['seconds']:.1f} s"]
    if entry.get("best") and entry.get("val_loss") is not None:
        parts.append("*")
    return "  ".join(parts)


class Fit:
    """One ``fit`` run; :func:`run_fit` is the entry point."""

    def __init__(
        self,
        config: TrainConfig,
        out_dir: Path,
        *,
        resume: bool = False,
        on_epoch: Callable[[str, dict[str, Any], int], None] | None = None,
        progress_factory: ProgressFactory | None = None,
        stop: StopFlag = None,
        on_info: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config.resolved().validate()
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.on_info = on_info
        self.recipe = autoconfig.Recipe()
        self.on_epoch_cb = on_epoch
        self.progress_factory = progress_factory
        self.stop = stop
        self.notes: list[str] = []
        self.metrics: dict[str, Any] = {}

    # ---------------------------------------------------------------- helpers

    @property
    def main(self) -> bool:
        return self.runtime.is_main

    def _progress(self, label: str) -> Progress | None:
        if self.progress_factory is None or not self.main:
            return None
        return self.progress_factory(label)

    def _write_metrics(self, folder: Path, payload: dict[str, Any]) -> None:
        if self.main:
            atomic_write_json(folder / METRICS, payload)

    def _epoch_callback(self, folder: Path, tag: str, epochs: int) -> EpochCallback:
        def callback(entry: dict[str, Any], history: list[dict[str, Any]]) -> None:
            if self.on_epoch_cb is not None:
                self.on_epoch_cb(tag, entry, epochs)
            snapshot = dict(self.metrics)
            snapshot["history"] = history  # all epochs so far, a resumed run's earlier ones too
            self._write_metrics(folder, snapshot)

        return callback

    def _data_summary(self, data: Dataset, splits: Splits) -> dict[str, Any]:
        counts = splits.counts(data)
        summary: dict[str, Any] = {
            "manifest": data.source.name,
            "manifest_sha256": data.sha256,
            "format": data.kind,
            "images": len(data.records),
            "patients": len({r.patient for r in data.records}),
            "labels": list(data.labels),
            "splits": counts,
            "split_method": splits.method,
            "split_seed": self.config.seed,
            "val_fraction": self.config.data.val_fraction,
            "test_fraction": self.config.data.test_fraction,
            "synthetic": bool(data.synthetic),
        }
        if data.kind not in ("manifest", "rsna"):  # how a public layout's labels were read
            summary["layout"] = asdict(self.config.data.layout)
        if data.notes:
            summary["notes"] = list(data.notes)
        return summary

    def _info(self, line: str) -> None:
        log.info("%s", line)
        if self.on_info is not None and self.main:
            self.on_info(line)

    def _shared(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (choices are made once, on the main process)."""
        if not self.runtime.distributed:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def _open_run_folder(self, comments: Mapping[str, str] | None = None) -> None:
        """After ``check_out_dir``: a resumed run's config must match the folder's
        (``check_resumable``); the main process makes the folder and writes the config."""
        if self.resume:
            check_resumable(self.out_dir, self.config)
        if self.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_config(self.config, self.out_dir / CONFIG, comments)

    def _write_choices(self) -> None:
        if self.main:
            write_config(self.config, self.out_dir / CONFIG, self.recipe.comments())
            autoconfig.write_recipe(self.recipe, self.out_dir)

    def _configure(self, data: Dataset, splits: Splits) -> None:
        """The fingerprint (written, summarised) and every open key but the LR chosen."""
        c = self.config
        plan: tuple[TrainConfig, autoconfig.Recipe, list[str]] | None = None
        if self.main:
            fingerprint = compute_fingerprint(data, splits, seed=c.seed, workers=c.data.workers)
            write_fingerprint(fingerprint, self.out_dir)
            config, recipe = autoconfig.choose_without_images(
                c, fingerprint, self.runtime.device, world_size=self.runtime.world_size,
                recipe=self.recipe,
            )  # fmt: skip
            plan = (config, recipe, summary_lines(fingerprint))
        self.config, self.recipe, lines = self._shared(plan)
        self._write_choices()  # a run stopped before the LR is chosen resumes with these
        for line in lines:
            self._info(f"data: {line}")

    def _choose_lr(self, data: Dataset, units: torch.Tensor, train: Sequence[int]) -> None:
        """``optim.lr`` (the LR range test when it is open), then config.yaml and recipe.json
        record every choice and fit prints them."""
        c = self.config
        chosen: tuple[TrainConfig, autoconfig.Recipe] | None = None
        if self.main:

            def run_test() -> autoconfig.LrTest:
                return autoconfig.lr_range_test(
                    c, units, data.label_matrix(), train, self.runtime.device,
                    progress=self._progress("LR range test"), stop=self.stop,
                )  # fmt: skip

            config = autoconfig.choose_lr(c, self.recipe, run_test, len(train))
            chosen = (config, self.recipe)
        self.config, self.recipe = self._shared(chosen)
        self.config.validate()
        self._write_choices()
        for choice in self.recipe.choices:
            how = "recorded by the run being resumed" if choice.recorded else "chosen by fit"
            self._info(f"{how}: {choice.line()}")
        self.metrics["recipe"] = self.recipe.to_dict()

    # ---------------------------------------------------------------- steps

    def _load_data(self) -> tuple[Dataset, Splits]:
        c = self.config
        if not c.data.manifest:
            raise ConfigError("no training data given", hint="pass --data MANIFEST")
        data = read_dataset(c.data.manifest, c.data.labels, options=c.data.layout)
        splits = split_dataset(
            data,
            seed=c.seed,
            val_fraction=c.data.val_fraction,
            test_fraction=c.data.test_fraction,
        )
        one_class = single_class_labels(data, splits.train)
        if one_class:
            raise DataError(
                f"label {one_class[0]!r} has only one class in the train split",
                data.source,
                "a label needs positive and negative training images; drop it with --labels",
            )
        for label in single_class_labels(data, splits.val):
            note = (
                f"the val split has only one class of {label!r}: its AUROC is undefined and its "
                "threshold falls back to 0.5"
            )
            log.warning("%s", note)
            self.notes.append(note)
        if not splits.test:
            note = "there is no test split: the model file carries validation metrics only"
            log.warning("%s", note)
            self.notes.append(note)
        return data, splits

    def _load_units(self, data: Dataset) -> torch.Tensor:
        c = self.config
        spec = c.preprocess_spec()
        cache_dir = c.data.cache_dir if c.data.cache == "disk" or c.data.cache_dir else None
        if c.data.cache == "disk" and cache_dir is None:
            cache_dir = str(self.out_dir / "cache")
        workers = max(1, c.data.workers or min(4, available_cpus()))
        progress = self._progress("decode + preprocess (once)")

        def load(indices: Sequence[int]) -> torch.Tensor:
            return load_units(
                [data.records[i] for i in indices],
                spec,
                dtype=c.data.cache_dtype,
                cache_dir=cache_dir,
                workers=workers,
                source=data.source,
                progress=progress,
                stop=self.stop,
            )

        return share_units(self.runtime, load, range(len(data.records)))

    def _train(
        self,
        data: Dataset,
        units: torch.Tensor,
        train_idx: Sequence[int],
        val_idx: Sequence[int],
        folder: Path,
        tag: str,
        fixed_epochs: int | None = None,
    ) -> TrainResult:
        epochs = fixed_epochs or self.config.optim.epochs
        tb = folder / "tensorboard" if self.config.output.tensorboard else None
        return train_model(
            self.config,
            data,
            units,
            train_idx,
            val_idx,
            folder,
            self.runtime,
            resume=self.resume,
            fixed_epochs=fixed_epochs,
            on_epoch=self._epoch_callback(folder, tag, epochs),
            progress_factory=self.progress_factory,
            stop=self.stop,
            tensorboard_dir=tb,
        )

    def _plots(
        self,
        folder: Path,
        history: list[dict[str, Any]],
        curves: dict[str, Any],
        points: dict[str, Any],
    ) -> None:
        if not self.main or not self.config.output.plots:
            return
        from training.plots import plot_loss_curves, plot_roc_curves

        try:
            if history:
                plot_loss_curves(history, folder / "loss_curves.png")
            if curves:
                plot_roc_curves(curves, folder / "roc_curves.png", points)
        except (OSError, ValueError, RuntimeError) as err:  # plots must not lose a trained model
            log.warning("could not draw the plots: %s", err)

    def _metrics_for(
        self,
        y: np.ndarray,
        p: np.ndarray,
        labels: Sequence[str],
        thresholds: dict[str, float],
        seed: int,
    ) -> dict[str, Any]:
        ev = self.config.evaluation
        return split_metrics(
            y, p, list(labels), thresholds, n_boot=ev.bootstrap, level=ev.ci_level, seed=seed
        )

    # ---------------------------------------------------------------- run

    def run(self) -> FitOutcome:
        start = time.perf_counter()
        c = self.config
        self.runtime = setup_runtime(c)
        try:
            outcome = self._run(start)
            self.runtime.barrier()  # rank 0 has written everything
            return outcome
        finally:
            self.runtime.close()

    def _run(self, start: float) -> FitOutcome:
        out = self.out_dir
        check_out_dir(out, self.resume)  # every rank, so that all fail alike
        recorded = autoconfig.read_recipe(out) if self.resume else None
        if recorded is not None:  # the earlier run's choices, not new ones
            self.config, self.recipe = autoconfig.apply_recorded(self.config, recorded)
        self._open_run_folder(self.recipe.comments())
        data, splits = self._load_data()
        self._configure(data, splits)
        c = self.config
        summary = self._data_summary(data, splits)
        self.metrics = {
            "labels": list(data.labels),
            "device": str(self.runtime.device),
            "world_size": self.runtime.world_size,
            "data": summary,
            "notes": self.notes,
        }
        log.info("splits: %s", json.dumps(summary["splits"]))
        try:
            units = self._load_units(data)
            self._choose_lr(data, units, splits.train)
        except Stopped:
            return self._stopped([])
        c = self.config
        self.metrics["decode_seconds"] = round(time.perf_counter() - start, 2)
        if c.data.folds >= 2:
            return self._run_kfold(data, splits, units, start)
        result = self._train(data, units, splits.train, splits.val, out, "")
        self.notes += result.notes
        if result.stopped:
            self._write_metrics(out, {**self.metrics, "history": result.history, "stopped": True})
            return self._stopped(result.history)
        if not self.main:  # rank 0 scores, calibrates and writes; the others are done
            return FitOutcome(out, None, self.metrics, result.history, notes=self.notes)
        scored = self._score(
            result.model,
            data,
            units,
            {"train": splits.train, "val": splits.val, "test": splits.test},
        )
        applicability = fit_applicability(c.applicability, data, scored)
        where = f"the validation split ({len(splits.val)} images)"
        choice, final_metrics, probs = self._calibrated_metrics(data, scored, applicability, where)
        training = {
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "monitor": result.monitor,
            "early_stopped": result.early_stopped,
            "train_seconds": round(result.seconds, 1),
        }
        return self._finish(
            data, result.model, result.history, choice, final_metrics, probs, training, start,
            applicability,
        )  # fmt: skip

    def _score(
        self,
        model: torch.nn.Module,
        data: Dataset,
        units: torch.Tensor,
        splits: Mapping[str, Sequence[int]],
    ) -> dict[str, SplitOutputs]:
        c = self.config
        return score_splits(
            model, data, units, splits, c.preprocess_spec(), self.runtime.device,
            batch_size=max(32, c.optim.batch()), workers=c.data.workers,
            channels_last=c.optim.channels_last, stop=self.stop,
        )  # fmt: skip

    def _calibrated_metrics(
        self,
        data: Dataset,
        scored: Mapping[str, SplitOutputs],
        applicability: Applicability,
        where: str,
        key: str = "val",
    ) -> tuple[ThresholdChoice, dict[str, Any], dict[str, tuple[Sequence[int], np.ndarray]]]:
        c = self.config
        return calibrated_metrics(
            data, scored, applicability, c.thresholds, c.evaluation, c.seed, where, key
        )

    def _stopped(self, history: list[dict[str, Any]]) -> FitOutcome:
        return FitOutcome(self.out_dir, None, self.metrics, history, stopped=True, notes=self.notes)

    def _run_kfold(
        self, data: Dataset, splits: Splits, units: torch.Tensor, start: float
    ) -> FitOutcome:
        """k-fold cross-validation by patient over train+val, thresholds from the pooled
        out-of-fold predictions, then one final model on all of train+val."""
        c = self.config
        labels = data.labels
        pool = sorted(splits.train + splits.val)
        folds = kfold_by_patient(data, pool, c.data.folds, seed=c.seed)
        oof = np.full((len(data.records), len(labels)), np.nan, dtype=np.float64)
        fold_summaries = []
        for k, (train_idx, held_idx) in enumerate(folds, start=1):
            summary = self._run_fold(data, units, k, len(folds), train_idx, held_idx, oof)
            if isinstance(summary, FitOutcome):
                return summary
            fold_summaries.append(summary)
        cv = _cv_summary(labels, fold_summaries, c.data.folds)
        final_epochs = cv["final_epochs"]
        self.metrics["cross_validation"] = {"summary": cv, "folds": fold_summaries}
        result = self._train(
            data, units, pool, [], self.out_dir / "final", "final ", fixed_epochs=final_epochs
        )
        self.notes += result.notes
        if result.stopped:
            return self._stopped(result.history)
        if not self.main:
            return FitOutcome(self.out_dir, None, self.metrics, result.history, notes=self.notes)
        # The final model has no held-out split of its own: the temperatures and thresholds
        # come from the pooled out-of-fold predictions (the folds' models), the OOD threshold
        # from the final model's own train+val scores (the model card says so).
        scored = self._score(result.model, data, units, {"train": pool, "test": splits.test})
        scored["val"] = SplitOutputs(pool, data.label_matrix(pool), logits_of(oof[pool]))
        applicability = fit_applicability(c.applicability, data, scored)
        where = (
            f"the pooled out-of-fold predictions of {c.data.folds}-fold cross-validation "
            f"({len(pool)} images)"
        )
        choice, final_metrics, probs = self._calibrated_metrics(
            data, scored, applicability, where, "cross_validated"
        )
        for label in labels:
            final_metrics["cross_validated"][label]["fold_auroc_mean"] = cv[label]["auroc_mean"]
            final_metrics["cross_validated"][label]["fold_auroc_sd"] = cv[label]["auroc_sd"]
        training = {
            "final_model": (
                f"retrained on all {len(pool)} train+val images for {final_epochs} epochs "
                f"(median best epoch of {c.data.folds} folds)"
            ),
            "epochs_run": result.epochs_run,
            "train_seconds": round(result.seconds, 1),
        }
        return self._finish(
            data, result.model, result.history, choice, final_metrics, probs, training, start,
            applicability,
        )  # fmt: skip

    def _run_fold(
        self,
        data: Dataset,
        units: torch.Tensor,
        k: int,
        n_folds: int,
        train_idx: list[int],
        held_idx: list[int],
        oof: np.ndarray,
    ) -> dict[str, Any] | FitOutcome:
        """Train fold ``k`` (or take its saved result on resume) and fill its rows of ``oof``;
        the fold's summary, or the stopped outcome."""
        folder = self.out_dir / f"fold_{k}"
        done_file = folder / "fold_result.json"
        if self.resume and done_file.is_file():
            saved = json.loads(done_file.read_text(encoding="utf-8"))
            if saved.get("held_out") == list(held_idx):
                oof[held_idx] = np.asarray(saved["probs"], dtype=np.float64)
                log.info("fold %d/%d already done", k, n_folds)
                return dict(saved["summary"])
        result = self._train(data, units, train_idx, held_idx, folder, f"fold {k}/{n_folds} ")
        self.notes += result.notes
        if result.stopped:
            return self._stopped(result.history)
        assert result.val_probs is not None
        oof[held_idx] = result.val_probs
        aucs = per_label_auroc(data.label_matrix(held_idx), result.val_probs, data.labels)
        summary = {
            "fold": k,
            "train_images": len(train_idx),
            "val_images": len(held_idx),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "val_auroc": {lab: (v if math.isfinite(v) else None) for lab, v in aucs.items()},
        }
        if self.main:
            atomic_write_json(folder / METRICS, {"summary": summary, "history": result.history})
            self._plots(folder, result.history, {}, {})
            atomic_write_json(
                done_file,
                {
                    "held_out": list(held_idx),
                    "probs": result.val_probs.tolist(),
                    "summary": summary,
                },
            )
        return summary

    def _finish(
        self,
        data: Dataset,
        model: torch.nn.Module,
        history: list[dict[str, Any]],
        choice: Any,
        final_metrics: dict[str, Any],
        probs: Mapping[str, tuple[Sequence[int], np.ndarray]],
        training: dict[str, Any],
        start: float,
        applicability: Applicability,
    ) -> FitOutcome:
        out = self.out_dir
        labels = data.labels
        self.metrics.update(
            history=history,
            training=training,
            thresholds=choice.thresholds,
            threshold_rule=choice.rule,
            final=final_metrics,
            calibration=applicability.calibration,
            ood_flag_rate=applicability.ood_rates,
            intended_input=applicability.intended_input.to_dict(),
            ood=None if applicability.ood is None else applicability.ood.spec.to_dict(),
            seconds=round(time.perf_counter() - start, 1),
        )
        if not self.main:
            return FitOutcome(out, None, self.metrics, history, notes=self.notes)
        model_path = self._write_model(data, model, choice, final_metrics, applicability)
        self.metrics["model_file"] = model_path.name
        curves, points = {}, {}
        for split, (idx, p) in probs.items():
            curves[split], points[split] = roc_points(
                data.label_matrix(idx), p, labels, choice.thresholds
            )
        self._plots(out, history, curves, points)
        self._write_predictions(data, probs)
        self._write_metrics(out, self.metrics)
        return FitOutcome(
            out,
            model_path,
            self.metrics,
            history,
            seconds=self.metrics["seconds"],
            notes=self.notes,
        )

    def _write_model(
        self,
        data: Dataset,
        model: torch.nn.Module,
        choice: Any,
        final_metrics: dict[str, Any],
        applicability: Applicability,
    ) -> Path:
        from desktop_app.model.modelfile import (
            DEFAULT_INTENDED_USE,
            ModelManifest,
            model_card_markdown,
            read_manifest,
            save_model_file,
        )
        from desktop_app.model.networks import arch_args

        c = self.config
        spec = c.preprocess_spec()
        intended = c.output.intended_use or DEFAULT_INTENDED_USE
        if data.synthetic and c.output.intended_use is None:
            intended = (
                "Demonstration only: trained on synthetic chest-radiograph phantoms, not on "
                "patient data. " + DEFAULT_INTENDED_USE
            )
        summary = dict(self.metrics["data"])
        summary["training"] = self.metrics.get("training", {})
        summary["config"] = {
            "arch": c.model.arch,
            "pretrained": c.model.pretrained,
            "epochs": c.optim.epochs,
            "batch_size": c.optim.batch_size,
            "lr": c.optim.lr,
            "seed": c.seed,
            "folds": c.data.folds,
            "image_size": spec.image_size,
            "class_weights": c.optim.class_weights,
            "augment_strength": c.augment.strength,
            "recipe": {
                ch.key: {"value": ch.value, "reason": ch.reason} for ch in self.recipe.choices
            },
        }
        manifest = ModelManifest(
            name=c.output.name or self.out_dir.resolve().name or "radassist-model",
            architecture=c.model.arch,
            arch_args=arch_args(
                c.model.arch,
                len(data.labels),
                in_channels=spec.channels,
                image_size=spec.image_size,
                dropout=c.model.dropout,
            ),
            labels=tuple(data.labels),
            preprocessing=spec,
            thresholds=choice.thresholds,
            threshold_rule=choice.rule,
            version=c.output.version,
            metrics=final_metrics,
            training_data=summary,
            intended_use=intended,
            intended_input=applicability.intended_input,
            temperatures=applicability.temperatures,
        )
        path = self.out_dir / MODEL_FILE
        save_model_file(path, model, manifest, ood=applicability.ood)
        atomic_write_text(self.out_dir / MODEL_CARD, model_card_markdown(read_manifest(path)))
        return path

    def _write_predictions(
        self, data: Dataset, probs: Mapping[str, tuple[Sequence[int], np.ndarray]]
    ) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        labels = list(data.labels)
        writer.writerow(["row", "split", *labels, *[f"p_{lab}" for lab in labels]])
        for split, (idx, p) in probs.items():
            for k, i in enumerate(idx):
                r = data.records[i]
                writer.writerow(
                    [
                        r.row,
                        split,
                        *["" if math.isnan(v) else int(v) for v in r.labels],  # NaN: unknown
                        *[f"{float(v):.6f}" for v in p[k]],
                    ]
                )
        atomic_write_text(self.out_dir / "predictions.csv", buf.getvalue())


def _cv_summary(
    labels: Sequence[str], fold_summaries: list[dict[str, Any]], folds: int
) -> dict[str, Any]:
    """Per label the mean and SD of the folds' validation AUROC; the final model's epochs are
    the median of the folds' best epochs."""
    cv: dict[str, Any] = {"folds": folds}
    for label in labels:
        values = [
            f["val_auroc"][label] for f in fold_summaries if f["val_auroc"][label] is not None
        ]
        cv[label] = {
            "auroc_mean": statistics.fmean(values) if values else None,
            "auroc_sd": statistics.stdev(values) if len(values) > 1 else None,
        }
    best_epochs = [int(f["best_epoch"]) for f in fold_summaries]
    cv["best_epochs"] = best_epochs
    cv["final_epochs"] = max(1, round(statistics.median(best_epochs)))
    return cv


def run_fit(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    on_epoch: Callable[[str, dict[str, Any], int], None] | None = None,
    progress_factory: ProgressFactory | None = None,
    stop: StopFlag = None,
    on_info: Callable[[str], None] | None = None,
) -> FitOutcome:
    """Train as ``config`` says and write everything into ``out_dir`` (module docstring).

    ``on_epoch(tag, entry, epochs)`` gets each epoch's history entry (``tag`` is "" or
    "fold k/K " or "final "); ``progress_factory(label)`` gives a ``(done, total)`` callback
    per long step; ``stop`` is checked between batches; ``on_info(line)`` gets the dataset
    fingerprint's summary and fit's choices (``training.autoconfig``), one line each.
    ``data.task: segmentation`` is ``training.segmentation.run_segmentation_fit``.
    """
    if config.data.task == "segmentation":
        raise ConfigError(
            "run_fit trains classifiers; data.task is segmentation",
            hint="call training.segmentation.run_segmentation_fit",
        )
    return Fit(
        config,
        Path(out_dir),
        resume=resume,
        on_epoch=on_epoch,
        progress_factory=progress_factory,
        stop=stop,
        on_info=on_info,
    ).run()


def with_data(config: TrainConfig, manifest: str | Path) -> TrainConfig:
    return replace(config, data=replace(config.data, manifest=str(manifest)))
