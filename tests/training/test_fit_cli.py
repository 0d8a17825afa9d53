"""`radassist-train fit`: outputs, one-line errors, resume, k-fold, RSNA layout, and the
default (pretrained Lite0) path on a dataset like the acceptance one (another finding,
MONOCHROME1, RLE, non-square)."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
from pathlib import Path

import pytest
import yaml

from desktop_app.model.modelfile import load_model_file, read_manifest
from desktop_app.phantoms.studies import write_chest_xr
from tests.helpers.tinydata import demo_dataset
from training import cli
from training.commands import fit as fit_command

FAST = [
    "--epochs", "2", "--image-size", "64", "--no-pretrained", "--batch-size", "8",
    "--set", "threads=1", "--set", "evaluation.bootstrap=200",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_dataset(tmp_path_factory.mktemp("demo"), n=24, size=64)


def _fit(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = cli.main(["fit", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    out_dir = tmp_path_factory.mktemp("run") / "out"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["fit", "--data", str(demo), "--out", str(out_dir), *FAST])
    assert code == 0, err.getvalue()
    return out_dir, out.getvalue(), err.getvalue()


@pytest.mark.slow  # one shared training run (about 10 s here)
class TestOutputs:
    def test_every_output_is_written(self, trained: tuple[Path, str, str], demo: Path) -> None:
        out, stdout, stderr = trained
        for name in (
            "config.yaml", "metrics.json", "model.safetensors", "model_card.md",
            "loss_curves.png", "roc_curves.png", "predictions.csv",
            "checkpoints/last.pt", "checkpoints/best.pt",
        ):  # fmt: skip
            assert (out / name).is_file(), name
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))
        for png in ("loss_curves.png", "roc_curves.png"):
            assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "epoch 1/2  train loss" in stderr and "epoch 2/2" in stderr
        assert "val AUROC nodule" in stderr
        assert f"wrote {out / 'model.safetensors'}" in stdout
        assert "AUROC (95% CI)" in stdout

    def test_resolved_config_records_the_flags(self, trained: tuple[Path, str, str]) -> None:
        out, _, _ = trained
        config = yaml.safe_load((out / "config.yaml").read_text())
        assert config["optim"]["epochs"] == 2
        assert config["preprocessing"]["image_size"] == 64
        assert config["preprocessing"]["output_scaling"] == "lite"  # resolved from the arch
        assert config["model"]["pretrained"] is False
        assert config["threads"] == 1

    def test_metrics_show_train_and_val_per_epoch(self, trained: tuple[Path, str, str]) -> None:
        out, _, _ = trained
        metrics = json.loads((out / "metrics.json").read_text())
        assert len(metrics["history"]) == 2
        for entry in metrics["history"]:
            assert {"train_loss", "val_loss", "train_auroc", "val_auroc", "lr", "seconds"} <= set(
                entry
            )
            assert set(entry["val_auroc"]) == {"nodule", "effusion", "cardiomegaly"}
        assert set(metrics["final"]) == {"val", "test"}
        splits = metrics["data"]["splits"]
        assert sum(s["images"] for s in splits.values()) == 24

    def test_model_file_carries_thresholds_metrics_and_data_summary(
        self, trained: tuple[Path, str, str], demo: Path
    ) -> None:
        out, _, _ = trained
        loaded = load_model_file(out / "model.safetensors")
        m = loaded.manifest
        assert m.labels == ("nodule", "effusion", "cardiomegaly")
        assert m.preprocessing.image_size == 64 and m.architecture == "efficientnet-lite0"
        assert all(0.0 <= t <= 1.0 for t in m.thresholds.values())
        assert m.threshold_rule.startswith("Youden's J")
        auroc = m.metrics["test"]["nodule"]["auroc"]
        assert set(auroc) == {"value", "ci95"}
        td = m.training_data
        assert td["manifest_sha256"] == hashlib.sha256(demo.read_bytes()).hexdigest()
        assert td["synthetic"] is True and td["images"] == 24
        assert "synthetic" in m.intended_use
        card = (out / "model_card.md").read_text()
        assert "Trained on synthetic phantoms" in card and m.tensor_sha256 in card

    def test_predictions_cover_val_and_test(self, trained: tuple[Path, str, str]) -> None:
        out, _, _ = trained
        metrics = json.loads((out / "metrics.json").read_text())
        lines = (out / "predictions.csv").read_text().splitlines()
        expected = (
            metrics["data"]["splits"]["val"]["images"] + metrics["data"]["splits"]["test"]["images"]
        )
        assert len(lines) == 1 + expected
        assert lines[0].startswith("row,split,nodule,effusion,cardiomegaly,p_nodule")


class TestErrors:
    @pytest.mark.slow
    def test_existing_run_is_not_overwritten(
        self, trained: tuple[Path, str, str], demo: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out, _, _ = trained
        code, stdout, err = _fit(capsys, "--data", demo, "--out", out, *FAST)
        assert code == 1 and stdout == ""
        assert err == (
            f"radassist-train fit: error: {out}: already holds a training run "
            "(add --resume to continue it, or choose a new --out)\n"
        )

    def test_bad_row_is_one_line(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        csv = tmp_path / "m.csv"
        csv.write_text("path,finding,patient_id\nmissing.dcm,1,P1\n")
        code, _, err = _fit(capsys, "--data", csv, "--out", tmp_path / "o", *FAST)
        assert code == 1
        assert err == (
            f"radassist-train fit: error: {csv}: row 2: image missing.dcm not found (paths are "
            "relative to the CSV's folder; fix the path or remove the row)\n"
        )

    def test_unknown_label(
        self, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = _fit(
            capsys, "--data", demo, "--out", tmp_path / "o", "--labels", "tumour", *FAST
        )
        assert code == 1
        assert (
            "unknown label 'tumour' (the manifest's label columns are: nodule, effusion, cardiomegaly)"
            in err
        )
        assert err.count("\n") == 1

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--epochs", "0"], "argument --epochs: 0 should be at least 1"),
            (["--arch", "vgg"], "argument --arch: invalid choice: 'vgg'"),
        ],
    )
    def test_bad_flags_exit_2(
        self,
        demo: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        args: list[str],
        message: str,
    ) -> None:
        with pytest.raises(SystemExit) as info:
            cli.main(["fit", "--data", str(demo), "--out", str(tmp_path / "o"), *args])
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err and err.count("\n") == 1

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--set", "optim.nonsense=1"], "unknown config key optim.nonsense"),
            (["--set", "optim.lr=5"], "config optim.lr 5.0 must be in (0, 1)"),
        ],
    )
    def test_bad_config_values_exit_2(
        self,
        demo: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        args: list[str],
        message: str,
    ) -> None:
        code, _, err = _fit(capsys, "--data", demo, "--out", tmp_path / "o", *args)
        assert code == 2 and message in err and err.count("\n") == 1
        assert not (tmp_path / "o").exists()

    def test_config_precedence(self, tmp_path: Path) -> None:
        cfg = tmp_path / "c.yaml"
        cfg.write_text("seed: 3\noptim: {epochs: 5, lr: 0.002}\n")
        parser = argparse.ArgumentParser()
        fit_command.add_arguments(parser)
        args = parser.parse_args(
            ["--data", "m.csv", "--out", str(tmp_path / "o"), "--config", str(cfg), "--epochs", "1",
             "--set", "optim.lr=0.003"]
        )  # fmt: skip
        config = fit_command.resolve_config(args)
        assert (config.seed, config.optim.epochs, config.optim.lr) == (3, 1, 0.003)

    def test_a_config_file_alone_is_enough(self, tmp_path: Path) -> None:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"data: {{manifest: {tmp_path / 'm.csv'}}}\noutput: {{dir: {tmp_path / 'o'}}}\n"
        )
        parser = argparse.ArgumentParser()
        fit_command.add_arguments(parser)
        config = fit_command.resolve_config(parser.parse_args(["--config", str(cfg)]))
        assert config.output.dir == str(tmp_path / "o")
        assert config.data.manifest == str(tmp_path / "m.csv")

    def test_no_output_folder(self, demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = _fit(capsys, "--data", demo)
        assert code == 2
        assert err == "radassist-train fit: error: no output folder given (pass --out DIR)\n"


@pytest.mark.slow
class TestRuns:
    def test_resume_extends_a_finished_run(
        self, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "o"
        args = ["--data", demo, "--out", out, *FAST]
        assert _fit(capsys, *args, "--epochs", "1")[0] == 0
        code, stdout, err = _fit(capsys, *args, "--epochs", "2", "--resume")
        assert code == 0, err
        history = json.loads((out / "metrics.json").read_text())["history"]
        assert [h["epoch"] for h in history] == [1, 2]
        assert "epochs changed from 1 to 2 on resume" in stdout

    def test_resume_with_other_settings_changes_nothing(
        self, trained: tuple[Path, str, str], demo: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out, _, _ = trained
        before = (out / "config.yaml").read_text()
        code, _, err = _fit(capsys, "--data", demo, "--out", out, *FAST, "--lr", "0.01", "--resume")
        assert code == 1
        assert (
            "--resume with other training settings than the run in this folder (optim.lr: 0.001 then, 0.01 now)"
            in err
        )
        assert (out / "config.yaml").read_text() == before

    def test_kfold(self, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "o"
        code, stdout, err = _fit(capsys, "--data", demo, "--out", out, *FAST, "--folds", "2")
        assert code == 0, err
        for k in (1, 2):
            assert (out / f"fold_{k}" / "checkpoints" / "last.pt").is_file()
            assert (out / f"fold_{k}" / "metrics.json").is_file()
        assert (out / "final" / "checkpoints" / "last.pt").is_file()
        metrics = json.loads((out / "metrics.json").read_text())
        cv = metrics["cross_validation"]["summary"]
        assert cv["folds"] == 2 and len(metrics["cross_validation"]["folds"]) == 2
        assert "auroc_mean" in cv["cardiomegaly"]
        manifest = read_manifest(out / "model.safetensors")
        assert set(manifest.metrics) == {"cross_validated", "test"}
        assert "out-of-fold" in manifest.threshold_rule
        assert "cross-validation over 2 folds" in stdout
        assert "fold 1/2 epoch 1/2" in err

    def test_rsna_layout(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        images = tmp_path / "rsna" / "stage_2_train_images"
        images.mkdir(parents=True)
        rows = ["patientId,x,y,width,height,Target"]
        for k in range(20):
            pid = f"{k:04x}-0000-4000-8000-rsna"
            sick = k % 2 == 0
            _, ann = write_chest_xr(
                images / f"{pid}.dcm", 100 + k, rows=64, findings=["consolidation"] if sick else []
            )
            if sick:
                x, y, w, h = ann.boxes["consolidation"].as_tuple()
                rows.append(f"{pid},{x},{y},{w},{h},1")
            else:
                rows.append(f"{pid},,,,,0")
        (tmp_path / "rsna" / "stage_2_train_labels.csv").write_text("\n".join(rows) + "\n")
        out = tmp_path / "o"
        code, _, err = _fit(capsys, "--data", tmp_path / "rsna", "--out", out, *FAST)
        assert code == 0, err
        manifest = read_manifest(out / "model.safetensors")
        assert manifest.labels == ("pneumonia",)
        assert manifest.training_data["format"] == "rsna"
        assert "seeded per-patient split" in manifest.training_data["split_method"]

    def test_default_pretrained_path_on_an_acceptance_like_dataset(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Another finding, MONOCHROME1, RLE and non-square DICOMs; pretrained Lite0 at 224,
        every default but the epoch count; then `evaluate --split test --json`."""
        manifest = demo_dataset(
            tmp_path / "data", n=40, size=96, seed=4, findings=("pneumothorax",),
            monochrome1_fraction=0.5, rle_fraction=0.5, nonsquare_fraction=0.5,
        )  # fmt: skip
        out = tmp_path / "o"
        code, _, err = _fit(capsys, "--data", manifest, "--out", out, "--epochs", "2")
        assert code == 0, err
        m = read_manifest(out / "model.safetensors")
        assert m.labels == ("pneumothorax",) and m.preprocessing.image_size == 224
        config = yaml.safe_load((out / "config.yaml").read_text())
        assert config["model"]["pretrained"] is True
        history = json.loads((out / "metrics.json").read_text())["history"]
        assert not any(h["backbone_frozen"] for h in history)  # the default: no frozen epoch
        # the default backbone_lr_factor 1: backbone and head share the learning rate
        assert history[0]["backbone_lr"] == pytest.approx(history[0]["lr"])
        report = tmp_path / "eval.json"
        code = cli.main(
            ["evaluate", "--model", str(out / "model.safetensors"), "--data", str(manifest),
             "--split", "test", "--json", str(report)]
        )  # fmt: skip
        stdout, err = capsys.readouterr()
        assert code == 0, err
        result = json.loads(report.read_text())
        assert result["data"]["split"] == "test" and "pneumothorax" in result["labels"]
        assert "pneumothorax" in stdout
