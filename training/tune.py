"""The hyper-parameter search behind `radassist-train tune`: an Optuna study (TPE, median pruning
on the validation AUROC per epoch) whose trials are `fit` runs, then a `fit` of the best config.

Output folder ``DIR``::

    tune.db                     the Optuna study (SQLite): resumable, readable with optuna
    trials/NNNN/                each trial's fit output (config, metrics, model file; no checkpoints)
    cache/                      decoded images (.npy), shared by every trial of the same image size
    trials.csv                  number, state, value, epochs, seconds, and one column per parameter
    optimization_history.png    each trial's value and the best so far
    best_config.yaml            the best trial's full config (``fit --config best_config.yaml``)
    best/                       the fit of the best config: model.safetensors and the rest of fit's

Every trial trains on the same split (the split is seeded by ``config.seed``, which stays fixed;
the same seed seeds the TPE sampler). The objective is the trial's best mean validation AUROC
over its epochs; the test split plays no part in the search. Trials run cheap (no TensorBoard,
plots, bootstrap, OOD score or temperature scaling); the best config's final fit runs with the
config's own settings. The budget stops new trials from starting: a trial that starts inside it
runs to its end, and the final fit comes after it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from desktop_app.infra.atomicio import atomic_write_bytes, atomic_write_text
from desktop_app.infra.cancel import StopFlag, stop_requested
from desktop_app.infra.errors import ConfigError, DataError
from training.config import TrainConfig, config_from_dict
from training.data import Dataset, read_dataset
from training.loop import ProgressFactory
from training.pipeline import MODEL_FILE, FitOutcome, run_fit

log = logging.getLogger(__name__)

STUDY_NAME = "radassist-tune"
DB_FILE = "tune.db"
TRIALS_DIR = "trials"
CACHE_DIR = "cache"
TRIALS_CSV = "trials.csv"
HISTORY_PNG = "optimization_history.png"
BEST_CONFIG = "best_config.yaml"
BEST_DIR = "best"

DEFAULT_IMAGE_SIZES = (224, 256, 320, 384)
LR_RANGE = (1e-4, 3e-3)  # log-uniform
BACKBONE_LR_FACTOR_RANGE = (0.1, 1.0)
AUGMENT_STRENGTH_RANGE = (0.0, 1.5)
MAX_FREEZE_EPOCHS = 2
DROPOUT_RANGE = (0.0, 0.5)
#: The searched keys, in the order of the trials table.
SEARCHED = (
    "optim.lr",
    "optim.backbone_lr_factor",
    "preprocessing.image_size",
    "augment.strength",
    "optim.freeze_backbone_epochs",
    "model.dropout",
)
# Keys that do not change what a trial measures; a resumed study may differ in them.
_VOLATILE = ("device", "threads", "output", "evaluation", "thresholds", "applicability")
_VOLATILE_DATA = ("manifest", "workers", "cache", "cache_dir")


@dataclass(frozen=True)
class TuneOptions:
    """How long and over what the search runs (the rest is the base config)."""

    budget_minutes: float
    trials: int | None = None  # a cap on the study's finished (complete or pruned) trials
    # None: DEFAULT_IMAGE_SIZES cut to those not above the images' median longer side
    image_sizes: tuple[int, ...] | None = None
    resume: bool = False
    startup_trials: int = 5  # TPE samples at random until this many trials are complete
    prune_startup_trials: int = 3  # the pruner waits for this many complete trials
    prune_warmup_epochs: int = 1  # and never prunes at or before this epoch

    def sizes(self) -> tuple[int, ...]:
        """The input sizes searched (the defaults until ``Tuner.run`` has cut them)."""
        return self.image_sizes or DEFAULT_IMAGE_SIZES

    def validate(self) -> TuneOptions:
        if not (math.isfinite(self.budget_minutes) and self.budget_minutes > 0):
            raise ConfigError(
                f"--budget {self.budget_minutes:g} must be a positive number of minutes",
                hint="e.g. --budget 60",
            )
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"--trials {self.trials} must be at least 1")
        if self.image_sizes is not None and (
            not self.image_sizes or len(set(self.image_sizes)) != len(self.image_sizes)
        ):
            raise ConfigError(
                f"--image-sizes {list(self.image_sizes)} must name distinct sizes",
                hint="e.g. --image-sizes 224,256,320",
            )
        return self


@dataclass(frozen=True)
class TrialSummary:
    """One trial as the table and the terminal show it."""

    number: int
    state: str  # complete, pruned, fail, running, waiting
    value: float | None  # the best mean validation AUROC it reached (so far, when pruned)
    epochs: int  # epochs that reported a validation AUROC
    seconds: float | None
    params: dict[str, Any]


@dataclass
class TuneHooks:
    """How a tune talks to its caller (the CLI prints, a GUI would post events)."""

    on_trial: Callable[[TrialSummary], None] | None = None
    on_epoch: Callable[[int | None, dict[str, Any], int], None] | None = None  # None: best fit
    on_best_fit: Callable[[TrialSummary, Path], None] | None = None
    progress_factory: ProgressFactory | None = None
    stop: StopFlag = None
    pruner: optuna.pruners.BasePruner | None = None  # default: MedianPruner (TuneOptions)


@dataclass
class TuneOutcome:
    out_dir: Path
    trials: list[TrialSummary]
    best: TrialSummary | None
    best_config: TrainConfig | None
    fit: FitOutcome | None  # None when stopped, or when DIR/best already held the best trial's
    search_seconds: float
    ended_by: str  # "trials", "budget" or "stopped"
    notes: list[str] = field(default_factory=list)

    @property
    def model_path(self) -> Path | None:
        path = self.out_dir / BEST_DIR / MODEL_FILE
        return path if path.is_file() else None


class TuneStopped(Exception):
    """The stop flag ended a trial; the study marks it failed."""


# --------------------------------------------------------------------------- search space


def make_sampler(seed: int, startup_trials: int = 5) -> optuna.samplers.TPESampler:
    """The study's TPE sampler, seeded."""
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)


