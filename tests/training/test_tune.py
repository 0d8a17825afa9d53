"""`radassist-train tune`: a real search end to end on a tiny dataset (trials table, SQLite study,
plot, best config, best model file), resume, pruning, seeded proposals, one-line errors."""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from desktop_app.infra.errors import ConfigError
from desktop_app.model.modelfile import load_model_file, read_manifest
from tests.helpers.tinydata import demo_dataset, tiny_config
from training import cli
from training.commands.tune import _trial_line
from training.config import load_config_file
from training.tune import (
    BEST_CONFIG,
    DB_FILE,
    HISTORY_PNG,
    SEARCHED,
    STUDY_NAME,
    TRIALS_CSV,
    TrialSummary,
    TuneHooks,
    TuneOptions,
    make_sampler,
    plot_history,
    run_tune,
    suggest_params,
    trials_csv,
)

PNG = b"\x89PNG\r\n\x1a\n"
# tiny_config's settings as flags: Lite0 from scratch at 64 px, 2 epochs, one thread
TINY = [
    "--epochs", "2", "--image-sizes", "64", "--seed", "3",
    "--set", "threads=1", "--set", "device=cpu", "--set", "model.pretrained=false",
    "--set", "optim.batch_size=8", "--set", "evaluation.bootstrap=200",
    "--set", "output.tensorboard=false", "--set", "output.plots=false",
]  # fmt: skip


def _tune(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(["tune", *(str(a) for a in args)])
        except SystemExit as exit_:  # argparse's usage errors
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / TRIALS_CSV, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _study(folder: Path) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / DB_FILE}")
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
        study.trials  # noqa: B018 (read everything before the connection closes)
        return study
    finally:
        storage.remove_session()
        storage.engine.dispose()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_dataset(tmp_path_factory.mktemp("demo"), n=24, size=64)


