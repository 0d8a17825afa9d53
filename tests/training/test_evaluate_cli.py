"""`radassist-train evaluate`: metrics from the model file's own preprocessing and thresholds,
a table on stdout, JSON for machines, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from desktop_app.model.modelfile import default_manifest, load_model_file, save_model_file
from desktop_app.model.networks import build_from_arch_args
from desktop_app.model.preprocessing import preprocess_file
from tests.helpers.engine import make_model_file
from tests.helpers.tinydata import demo_dataset
from training import cli
from training.data import read_dataset, split_dataset
from training.metrics import auroc, confusion

LABELS = ("nodule", "effusion", "cardiomegaly")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_dataset(tmp_path_factory.mktemp("demo"), n=30, size=64, monochrome1_fraction=0.5)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (seeded) network with thresholds 0.5: evaluation needs no training."""
    torch.manual_seed(0)
    manifest = default_manifest(
        name="eval-test", architecture="efficientnet-lite0", labels=LABELS, image_size=48
    )
    network = build_from_arch_args(manifest.architecture, manifest.arch_args)
    path = tmp_path_factory.mktemp("model") / "m.safetensors"
    save_model_file(path, network, manifest)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = cli.main(["evaluate", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, out, err


class TestEvaluate:
    def test_metrics_match_a_direct_computation(
        self, demo: Path, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        report = tmp_path / "r.json"
        code, out, err = _run(
            capsys, "--model", model_file, "--data", demo, "--split", "test", "--json", report,
            "--device", "cpu", "--bootstrap", "200", "--quiet",
        )  # fmt: skip
        assert (code, err) == (0, "")
        result = json.loads(report.read_text())
        # the same split and the same preprocessing, computed here from scratch
        data = read_dataset(demo)
        test = split_dataset(data).test
        loaded = load_model_file(model_file)
        x = np.stack(
            [preprocess_file(data.records[i].path, loaded.manifest.preprocessing)[0] for i in test]
        )
        with torch.no_grad():
            p = torch.sigmoid(loaded.network(torch.from_numpy(x))).numpy()
        y = data.label_matrix(test)
        assert result["data"]["images"] == len(test)
        for j, label in enumerate(LABELS):
            m = result["labels"][label]
            expected = auroc(y[:, j], p[:, j])
            if np.isnan(expected):
                assert m["auroc"]["value"] is None
            else:
                assert m["auroc"]["value"] == pytest.approx(expected, abs=1e-9)
            cm = confusion(y[:, j], p[:, j], 0.5)
            assert {k: m[k] for k in ("tp", "fp", "tn", "fn")} == cm
            assert m["threshold"] == 0.5 and "ece" in m and "sensitivity" in m
        assert result["model"]["tensor_sha256"] == loaded.sha256
        assert result["device"] == "cpu"
        # the human table
        assert "AUROC (95% CI)" in out and "sensitivity (95% CI)" in out
        assert all(label in out for label in LABELS) and "mean AUROC" in out

    def test_json_to_stdout(
        self, demo: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = _run(
            capsys, "--model", model_file, "--data", demo, "--split", "val", "--json", "-",
            "--device", "cpu", "--bootstrap", "0", "--quiet",
        )  # fmt: skip
        assert code == 0
        result = json.loads(out)
        assert result["data"]["split"] == "val"
        assert "ci95" not in result["labels"]["nodule"]["auroc"]

    def test_label_missing_from_the_manifest(
        self, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        data = tmp_path / "other"
        manifest = demo_dataset(data, n=6, size=64, findings=("pneumothorax",))
        code, _, err = _run(capsys, "--model", model_file, "--data", manifest, "--quiet")
        assert code == 1
        assert "the model's label 'nodule' is not a label column of this manifest" in err
        assert err.count("\n") == 1

    def test_empty_split(
        self, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "a.png").write_bytes(b"")
        rows = ["path,nodule,effusion,cardiomegaly,split"]
        rows += [f"a.png,{i % 2},0,1,{'train' if i < 4 else 'val'}" for i in range(6)]
        (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
        code, _, err = _run(capsys, "--model", model_file, "--data", tmp_path / "m.csv", "--quiet")
        assert code == 1
        assert (
            "the test split is empty (choose another --split, or mark rows with that split)" in err
        )

    def test_pickle_model_is_refused(
        self, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bad = tmp_path / "model.pth"
        torch.save({"w": torch.zeros(1)}, bad)
        code, _, err = _run(capsys, "--model", bad, "--data", demo, "--quiet")
        assert code == 1 and "radassist-train evaluate: error:" in err and err.count("\n") == 1

    def test_bad_split_name_is_usage(
        self, demo: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as info:
            cli.main(
                ["evaluate", "--model", str(model_file), "--data", str(demo), "--split", "dev"]
            )
        assert info.value.code == 2
        assert "argument --split: invalid choice: 'dev'" in capsys.readouterr().err


def _without_split_column(manifest: Path, folder: Path) -> Path:
    """The demo manifest's rows without its split column (an external set), paths absolute."""
    import csv

    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = [c for c in rows[0] if c != "split"]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "external.csv"
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "path": str((manifest.parent / row["path"]).resolve())})
    return out


class TestExternalEvaluation:
    """A set without a split column is external validation: every row, said so."""

    def test_every_row_is_scored_and_said_so(
        self, demo: Path, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        external = _without_split_column(demo, tmp_path)
        n = len(read_dataset(external).records)
        report = tmp_path / "r.json"
        code, out, err = _run(
            capsys, "--model", model_file, "--data", external, "--json", report,
            "--device", "cpu", "--bootstrap", "0", "--quiet",
        )  # fmt: skip
        assert (code, err) == (0, "")
        assert out.splitlines()[0] == f"external evaluation: all {n} images"
        data = json.loads(report.read_text())["data"]
        assert (data["images"], data["split"], data["external"]) == (n, "all", True)
        assert all(json.loads(report.read_text())["labels"][lab]["n"] == n for lab in LABELS)

    def test_json_to_stdout_stays_json(
        self, demo: Path, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        external = _without_split_column(demo, tmp_path)
        code, out, err = _run(
            capsys, "--model", model_file, "--data", external, "--json", "-",
            "--device", "cpu", "--bootstrap", "0", "--quiet",
        )  # fmt: skip
        assert code == 0
        n = len(read_dataset(external).records)
        assert json.loads(out)["data"]["images"] == n
        assert err == f"external evaluation: all {n} images\n"

    def test_split_still_narrows(
        self, demo: Path, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        external = _without_split_column(demo, tmp_path)
        code, out, _ = _run(
            capsys, "--model", model_file, "--data", external, "--split", "test", "--json", "-",
            "--device", "cpu", "--bootstrap", "0", "--quiet",
        )  # fmt: skip
        assert code == 0
        data = json.loads(out)["data"]
        expected = split_dataset(read_dataset(external)).test
        assert (data["split"], data["images"], data["external"]) == ("test", len(expected), False)
        assert 0 < len(expected) < len(read_dataset(external).records)

    def test_a_split_column_still_gives_its_test_split(
        self, demo: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = _run(
            capsys, "--model", model_file, "--data", demo, "--json", "-",
            "--device", "cpu", "--bootstrap", "0", "--quiet",
        )  # fmt: skip
        assert code == 0
        data = json.loads(out)["data"]
        assert (data["split"], data["external"]) == ("test", False)
        assert data["images"] == len(split_dataset(read_dataset(demo)).test)

    def test_the_training_manifest_is_not_external(
        self, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The manifest the model was trained on (its hash in the model file) gives the test
        split as training made it, with a note; --split all scores every row."""
        external = _without_split_column(demo, tmp_path)
        data = read_dataset(external)
        path = make_model_file(
            tmp_path / "trained.safetensors", labels=LABELS, size=48,
            training_data={"manifest_sha256": data.sha256, "split_seed": 0},
        )  # fmt: skip
        code, out, _ = _run(
            capsys, "--model", path, "--data", external, "--device", "cpu", "--bootstrap", "0",
            "--quiet",
        )  # fmt: skip
        assert code == 0
        assert "external evaluation" not in out
        assert "the model's own training data: scoring its test split" in out
        assert f"{len(split_dataset(data).test)} images" in out
        code, out, _ = _run(
            capsys, "--model", path, "--data", external, "--split", "all", "--device", "cpu",
            "--bootstrap", "0", "--quiet",
        )  # fmt: skip
        assert code == 0 and f"on the all split: {len(data.records)} images" in out
