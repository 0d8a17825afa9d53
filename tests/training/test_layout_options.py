"""Public-layout reading options in the config and the CLIs (data.layout, --uncertainty ...),
and true U-Ignore: unknown (NaN) labels masked out of the loss, metrics, splits and calibration."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from desktop_app.infra.errors import ConfigError
from desktop_app.model.modelfile import read_manifest
from training import cli
from training.calibration import binary_nll, fit_temperature
from training.commands import fit as fit_command
from training.config import TrainConfig, config_from_dict, write_config
from training.data import Dataset, Record, single_class_labels, split_dataset
from training.evaluate import layout_for_model
from training.layouts.common import LayoutOptions
from training.loop import MaskedBCEWithLogits
from training.metrics import auroc, bootstrap_auroc, choose_threshold, label_metrics
from training.optim import pos_weight_from
from training.pipeline import check_resumable

from .layouts.public import slice_text, write_jpeg, write_slice

NAN = math.nan


class TestMaskedLoss:
    def test_equals_bce_when_every_target_is_known(self) -> None:
        logits = torch.tensor([[0.3, -1.2], [2.0, 0.1], [-0.5, 0.7]])
        y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        weight = torch.tensor([2.0, 0.5])
        for pw in (None, weight):
            expected = nn.BCEWithLogitsLoss(pos_weight=pw)(logits, y)
            assert torch.allclose(MaskedBCEWithLogits(pw)(logits, y), expected)

    def test_averages_over_known_entries_and_unknown_ones_get_no_gradient(self) -> None:
        logits = torch.tensor([[0.3, -1.2], [2.0, 0.1], [-0.5, 0.7]], requires_grad=True)
        y = torch.tensor([[1.0, NAN], [0.0, 1.0], [NAN, 1.0]])
        weight = torch.tensor([3.0, 1.0])
        loss = MaskedBCEWithLogits(weight)(logits, y)
        known = ~torch.isnan(y)
        by_hand = nn.functional.binary_cross_entropy_with_logits(
            logits.detach()[known], y[known], reduction="none",
            pos_weight=weight.expand_as(y)[known],
        ).mean()  # fmt: skip
        assert torch.isfinite(loss) and torch.allclose(loss, by_hand)
        loss.backward()
        assert logits.grad is not None
        assert float(logits.grad[0, 1]) == 0.0 and float(logits.grad[2, 0]) == 0.0
        assert float(logits.grad[0, 0]) != 0.0

    def test_a_batch_without_known_targets_has_zero_loss(self) -> None:
        loss = MaskedBCEWithLogits()(torch.zeros(2, 1), torch.full((2, 1), NAN))
        assert float(loss) == 0.0

    def test_pos_weight_counts_known_targets_only(self) -> None:
        y = np.array([[1, NAN], [0, 1], [0, 0], [0, NAN], [NAN, 0]], dtype=np.float32)
        assert pos_weight_from(y).tolist() == [3.0, 2.0]


class TestNanSkippingMetrics:
    y = np.array([1, 0, NAN, 1, 0, NAN, 0, 1])
    p = np.array([0.9, 0.2, 0.99, 0.6, 0.4, 0.01, 0.7, 0.8])

    def known(self) -> tuple[np.ndarray, np.ndarray]:
        keep = ~np.isnan(self.y)
        return self.y[keep], self.p[keep]

    def test_auroc_and_its_ci_use_the_known_rows(self) -> None:
        yk, pk = self.known()
        assert auroc(self.y, self.p) == auroc(yk, pk)
        assert math.isfinite(auroc(self.y, self.p))
        assert bootstrap_auroc(self.y, self.p, n_boot=200) == bootstrap_auroc(yk, pk, n_boot=200)

    def test_threshold_and_label_metrics_use_the_known_rows(self) -> None:
        yk, pk = self.known()
        assert choose_threshold(self.y, self.p) == choose_threshold(yk, pk)
        m = label_metrics(self.y, self.p, 0.5, n_boot=0)
        assert m == label_metrics(yk, pk, 0.5, n_boot=0)
        assert m["n"] == 6 and m["positives"] == 3 and math.isfinite(m["ece"])

    def test_temperature_and_nll_ignore_unknown_targets(self) -> None:
        rng = np.random.default_rng(0)
        y = (rng.random(60) < 0.5).astype(float)
        z = 3.0 * (y - 0.5) + rng.normal(0, 1.5, 60)
        with_nan = y.copy()
        with_nan[::7] = NAN
        keep = ~np.isnan(with_nan)
        assert fit_temperature(z, with_nan) == fit_temperature(z[keep], y[keep])
        assert binary_nll(z, with_nan) == pytest.approx(binary_nll(z[keep], y[keep]))


def _dataset(labels: Sequence[tuple[float, ...]]) -> Dataset:
    records = [Record(i + 2, Path(f"/x/{i}.png"), y, f"p{i}", None) for i, y in enumerate(labels)]
    return Dataset(Path("/x/m.csv"), "chexpert", ("a", "b"), records, "0" * 64)


class TestSplitsWithUnknownLabels:
    def test_single_class_labels_ignore_unknown_targets(self) -> None:
        data = _dataset([(1.0, NAN), (0.0, 1.0), (NAN, 1.0), (1.0, NAN)])
        assert single_class_labels(data, range(4)) == ["b"]
        assert single_class_labels(_dataset([(NAN, 0.0), (NAN, 1.0)]), range(2)) == ["a"]

    def test_stratified_split_treats_unknown_as_negative(self) -> None:
        rows = [(1.0, 0.0)] * 10 + [(0.0, 1.0)] * 10 + [(NAN, 0.0)] * 10 + [(0.0, 0.0)] * 10
        with_nan = split_dataset(_dataset(rows), seed=3)
        as_zero = split_dataset(
            _dataset([tuple(0.0 if math.isnan(v) else v for v in r) for r in rows]), seed=3
        )
        assert (with_nan.train, with_nan.val, with_nan.test) == (
            as_zero.train,
            as_zero.val,
            as_zero.test,
        )
        counts = with_nan.counts(_dataset(rows))
        positives = [counts[s]["positives"] for s in ("train", "val", "test")]
        assert sum(p["a"] for p in positives if isinstance(p, dict)) == 10


class TestLayoutConfig:
    def test_defaults_are_the_documented_options(self) -> None:
        assert TrainConfig().data.layout == LayoutOptions()

    def test_yaml_block_sets_them_and_bad_values_name_the_key(self) -> None:
        config = config_from_dict({"data": {"layout": {"uncertainty": "ignore", "views": "all"}}})
        assert config.data.layout == LayoutOptions(uncertainty="ignore", views="all")
        with pytest.raises(ConfigError, match=r"config data\.layout\.uncertainty 'u-maybe'"):
            config_from_dict({"data": {"layout": {"uncertainty": "u-maybe"}}})
        with pytest.raises(ConfigError, match=r"unknown config key data\.layout\.view \("):
            config_from_dict({"data": {"layout": {"view": "all"}}})

    def test_options_are_part_of_the_training_hash(self, tmp_path: Path) -> None:
        base = TrainConfig().resolved()
        other = config_from_dict({"data": {"layout": {"uncertainty": "u-zeros"}}}, base)
        assert other.training_hash() != base.training_hash()
        write_config(base, tmp_path / "config.yaml")
        check_resumable(tmp_path, base)
        with pytest.raises(ConfigError, match=r"uncertainty: 'u-ones' then, 'u-zeros' now"):
            check_resumable(tmp_path, other)

    def test_fit_flags_override_the_config(self, tmp_path: Path) -> None:
        parser = argparse.ArgumentParser()
        fit_command.add_arguments(parser)
        args = parser.parse_args(
            ["--data", "x.csv", "--out", str(tmp_path / "o"), "--uncertainty", "ignore",
             "--views", "all", "--label-rule", "any", "--missing-images", "error",
             "--labeler", "negbio", "--set", "data.layout={views: lateral}"]
        )  # fmt: skip
        layout = fit_command.resolve_config(args).data.layout
        assert layout == LayoutOptions("ignore", "all", "any", "error", "negbio")

    def test_a_model_file_is_read_as_its_training_read_it(self) -> None:
        recorded = {"layout": {"uncertainty": "ignore", "views": "all"}}
        assert layout_for_model(recorded) == LayoutOptions(uncertainty="ignore", views="all")
        assert layout_for_model(recorded, {"uncertainty": "u-zeros"}).uncertainty == "u-zeros"
        assert layout_for_model({}) == LayoutOptions()


# --------------------------------------------------------------------------- CLI on CheXpert

LABELS = "Consolidation,Edema"
FAST = [
    "--epochs", "2", "--image-size", "64", "--no-pretrained", "--batch-size", "8",
    "--set", "threads=1", "--set", "evaluation.bootstrap=200", "--set", "output.plots=false",
    "--set", "output.tensorboard=false", "--set", "recipe.lr_range_test=false", "--quiet",
]  # fmt: skip


def _chexpert(root: Path) -> Path:
    """CheXpert as published (a 300-row slice of the real train.csv), 16 px JPEGs."""
    csv_path = write_slice("chexpert_train.csv.gz", root / "CheXpert-v1.0-small" / "train.csv")
    rows = list(csv.reader(io.StringIO(slice_text("chexpert_train.csv.gz"))))[1:]
    for i, row in enumerate(rows):
        write_jpeg(root / row[0], seed=i)
    return csv_path


def _uncertain_rows() -> dict[str, set[str]]:
    header, *rows = list(csv.reader(io.StringIO(slice_text("chexpert_train.csv.gz"))))
    return {
        lab: {r[0] for r in rows if r[header.index(lab)] == "-1.0"} for lab in LABELS.split(",")
    }


@pytest.fixture(scope="module")
def ignored_fit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("chexpert")
    data = _chexpert(root)
    out = root / "out"
    code = cli.main(
        ["fit", "--data", str(data), "--out", str(out), "--labels", LABELS,
         "--uncertainty", "ignore", *FAST]
    )  # fmt: skip
    assert code == 0
    return data, out


@pytest.mark.slow  # one tiny training run on 236 CheXpert images (about 20 s here)
class TestUIgnoreFit:
    def test_trains_with_unknown_labels_and_the_metrics_are_finite(
        self, ignored_fit: tuple[Path, Path]
    ) -> None:
        _, out = ignored_fit
        metrics = json.loads((out / "metrics.json").read_text())
        assert all(math.isfinite(e["train_loss"]) for e in metrics["history"])
        assert all(math.isfinite(e["val_loss"]) for e in metrics["history"])
        for split in ("val", "test"):
            for label in LABELS.split(","):
                entry = metrics["final"][split][label]
                assert entry["auroc"]["value"] is None or math.isfinite(entry["auroc"]["value"])
                assert math.isfinite(entry["ece"])

    def test_the_model_file_records_the_reading_and_predictions_leave_unknown_empty(
        self, ignored_fit: tuple[Path, Path]
    ) -> None:
        _, out = ignored_fit
        td = read_manifest(out / "model.safetensors").training_data
        assert td["layout"]["uncertainty"] == "ignore" and td["format"] == "chexpert"
        rows = list(csv.DictReader(io.StringIO((out / "predictions.csv").read_text())))
        assert any(r["Consolidation"] == "" for r in rows)  # unknown: an empty cell
        assert all(r["Consolidation"] in ("", "0", "1") for r in rows)
        assert all(0.0 <= float(r["p_Consolidation"]) <= 1.0 for r in rows)

    def test_evaluate_reads_as_trained_and_the_flag_changes_the_labels(
        self, ignored_fit: tuple[Path, Path], tmp_path: Path
    ) -> None:
        data, out = ignored_fit
        results = {}
        for name, flags in (("recorded", []), ("u-ones", ["--uncertainty", "u-ones"])):
            report = tmp_path / f"{name}.json"
            code = cli.main(
                ["evaluate", "--model", str(out / "model.safetensors"), "--data", str(data),
                 "--split", "all", "--bootstrap", "0", "--device", "cpu", "--quiet",
                 "--json", str(report), *flags]
            )  # fmt: skip
            assert code == 0
            results[name] = json.loads(report.read_text())
        uncertain = _uncertain_rows()
        frontal = results["u-ones"]["data"]["images"]
        assert results["recorded"]["data"]["layout"]["uncertainty"] == "ignore"
        assert results["u-ones"]["data"]["layout"]["uncertainty"] == "u-ones"
        for label in LABELS.split(","):
            ones, ignored = results["u-ones"]["labels"][label], results["recorded"]["labels"][label]
            assert ones["n"] == frontal
            assert 0 < frontal - ignored["n"] <= len(uncertain[label])
            assert ones["positives"] - ignored["positives"] == frontal - ignored["n"]

    def test_resuming_with_another_uncertainty_policy_is_refused(
        self, ignored_fit: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        data, out = ignored_fit
        code = cli.main(
            ["fit", "--data", str(data), "--out", str(out), "--labels", LABELS, "--resume",
             "--uncertainty", "u-zeros", *FAST]
        )  # fmt: skip
        err = capsys.readouterr().err
        assert code == 1 and "layout.uncertainty: 'ignore' then, 'u-zeros' now" in err
