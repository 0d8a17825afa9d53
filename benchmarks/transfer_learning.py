"""The transfer-learning experiment: ImageNet-pretrained against scratch at N training images.

One demo dataset (``make-demo-data``, ``--n-images`` phantoms, ``--data-seed``) gives a fixed
validation split and a fixed test split. Its train split is cut down by patient to N images
for each N of ``--train-sizes`` (100, 200, 500); the subsets are nested (``subset_rows``:
patients of one seeded patient order), so a larger N only adds patients. For each N, ``fit``
trains EfficientNet-Lite0 twice with the defaults (``training/defaults.yaml``: 224 px, batch 8,
12 epochs, AdamW + cosine, early stopping on the validation AUROC, seed 0): once from the
ImageNet weights and once from a random init (``--no-pretrained``, with the backbone at the
head's learning rate: ``run_config``). Every run sees the same validation and test images.

Reported per run: test AUROC per label with its stratified bootstrap 95 % CI (``fit``'s own
metrics), the mean of the three with a bootstrap 95 % CI (test images resampled, the mean of
the per-label AUROCs recomputed; 2000 resamples), and the paired difference pretrained -
scratch at each N (the same resamples for both). Written: ``--docs``/transfer_learning.json and
transfer_learning.png (mean test AUROC against N with the CIs); the markdown table goes to
stdout. The runs' folders (models, curves, predictions) stay in ``--work``; a finished run
found there is reused, an interrupted one resumed. ``--arms pretrained`` / ``--arms scratch``
train one arm only (one process per arm on a busy machine, with ``--threads 1``); the report
is written by the call that finds every run finished. docs/TRANSFER_LEARNING.md has the
results (5 epochs: the committed run was cut from 12 for time).

    python benchmarks/transfer_learning.py [--work build/transfer_learning] [--docs docs]
        [--n-images 1200] [--data-seed 1] [--train-sizes 100,200,500] [--epochs 12]
        [--arms pretrained,scratch] [--threads N]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop_app import __version__  # noqa: E402
from desktop_app.infra.atomicio import atomic_write_bytes, atomic_write_json  # noqa: E402
from training.config import (  # noqa: E402
    TrainConfig,
    apply_overrides,
    load_config_file,
    parse_set_option,
)
from training.demo_data import (  # noqa: E402
    DemoDataOptions,
    default_workers,
    make_demo_dataset,
    read_manifest_rows,
)
from training.metrics import auroc  # noqa: E402
from training.pipeline import run_fit  # noqa: E402

log = logging.getLogger("transfer_learning")

BOOTSTRAP = 2000
ARMS = ("pretrained", "scratch")


# --------------------------------------------------------------------------- data


def subset_rows(
    rows: list[dict[str, str]], sizes: Sequence[int], seed: int
) -> dict[int, list[int]]:
    """Nested train subsets by patient: for each N, the row indices of N train images.

    The train split's patients are put in one seeded order. The smallest N takes patients
    from the front of that order while their images fit (a patient whose images would
    overshoot N is passed over and stays available); each larger N keeps every patient of
    the one below and goes on the same way. So a patient's images are all in or all out,
    every subset holds exactly N images, and a larger N only adds patients.
    """
    patients: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row["split"] == "train":
            patients.setdefault(row["patient_id"], []).append(i)
    order = sorted(patients)
    rng = np.random.default_rng([seed, 0x7A1])
    order = [order[k] for k in rng.permutation(len(order))]
    out: dict[int, list[int]] = {}
    chosen: list[int] = []
    taken: set[str] = set()
    for n in sorted(set(sizes)):
        for p in order:
            if len(chosen) == n:
                break
            if p not in taken and len(chosen) + len(patients[p]) <= n:
                chosen += patients[p]
                taken.add(p)
        if len(chosen) != n:
            raise SystemExit(f"the train split holds too few images for N={n}: use more --n-images")
        out[n] = sorted(chosen)
    return out


def write_subset_manifest(
    rows: list[dict[str, str]], train: list[int], root: Path, target: Path
) -> None:
    """Test rows, then val rows, then the train subset (so every subset numbers its test and
    val rows alike), with absolute image paths."""
    order = [i for i, r in enumerate(rows) if r["split"] == "test"]
    order += [i for i, r in enumerate(rows) if r["split"] == "val"]
    order += train
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for i in order:
        row = dict(rows[i])
        row["path"] = str((root / row["path"]).resolve())
        writer.writerow(row)
    atomic_write_bytes(target, buf.getvalue().encode("utf-8"))


# --------------------------------------------------------------------------- runs


SCRATCH_BACKBONE_LR_FACTOR = 1.0


def run_config(
    manifest: Path, pretrained: bool, epochs: int, cache_dir: Path, threads: int | None = None
) -> TrainConfig:
    """fit's defaults with this run's data, init and epochs, at the static recipe (fit's
    dataset-driven choices off, so the experiment stays the documented one).

    The scratch arm trains its backbone at the head's learning rate
    (``optim.backbone_lr_factor`` 1.0): the default 0.3 is there to keep pretrained features
    from being disturbed, and a random backbone has nothing to protect, so the lower rate
    would handicap the baseline.
    """
    texts = [
        f"data.manifest={manifest}",
        "data.cache=disk",
        f"data.cache_dir={cache_dir}",
        f"model.pretrained={'true' if pretrained else 'false'}",
        f"optim.epochs={epochs}",
        "output.tensorboard=false",
        "recipe.auto=false",  # the documented static recipe (224 px, batch 8, lr 1e-3)
    ]
    if threads is not None:
        texts.append(f"threads={threads}")  # not part of the training hash: results don't change
    if not pretrained:
        texts.append(f"optim.backbone_lr_factor={SCRATCH_BACKBONE_LR_FACTOR}")
    return apply_overrides(TrainConfig(), [parse_set_option(t) for t in texts])


def finished(out: Path) -> bool:
    """Whether ``out`` holds a finished fit run (its metrics.json has the final metrics)."""
    metrics_file = out / "metrics.json"
    return metrics_file.is_file() and "final" in json.loads(
        metrics_file.read_text(encoding="utf-8")
    )


def train_once(config: TrainConfig, out: Path, tag: str) -> dict[str, Any]:
    """Run fit (or reuse a finished run in ``out``); its metrics.json."""
    if finished(out):
        print(f"{tag}: reusing the finished run in {out}", flush=True)
        return dict(json.loads((out / "metrics.json").read_text(encoding="utf-8")))
    resume = (out / "checkpoints" / "last.pt").is_file()

    def on_epoch(_: str, entry: dict[str, Any], epochs: int) -> None:
        print(
            f"{tag}: epoch {entry['epoch']}/{epochs} val AUROC mean "
            f"{entry.get('val_auroc_mean') or float('nan'):.3f} ({entry['seconds']:.0f} s)",
            flush=True,
        )

    outcome = run_fit(config, out, resume=resume, on_epoch=on_epoch)
    return dict(outcome.metrics)


def test_predictions(out: Path, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(y, p, rows) of the test split from a run's predictions.csv."""
    y, p, ids = [], [], []
    with open(out / "predictions.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["split"] != "test":
                continue
            ids.append(row["row"])
            y.append([int(row[lab]) for lab in labels])
            p.append([float(row[f"p_{lab}"]) for lab in labels])
    return np.asarray(y), np.asarray(p), ids


def mean_auroc(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean([auroc(y[:, j], p[:, j]) for j in range(y.shape[1])]))


def bootstrap_means(
    y: np.ndarray, probs: dict[str, np.ndarray], n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Mean AUROC over labels for each resample of the test images, the same resamples for
    every entry of ``probs`` (so differences are paired)."""
    rng = np.random.default_rng([seed, 0xB007])
    out: dict[str, list[float]] = {k: [] for k in probs}
    n = len(y)
    while len(next(iter(out.values()))) < n_boot:
        idx = rng.integers(0, n, size=n)
        yb = y[idx]
        if np.any(yb.sum(axis=0) == 0) or np.any(yb.sum(axis=0) == n):
            continue  # a label with one class: AUROC undefined, draw again
        for key, p in probs.items():
            out[key].append(mean_auroc(yb, p[idx]))
    return {k: np.asarray(v) for k, v in out.items()}


def ci(values: np.ndarray) -> list[float]:
    lo, hi = np.quantile(values, [0.025, 0.975])
    return [float(lo), float(hi)]


# --------------------------------------------------------------------------- report


def plot(results: dict[str, Any], target: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    fig = Figure(figsize=(6.4, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    sizes = results["train_sizes"]
    for k, arm in enumerate(ARMS):
        runs = [results["runs"][f"{arm}_{n}"] for n in sizes]
        mean = np.array([r["test_mean_auroc"]["value"] for r in runs])
        lo = np.array([r["test_mean_auroc"]["ci95"][0] for r in runs])
        hi = np.array([r["test_mean_auroc"]["ci95"][1] for r in runs])
        x = np.array(sizes, dtype=float) * (0.97 if k == 0 else 1.03)  # keep the bars apart
        ax.errorbar(
            x,
            mean,
            yerr=[np.maximum(mean - lo, 0.0), np.maximum(hi - mean, 0.0)],
            fmt="o-" if arm == "pretrained" else "s--",
            capsize=4,
            label="ImageNet-pretrained" if arm == "pretrained" else "random init (scratch)",
        )
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(n) for n in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("training images (N)")
    ax.set_ylabel("test AUROC, mean of 3 labels (95 % CI)")
    ax.set_title(
        f"EfficientNet-Lite0, {results['recipe']['image_size']} px, "
        f"{results['recipe']['epochs']} epochs, synthetic phantoms "
        f"({results['test_images']} test images)",
        fontsize=10,
    )
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0.4, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(target, buf.getvalue())


def table(results: dict[str, Any]) -> str:
    labels = results["labels"]
    head = "| N | init | " + " | ".join(labels) + " | mean (95 % CI) | best epoch / run | s |"
    lines = [head, "|" + " --- |" * (len(labels) + 5)]
    for n in results["train_sizes"]:
        for arm in ARMS:
            r = results["runs"][f"{arm}_{n}"]
            cells = []
            for lab in labels:
                a = r["test_auroc"][lab]
                cells.append(f"{a['value']:.3f} ({a['ci95'][0]:.2f}-{a['ci95'][1]:.2f})")
            m = r["test_mean_auroc"]
            lines.append(
                f"| {n} | {arm} | "
                + " | ".join(cells)
                + f" | **{m['value']:.3f}** ({m['ci95'][0]:.3f}-{m['ci95'][1]:.3f}) "
                f"| {r['best_epoch']} / {r['epochs_run']} | {r['seconds']:.0f} |"
            )
    lines += [
        "",
        "| N | pretrained - scratch, mean test AUROC (95 % CI, paired) |",
        "| --- | --- |",
    ]
    for n in results["train_sizes"]:
        d = results["differences"][str(n)]
        lines.append(f"| {n} | {d['value']:+.3f} ({d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f}) |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "transfer_learning")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--n-images", type=int, default=1200, help="demo dataset size")
    parser.add_argument("--data-seed", type=int, default=1, help="make-demo-data --seed")
    parser.add_argument("--train-sizes", default="100,200,500")
    parser.add_argument("--epochs", type=int, default=TrainConfig().optim.epochs)
    parser.add_argument("--subset-seed", type=int, default=0, help="seed of the patient order")
    parser.add_argument(
        "--arms",
        default=",".join(ARMS),
        help="train only these arms now (e.g. one per process on a busy machine); the report "
        "is written once every arm's runs are finished in --work",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sizes = sorted(int(s) for s in args.train_sizes.split(","))
    arms = [a for a in args.arms.split(",") if a]
    if not arms or any(a not in ARMS for a in arms):
        parser.error(f"--arms {args.arms!r}: choose from {','.join(ARMS)}")
    missing: list[str] = []
    start = time.perf_counter()
    load_before = os.getloadavg()[0]

    data_dir = args.work / "demo"
    if not (data_dir / "manifest.csv").is_file():
        print(f"writing {args.n_images} demo images (seed {args.data_seed}) to {data_dir}")
        make_demo_dataset(
            data_dir,
            DemoDataOptions(n=args.n_images, seed=args.data_seed, workers=default_workers()),
            overwrite=data_dir.exists(),
        )
    rows = read_manifest_rows(data_dir / "manifest.csv")
    labels = [c for c in ("nodule", "effusion", "cardiomegaly") if c in rows[0]]
    subsets = subset_rows(rows, sizes, args.subset_seed)
    cache_dir = args.work / "cache"

    runs: dict[str, Any] = {}
    preds: dict[str, np.ndarray] = {}
    y_ref: np.ndarray | None = None
    ids_ref: list[str] | None = None
    for n in sizes:
        manifest = args.work / f"manifest_train{n}.csv"
        write_subset_manifest(rows, subsets[n], data_dir, manifest)
        for arm in ARMS:
            key = f"{arm}_{n}"
            out = args.work / key
            if arm not in arms and not finished(out):
                missing.append(key)
                continue
            config = run_config(manifest, arm == "pretrained", args.epochs, cache_dir, args.threads)
            t = time.perf_counter()
            metrics = train_once(config, out, key)
            test = metrics["final"]["test"]
            y, p, ids = test_predictions(out, labels)
            if y_ref is None:
                y_ref, ids_ref = y, ids
            elif ids != ids_ref or not np.array_equal(y, y_ref):
                raise SystemExit(f"{key}: the test split differs from the first run's")
            preds[key] = p
            runs[key] = {
                "train_images": n,
                "pretrained": arm == "pretrained",
                "test_auroc": {lab: test[lab]["auroc"] for lab in labels},
                "best_epoch": metrics["training"]["best_epoch"],
                "epochs_run": metrics["training"]["epochs_run"],
                "early_stopped": metrics["training"]["early_stopped"],
                "seconds": float(metrics["seconds"]),
                "planned_epochs": load_config_file(out / "config.yaml").optim.epochs,
                "wall_seconds_this_call": round(time.perf_counter() - t, 1),
                "splits": metrics["data"]["splits"],
            }
            print(f"{key}: test AUROC mean {test['mean_auroc']:.3f}", flush=True)
    if missing:
        print(f"not finished yet: {', '.join(missing)}; run again with those arms", flush=True)
        return 0
    assert y_ref is not None
    boot = bootstrap_means(y_ref, preds, BOOTSTRAP, seed=0)
    for key, run in runs.items():
        # point value and CI from the same numbers: predictions.csv (6 decimals). fit's own
        # per-label values (full precision) can differ where a model's outputs are nearly
        # constant and the rounding makes ties; both are kept.
        value = mean_auroc(y_ref, preds[key])
        run["test_mean_auroc"] = {
            "value": value,
            "ci95": ci(boot[key]),
            "fit_value": float(np.mean([run["test_auroc"][lab]["value"] for lab in labels])),
        }
    differences = {}
    for n in sizes:
        a, b = f"pretrained_{n}", f"scratch_{n}"
        diff = boot[a] - boot[b]
        differences[str(n)] = {
            "value": runs[a]["test_mean_auroc"]["value"] - runs[b]["test_mean_auroc"]["value"],
            "ci95": ci(diff),
            "share_of_resamples_above_0": float(np.mean(diff > 0)),
        }
    defaults = TrainConfig().resolved()
    epochs_of_runs = {r["planned_epochs"] for r in runs.values()}
    if len(epochs_of_runs) != 1:
        raise SystemExit(f"the runs in {args.work} were planned with different epochs")
    planned_epochs = epochs_of_runs.pop()  # from the runs (a reused run keeps its own)
    results = {
        "what": "test AUROC of EfficientNet-Lite0, ImageNet-pretrained vs random init, by N",
        "labels": labels,
        "train_sizes": sizes,
        "test_images": len(y_ref),
        "test_positives": {lab: int(y_ref[:, j].sum()) for j, lab in enumerate(labels)},
        "val_images": sum(1 for r in rows if r["split"] == "val"),
        "dataset": {
            "make_demo_data": {"n": args.n_images, "seed": args.data_seed, "size": 512},
            "subset_seed": args.subset_seed,
        },
        "recipe": {
            "arch": defaults.model.arch,
            "image_size": defaults.preprocess_spec().image_size,
            "batch_size": defaults.optim.batch(),
            "epochs": planned_epochs,
            "lr": defaults.optim.peak_lr(),
            "backbone_lr_factor": {
                "pretrained": defaults.optim.backbone_lr_factor,
                "scratch": SCRATCH_BACKBONE_LR_FACTOR,
            },
            "early_stopping_patience": defaults.early_stopping.patience,
            "seed": defaults.seed,
        },
        "bootstrap": {"resamples": BOOTSTRAP, "mean_auroc": "test images resampled, paired"},
        "runs": runs,
        "differences": differences,
        "fit_seconds_total": round(sum(r["seconds"] for r in runs.values()), 1),
        "wall_seconds_this_call": round(time.perf_counter() - start, 1),
        "load_average_this_call": {"before": load_before, "after": os.getloadavg()[0]},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, CPU training",
        "radassist_version": __version__,
    }
    args.docs.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.docs / "transfer_learning.json", results)
    plot(results, args.docs / "transfer_learning.png")
    print(table(results))
    print(
        f"fit time {results['fit_seconds_total']:.0f} s over {len(runs)} runs, this call "
        f"{results['wall_seconds_this_call']:.0f} s; wrote {args.docs}/transfer_learning.json/.png"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
