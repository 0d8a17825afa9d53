"""The training recipe: ``fit``'s defaults against a plain fine-tune loop, on new findings.

Five synthetic tasks of different kinds (``TASKS``), each a make-demo-data set of chest
phantoms with one label, written by this project's own generator (seeded):

- ``thin_line``: a thin (2-4 mm by 35-70 mm), faint linear opacity: the kind of finding that
  a 224 px input thins to a pixel;
- ``faint_nodule``: an 8-14 mm nodule at low contrast;
- ``diffuse``: a large, faint haze over one or both lungs;
- ``rare``: a nodule (8-25 mm) at 5 % prevalence (class imbalance), 600 images;
- ``mixed_inputs``: the thin line on inputs that are 40 % MONOCHROME1, 40 % RLE and 40 %
  non-square (the held-out task of issue 15 is of this kind).

Each task has 400 images of 512 px (``rare``: 600) from 300-600 patients, split 70/15/15 by
patient.

For each task, in one run and on the same split (``fit``'s per-patient split, seed 0):

- **fit**: ``radassist-train fit`` with its defaults and ``--epochs E`` (``run_fit``: the
  dataset fingerprint, the choices it makes, early stopping, temperature scaling), scored on
  the test split with the model it selected;
- **plain**: the tutorial loop from issue 15: the same pretrained EfficientNet-Lite0 with a new
  head, AdamW at 1e-3 over every parameter, batch 16, 256 px (fit's preprocessing: percentile
  window, aspect-preserving resize), random horizontal and vertical flips, E epochs, no schedule,
  no early stopping; the last epoch's model is scored on the same test split;
- **tune** (``--tune-minutes M`` > 0, on the tasks in ``--tune-tasks``): ``radassist-train
  tune`` with that budget, then the test AUROC of the model it ends with.

Test AUROC with a stratified bootstrap 95 % CI (``training.metrics``), the paired difference
fit - plain, and wall times. The table goes to stdout and, with ``--json``, to a file; the
committed results are in benchmarks/README.md. No assertions.

    python benchmarks/bench_recipe.py [--work build/bench_recipe] [--epochs 8]
        [--tasks thin_line,faint_nodule,diffuse,rare,mixed_inputs] [--contenders fit,plain]
        [--tune-minutes 0] [--tune-tasks thin_line] [--fit-set section.key=value ...]
        [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import platform
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop_app.infra.atomicio import atomic_write_json  # noqa: E402
from desktop_app.infra.cpus import available_cpus  # noqa: E402
from training.config import TrainConfig, apply_overrides, parse_set_option  # noqa: E402
from training.data import read_dataset, split_dataset  # noqa: E402
from training.dataset import UnitImageDataset, load_units  # noqa: E402
from training.demo_data import DemoDataOptions, default_workers, make_demo_dataset  # noqa: E402
from training.metrics import auroc, bootstrap_auroc  # noqa: E402
from training.optim import build_model  # noqa: E402
from training.pipeline import run_fit, with_data  # noqa: E402

log = logging.getLogger("bench_recipe")

PLAIN_LR = 1e-3
PLAIN_BATCH = 16
PLAIN_SIZE = 256


@dataclass(frozen=True)
class Task:
    name: str
    what: str
    options: DemoDataOptions


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "thin_line",
            "thin faint line",
            DemoDataOptions(n=400, seed=11, findings=("line",), prevalence=0.5),
        ),
        Task(
            "faint_nodule",
            "8-14 mm faint nodule",
            DemoDataOptions(n=400, seed=12, findings=("faint_nodule",), prevalence=0.5),
        ),
        Task(
            "diffuse",
            "large faint haze",
            DemoDataOptions(n=400, seed=13, findings=("diffuse",), prevalence=0.5),
        ),
        Task(
            "rare",
            "nodule at 5 % prevalence",
            DemoDataOptions(n=600, seed=14, findings=("nodule",), prevalence=0.05),
        ),
        Task(
            "mixed_inputs",
            "thin line, 40 % MONOCHROME1/RLE/non-square",
            DemoDataOptions(
                n=400,
                seed=15,
                findings=("line",),
                prevalence=0.5,
                monochrome1_fraction=0.4,
                rle_fraction=0.4,
                nonsquare_fraction=0.4,
            ),
        ),
    )
}


def task_data(task: Task, work: Path) -> Path:
    """The task's dataset under ``work``/data (written once, reused after)."""
    folder = work / "data" / task.name
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        options = replace(task.options, workers=default_workers())
        make_demo_dataset(folder, options, overwrite=True)
    return manifest


