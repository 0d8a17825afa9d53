"""``radassist-train calibrate``: site calibration from a labelled manifest (counts equal a hand
count with the app's engine) and from saved reviews (a round trip reviews -> calibrate ->
engine uses the new thresholds), refusals, skipped reviews, the model card and the GUI's line."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from desktop_app.inference.engine import InferenceEngine
from desktop_app.model import modelfile as MF
from desktop_app.model.networks import PenultimateFeatures, build_network
from desktop_app.review.sitecal import site_calibration_text
from desktop_app.review.state import (
    ABSENT,
    PRESENT,
    UNCERTAIN,
    FindingReview,
    ModelRef,
    ReviewState,
    finding_id,
)
from desktop_app.review.store import ReviewStore
from tests.helpers.tinydata import demo_dataset
from training import cli
from training.data import read_dataset
from training.metrics import choose_threshold

LABELS = ("nodule", "effusion", "cardiomegaly")
TEMPERATURES = {"nodule": 1.5, "effusion": 1.0, "cardiomegaly": 2.0}
SIZE = 64


def _cli(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _inputs(manifest: Path, preprocess_with: Path) -> tuple[torch.Tensor, np.ndarray]:
    """The network inputs of a manifest's images (as the engine makes them) and its labels."""
    data = read_dataset(manifest)
    engine = InferenceEngine(preprocess_with, device="cpu", heatmaps="none", backend="torch")
    x = np.concatenate([engine.preprocess(r.path)[0] for r in data.records])
    return torch.from_numpy(x), data.label_matrix()


def _site_model(path: Path, train_manifest: Path) -> Path:
    """A small model that tells the demo findings apart, made in a second without training:
    a random-init Lite0 whose BatchNorm statistics are those of the demo images, and whose head
    is each label's mean feature difference on another demo set (so it is right often, not
    always, on the site's images)."""
    torch.manual_seed(0)
    net = build_network("efficientnet-lite0", len(LABELS), pretrained=False, image_size=SIZE)
    plain = MF.default_manifest(
        name="site test model", architecture="efficientnet-lite0", labels=LABELS, image_size=SIZE
    )
    MF.save_model_file(path, net, plain)
    x, y = _inputs(train_manifest, path)
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the batch below
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()
    with torch.no_grad(), PenultimateFeatures(net) as captured:
        net(x)
    assert captured.value is not None
    f = captured.value.double().numpy()
    mu, sd = f.mean(0), f.std(0) + 1e-6
    head = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        for j in range(len(LABELS)):
            z = (f - mu) / sd
            d = z[y[:, j] == 1].mean(0) - z[y[:, j] == 0].mean(0)
            s = z @ d
            a = 2.0 / s.std()
            head.weight[j] = torch.from_numpy(a * d / sd).float()
            head.bias[j] = float(-a * np.median(s) - a * (mu / sd) @ d)
    manifest = MF.default_manifest(
        name="site test model",
        architecture="efficientnet-lite0",
        labels=LABELS,
        image_size=SIZE,
        thresholds={"nodule": 0.4, "effusion": 0.5, "cardiomegaly": 0.6},
        threshold_rule="chosen on validation (test)",
        temperatures=TEMPERATURES,
    )
    MF.save_model_file(path, net, manifest)
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("site")
    train = demo_dataset(root / "train", n=40, size=SIZE, seed=1)
    site = demo_dataset(root / "site", n=48, size=SIZE, seed=2)
    return {"model": _site_model(root / "model.safetensors", train), "site": site}


def _engine_counts(model: Path, manifest: Path) -> dict[str, dict[str, int]]:
    """Hand count: each image run by the app's engine, its positive calls against the truth."""
    data = read_dataset(manifest, labels=list(LABELS))
    engine = InferenceEngine(model, device="cpu", heatmaps="none")
    counts = {label: dict.fromkeys(("tp", "fp", "tn", "fn"), 0) for label in LABELS}
    for record in data.records:
        for finding, truth in zip(engine.run(record.path).findings, record.labels, strict=True):
            key = ("t" if finding.positive == bool(truth) else "f") + (
                "p" if finding.positive else "n"
            )
            counts[finding.label][key] += 1
    return counts


