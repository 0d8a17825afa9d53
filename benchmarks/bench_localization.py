"""Localization benchmark: how well each heatmap method's peak and box find the ground truth.

For every ground-truth positive finding with a box on the demo test split (the ``split == test``
rows of a demo manifest and its boxes.csv; without --data a fresh seeded set is drawn with
``make-demo-data``'s planner), each method's heatmap is computed on the network input exactly as
the engine does, mapped back onto the original pixel grid (``Geometry.heatmap_to_original``),
normalised, and turned into a peak and a box by ``overlays.peak_region`` at each region level.
Reported per label and overall:

- pointing game: the peak inside the ground-truth box; chance = box area / image area;
- IoU of the derived box with the ground-truth box; chance = the mean IoU of a box of the
  ground truth's own size placed uniformly at random in the image (a generous baseline);
- inside: the share of the derived box's area that lies inside the ground-truth box (1.0 = the
  box hugs the finding or lies within it; chance = box area / image area);
- cost: CPU seconds per image of each method for every boxed label of the image, against one
  eager forward pass (``inference_mode``) measured on the same image in the same loop.

Methods (``desktop_app.inference.gradcam``): ``cam`` (the last feature map's Grad-CAM = CAM: the
engine's method before LayerCAM, ``--heatmap-method cam``), ``gradcam-s16`` (Grad-CAM at the
stride-16 stage), ``layercam-s16*cam`` (LayerCAM at the stride-16 stage times CAM),
``layercam-raw`` (the default's fusion without its blur) and ``layercam`` (the engine's default,
``fine_cam``).

    python benchmarks/bench_localization.py [--model FILE] [--data MANIFEST] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_inference import TestImage, test_split_from_manifest, test_split_regenerated  # noqa: E402

from desktop_app.inference.devices import configure_cpu_threads  # noqa: E402
from desktop_app.inference.engine import InferenceEngine  # noqa: E402
from desktop_app.inference.gradcam import fine_cam, fine_layers, grad_cam  # noqa: E402
from desktop_app.inference.overlays import peak_region  # noqa: E402
from desktop_app.infra.errors import ModelFileError  # noqa: E402
from desktop_app.model.networks import gradcam_target_layer  # noqa: E402
from desktop_app.model.paths import default_model_path  # noqa: E402

Box = tuple[float, float, float, float]
MapFn = Callable[[torch.Tensor, list[int]], dict[int, np.ndarray]]


def methods(engine: InferenceEngine) -> dict[str, MapFn]:
    net = engine.network
    arch = engine.manifest.architecture
    last = gradcam_target_layer(arch)
    s8, s16 = fine_layers(arch)
    return {
        "cam": lambda x, c: grad_cam(net, last, x, c).maps,
        "gradcam-s16": lambda x, c: grad_cam(net, s16, x, c).maps,
        "layercam-s16*cam": lambda x, c: fine_cam(net, (s16,), last, x, c, smoothing=0.0).maps,
        "layercam-raw": lambda x, c: fine_cam(net, (s8, s16), last, x, c, smoothing=0.0).maps,
        "layercam": lambda x, c: fine_cam(net, (s8, s16), last, x, c).maps,
    }


def box_iou(a: Box, b: Box) -> tuple[float, float]:
    """(IoU, share of ``a``'s area inside ``b``)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a, area_b = a[2] * a[3], b[2] * b[3]
    union = area_a + area_b - inter
    return (inter / union if union > 0 else 0.0), (inter / area_a if area_a > 0 else 0.0)


def chance_iou(box: Box, rows: int, cols: int, rng: np.random.Generator, n: int = 256) -> float:
    w, h = box[2], box[3]
    xs = rng.uniform(0, max(cols - w, 0), n)
    ys = rng.uniform(0, max(rows - h, 0), n)
    return float(np.mean([box_iou((float(a), float(b), w, h), box)[0] for a, b in zip(xs, ys)]))


def evaluate(
    engine: InferenceEngine, items: list[TestImage], levels: list[float], limit: int | None
) -> dict[str, Any]:
    fns = methods(engine)
    labels = list(engine.labels)
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    chance: dict[tuple[str, str], float] = {}
    cost: dict[str, list[float]] = {k: [] for k in [*fns, "eager_forward"]}
    used = [it for it in items if any(lab in labels for lab in it.boxes)][:limit]
    for n, item in enumerate(used):
        x_np, (geometry,) = engine.preprocess(item.path)
        x = torch.from_numpy(x_np)
        boxed = {lab: box for lab, box in item.boxes.items() if lab in labels}
        indices = [labels.index(lab) for lab in boxed]
        c0 = time.process_time()
        with torch.inference_mode():
            engine.network(x)
        cost["eager_forward"].append(time.process_time() - c0)
        img_rows, img_cols = geometry.original_shape
        for name, fn in fns.items():
            c0 = time.process_time()
            maps = fn(x, indices)
            cost[name].append(time.process_time() - c0)
            for label, c in zip(boxed, indices):
                heatmap = geometry.heatmap_to_original(maps[c])
                peak = float(heatmap.max())
                if peak > 0:
                    heatmap = heatmap / np.float32(peak)
                gt = boxed[label]
                key = (str(item.path), label)
                if key not in chance:
                    chance[key] = chance_iou(gt, img_rows, img_cols, rng)
                for level in levels:
                    region = peak_region(heatmap, level)
                    hit, iou, inside = False, 0.0, 0.0
                    if region is not None:
                        px, py = region.peak
                        hit = gt[0] <= px <= gt[0] + gt[2] and gt[1] <= py <= gt[1] + gt[3]
                        iou, inside = box_iou(region.box, gt)
                    rows.append(
                        {
                            "method": name,
                            "level": level,
                            "label": label,
                            "hit": hit,
                            "iou": iou,
                            "inside": inside,
                            "chance_point": gt[2] * gt[3] / (img_rows * img_cols),
                            "chance_iou": chance[key],
                            "positive": label in item.present,
                        }
                    )
        if (n + 1) % 20 == 0:
            print(f"  {n + 1}/{len(used)} images", file=sys.stderr, flush=True)
    table: dict[str, Any] = {}
    for name in fns:
        for level in levels:
            key = f"{name}@{level}"
            table[key] = {}
            for label in [*labels, "all"]:
                sel = [
                    r
                    for r in rows
                    if r["method"] == name
                    and r["level"] == level
                    and (label == "all" or r["label"] == label)
                ]
                if not sel:
                    continue
                table[key][label] = {
                    "n": len(sel),
                    "pointing": float(np.mean([r["hit"] for r in sel])),
                    "iou": float(np.mean([r["iou"] for r in sel])),
                    "inside": float(np.mean([r["inside"] for r in sel])),
                    "chance_pointing": float(np.mean([r["chance_point"] for r in sel])),
                    "chance_iou": float(np.mean([r["chance_iou"] for r in sel])),
                }
    forward = statistics.median(cost["eager_forward"])
    costs = {
        k: {"cpu_s": statistics.median(v), "x_eager_forward": statistics.median(v) / forward}
        for k, v in cost.items()
    }
    return {"images": len(used), "findings": len(rows) // (len(fns) * len(levels)),
            "table": table, "cost": costs}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--data", type=Path, default=None, help="a demo manifest.csv (test split)")
    parser.add_argument("--demo-n", type=int, default=160, help="without --data: regenerate")
    parser.add_argument("--demo-seed", type=int, default=20240)
    parser.add_argument("--demo-size", type=int, default=512)
    parser.add_argument("--levels", type=float, nargs="+", default=[0.5, 0.7])
    parser.add_argument("--limit", type=int, default=None, help="at most this many images")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    threads = configure_cpu_threads(args.threads)
    try:
        model = args.model or default_model_path()
    except ModelFileError as err:
        print(f"no model: {err.one_line()}")
        return 0
    engine = InferenceEngine(model, device="cpu", backend="torch", threads=threads)
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    print(f"model {model.name}; {threads} threads; load average {' '.join(load)}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.data is not None:
            items = test_split_from_manifest(args.data, engine.labels)
            source = f"{args.data} (split test)"
        else:
            from training.demo_data import DemoDataOptions

            options = DemoDataOptions(n=args.demo_n, seed=args.demo_seed, size=args.demo_size)
            items = test_split_regenerated(Path(tmp), options)
            source = f"make-demo-data --n {args.demo_n} --seed {args.demo_seed} (split test)"
        result = evaluate(engine, items, args.levels, args.limit)
    result.update(source=source, model=model.name, threads=threads, load=load)
    print(f"{source}: {result['images']} images, {result['findings']} boxed findings")
    labels = [*engine.labels, "all"]
    print(f"{'method@level':22s} " + " ".join(f"| {lab[:12]:>12s} PG   IoU  in " for lab in labels))
    for key, per in result["table"].items():
        cells = [per.get(lab) for lab in labels]
        print(f"{key:22s} " + " ".join(
            f"| {c['n']:3d} {c['pointing']:.2f} {c['iou']:.2f} {c['inside']:.2f}" if c else "| -"
            for c in cells
        ))  # fmt: skip
    first = result["table"][next(iter(result["table"]))]
    print(f"{'chance':22s} " + " ".join(
        f"|   {first[lab]['chance_pointing']:.3f} {first[lab]['chance_iou']:.3f} "
        f"{first[lab]['chance_pointing']:.3f}" if lab in first else "| -"
        for lab in labels
    ))  # fmt: skip
    print("cost per image (CPU s, median; x one eager forward pass):")
    for k, v in result["cost"].items():
        print(f"  {k:18s} {v['cpu_s']:.3f} s  {v['x_eager_forward']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
