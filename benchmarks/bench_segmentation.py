"""Segmentation benchmark: `radassist predict` with the CT nodule model, and transfer learning.

(a) ``predict``: ``radassist predict STACK --model M --out DIR`` in a fresh process on

    - the bundled CT sample (``resources/sample/ct_phantom``: 40 slices of 256x256), and
    - a synthetic 300-slice 512x512 chest CT with three nodules (``write_ct_series``, seed 0),

    one untimed warm-up run, then ``--repeat`` timed runs (a block per stack). Reported: the
    process's wall time (median and range), the network's own seconds from findings.json
    (``timings_s.network``: the ONNX Runtime forward passes over every slice), and their ratio,
    which is what everything else costs (start-up, decoding, preprocessing, the mask on the
    original grid, the lesion table, the SEG). Also the lesions found against the phantom's
    truth (a true lesion is found when a predicted lesion's slices cover its centre slice and
    its centroid lies within the true radius).

(b) ``transfer``: ``make-demo-data --ct --max-empty-slices 6`` (seed 1: other phantoms than
    the bundled model's), then ``fit --task segmentation`` twice with
    training/configs/ct_nodule.yaml at equal epochs: from the ImageNet Lite0 encoder and from
    scratch (``--no-pretrained``). Reported: test Dice and lesion-wise sensitivity with their
    bootstrap 95 % CIs, from each run's metrics.json.

The GUI stall while the CT model runs is ``bench_gui_stall.py --model
resources/models/radassist-ct-nodule-lite0.safetensors``. Asserts nothing.

    python benchmarks/bench_segmentation.py [--only predict,transfer] [--repeat 3]
        [--work build/bench_segmentation] [--series 24] [--epochs 4] [--image-size 256]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "resources" / "models" / "radassist-ct-nodule-lite0.safetensors"
SAMPLE = ROOT / "resources" / "sample" / "ct_phantom"
CONFIG = ROOT / "training" / "configs" / "ct_nodule.yaml"
BIN = Path(sys.executable).parent


def load_average() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return wall


def findings_of(out: Path) -> dict[str, Any]:
    files = sorted(out.rglob("findings.json"))
    if not files:
        raise SystemExit(f"no findings.json under {out}")
    data: dict[str, Any] = json.loads(files[0].read_text())
    return data


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def truth_found(lesions: list[dict[str, Any]], truth: Any) -> tuple[int, int]:
    """(true lesions found, predicted lesions matching none) for a CtSeries' lesion truth: a
    true lesion is found by a predicted one that spans its largest slice and whose centroid
    (mm) lies within the true radius of its centre."""
    found, used = 0, set()
    for t in truth:
        for i, p in enumerate(lesions):
            centroid = p.get("centroid_mm")
            near = centroid is not None and math.dist(centroid, t.lesion.center_mm) <= (
                t.lesion.radius_mm
            )
            if i not in used and p["first_slice"] <= t.largest_slice <= p["last_slice"] and near:
                found += 1
                used.add(i)
                break
    return found, len(lesions) - len(used)


def bench_predict(args: argparse.Namespace, work: Path, env: dict[str, str]) -> None:
    from desktop_app.phantoms.studies import write_ct_series

    big = work / "ct300"
    shutil.rmtree(big, ignore_errors=True)  # the truth comes from writing it (~10 s)
    truth = write_ct_series(big, 0, slices=300, rows=512, lesions=3).lesions
    print(f"model: {MODEL.name} ({MODEL.stat().st_size / 2**20:.1f} MiB)")
    print("| stack | wall (median, range) | network | wall / network | lesions | load |")
    print("|---|---|---|---|---|---|")
    for name, stack in (("sample 40x256²", SAMPLE), ("300x512²", big)):
        out = work / f"out-{stack.name}"
        cmd = [str(BIN / "radassist"), "predict", str(stack), "--model", str(MODEL)]
        load = load_average()
        shutil.rmtree(out, ignore_errors=True)
        run([*cmd, "--out", str(out)], env)  # warm-up: fills the graph cache
        walls, nets = [], []
        for _ in range(args.repeat):
            shutil.rmtree(out, ignore_errors=True)
            walls.append(run([*cmd, "--out", str(out)], env))
            nets.append(float(findings_of(out)["timings_s"]["network"]))
        data = findings_of(out)
        lesions = list(data.get("lesions", {}).get("lesions", []))
        detail = f"{len(lesions)} found"
        if stack == big and truth is not None:
            hit, fp = truth_found(lesions, truth)
            detail = f"{hit}/{len(truth)} true found, {fp} false"
        ratio = statistics.median(w / n for w, n in zip(walls, nets, strict=True) if n > 0)
        print(
            f"| {name} | {spread(walls)} | {statistics.median(nets):.2f} s | {ratio:.2f}x | "
            f"{detail} | {load} → {load_average()} |"
        )


def test_metric(metrics: dict[str, Any], name: str) -> str:
    """``value [low, high]`` of the test split's ``name`` for the run's one label."""
    test = metrics["final"]["test"]
    label = next(k for k, v in test.items() if isinstance(v, dict))
    entry = test[label][name]
    low, high = entry.get("ci95", [None, None])
    ci = "" if low is None else f" [{low:.3f}, {high:.3f}]"
    return f"{entry['value']:.3f}{ci}"


def bench_transfer(args: argparse.Namespace, work: Path, env: dict[str, str]) -> None:
    train = str(BIN / "radassist-train")
    data = work / "ct-demo"
    if not (data / "manifest.csv").is_file():
        shutil.rmtree(data, ignore_errors=True)
        cmd = [train, "make-demo-data", str(data), "--ct", "--n", str(args.series), "--seed", "1"]
        cmd += ["--max-empty-slices", "6"]  # as make model-ct: every nodule slice, 6 others
        print(f"make-demo-data --ct: {run([*cmd, '--quiet'], env):.0f} s")
    print("| encoder | test Dice [95 % CI] | lesion sensitivity [95 % CI] | seconds |")
    print("|---|---|---|---|")
    for arm, extra in (("ImageNet Lite0", []), ("scratch", ["--no-pretrained"])):
        out = work / f"run-{'scratch' if extra else 'pretrained'}"
        metrics_file = out / "metrics.json"
        seconds = 0.0
        if not metrics_file.is_file():
            shutil.rmtree(out, ignore_errors=True)
            cmd = [train, "fit", "--config", str(CONFIG), "--data", str(data / "manifest.csv")]
            cmd += ["--out", str(out), "--epochs", str(args.epochs), "--seed", "0", "--quiet"]
            cmd += ["--image-size", str(args.image_size), *extra]
            seconds = run(cmd, env)
        metrics = json.loads(metrics_file.read_text())
        dice = test_metric(metrics, "dice")
        sens = test_metric(metrics, "lesion_sensitivity")
        print(f"| {arm} | {dice} | {sens} | {seconds:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="predict,transfer")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", default=str(ROOT / "build" / "bench_segmentation"))
    parser.add_argument("--series", type=int, default=24, help="demo CT series (transfer)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("RADASSIST_CACHE_DIR", str(work / "cache"))
    env.setdefault("RADASSIST_DATA_DIR", str(work / "data"))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load_average()}")
    parts = set(args.only.split(","))
    if "predict" in parts:
        if not MODEL.is_file():
            print(f"no {MODEL.name}: run `make model` first")
            return 1
        bench_predict(args, work, env)
    if "transfer" in parts:
        bench_transfer(args, work, env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