def suggest_params(
    trial: optuna.trial.BaseTrial, base: TrainConfig, image_sizes: Sequence[int]
) -> dict[str, Any]:
    """Ask ``trial`` for one point of the search space (keys: ``section.key`` of the config).

    The freeze epochs are searched only for a pretrained backbone (freezing random weights
    teaches nothing) and below the epoch count; the augmentation strength only when
    augmentation is on."""
    params: dict[str, Any] = {
        "optim.lr": trial.suggest_float("optim.lr", *LR_RANGE, log=True),
        "optim.backbone_lr_factor": trial.suggest_float(
            "optim.backbone_lr_factor", *BACKBONE_LR_FACTOR_RANGE
        ),
        "preprocessing.image_size": trial.suggest_categorical(
            "preprocessing.image_size", [int(s) for s in image_sizes]
        ),
    }
    if base.augment.enabled:
        params["augment.strength"] = trial.suggest_float(
            "augment.strength", *AUGMENT_STRENGTH_RANGE
        )
    freeze_max = min(MAX_FREEZE_EPOCHS, base.optim.epochs - 1)
    if base.model.pretrained and freeze_max > 0:
        params["optim.freeze_backbone_epochs"] = trial.suggest_int(
            "optim.freeze_backbone_epochs", 0, freeze_max
        )
    params["model.dropout"] = trial.suggest_float("model.dropout", *DROPOUT_RANGE)
    return params


def default_image_sizes(data: Dataset, base: TrainConfig) -> tuple[tuple[int, ...], str]:
    """DEFAULT_IMAGE_SIZES without the sizes above the images' median longer side (upsampling
    adds no detail; the smallest candidate stays when every one is above it), and a note
    saying so. The median comes from one dataset fingerprint (a seeded sample of headers)."""
    from training.data import split_dataset
    from training.fingerprint import compute_fingerprint

    d = base.data
    splits = split_dataset(
        data, seed=base.seed, val_fraction=d.val_fraction, test_fraction=d.test_fraction
    )
    fingerprint = compute_fingerprint(data, splits, seed=base.seed, workers=d.workers)
    longer = (fingerprint["image"].get("longer_side") or {}).get("median")
    if longer is None:
        return DEFAULT_IMAGE_SIZES, "input sizes searched: the defaults (no image size was read)"
    kept = tuple(s for s in DEFAULT_IMAGE_SIZES if s <= longer) or DEFAULT_IMAGE_SIZES[:1]
    return kept, (
        f"input sizes searched: {', '.join(map(str, kept))} (the default candidates not above "
        f"the images' median longer side, {longer:.0f} px; --image-sizes chooses others)"
    )