@pytest.fixture(scope="module")
def calibrated(
    demo: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], str]:
    out = tmp_path_factory.mktemp("cal") / "site.safetensors"
    report = out.with_name("report.json")
    code, stdout, err = _cli(
        "calibrate", "--model", demo["model"], "--data", demo["site"], "--out", out,
        "--json", report, "--min-positives", "5", "--bootstrap", "200",
    )  # fmt: skip
    assert code == 0, err
    return out, json.loads(report.read_text()), stdout


@pytest.mark.slow  # the app's engine over 48 images, three times
class TestFromManifest:
    def test_counts_equal_a_hand_count_with_the_engine(
        self, demo: dict[str, Path], calibrated: tuple[Path, dict[str, Any], str]
    ) -> None:
        out, report, _ = calibrated
        block = report["site_calibration"]
        assert block["source"] == "manifest" and block["n_cases"] == 48
        before = _engine_counts(demo["model"], demo["site"])
        after = _engine_counts(out, demo["site"])
        for label in LABELS:
            entry = block["labels"][label]
            old = entry["at_threshold_before"]
            assert {k: old[k] for k in before[label]} == before[label], label
            assert {k: entry[k] for k in after[label]} == after[label], label
            tp, fn, tn, fp = (after[label][k] for k in ("tp", "fn", "tn", "fp"))
            assert entry["sensitivity"]["value"] == pytest.approx(tp / (tp + fn), abs=1e-4)
            assert entry["specificity"]["value"] == pytest.approx(tn / (tn + fp), abs=1e-4)
            assert entry["n"] == 48 and entry["positives"] == tp + fn

    def test_new_version_with_the_same_weights(
        self, demo: dict[str, Path], calibrated: tuple[Path, dict[str, Any], str]
    ) -> None:
        out, report, stdout = calibrated
        old, new = MF.load_model_file(demo["model"]), MF.load_model_file(out)
        assert new.manifest.tensor_sha256 == old.manifest.tensor_sha256
        assert new.manifest.version == "1-site1"
        assert new.manifest.site_calibration == json.loads(
            json.dumps(report["site_calibration"], sort_keys=True)
        )
        for label in LABELS:
            entry = report["site_calibration"]["labels"][label]
            assert new.manifest.thresholds[label] == entry["threshold_after"]
            assert new.manifest.temperatures is not None
            assert new.manifest.temperatures[label] == entry["temperature_after"]
            assert entry["threshold_before"] == old.manifest.thresholds[label]
        assert new.manifest.threshold_rule.startswith("site calibration (")
        assert f"wrote {out} and site.md (version 1-site1)" in stdout
        assert "nodule: 48 cases" in stdout and "  before " in stdout and "  after " in stdout

    def test_card_has_the_site_section(self, calibrated: tuple[Path, dict[str, Any], str]) -> None:
        out, report, _ = calibrated
        card = out.with_suffix(".md").read_text()
        assert "## At this site" in card and "Measured on 48 labelled images" in card
        nodule = report["site_calibration"]["labels"]["nodule"]
        row = next(line for line in card.splitlines() if line.startswith("| nodule | 48 ("))
        assert f"{nodule['threshold_before']:.3f} → {nodule['threshold_after']:.3f}" in row

    def test_calibrating_again_counts_up_the_version(
        self, demo: dict[str, Path], calibrated: tuple[Path, dict[str, Any], str], tmp_path: Path
    ) -> None:
        out = tmp_path / "again.safetensors"
        code, _, err = _cli(
            "calibrate", "--model", calibrated[0], "--data", demo["site"], "--out", out,
            "--min-positives", "5", "--bootstrap", "0", "--rule", "specificity:0.80",
        )  # fmt: skip
        assert code == 0, err
        m = MF.read_manifest(out)
        assert m.version == "1-site2" and m.site_calibration is not None
        assert m.site_calibration["rule"] == "specificity:0.80"
        for label in LABELS:
            spec = m.site_calibration["labels"][label]["specificity"]["value"]
            assert spec >= 0.8