@pytest.fixture(scope="module")
def tuned(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One tune: 3 trials of 2 epochs within a 1-minute budget, then the best config's fit."""
    out_dir = tmp_path_factory.mktemp("tune") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RADASSIST_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        code, out, err = _tune(
            "--data", demo, "--out", out_dir, "--budget", "1", "--trials", "3", *TINY
        )
    assert code == 0, err
    return out_dir, out, err


@pytest.mark.slow  # one shared tune: 3 trials and a fit (about 15 s here)
class TestEndToEnd:
    def test_trials_table_has_a_row_per_trial(self, tuned: tuple[Path, str, str]) -> None:
        out, _, _ = tuned
        rows = _rows(out)
        assert [int(r["number"]) for r in rows] == [0, 1, 2]
        for row in rows:
            assert row["state"] in ("complete", "pruned")
            assert 0.0 <= float(row["value"]) <= 1.0
            assert row["preprocessing.image_size"] == "64"
            assert 1e-4 <= float(row["optim.lr"]) <= 3e-3
            assert float(row["seconds"]) > 0
        # from scratch: freezing a random backbone is not searched
        assert "optim.freeze_backbone_epochs" not in rows[0]
        assert list(rows[0])[:5] == ["number", "state", "value", "epochs", "seconds"]

    def test_study_records_every_epoch_for_the_pruner(self, tuned: tuple[Path, str, str]) -> None:
        out, _, _ = tuned
        study = _study(out)
        assert len(study.trials) == 3
        for trial in study.trials:
            assert trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            assert set(trial.params) <= set(SEARCHED)
            if trial.state == optuna.trial.TrialState.COMPLETE:
                assert sorted(trial.intermediate_values) == [1, 2]
                assert trial.value == max(trial.intermediate_values.values())
        assert study.user_attrs["best_fit"] == study.best_trial.number

    def test_plot_and_best_config(self, tuned: tuple[Path, str, str], demo: Path) -> None:
        out, _, _ = tuned
        assert (out / HISTORY_PNG).read_bytes()[:8] == PNG
        best = _study(out).best_trial
        config = load_config_file(out / BEST_CONFIG)
        assert config.optim.lr == pytest.approx(best.params["optim.lr"])
        assert config.model.dropout == pytest.approx(best.params["model.dropout"])
        assert config.augment.strength == pytest.approx(best.params["augment.strength"])
        assert config.preprocessing.image_size == 64
        assert config.optim.epochs == 2 and config.seed == 3
        assert config.output.dir is None  # fit --config best_config.yaml --out DIR
        assert Path(str(config.data.manifest)) == demo.resolve()
        assert config.evaluation.bootstrap == 200  # the base's, not the cheap trials'

    def test_best_model_file_loads(self, tuned: tuple[Path, str, str]) -> None:
        out, stdout, _ = tuned
        path = out / "best" / "model.safetensors"
        loaded = load_model_file(path)
        manifest = read_manifest(path)
        assert manifest.preprocessing.image_size == 64
        best = _study(out).best_trial
        assert manifest.arch_args["dropout"] == pytest.approx(best.params["model.dropout"])
        assert loaded.manifest.labels == manifest.labels and not loaded.network.training
        assert f"wrote {path}" in stdout

    def test_trials_are_cheap_and_share_the_cache(self, tuned: tuple[Path, str, str]) -> None:
        out, _, _ = tuned
        for k in range(3):
            folder = out / "trials" / f"{k:04d}"
            assert (folder / "config.yaml").is_file() and (folder / "metrics.json").is_file()
            assert not (folder / "checkpoints").exists()
            assert not (folder / "tensorboard").exists()
        assert len(list((out / "cache").glob("*.npy"))) == 24  # one size: decoded once

    def test_terminal_lines(self, tuned: tuple[Path, str, str]) -> None:
        _, stdout, stderr = tuned
        lines = [line for line in stdout.splitlines() if line.startswith("trial ")]
        assert len(lines) == 3
        assert all("lr " in line and "-> " in line for line in lines)
        assert "ended by the trial cap" in stdout and "best: trial" in stdout
        assert "trial 0 epoch 1/2" in stderr and "best fit epoch 2/2" in stderr
        assert "Trial 0 finished" not in stdout + stderr  # optuna's own log line
        assert "Traceback" not in stderr


@pytest.mark.slow  # one more trial on a copy of the study
class TestResume:
    def test_resume_adds_trials_to_the_same_study(
        self, tuned: tuple[Path, str, str], tmp_path: Path, demo: Path
    ) -> None:
        source, _, _ = tuned
        out = tmp_path / "copy"
        shutil.copytree(source, out)
        code, stdout, stderr = _tune(
            "--data", demo, "--out", out, "--budget", "1", "--trials", "4", "--resume", *TINY
        )
        assert code == 0, stderr
        study = _study(out)
        assert [t.number for t in study.trials] == [0, 1, 2, 3]
        assert [int(r["number"]) for r in _rows(out)] == [0, 1, 2, 3]
        assert "trial 3 " in stdout
        assert (out / "best" / "model.safetensors").is_file()
        # the resumed sampler does not replay the first run's draws
        assert study.trials[3].params != study.trials[0].params

    def test_a_full_study_only_fits_the_best(
        self, tuned: tuple[Path, str, str], tmp_path: Path, demo: Path
    ) -> None:
        source, _, _ = tuned
        out = tmp_path / "copy"
        shutil.copytree(source, out)
        code, stdout, stderr = _tune(
            "--data", demo, "--out", out, "--budget", "1", "--trials", "3", "--resume", *TINY
        )
        assert code == 0, stderr
        assert len(_study(out).trials) == 3
        assert "already has 3 finished trials" in stdout
        assert "already holds the fit of trial" in stdout

    def test_an_existing_study_is_refused_without_resume(
        self, tuned: tuple[Path, str, str], demo: Path
    ) -> None:
        out, _, _ = tuned
        code, _, stderr = _tune("--data", demo, "--out", out, "--budget", "1", *TINY)
        assert code != 0
        assert stderr.strip().splitlines() == [
            f"radassist-train tune: error: {out}: is not empty (add --resume to continue its "
            "study, or choose a new --out)"
        ]

    def test_resume_with_other_settings_is_refused(
        self, tuned: tuple[Path, str, str], tmp_path: Path, demo: Path
    ) -> None:
        source, _, _ = tuned
        out = tmp_path / "copy"
        shutil.copytree(source, out)
        args = ["--data", demo, "--out", out, "--budget", "1", "--resume", *TINY, "--epochs", "3"]
        code, _, stderr = _tune(*args)
        assert code != 0
        assert "other settings than the study in this folder (optim.epochs: 2 then, 3 now)" in (
            stderr
        )
        assert len(stderr.strip().splitlines()) == 1
        assert len(_study(out).trials) == 3  # nothing ran


class TestPruning:
    def test_a_trial_below_the_pruner_threshold_is_pruned(self, demo: Path, tmp_path: Path) -> None:
        base = tiny_config(demo, optim={"epochs": 2, "batch_size": 8}, seed=3)  # type: ignore[arg-type]
        pruned: list[TrialSummary] = []
        hooks = TuneHooks(
            on_trial=pruned.append,
            pruner=optuna.pruners.ThresholdPruner(lower=1.5),  # no AUROC reaches it
        )
        options = TuneOptions(budget_minutes=1, trials=1, image_sizes=(64,))
        with pytest.raises(ConfigError, match="no trial completed"):
            run_tune(base, tmp_path / "out", options, hooks)
        assert [(t.number, t.state, t.epochs) for t in pruned] == [(0, "pruned", 1)]
        trial = _study(tmp_path / "out").trials[0]
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert list(trial.intermediate_values) == [1]  # stopped after its first epoch
        assert _rows(tmp_path / "out")[0]["state"] == "pruned"
        assert "pruned after epoch 1" in _trial_line(pruned[0])


class TestSearchSpace:
    @staticmethod
    def _proposals(seed: int, pretrained: bool = True, n: int = 4) -> list[dict[str, object]]:
        base = tiny_config(model={"pretrained": pretrained})
        study = optuna.create_study(direction="maximize", sampler=make_sampler(seed))
        proposals = []
        for _ in range(n):
            trial = study.ask()
            proposals.append(suggest_params(trial, base, (224, 256, 320)))
            study.tell(trial, 0.5)
        return proposals

    def test_the_same_seed_proposes_the_same_trials(self) -> None:
        assert self._proposals(7) == self._proposals(7)
        assert self._proposals(7) != self._proposals(8)

    def test_every_key_within_its_range(self) -> None:
        for params in self._proposals(1, n=8):
            assert set(params) == set(SEARCHED)
            assert 1e-4 <= params["optim.lr"] <= 3e-3  # type: ignore[operator]
            assert 0.1 <= params["optim.backbone_lr_factor"] <= 1.0  # type: ignore[operator]
            assert params["preprocessing.image_size"] in (224, 256, 320)
            assert 0.0 <= params["augment.strength"] <= 1.5  # type: ignore[operator]
            assert params["optim.freeze_backbone_epochs"] in (0, 1)  # 2 epochs: at most 1
            assert 0.0 <= params["model.dropout"] <= 0.5  # type: ignore[operator]

    def test_no_freeze_search_from_scratch_nor_strength_without_augmentation(self) -> None:
        base = tiny_config(model={"pretrained": False}, augment={"enabled": False})
        trial = optuna.create_study(sampler=make_sampler(0)).ask()
        params = suggest_params(trial, base, (64,))
        assert "optim.freeze_backbone_epochs" not in params
        assert "augment.strength" not in params


class TestTable:
    TRIALS = [
        TrialSummary(0, "complete", 0.81, 3, 12.0, {"optim.lr": 1e-3, "model.dropout": 0.2}),
        TrialSummary(1, "pruned", 0.55, 1, 4.0, {"optim.lr": 2e-4, "model.dropout": 0.4}),
        TrialSummary(2, "fail", None, 0, None, {"optim.lr": 3e-4}),
        TrialSummary(3, "complete", 0.86, 3, 11.0, {"optim.lr": 5e-4, "model.dropout": 0.1}),
    ]

    def test_csv(self) -> None:
        rows = list(csv.reader(io.StringIO(trials_csv(self.TRIALS))))
        assert rows[0] == [
            "number", "state", "value", "epochs", "seconds", "optim.lr", "model.dropout",
        ]  # fmt: skip
        assert rows[1] == ["0", "complete", "0.810000", "3", "12.0", "0.001", "0.2"]
        assert rows[3] == ["2", "fail", "", "0", "", "0.0003", ""]

    def test_plot(self, tmp_path: Path) -> None:
        path = plot_history(self.TRIALS, tmp_path / "h.png")
        assert path.read_bytes()[:8] == PNG
        assert plot_history([], tmp_path / "empty.png").read_bytes()[:8] == PNG

    @pytest.mark.parametrize(
        ("summary", "expected"),
        [
            (TRIALS[0], "-> val AUROC 0.8100  12 s"),
            (TRIALS[1], "-> pruned after epoch 1 (val AUROC 0.5500)  4 s"),
            (TRIALS[2], "-> failed"),
        ],
    )
    def test_trial_line(self, summary: TrialSummary, expected: str) -> None:
        line = _trial_line(summary)
        assert line.startswith(f"trial {summary.number}  lr ")
        assert line.endswith(expected)


class TestErrors:
    @pytest.mark.parametrize("budget", ["0", "-5", "soon"])
    def test_bad_budget_is_one_line(self, budget: str, tmp_path: Path, demo: Path) -> None:
        code, _, stderr = _tune("--data", demo, "--out", tmp_path / "o", "--budget", budget)
        assert code == 2
        assert len(stderr.strip().splitlines()) == 1 and "--budget" in stderr
        assert not (tmp_path / "o").exists()

    def test_options_refuse_a_non_positive_budget(self) -> None:
        with pytest.raises(ConfigError, match="--budget 0 must be a positive number of minutes"):
            TuneOptions(budget_minutes=0).validate()

    def test_missing_data_is_one_line_and_writes_nothing(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.csv"
        code, _, stderr = _tune("--data", missing, "--out", tmp_path / "o", "--budget", "1", *TINY)
        assert code == 1
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in stderr
        assert not (tmp_path / "o").exists()

    def test_no_data(self, tmp_path: Path) -> None:
        code, _, stderr = _tune("--out", tmp_path / "o", "--budget", "1")
        assert code == 2
        assert "no training data given (pass --data MANIFEST)" in stderr

    def test_kfold_base_is_refused(self, tmp_path: Path, demo: Path) -> None:
        args = ["--data", demo, "--out", tmp_path / "o", "--budget", "1", "--set", "data.folds=3"]
        code, _, stderr = _tune(*args)
        assert code == 1
        assert "not data.folds 3" in stderr and len(stderr.strip().splitlines()) == 1

    def test_resume_of_a_folder_without_a_study_is_refused(
        self, tmp_path: Path, demo: Path
    ) -> None:
        out = tmp_path / "o"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        code, _, stderr = _tune("--data", demo, "--out", out, "--budget", "1", "--resume", *TINY)
        assert code == 1 and "holds no tune study (tune.db)" in stderr


@pytest.mark.slow  # three trials and a fit
class TestInterrupted:
    def test_interrupted_and_crashed_trials_fail_and_do_not_count(
        self, demo: Path, tmp_path: Path
    ) -> None:
        base = tiny_config(demo, optim={"epochs": 2, "batch_size": 8}, seed=3)  # type: ignore[arg-type]
        out = tmp_path / "out"

        def ctrl_c_in_trial_1(number: int | None, entry: dict[str, object], epochs: int) -> None:
            if number == 1:
                raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

        options = TuneOptions(budget_minutes=1, trials=2, image_sizes=(64,))
        with pytest.raises(KeyboardInterrupt):
            run_tune(base, out, options, TuneHooks(on_epoch=ctrl_c_in_trial_1))
        assert [r["state"] for r in _rows(out)] == ["complete", "fail"]
        # a process killed mid-trial leaves it running in the study
        storage = optuna.storages.RDBStorage(f"sqlite:///{out / DB_FILE}")
        try:
            optuna.load_study(study_name=STUDY_NAME, storage=storage).ask()
        finally:
            storage.remove_session()
            storage.engine.dispose()
        outcome = run_tune(base, out, replace(options, resume=True))
        states = [t.state for t in outcome.trials]
        assert states == ["complete", "fail", "fail", "complete"]  # 2 finished: the cap
        assert outcome.ended_by == "trials"
        assert outcome.model_path is not None and outcome.model_path.is_file()

    def test_the_stop_flag_ends_the_search_without_the_final_fit(
        self, demo: Path, tmp_path: Path
    ) -> None:
        base = tiny_config(demo, optim={"epochs": 1, "batch_size": 8}, seed=3)  # type: ignore[arg-type]
        stop = threading.Event()
        hooks = TuneHooks(on_trial=lambda _t: stop.set(), stop=stop)
        options = TuneOptions(budget_minutes=1, trials=3, image_sizes=(64,))
        outcome = run_tune(base, tmp_path / "out", options, hooks)
        assert outcome.ended_by == "stopped"
        assert [t.state for t in outcome.trials] == ["complete"]
        assert outcome.fit is None and outcome.model_path is None
        assert (tmp_path / "out" / BEST_CONFIG).is_file()  # fit it by hand, or resume
