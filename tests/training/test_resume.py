"""A run stopped after epoch k (or in the middle of epoch k+1) and resumed ends with the same
weights as an uninterrupted run; checkpoints load with weights_only=True."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from desktop_app.infra.errors import ConfigError
from tests.helpers.tinydata import demo_dataset, tiny_config
from training import checkpoints as C
from training import loop as L
from training import runtime as R
from training.config import TrainConfig, config_from_dict
from training.data import read_dataset, split_dataset
from training.dataset import load_units


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    manifest = demo_dataset(tmp_path_factory.mktemp("demo"), n=20, size=64)
    # pretrained + freeze 1 epoch, augmentation and dropout on: every RNG and state matters
    config = tiny_config(
        manifest,
        model={"pretrained": True, "dropout": 0.3},
        optim={"epochs": 3, "batch_size": 6, "freeze_backbone_epochs": 1},
        preprocessing={"image_size": 32},
    )
    data = read_dataset(manifest)
    splits = split_dataset(data, seed=config.seed)
    units = load_units(data.records, config.preprocess_spec())
    return config, data, splits, units


def _train(
    setup: tuple, out: Path, *, resume: bool = False, stop=None, config: TrainConfig | None = None
) -> L.TrainResult:  # type: ignore[no-untyped-def]
    base, data, splits, units = setup
    return L.train_model(
        config or base, data, units, splits.train, splits.val, out,
        R.Runtime(torch.device("cpu")), resume=resume, stop=stop,
    )  # fmt: skip


def _last_weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.pt", weights_only=True)["model"]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())


@pytest.fixture(scope="module")
def reference(setup: tuple, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, L.TrainResult]:
    out = tmp_path_factory.mktemp("uninterrupted")
    return out, _train(setup, out)


def _stop_after_checks(n: int):  # type: ignore[no-untyped-def]
    """A stop flag that turns true at its n-th check (checks happen once per batch)."""
    counter = itertools.count(1)
    return lambda: next(counter) >= n


@pytest.mark.slow
class TestResume:
    # stop checks per epoch: 2 train batches (15 images, batch 6, ragged batch dropped),
    # 1 validation batch, 1 after the epoch: 4
    @pytest.mark.parametrize(
        ("checks", "epochs_done"),
        [
            (4, 1),  # right after epoch 1 (the frozen one): stopped at the boundary
            (6, 1),  # at epoch 2's second batch: one optimizer step of a partial epoch is lost
            (10, 2),  # in epoch 3, after one step
        ],
    )
    def test_stopped_and_resumed_run_matches_uninterrupted(
        self,
        setup: tuple,
        reference: tuple[Path, L.TrainResult],
        tmp_path: Path,
        checks: int,
        epochs_done: int,
    ) -> None:
        ref_out, ref = reference
        first = _train(setup, tmp_path, stop=_stop_after_checks(checks))
        assert first.stopped and first.epochs_run == epochs_done
        ck = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
        assert ck["epoch"] == epochs_done
        resumed = _train(setup, tmp_path, resume=True)
        assert not resumed.stopped and resumed.epochs_run == 3
        assert _max_diff(_last_weights(tmp_path), _last_weights(ref_out)) < 1e-6
        assert [h["train_loss"] for h in resumed.history] == pytest.approx(
            [h["train_loss"] for h in ref.history], abs=1e-6
        )
        best = resumed.model.state_dict()
        assert _max_diff(best, ref.model.state_dict()) < 1e-6

    def test_checkpoint_holds_everything_and_loads_weights_only(
        self, reference: tuple[Path, L.TrainResult]
    ) -> None:
        out, _ = reference
        ck = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
        for key in ("model", "optimizer", "scheduler", "scaler", "rng", "epoch", "best_metric",
                    "best_epoch", "bad_epochs", "history"):  # fmt: skip
            assert key in ck, key
        assert set(ck["rng"]) >= {"python", "numpy", "torch"}
        assert (out / "checkpoints" / "best.pt").is_file()
        assert not list((out / "checkpoints").glob(".*.tmp"))  # atomic: no leftovers

    def test_resume_with_other_settings_is_refused(
        self, setup: tuple, reference: tuple[Path, L.TrainResult]
    ) -> None:
        out, _ = reference
        other = config_from_dict({"optim": {"lr": 0.05}}, setup[0])
        with pytest.raises(
            ConfigError, match=r"the checkpoint was made with different training settings"
        ):
            _train(setup, out, resume=True, config=other)

    def test_resume_of_a_finished_run_trains_nothing(
        self, setup: tuple, reference: tuple[Path, L.TrainResult]
    ) -> None:
        out, ref = reference
        before = _last_weights(out)
        again = _train(setup, out, resume=True)
        assert again.epochs_run == 3 and _max_diff(_last_weights(out), before) == 0.0
        assert _max_diff(again.model.state_dict(), ref.model.state_dict()) == 0.0


def test_damaged_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match=r"last\.pt: checkpoint can't be read"):
        C.load_checkpoint(tmp_path / "checkpoints" / "last.pt")


def test_tiny_config_is_valid() -> None:
    assert tiny_config().optim.epochs == 2