# --------------------------------------------------------------------------- reviews


def _review(
    study: int,
    model: ModelRef,
    cases: list[tuple[str, int | str, float]],
) -> ReviewState:
    """One study, one series; ``cases``: (label, 1 / 0 / "uncertain" / "pending", p)."""
    key = f"1.2.826.0.1.3680043.9.{study}.1#1"
    state = ReviewState(study_uid=f"1.2.826.0.1.3680043.9.{study}", model=model, reviewer="R")
    state.findings = [
        FindingReview(finding_id(key, label), label, key, key[:-2], p, 0.5) for label, _, p in cases
    ]
    for label, truth, p in cases:
        fid = finding_id(key, label)
        if truth == 1 and p < 0.5:  # the model missed it: the reader adds it
            state.add_missed(key, label, (10, 10, 8, 8), slice_index=0)
        elif truth in (0, 1):
            state.set_truth(fid, PRESENT if truth == 1 else ABSENT)
        elif truth == "uncertain":
            state.set_truth(fid, UNCERTAIN)
    return state


def _write_reviews(
    folder: Path,
    model: ModelRef,
    *,
    n: int = 40,
    positives: dict[str, int] | None = None,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``n`` reviewed studies of ``model`` (and one uncertain, one pending verdict, and one
    review by another model); returns the expected cases per label (y, p)."""
    rng = np.random.default_rng(seed)
    positives = positives or {}
    store = ReviewStore(folder)
    expected: dict[str, tuple[list[float], list[float]]] = {lab: ([], []) for lab in LABELS}
    truths = {
        label: rng.permutation(
            [1] * positives.get(label, n // 3) + [0] * (n - positives.get(label, n // 3))
        )
        for label in LABELS
    }
    for i in range(n):
        cases: list[tuple[str, int | str, float]] = []
        for label in LABELS:
            y = int(truths[label][i])
            p = float(1.0 / (1.0 + math.exp(-(2.0 * y - 1.0 + rng.normal(0.0, 1.2)))))
            cases.append((label, y, p))
            expected[label][0].append(y)
            expected[label][1].append(p)
        store.save(_review(i, model, cases))
    store.save(_review(n, model, [("nodule", "uncertain", 0.7), ("effusion", "pending", 0.2)]))
    other = ModelRef(model.name, model.version, "0" * 64)
    store.save(_review(n + 1, other, [(label, 1, 0.9) for label in LABELS]))
    return {k: (np.asarray(v[0]), np.asarray(v[1])) for k, v in expected.items()}


def _model_ref(path: Path) -> ModelRef:
    m = MF.read_manifest(path)
    return ModelRef(m.name, m.version, m.tensor_sha256)


class TestFromReviews:
    def test_round_trip_reviews_calibrate_predict(
        self, demo: dict[str, Path], tmp_path: Path
    ) -> None:
        expected = _write_reviews(tmp_path / "reviews", _model_ref(demo["model"]))
        out, report = tmp_path / "site.safetensors", tmp_path / "r.json"
        code, stdout, err = _cli(
            "calibrate", "--model", demo["model"], "--reviews", tmp_path / "reviews",
            "--out", out, "--json", report, "--bootstrap", "100",
        )  # fmt: skip
        assert code == 0, err
        block = json.loads(report.read_text())["site_calibration"]
        assert block["source"] == "reviews" and block["n_cases"] == 40
        assert "skipped 1 review made by another model" in stdout
        assert "left out: 1 uncertain verdict, 1 label without a verdict" in stdout
        engine = InferenceEngine(out, device="cpu", heatmaps="none")
        image = read_dataset(demo["site"]).records[0].path
        findings = {f.label: f for f in engine.run(image).findings}
        for label in LABELS:
            entry = block["labels"][label]
            assert engine.thresholds[label] == entry["threshold_after"]
            assert findings[label].threshold == entry["threshold_after"]
            y, p = expected[label]
            assert (entry["n"], entry["positives"]) == (len(y), int(y.sum()))
            # hand count on the stored probabilities, re-scaled by the new temperature
            z = np.log(p) - np.log1p(-p)
            scaled = 1 / (1 + np.exp(-z * entry["temperature_before"] / entry["temperature_after"]))
            called = scaled >= entry["threshold_after"]
            assert entry["tp"] == int((called & (y == 1)).sum())
            assert entry["tn"] == int((~called & (y == 0)).sum())
            assert entry["threshold_after"] == choose_threshold(y, scaled, "youden").value
            old = entry["at_threshold_before"]
            assert old["tp"] == int(((p >= entry["threshold_before"]) & (y == 1)).sum())

    def test_gui_line_reads_the_block(self, demo: dict[str, Path], tmp_path: Path) -> None:
        _write_reviews(tmp_path / "reviews", _model_ref(demo["model"]), n=30, seed=1)
        out = tmp_path / "site.safetensors"
        code, _, err = _cli(
            "calibrate", "--model", demo["model"], "--reviews", tmp_path / "reviews",
            "--out", out, "--bootstrap", "0",
        )  # fmt: skip
        assert code == 0, err
        block = MF.read_manifest(out).site_calibration
        assert block is not None
        sens = block["labels"]["effusion"]["sensitivity"]
        spec = block["labels"]["effusion"]["specificity"]
        assert site_calibration_text(block, "effusion") == (
            f"at this site: sensitivity {sens['value']:.2f} "
            f"({sens['ci95'][0]:.2f}–{sens['ci95'][1]:.2f}), specificity {spec['value']:.2f} "
            f"({spec['ci95'][0]:.2f}–{spec['ci95'][1]:.2f}) on 30 reviewed cases"
        )

    def test_too_few_positives_refused_in_one_line(
        self, demo: dict[str, Path], tmp_path: Path
    ) -> None:
        _write_reviews(
            tmp_path / "reviews", _model_ref(demo["model"]), n=40, positives={"cardiomegaly": 3}
        )
        out = tmp_path / "site.safetensors"
        code, _, err = _cli(
            "calibrate", "--model", demo["model"], "--reviews", tmp_path / "reviews",
            "--out", out, "--bootstrap", "0",
        )  # fmt: skip
        assert code == 1
        assert err == (
            "radassist-train calibrate: label 'cardiomegaly' not calibrated: 3 positive cases, "
            "at least 10 of each needed to choose a threshold; it keeps its threshold\n"
        )
        m = MF.read_manifest(out)
        assert m.thresholds["cardiomegaly"] == 0.6 and m.temperatures is not None
        assert m.temperatures["cardiomegaly"] == TEMPERATURES["cardiomegaly"]
        assert m.site_calibration is not None
        assert set(m.site_calibration["labels"]) == {"nodule", "effusion"}
        assert m.site_calibration["refused"]["cardiomegaly"]["positives"] == 3
        assert site_calibration_text(m.site_calibration, "cardiomegaly") is None
        assert "cardiomegaly as before: chosen on validation (test)" in m.threshold_rule
        card = out.with_suffix(".md").read_text()
        assert "- Not calibrated here (too few cases; at least 10 positive and negative" in card
        assert "cardiomegaly with 3 positive and 37 negative; its threshold is the model's." in card

    def test_every_label_refused_writes_nothing(
        self, demo: dict[str, Path], tmp_path: Path
    ) -> None:
        _write_reviews(tmp_path / "reviews", _model_ref(demo["model"]), n=12)
        out = tmp_path / "site.safetensors"
        code, stdout, err = _cli(
            "calibrate", "--model", demo["model"], "--reviews", tmp_path / "reviews",
            "--out", out,
        )  # fmt: skip
        assert code == 1 and not out.exists()
        assert len(err.splitlines()) == 3 and "nothing written" in stdout

    def test_reviews_of_another_model_only(self, demo: dict[str, Path], tmp_path: Path) -> None:
        other = ModelRef("x", "1", "ab" * 32)
        _write_reviews(tmp_path / "reviews", other, n=20)
        mine = _model_ref(demo["model"])
        older = ModelRef(mine.name, "0.9", mine.sha256)  # these weights, other temperatures
        ReviewStore(tmp_path / "reviews").save(_review(99, older, [("nodule", 1, 0.9)]))
        code, stdout, err = _cli(
            "calibrate", "--model", demo["model"], "--reviews", tmp_path / "reviews",
            "--out", tmp_path / "o.safetensors",
        )  # fmt: skip
        assert code == 1 and not (tmp_path / "o.safetensors").exists()
        assert "skipped 22 reviews made by another model" in stdout and len(err.splitlines()) == 3
        assert "and 1 review made by another version of these weights (not 1: " in stdout
        assert "reviews of this model: 0 series, 0 verdicts used" in stdout


class TestUsage:
    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            (["--rule", "f1"], "unknown --rule 'f1'"),
            (["--rule", "sensitivity:1.5"], "the sensitivity target must be a number between"),
            (["--data", "x.csv"], "not allowed with argument --reviews"),
            (["--min-positives", "0"], "0 should be at least 1"),
        ],
    )
    def test_usage_errors_exit_2(
        self,
        demo: dict[str, Path],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        extra: list[str],
        message: str,
    ) -> None:
        args = ["calibrate", "--model", str(demo["model"]), "--reviews", str(tmp_path)]
        with pytest.raises(SystemExit) as info:
            cli.main([*args, "--out", str(tmp_path / "o.safetensors"), *extra])
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err and err.count("\n") == 1

    def test_out_must_be_a_new_file(self, demo: dict[str, Path], tmp_path: Path) -> None:
        code, _, err = _cli(
            "calibrate", "--model", demo["model"], "--reviews", tmp_path, "--out", demo["model"]
        )
        assert code == 2 and "is the input model file" in err and err.count("\n") == 1

    def test_not_a_review_folder(self, demo: dict[str, Path], tmp_path: Path) -> None:
        code, _, err = _cli(
            "calibrate", "--model", demo["model"], "--reviews", tmp_path / "none",
            "--out", tmp_path / "o.safetensors",
        )  # fmt: skip
        assert code == 1 and "is not a folder" in err and err.count("\n") == 1


class TestCasesFromReviews:
    def test_latest_review_of_a_study_counts_once(self, tmp_path: Path) -> None:
        from training.sitecases import cases_from_reviews, describe_cases

        mine, other = ModelRef("m", "1", "a" * 64), ModelRef("x", "1", "b" * 64)
        store = ReviewStore(tmp_path)
        store.save(_review(1, mine, [("nodule", 0, 0.2)]))
        store.save(_review(1, other, [("nodule", 1, 0.9)]))  # keeps mine aside
        store.save(_review(1, mine, [("nodule", 1, 0.7), ("effusion", "uncertain", 0.5)]))
        assert len(list(tmp_path.glob("*.json"))) == 3
        cases = cases_from_reviews(tmp_path, labels=LABELS, tensor_sha256="a" * 64, version="1")
        assert {k: (list(y), list(p)) for k, (y, p) in cases.arrays().items()} == {
            "nodule": ([1.0], [0.7])
        }
        assert cases.n_cases == 1
        assert cases.counts["other_model"] == 1 and cases.counts["older_duplicates"] == 1
        assert describe_cases(cases)[1] == (
            "left out: 1 uncertain verdict, 1 older review of a study"
        )