def with_params(base: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """``base`` with each ``section.key`` of ``params`` set (strictly, as ``--set`` would)."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = value
    return config_from_dict(nested, base).validate()


def short_params(params: dict[str, Any]) -> str:
    """``lr 4.1e-04  bb x0.35  size 256  aug 0.80  freeze 1  dropout 0.21``."""
    names = {
        "optim.lr": ("lr", "{:.1e}"),
        "optim.backbone_lr_factor": ("bb", "x{:.2f}"),
        "preprocessing.image_size": ("size", "{}"),
        "augment.strength": ("aug", "{:.2f}"),
        "optim.freeze_backbone_epochs": ("freeze", "{}"),
        "model.dropout": ("dropout", "{:.2f}"),
    }
    parts = []
    for key, value in params.items():
        name, fmt = names.get(key, (key, "{}"))
        parts.append(f"{name} {fmt.format(value)}")
    return "  ".join(parts)


# --------------------------------------------------------------------------- the table


def summarize(trial: FrozenTrial) -> TrialSummary:
    reported = [v for v in trial.intermediate_values.values() if v is not None and math.isfinite(v)]
    value: float | None = max(reported) if reported else None
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        value = float(trial.value)
    return TrialSummary(
        number=trial.number,
        state=trial.state.name.lower(),
        value=value,
        epochs=len(reported),
        seconds=trial.duration.total_seconds() if trial.duration is not None else None,
        params=dict(trial.params),
    )


def trials_csv(trials: Sequence[TrialSummary]) -> str:
    """The trials table: number, state, value, epochs, seconds, then one column per parameter."""
    keys = [k for k in SEARCHED if any(k in t.params for t in trials)]
    keys += sorted({k for t in trials for k in t.params} - set(keys))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["number", "state", "value", "epochs", "seconds", *keys])
    for t in trials:
        writer.writerow(
            [
                t.number,
                t.state,
                "" if t.value is None else f"{t.value:.6f}",
                t.epochs,
                "" if t.seconds is None else f"{t.seconds:.1f}",
                *[_csv_value(t.params.get(k)) for k in keys],
            ]
        )
    return buf.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def plot_history(trials: Sequence[TrialSummary], path: Path) -> Path:
    """Each trial's best mean validation AUROC (complete: dots; pruned: crosses, at the value it
    had reached) and the best complete value so far, as a PNG (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    done = [
        (t.number, float(t.value)) for t in trials if t.state == "complete" and t.value is not None
    ]
    pruned = [
        (t.number, float(t.value)) for t in trials if t.state == "pruned" and t.value is not None
    ]
    ax.plot([n for n, _ in done], [v for _, v in done], "o", label="complete")
    if pruned:
        ax.plot(
            [n for n, _ in pruned], [v for _, v in pruned], "x", color="grey",
            label="pruned (value reached)",
        )  # fmt: skip
    if done:
        best = [max(v for _, v in done[: i + 1]) for i in range(len(done))]
        ax.step([n for n, _ in done], best, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation AUROC (mean over labels)")
    ax.set_title("radassist-train tune: optimization history")
    ax.grid(alpha=0.3)
    if done or pruned:
        ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- checks


def check_tune_dir(out_dir: Path, resume: bool) -> None:
    """Refuse a non-empty folder unless resuming the study in it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError("exists and is not a folder", out_dir, "choose a folder for --out")
    busy = out_dir.is_dir() and any(out_dir.iterdir())
    if busy and not resume:
        raise ConfigError(
            "is not empty", out_dir, "add --resume to continue its study, or choose a new --out"
        )
    if busy and not (out_dir / DB_FILE).is_file():
        raise ConfigError(
            f"holds no tune study ({DB_FILE})",
            out_dir,
            "give the folder of an earlier tune, or a new --out without --resume",
        )


def check_base(base: TrainConfig) -> None:
    """What the search can't do: k-fold trials, several processes."""
    if base.data.folds != 1:
        raise ConfigError(
            f"tune trains one train/val split per trial, not data.folds {base.data.folds}",
            hint="drop data.folds; fit the best config with --folds afterwards",
        )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("tune runs in one process", hint="run it without torchrun")
    if not base.data.manifest:
        raise ConfigError("no training data given", hint="pass --data MANIFEST")


def study_key(base: TrainConfig) -> dict[str, Any]:
    """What every trial of one study must share: the base config without output, device and
    evaluation settings (and the manifest's path: the data's hash is kept beside it)."""
    d = base.to_dict()
    for key in _VOLATILE:
        d.pop(key, None)
    for key in _VOLATILE_DATA:
        d["data"].pop(key, None)
    return d


def _first_difference(before: Any, now: Any, prefix: str = "") -> str:
    if isinstance(before, dict) and isinstance(now, dict):
        for key in sorted(set(before) | set(now)):
            found = _first_difference(before.get(key), now.get(key), f"{prefix}{key}.")
            if found:
                return found
        return ""
    return "" if before == now else f"{prefix.rstrip('.')}: {before!r} then, {now!r} now"


# --------------------------------------------------------------------------- the tuner


class Tuner:
    """One ``tune`` run; :func:`run_tune` is the entry point."""

    def __init__(
        self, base: TrainConfig, out_dir: Path, options: TuneOptions, hooks: TuneHooks
    ) -> None:
        self.base = base.validate()
        self.out_dir = Path(out_dir)
        self.options = options.validate()
        self.hooks = hooks
        self.notes: list[str] = []
        self.cache_dir = base.data.cache_dir or str(self.out_dir / CACHE_DIR)

    # ---------------------------------------------------------------- one trial

    def trial_config(self, params: dict[str, Any], folder: Path) -> TrainConfig:
        """A trial's config: the base with ``params``, run cheap into ``folder`` with the
        shared disk cache."""
        config = with_params(self.base, params)
        return replace(
            config,
            data=replace(config.data, cache="disk", cache_dir=self.cache_dir),
            output=replace(config.output, dir=str(folder), tensorboard=False, plots=False),
            evaluation=replace(config.evaluation, bootstrap=0),
            applicability=replace(config.applicability, ood=False, temperature_scaling=False),
        ).validate()

    def objective(self, trial: optuna.Trial) -> float:
        """Fit one config; report each epoch's mean validation AUROC to the pruner; return the
        best of them."""
        params = suggest_params(trial, self.base, self.options.sizes())
        folder = self.out_dir / TRIALS_DIR / f"{trial.number:04d}"
        config = self.trial_config(params, folder)
        values: list[float] = []

        def on_epoch(tag: str, entry: dict[str, Any], epochs: int) -> None:
            if self.hooks.on_epoch is not None:
                self.hooks.on_epoch(trial.number, entry, epochs)
            value = entry.get("val_auroc_mean")
            if value is None or not math.isfinite(float(value)):
                return
            values.append(float(value))
            trial.report(float(value), int(entry["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {entry['epoch']}")

        try:
            outcome = run_fit(
                config,
                folder,
                on_epoch=on_epoch,
                progress_factory=self.hooks.progress_factory,
                stop=self.hooks.stop,
            )
        finally:
            # a finished trial is never resumed: its checkpoints only take disk space
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        if outcome.stopped:
            raise TuneStopped
        if not values:
            raise DataError(
                "the validation split gives no AUROC for any label",
                self.base.data.manifest,
                "each label needs positive and negative validation images; raise "
                "data.val_fraction or add images",
            )
        return max(values)

    # ---------------------------------------------------------------- the study

    def _open_study(self, storage: optuna.storages.RDBStorage, data_sha: str) -> optuna.Study:
        """Create or load the study; fail trials left running by a crash; check a resumed
        study was made from the same settings and data."""
        existing = 0
        try:
            study_id = storage.get_study_id_from_name(STUDY_NAME)
        except KeyError:
            study_id = None
        if study_id is not None:
            for t in storage.get_all_trials(study_id, deepcopy=False):
                existing += 1
                if t.state in (TrialState.RUNNING, TrialState.WAITING):
                    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
                    storage.set_trial_state_values(trial_id, TrialState.FAIL)
                    log.info("trial %d was interrupted: marked failed", t.number)
        seed = self.base.seed
        if existing:  # a resumed sampler must not replay the first run's random draws
            seed = int.from_bytes(hashlib.sha256(f"{seed}:{existing}".encode()).digest()[:4], "big")
        o = self.options
        pruner = self.hooks.pruner or optuna.pruners.MedianPruner(
            n_startup_trials=o.prune_startup_trials, n_warmup_steps=o.prune_warmup_epochs
        )
        study = optuna.create_study(
            storage=storage,
            study_name=STUDY_NAME,
            direction="maximize",
            sampler=make_sampler(seed, o.startup_trials),
            pruner=pruner,
            load_if_exists=True,
        )
        key = {**study_key(self.base), "image_sizes": list(o.sizes())}
        attrs = study.user_attrs
        if "key" not in attrs:
            study.set_user_attr("key", key)
            study.set_user_attr("data_sha256", data_sha)
        elif attrs["key"] != key:
            raise ConfigError(
                "--resume with other settings than the study in this folder ("
                f"{_first_difference(attrs['key'], key)})",
                self.out_dir,
                "resume with the same --config, --set, --epochs and --image-sizes, or choose a "
                "new --out",
            )
        elif attrs.get("data_sha256") != data_sha:
            raise ConfigError(
                "--resume with other data than the study in this folder (the manifest changed)",
                self.out_dir,
                "resume with the same data, or choose a new --out",
            )
        return study

    def _after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """After each trial: the table and the plot (so a stopped tune still has them), the
        caller's line, and the stop flag."""
        self.write_tables(study)
        if self.hooks.on_trial is not None:
            self.hooks.on_trial(summarize(trial))
        if stop_requested(self.hooks.stop):
            study.stop()

    def write_tables(self, study: optuna.Study) -> list[TrialSummary]:
        summaries = [summarize(t) for t in study.get_trials(deepcopy=False)]
        atomic_write_text(self.out_dir / TRIALS_CSV, trials_csv(summaries))
        try:
            plot_history(summaries, self.out_dir / HISTORY_PNG)
        except (OSError, ValueError, RuntimeError) as err:  # a plot must not end the search
            log.warning("could not draw the optimization history: %s", err)
        return summaries

    def _search(self, study: optuna.Study) -> tuple[str, float]:
        """Run trials until the budget or the trial cap; how it ended and the seconds spent."""
        finished = len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))
        remaining = None if self.options.trials is None else self.options.trials - finished
        start = time.perf_counter()
        if remaining is not None and remaining <= 0:
            self.notes.append(f"the study already has {finished} finished trials (--trials)")
            return "trials", 0.0
        before = len(study.trials)
        try:
            study.optimize(
                self.objective,
                n_trials=remaining,
                timeout=self.options.budget_minutes * 60.0,
                catch=(torch.cuda.OutOfMemoryError,),  # one trial's size too big: try others
                callbacks=[self._after_trial],
            )
        except TuneStopped:
            return "stopped", time.perf_counter() - start
        seconds = time.perf_counter() - start
        if stop_requested(self.hooks.stop):
            return "stopped", seconds
        ran = len(study.trials) - before
        return ("trials" if remaining is not None and ran >= remaining else "budget"), seconds

    def _write_best_config(self, study: optuna.Study, best: TrialSummary) -> TrainConfig:
        """DIR/best_config.yaml: the base with the best trial's values, the base's own output
        and evaluation settings, the data as an absolute path and no output folder."""
        config = with_params(self.base, best.params)
        manifest = str(Path(str(config.data.manifest)).resolve())
        config = replace(
            config,
            data=replace(config.data, manifest=manifest),
            output=replace(config.output, dir=None),
        ).validate()
        header = (
            f"# RadAssist training config: the best of {len(study.trials)} tune trials "
            f"(trial {best.number}, validation AUROC {best.value:.4f}).\n"
            "# Fit it with: radassist-train fit --config best_config.yaml --out DIR\n"
        )
        atomic_write_text(self.out_dir / BEST_CONFIG, header + config.to_yaml())
        return config

    def _fit_best(
        self, study: optuna.Study, best: TrialSummary, config: TrainConfig
    ) -> FitOutcome | None:
        """Fit the best config into DIR/best (unless DIR/best already holds the fit of this
        very trial, from before a resume)."""
        folder = self.out_dir / BEST_DIR
        if study.user_attrs.get("best_fit") == best.number and (folder / MODEL_FILE).is_file():
            self.notes.append(f"{folder} already holds the fit of trial {best.number}")
            return None
        shutil.rmtree(folder, ignore_errors=True)  # an older best, or an interrupted fit of it
        if self.hooks.on_best_fit is not None:
            self.hooks.on_best_fit(best, folder)
        fit_config = replace(
            config,
            data=replace(config.data, cache="disk", cache_dir=self.cache_dir),
            output=replace(config.output, dir=str(folder)),
        )
        on_epoch = self.hooks.on_epoch
        outcome = run_fit(
            fit_config,
            folder,
            on_epoch=(lambda tag, entry, epochs: on_epoch(None, entry, epochs))
            if on_epoch
            else None,
            progress_factory=self.hooks.progress_factory,
            stop=self.hooks.stop,
        )
        if not outcome.stopped:
            study.set_user_attr("best_fit", best.number)
        return outcome

    def run(self) -> TuneOutcome:
        check_base(self.base)
        check_tune_dir(self.out_dir, self.options.resume)
        for size in self.options.image_sizes or ():  # valid before anything is written
            with_params(self.base, {"preprocessing.image_size": int(size)})
        d = self.base.data
        data = read_dataset(str(d.manifest), d.labels, options=d.layout)
        if self.options.image_sizes is None:
            sizes, note = default_image_sizes(data, self.base)
            self.options = replace(self.options, image_sizes=sizes)
            self.notes.append(note)
            log.info("%s", note)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        storage = optuna.storages.RDBStorage(f"sqlite:///{(self.out_dir / DB_FILE).resolve()}")
        try:
            study = self._open_study(storage, data.sha256)
            try:
                ended_by, seconds = self._search(study)
            finally:
                summaries = self.write_tables(study)
            return self._finish(study, summaries, ended_by, seconds)
        finally:
            storage.remove_session()
            storage.engine.dispose()

    def _finish(
        self, study: optuna.Study, summaries: list[TrialSummary], ended_by: str, seconds: float
    ) -> TuneOutcome:
        complete = [t for t in summaries if t.state == "complete"]
        if not complete and ended_by == "stopped":
            return TuneOutcome(self.out_dir, summaries, None, None, None, seconds, ended_by)
        if not complete:
            raise ConfigError(
                "no trial completed",
                self.out_dir,
                "raise --budget or lower --epochs, then continue with --resume",
            )
        best = summarize(study.best_trial)
        config = self._write_best_config(study, best)
        fit = None if ended_by == "stopped" else self._fit_best(study, best, config)
        if fit is not None and fit.stopped:
            ended_by = "stopped"
        return TuneOutcome(
            self.out_dir, summaries, best, config, fit, seconds, ended_by, self.notes
        )


def quiet_optuna() -> None:
    """Optuna's records go to the log file like any library's, never to the terminal
    (its own stderr handler is removed; the app's terminal handler shows only its own)."""
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_tune(
    base: TrainConfig, out_dir: str | Path, options: TuneOptions, hooks: TuneHooks | None = None
) -> TuneOutcome:
    """Search ``options``' space around ``base``, writing everything into ``out_dir`` (module
    docstring); end with a fit of the best config into ``out_dir/best``."""
    quiet_optuna()
    return Tuner(base, Path(out_dir), options, hooks or TuneHooks()).run()


def trial_counts(trials: Sequence[TrialSummary]) -> dict[str, int]:
    """How many trials are in each state (complete, pruned, fail, ...)."""
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    return counts