def score_auroc(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    lo, hi = bootstrap_auroc(y, p, n_boot=1000, level=0.95, seed=0)
    return {"auroc": auroc(y, p), "ci": [lo, hi], "n": len(y), "positives": int(y.sum())}


# --------------------------------------------------------------------------- contenders


def run_fit_contender(manifest: Path, out: Path, epochs: int, extra: list[str]) -> dict[str, Any]:
    texts = [f"optim.epochs={epochs}", "output.tensorboard=false", "evaluation.bootstrap=0"]
    config = apply_overrides(TrainConfig(), [parse_set_option(t) for t in [*texts, *extra]])
    config = with_data(config, manifest)
    start = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    outcome = run_fit(config, out)
    seconds = time.perf_counter() - start
    result = score_auroc(*test_predictions(out))
    result.update(seconds=seconds, chosen=_chosen(out), model=str(outcome.model_path))
    return result


def test_predictions(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the test split from a run's predictions.csv (one label)."""
    with open(out / "predictions.csv", encoding="utf-8", newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if row["split"] == "test"]
    label = next(k for k in rows[0] if k not in ("row", "split") and not k.startswith("p_"))
    y = np.asarray([float(row[label]) for row in rows])
    p = np.asarray([float(row[f"p_{label}"]) for row in rows])
    return y, p


def _chosen(out: Path) -> dict[str, Any]:
    recipe = out / "recipe.json"
    if recipe.is_file():
        choices = json.loads(recipe.read_text(encoding="utf-8")).get("choices", {})
        short = {
            "preprocessing.image_size": "px",
            "optim.batch_size": "batch",
            "optim.lr": "lr",
            "optim.class_weights": "weights",
            "augment.strength": "aug",
        }
        return {short.get(k, k): v["value"] for k, v in choices.items()}
    return {}


def run_plain(manifest: Path, epochs: int, seed: int = 0) -> dict[str, Any]:
    """The plain fine-tune loop (module docstring) on fit's train split; scored on test."""
    data = read_dataset(manifest)
    splits = split_dataset(data, seed=0)
    config = apply_overrides(
        TrainConfig(),
        [parse_set_option(f"preprocessing.image_size={PLAIN_SIZE}")],
    ).resolved()
    spec = config.preprocess_spec()
    start = time.perf_counter()
    units = load_units(data.records, spec, workers=max(1, min(4, available_cpus())))
    torch.manual_seed(seed)
    model = build_model(config, len(data.labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=PLAIN_LR)
    criterion = torch.nn.BCEWithLogitsLoss()
    train = UnitImageDataset(units, data.label_matrix(), splits.train, spec)
    loader = torch.utils.data.DataLoader(
        train, batch_size=PLAIN_BATCH, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    flips = torch.Generator().manual_seed(seed + 1)
    model = model.to(memory_format=torch.channels_last)
    for _ in range(epochs):
        model.train()
        for x, y, _k in loader:
            h = torch.rand(len(x), generator=flips) < 0.5
            v = torch.rand(len(x), generator=flips) < 0.5
            x = x.clone()
            x[h] = x[h].flip(-1)
            x[v] = x[v].flip(-2)
            loss = criterion(model(x.contiguous(memory_format=torch.channels_last)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    test = UnitImageDataset(units, data.label_matrix(), splits.test, spec)
    probs, labels = [], []
    with torch.inference_mode():
        for x, y, _k in torch.utils.data.DataLoader(test, batch_size=32):
            probs.append(torch.sigmoid(model(x.contiguous(memory_format=torch.channels_last))))
            labels.append(y)
    p = torch.cat(probs)[:, 0].double().numpy()
    yy = torch.cat(labels)[:, 0].double().numpy()
    result = score_auroc(yy, p)
    result["seconds"] = time.perf_counter() - start
    return result


def run_tune(manifest: Path, out: Path, minutes: float, epochs: int) -> dict[str, Any]:
    from training.cli import main as train_main

    start = time.perf_counter()
    argv = ["tune", "--data", str(manifest), "--out", str(out), "--budget", str(minutes)]
    argv += ["--epochs", str(epochs), "--seed", "0", "--quiet"]
    shutil.rmtree(out, ignore_errors=True)
    code = train_main(argv)
    seconds = time.perf_counter() - start
    best = out / "best"
    if code != 0 or not (best / "predictions.csv").is_file():
        return {"auroc": math.nan, "ci": [math.nan, math.nan], "seconds": seconds, "exit": code}
    result = score_auroc(*test_predictions(best))
    result["seconds"] = seconds
    return result


# --------------------------------------------------------------------------- report


def fmt(r: dict[str, Any] | None) -> str:
    if not r or r.get("auroc") is None or not math.isfinite(r["auroc"]):
        return "–"
    lo, hi = r["ci"]
    ci = f" ({lo:.3f}-{hi:.3f})" if math.isfinite(lo) else ""
    return f"{r['auroc']:.3f}{ci}"


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| task | what | plain loop | fit defaults | fit - plain | tune | fit chose | s (plain/fit) |",
        "| --- | --- | --- | --- | ---: | --- | --- | --- |",
    ]
    diffs = []
    for name, r in results.items():
        plain, fit, tune = r.get("plain"), r.get("fit"), r.get("tune")
        diff = "–"
        if plain and fit and math.isfinite(plain["auroc"]) and math.isfinite(fit["auroc"]):
            d = fit["auroc"] - plain["auroc"]
            diffs.append(d)
            diff = f"{d:+.3f}"
        chosen = ", ".join(f"{k} {v}" for k, v in (fit or {}).get("chosen", {}).items())
        secs = "/".join(f"{(x or {}).get('seconds', math.nan):.0f}" for x in (plain, fit))
        lines.append(
            f"| {name} | {TASKS[name].what} | {fmt(plain)} | {fmt(fit)} | {diff} | {fmt(tune)} "
            f"| {chosen} | {secs} |"
        )
    if diffs:
        lines.append(f"\nmean fit - plain: {np.mean(diffs):+.3f} over {len(diffs)} task(s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench_recipe")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--contenders", default="fit,plain")
    parser.add_argument("--tune-minutes", type=float, default=0.0)
    parser.add_argument("--tune-tasks", default="thin_line")
    parser.add_argument("--fit-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tag", default="fit", help="run folder name for the fit contender")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads or available_cpus())
    contenders = set(args.contenders.split(","))
    results: dict[str, dict[str, Any]] = {}
    for name in args.tasks.split(","):
        task = TASKS[name]
        manifest = task_data(task, args.work)
        r: dict[str, Any] = results.setdefault(name, {})
        if "plain" in contenders:
            r["plain"] = run_plain(manifest, args.epochs)
            print(f"{name}: plain {fmt(r['plain'])} in {r['plain']['seconds']:.0f} s", flush=True)
        if "fit" in contenders:
            out = args.work / "runs" / name / args.tag
            r["fit"] = run_fit_contender(manifest, out, args.epochs, args.fit_set)
            print(f"{name}: fit {fmt(r['fit'])} in {r['fit']['seconds']:.0f} s", flush=True)
        if args.tune_minutes > 0 and name in args.tune_tasks.split(","):
            out = args.work / "runs" / name / "tune"
            r["tune"] = run_tune(manifest, out, args.tune_minutes, args.epochs)
            print(f"{name}: tune {fmt(r['tune'])} in {r['tune']['seconds']:.0f} s", flush=True)
    print(table(results))
    if args.json:
        payload = {
            "epochs": args.epochs,
            "fit_set": args.fit_set,
            "threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "results": results,
        }
        atomic_write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
