"""Inference benchmark: the engine's CPU path, end-to-end predict, Grad-CAM, int8, pointing game.

One run, ratios against a baseline measured in the same process, no assertions. Each compared
path is timed in a block of calls after its own warm-up, never alternated call by call: ONNX
Runtime's worker threads spin-wait after a run, and a PyTorch or other ORT call that follows at
once competes with them for the cores (that inflated every time 3-15x on 2 cores). The
benchmark's own ONNX Runtime sessions also run with ``session.intra_op.allow_spinning = 0``.
Each time is reported as the median and the range (min-max) of its block; the load average
before and after each section goes into the report, because other people's work on a shared
machine inflates wall time unevenly.

(1) Network latency of the engine's CPU path (what ``InferenceEngine`` chose) against a plain
    ONNX Runtime session on the same weights (exported here, default session options, the same
    thread count), at batch 1 and batch 16. Goal: ratio <= 1.0. For the record, the other
    candidates of ``fastpath``: eager PyTorch (``inference_mode``), eager with channels_last,
    TorchScript trace + freeze + optimize_for_inference.
(2) End-to-end predict of one radiograph (the bundled 1024x1024 RLE sample): ``engine.run`` +
    writing findings.json, the heatmap PNG and the overlay PNG (as ``radassist predict`` does),
    model already loaded. Reported: the share of time outside the network (forward passes and
    Grad-CAM count as network). Goal: <= 30 %.
(3) Grad-CAM cost against one forward pass at batch 1 (eager PyTorch, the path Grad-CAM uses,
    and the engine's path).
(4) int8 against fp32 (ONNX Runtime both): speed-up at batch 1 and 16, and per-label AUROC on
    the demo test split, fp32 against int8.
(5) Pointing game on the demo test split: for each ground-truth positive label with a box, is
    the Grad-CAM heatmap's peak inside the box? Chance = mean box area / image area.

(4) and (5) need a trained model: the bundled demo model by default, or --model. The test split
is the ``split == test`` rows of the demo dataset's manifest (--data manifest.csv, boxes from
its boxes.csv); without --data it is drawn again, exactly, from ``make-demo-data`` options
(--demo-n/--demo-seed/--demo-size; ``training.demo_data.plan_demo_dataset``).

    python benchmarks/bench_inference.py [--model FILE] [--data MANIFEST] [--repeat 30]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop_app.inference.devices import configure_cpu_threads  # noqa: E402
from desktop_app.inference.engine import InferenceEngine  # noqa: E402
from desktop_app.inference.fastpath import TorchRunner, export_onnx  # noqa: E402
from desktop_app.infra.errors import ModelFileError  # noqa: E402
from desktop_app.model.paths import default_model_path, resources_dir  # noqa: E402

try:  # the torch path's own module since issue 16
    from desktop_app.inference.torchpath import HEATMAP_CPU_THREADS, _cpu_threads
except ImportError:  # older code (a copy of this script run with PYTHONPATH=an old checkout)
    from desktop_app.inference.engine import (  # type: ignore[attr-defined,no-redef]
        HEATMAP_CPU_THREADS,
        _cpu_threads,
    )

CHEST = resources_dir() / "sample" / "chest_xr" / "chest_pa.dcm"


def _cpu() -> float:
    t = time.process_time()
    return t


def load_average() -> list[float]:
    with open("/proc/loadavg") as fh:
        return [float(v) for v in fh.read().split()[:3]]


def no_spin_options(threads: int) -> Any:
    """ONNX Runtime session options for the benchmark's own sessions: ``threads`` intra-op
    threads that sleep between runs instead of spin-waiting (ORT's default spins, which takes a
    core from whatever runs next)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def blocks(
    fns: dict[str, Callable[[], Any]], repeat: int, warmup: int = 2
) -> dict[str, dict[str, float]]:
    """Each function timed in its own block: ``warmup`` untimed calls, then ``repeat`` timed
    ones. Per function: median wall and CPU seconds and the wall range (``wall_min``,
    ``wall_max``). Blocks, not rounds, because a runtime's idle threads (ORT spins after each
    run) slow down whatever is called right after it."""
    out: dict[str, dict[str, float]] = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(repeat):
            c0, t0 = _cpu(), time.perf_counter()
            fn()
            wall.append(time.perf_counter() - t0)
            cpu.append(_cpu() - c0)
        out[name] = {
            "wall": statistics.median(wall),
            "cpu": statistics.median(cpu),
            "wall_min": min(wall),
            "wall_max": max(wall),
        }
    return out


def ms(t: dict[str, float]) -> str:
    """``median [min-max] ms (CPU ms)`` of one timed block."""
    return (
        f"{1000 * t['wall']:.1f} [{1000 * t['wall_min']:.1f}-{1000 * t['wall_max']:.1f}] ms "
        f"({1000 * t['cpu']:.0f})"
    )


def torchscript(network: torch.nn.Module, x: torch.Tensor) -> Any:
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(network, x)
        traced = torch.jit.freeze(traced)
        return torch.jit.optimize_for_inference(traced)


def section_latency(engine: InferenceEngine, repeat: int) -> dict[str, Any]:
    spec = engine.manifest.preprocessing
    size, ch = spec.image_size, spec.channels
    network = engine.network
    t0 = time.perf_counter()
    import onnxruntime as ort

    graph = export_onnx(network, size, ch)
    session = ort.InferenceSession(
        graph, no_spin_options(engine.threads), providers=["CPUExecutionProvider"]
    )
    spin_options = ort.SessionOptions()  # ONNX Runtime's defaults, for the record
    spin_options.intra_op_num_threads = engine.threads
    spin_session = ort.InferenceSession(graph, spin_options, providers=["CPUExecutionProvider"])

    def baseline(x: np.ndarray) -> Any:
        return session.run(None, {"input": x})[0]

    export_s = time.perf_counter() - t0
    eager = TorchRunner(network)
    cl_net = network  # channels_last changes the parameters' layout in place: restore after
    t0 = time.perf_counter()
    ts = torchscript(network, torch.zeros(1, ch, size, size))
    ts_build = time.perf_counter() - t0
    out: dict[str, Any] = {"onnx_export_s": export_s, "torchscript_build_s": ts_build}
    rng = np.random.default_rng(0)
    for batch in (1, 16):
        x = rng.normal(size=(batch, ch, size, size)).astype(np.float32)
        xt = torch.from_numpy(x)
        xcl = xt.contiguous(memory_format=torch.channels_last)

        def run_cl(xcl: torch.Tensor = xcl) -> Any:
            with torch.inference_mode():
                return cl_net(xcl)

        def run_ts(xt: torch.Tensor = xt) -> Any:
            with torch.inference_mode():
                return ts(xt)

        fns: dict[str, Callable[[], Any]] = {
            "engine": lambda x=x: engine._forward(x),
            "ort_baseline": lambda x=x: baseline(x),
            "eager": lambda x=x: eager(x),
            "torchscript": run_ts,
            # last: its threads spin after each run
            "ort_default_spinning": lambda x=x: spin_session.run(None, {"input": x})[0],
        }
        reps = repeat if batch == 1 else max(5, repeat // 4)
        times = blocks(fns, reps)
        cl_net.to(memory_format=torch.channels_last)
        times["channels_last"] = blocks({"channels_last": run_cl}, reps)["channels_last"]
        cl_net.to(memory_format=torch.contiguous_format)
        out[f"batch{batch}"] = times
    return out


def section_end_to_end(engine: InferenceEngine, repeat: int) -> dict[str, Any]:
    """Today's predict path against the one before the localization/speed work, in this process,
    each in its own block (one warm-up run first): "before" = CAM heatmaps
    (``heatmap_method="cam"``) and pydicom's Python RLE decoder; "now_cam" = CAM heatmaps with
    today's decoding."""
    from desktop_app.commands.predict import _write_outputs
    from desktop_app.dicom.pixels import rle as rle_module
    from desktop_app.studies.index import index_paths
    from desktop_app.studies.series import assemble
    from desktop_app.studies.volume import SeriesVolume

    ((_, study, series),) = list(index_paths([CHEST]).iter_series())
    stack = assemble(series).stacks[0]
    before = InferenceEngine(
        engine.model_path, device="cpu", threads=engine.threads, heatmap_method="cam"
    )
    fast_rle = rle_module.decode_rle_fast
    variants = {
        "now": (engine, fast_rle),
        "before": (before, lambda *_a, **_k: None),
        "now_cam": (before, fast_rle),
    }
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (eng, rle) in variants.items():
            for k in range(max(4, repeat // 3)):
                rle_module.decode_rle_fast = rle  # type: ignore[assignment]
                try:
                    volume = SeriesVolume(stack, keep=True)  # as the CLI: decoded once
                    c0, t0 = _cpu(), time.perf_counter()
                    result = eng.run(volume, study_instance_uid=study.study_instance_uid)
                    t1 = time.perf_counter()
                    out = Path(tmp) / f"{name}{k}"
                    _write_outputs(out, result, eng.labels, volume)
                    t2, c2 = time.perf_counter(), _cpu()
                finally:
                    rle_module.decode_rle_fast = fast_rle  # type: ignore[assignment]
                t = result.timings
                if k == 0:
                    continue  # warm-up (the first backward pass builds oneDNN's kernels)
                rows[name].append(
                    {
                        "total": t2 - t0,
                        "total_cpu": c2 - c0,
                        "run": t1 - t0,
                        "write": t2 - t1,
                        "preprocess": t.preprocess,
                        "network": t.network,
                        "gradcam": t.gradcam,
                        "postprocess": t.postprocess,
                        "positives": len(result.positives),
                    }
                )
    out_all: dict[str, Any] = {}
    for name, rs in rows.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        med["total_min"] = min(r["total"] for r in rs)
        med["total_max"] = max(r["total"] for r in rs)
        net = med["network"] + med["gradcam"]
        med["share_outside_network"] = 1.0 - net / med["total"]
        med["share_outside_network_run_only"] = 1.0 - net / med["run"]
        out_all[name] = med
    return out_all


def section_gradcam(engine: InferenceEngine, repeat: int) -> dict[str, Any]:
    from desktop_app.inference.gradcam import fine_cam, fine_layers, grad_cam, head_weight

    try:
        from desktop_app.inference.ortrun import cam_from_features
    except ImportError:
        from desktop_app.inference.gradcam import cam_from_features  # type: ignore[attr-defined,no-redef]
    from desktop_app.model.networks import gradcam_target_layer

    spec = engine.manifest.preprocessing
    x = (
        np.random.default_rng(1)
        .normal(size=(1, spec.channels, spec.image_size, spec.image_size))
        .astype(np.float32)
    )
    xt = torch.from_numpy(x)
    eager = TorchRunner(engine.network)
    layer = gradcam_target_layer(engine.manifest.architecture)
    labels = list(range(len(engine.labels)))

    def one_thread(fn: Callable[[], Any]) -> Any:
        with _cpu_threads(HEATMAP_CPU_THREADS):
            return fn()

    fine = fine_layers(engine.manifest.architecture)
    cam_engine = InferenceEngine(
        engine.model_path, device="cpu", threads=engine.threads, heatmap_method="cam"
    )
    features = cam_engine._forward(x).features
    weight = head_weight(engine.network)
    fns = {
        "engine_forward_logits_only": lambda: engine._forward(x),
        "engine_cam_all_labels": lambda: (
            cam_from_features(features[0], weight, labels) if features is not None else None
        ),
        "engine_forward": lambda: engine._forward(x),
        "cam_engine_forward_with_features": lambda: cam_engine._forward(x),
        # the engine's own heatmap path (its default method, on its backend)
        "engine_heatmap_1_label": lambda: engine._grad_cam(x[0], labels[:1]),
        "engine_heatmap_all_labels": lambda: engine._grad_cam(x[0], labels),
        "eager_forward": lambda: eager(x),
        "gradcam_1_label": lambda: grad_cam(engine.network, layer, xt, labels[:1]),
        "gradcam_all_labels": lambda: grad_cam(engine.network, layer, xt, labels),
        # as the engine runs them: HEATMAP_CPU_THREADS PyTorch threads
        "eager_forward_heatmap_threads": lambda: one_thread(lambda: eager(x)),
        "layercam_1_label": lambda: one_thread(
            lambda: fine_cam(engine.network, fine, layer, xt, labels[:1])
        ),
        "layercam_all_labels": lambda: one_thread(
            lambda: fine_cam(engine.network, fine, layer, xt, labels)
        ),
    }
    times = blocks(fns, max(5, repeat // 2))
    times["ratio_1_label_vs_eager_forward"] = (
        times["gradcam_1_label"]["wall"] / times["eager_forward"]["wall"]
    )
    times["ratio_1_label_vs_engine_forward"] = (
        times["gradcam_1_label"]["wall"] / times["engine_forward"]["wall"]
    )
    times["ratio_all_labels_vs_eager_forward"] = (
        times["gradcam_all_labels"]["wall"] / times["eager_forward"]["wall"]
    )
    for n in ("1_label", "all_labels"):  # what a positive finding costs on top of the forward
        times[f"ratio_engine_heatmap_{n}_vs_engine_forward"] = (
            times[f"engine_heatmap_{n}"]["wall"] / times["engine_forward"]["wall"]
        )
    # heatmap_method="cam": the features output of its forward pass, plus the maps in numpy
    times["ratio_engine_cam_vs_engine_forward"] = (
        times["cam_engine_forward_with_features"]["wall"]
        - times["engine_forward_logits_only"]["wall"]
        + times["engine_cam_all_labels"]["wall"]
    ) / times["engine_forward_logits_only"]["wall"]
    # the default, LayerCAM (gradcam.fine_cam): CPU time, against eager and the engine's forward
    for n in ("1_label", "all_labels"):
        cpu = times[f"layercam_{n}"]["cpu"]
        same = times["eager_forward_heatmap_threads"]["cpu"]
        times[f"ratio_layercam_{n}_vs_eager_forward_cpu"] = cpu / same
        times[f"ratio_layercam_{n}_vs_engine_forward_cpu"] = cpu / times["engine_forward"]["cpu"]
    return times


# --------------------------------------------------------------------------- demo test split


@dataclass
class TestImage:
    path: Path
    present: set[str]
    boxes: dict[str, tuple[float, float, float, float]]


def test_split_from_manifest(manifest: Path, labels: Sequence[str]) -> list[TestImage]:
    """The ``split == test`` rows of a demo manifest, with every box from its boxes.csv."""
    with open(manifest, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("split") == "test"]
    boxes: dict[str, dict[str, tuple[float, float, float, float]]] = {}
    box_file = manifest.parent / "boxes.csv"
    if box_file.is_file():
        with open(box_file, newline="") as fh:
            for b in csv.DictReader(fh):
                boxes.setdefault(b["path"], {})[b["label"]] = tuple(  # type: ignore[assignment]
                    float(b[k]) for k in ("x", "y", "width", "height")
                )
    return [
        TestImage(
            manifest.parent / r["path"],
            {label for label in labels if r.get(label) == "1"},
            boxes.get(r["path"], {}),
        )
        for r in rows
    ]


def test_split_regenerated(folder: Path, options: Any) -> list[TestImage]:
    """The test split of ``make-demo-data`` with ``options``, drawn again (deterministic)."""
    from training.demo_data import plan_demo_dataset, render_image

    items = []
    for plan in (p for p in plan_demo_dataset(options) if p.split == "test"):
        result = render_image(str(folder), plan, options.image_format)
        boxes = {k: tuple(float(v) for v in b) for k, b in result.boxes.items()}
        items.append(TestImage(folder / plan.path, set(plan.findings), boxes))  # type: ignore[arg-type]
    return items


def auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count half); NaN when a class is missing."""
    pos, neg = scores[truth == 1], scores[truth == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def section_accuracy(
    model: Path,
    fp32: InferenceEngine,
    repeat: int,
    max_images: int | None,
    data: Path | None,
    demo_n: int,
    demo_seed: int,
    demo_size: int,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    int8 = InferenceEngine(model, device="cpu", int8=True, threads=fp32.threads)
    build_int8_s = time.perf_counter() - t0
    labels = fp32.labels
    out: dict[str, Any] = {"int8_build_s": build_int8_s, "int8_backend": int8.backend}
    spec = fp32.manifest.preprocessing
    rng = np.random.default_rng(2)
    for batch in (1, 16):
        x = rng.normal(size=(batch, spec.channels, spec.image_size, spec.image_size)).astype(
            np.float32
        )
        times = blocks(
            {"fp32": lambda x=x: fp32._forward(x), "int8": lambda x=x: int8._forward(x)},
            repeat if batch == 1 else max(5, repeat // 4),
        )
        times["speedup"] = times["fp32"]["wall"] / times["int8"]["wall"]
        out[f"batch{batch}"] = times
    with tempfile.TemporaryDirectory() as tmp:
        if data is not None:
            items = test_split_from_manifest(data, labels)
            out["test_split"] = str(data)
        else:
            from training.demo_data import DemoDataOptions

            options = DemoDataOptions(n=demo_n, seed=demo_seed, size=demo_size)
            items = test_split_regenerated(Path(tmp), options)
            out["test_split"] = f"make-demo-data --n {demo_n} --seed {demo_seed} --size {demo_size}"
        if max_images:
            items = items[:max_images]
        out["test_images"] = len(items)
        p32, p8, truth = [], [], []
        hits, chance, pairs = 0, [], 0
        hits_tp, pairs_tp = 0, 0
        per_label = {label: [0, 0] for label in labels}
        for item in items:
            r32 = fp32.run(item.path, heatmaps="all")
            r8 = int8.run(item.path, heatmaps="none")
            p32.append([f.probability for f in r32.findings])
            p8.append([f.probability for f in r8.findings])
            truth.append([int(label in item.present) for label in labels])
            area = r32.slices[0].rows * r32.slices[0].columns
            for f in r32.findings:
                if f.label not in item.boxes or f.label not in item.present:
                    continue
                x, y, w, h = item.boxes[f.label]
                pairs += 1
                chance.append(w * h / area)
                inside = f.peak is not None and x <= f.peak[0] <= x + w and y <= f.peak[1] <= y + h
                hits += inside
                per_label[f.label][0] += inside
                per_label[f.label][1] += 1
                if f.positive:
                    hits_tp += inside
                    pairs_tp += 1
        a32, a8, t = np.array(p32), np.array(p8), np.array(truth)
        out["auroc"] = {
            label: {"fp32": auroc(a32[:, j], t[:, j]), "int8": auroc(a8[:, j], t[:, j])}
            for j, label in enumerate(labels)
        }
        out["max_probability_change"] = float(np.max(np.abs(a32 - a8))) if len(a32) else None
        out["decisions_changed"] = (
            int(
                sum(
                    (a32[:, j] >= fp32.thresholds[label]) != (a8[:, j] >= fp32.thresholds[label])
                    for j, label in enumerate(labels)
                ).sum()
            )
            if len(a32)
            else 0
        )
        out["pointing_game"] = {
            "pairs": pairs,
            "hits": hits,
            "rate": hits / pairs if pairs else None,
            "chance": float(np.mean(chance)) if chance else None,
            "true_positive_pairs": pairs_tp,
            "true_positive_rate": hits_tp / pairs_tp if pairs_tp else None,
            "per_label": {k: f"{h}/{n}" for k, (h, n) in per_label.items()},
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--max-test-images", type=int, default=None)
    parser.add_argument(
        "--data", type=Path, default=None, help="the demo dataset's manifest.csv (its test split)"
    )
    parser.add_argument("--demo-n", type=int, default=500, help="without --data: regenerate")
    parser.add_argument("--demo-seed", type=int, default=0)
    parser.add_argument("--demo-size", type=int, default=512)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: the physical cores)"
    )
    parser.add_argument(
        "--speed-only", action="store_true", help="sections (1)-(3) only: no trained model needed"
    )
    parser.add_argument("--skip-latency", action="store_true", help="leave out section (1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    threads = configure_cpu_threads(args.threads)
    try:
        model = args.model or default_model_path()
    except ModelFileError as err:
        print(f"no model: {err.one_line()}")
        return 0
    print(f"model {model.name}; {threads} CPU threads; torch {torch.__version__}")
    t0 = time.perf_counter()
    engine = InferenceEngine(model, device="cpu", threads=threads)
    load_s = time.perf_counter() - t0
    print(f"engine: backend {engine.backend}, loaded in {load_s:.2f} s ({'; '.join(engine.notes)})")
    report: dict[str, Any] = {"model": model.name, "threads": threads, "engine_load_s": load_s}

    loads = report["load_average"] = {"start": load_average()}
    print(f"load average {loads['start']}")
    lat = {} if args.skip_latency else section_latency(engine, args.repeat)
    report["latency"] = lat
    loads["after_latency"] = load_average()
    print("\n(1) network latency, median [min-max] wall ms (median CPU ms), each in a block; "
          f"ratio = engine / ONNX Runtime baseline (no spinning); load {loads['after_latency']}")  # fmt: skip
    for batch in (1, 16) if lat else ():
        t = lat[f"batch{batch}"]
        row = "\n    ".join(f"{k} {ms(v)}" for k, v in t.items())
        ratio = t["engine"]["wall"] / t["ort_baseline"]["wall"]
        lat[f"batch{batch}"]["ratio_engine_vs_ort"] = ratio
        lat[f"batch{batch}"]["ratio_engine_vs_ort_min"] = (
            t["engine"]["wall_min"] / t["ort_baseline"]["wall_min"]
        )
        print(f"  batch {batch}:\n    {row}\n    ratio {ratio:.2f} (of the minima "
              f"{lat[f'batch{batch}']['ratio_engine_vs_ort_min']:.2f}); "
              f"img/s engine {batch / t['engine']['wall']:.1f}, eager {batch / t['eager']['wall']:.1f}")  # fmt: skip
    if lat:
        print(f"  ONNX export {lat['onnx_export_s']:.1f} s, "
              f"TorchScript build {lat['torchscript_build_s']:.1f} s")  # fmt: skip

    e2e_all = section_end_to_end(engine, args.repeat)
    report["end_to_end"] = e2e_all
    loads["after_end_to_end"] = load_average()
    print(f"\n(2) end-to-end predict, one 1024x1024 radiograph (median s; total's range "
          f"total_min-total_max); load {loads['after_end_to_end']}")  # fmt: skip
    for name, e2e in e2e_all.items():
        print(f"  {name}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in e2e.items() if not k.startswith("share")))  # fmt: skip
        print(f"    share outside the network: {100 * e2e['share_outside_network']:.0f} % "
              f"(run only, without writing files: "
              f"{100 * e2e['share_outside_network_run_only']:.0f} %)")  # fmt: skip

    cam = section_gradcam(engine, args.repeat)
    report["gradcam"] = cam
    loads["after_gradcam"] = load_average()
    print(f"\n(3) Grad-CAM vs one forward pass (batch 1); load {loads['after_gradcam']}")
    print("  " + "\n  ".join(f"{k} {ms(v)}" for k, v in cam.items() if isinstance(v, dict)))
    print(f"  1 label: {cam['ratio_1_label_vs_eager_forward']:.1f}x an eager forward, "
          f"{cam['ratio_1_label_vs_engine_forward']:.1f}x the engine's; all labels: "
          f"{cam['ratio_all_labels_vs_eager_forward']:.1f}x eager")  # fmt: skip
    print(f"  the engine's heatmap ({engine.gradcam_mode}): 1 label "
          f"{cam['ratio_engine_heatmap_1_label_vs_engine_forward']:.1f}x its forward pass, all "
          f"{cam['ratio_engine_heatmap_all_labels_vs_engine_forward']:.1f}x")  # fmt: skip
    print(f"  --heatmap-method cam (features output + maps for all labels): "
          f"{cam['ratio_engine_cam_vs_engine_forward']:+.2f}x the engine's forward pass")  # fmt: skip
    print(f"  layercam (default, {HEATMAP_CPU_THREADS} PyTorch thread), CPU time: 1 label "
          f"{cam['ratio_layercam_1_label_vs_eager_forward_cpu']:.2f}x an eager forward "
          f"({cam['ratio_layercam_1_label_vs_engine_forward_cpu']:.1f}x the engine's), all "
          f"{len(engine.labels)} labels {cam['ratio_layercam_all_labels_vs_eager_forward_cpu']:.2f}x "
          f"eager ({cam['ratio_layercam_all_labels_vs_engine_forward_cpu']:.1f}x); eager forward "
          f"at that thread count")  # fmt: skip

    if args.speed_only:
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=float))
        return 0
    acc = section_accuracy(
        model,
        engine,
        args.repeat,
        args.max_test_images,
        args.data,
        args.demo_n,
        args.demo_seed,
        args.demo_size,
    )
    report["int8"] = acc
    loads["after_int8"] = load_average()
    print(f"\n(4) int8 vs fp32 (int8 built in {acc['int8_build_s']:.1f} s); load "
          f"{loads['after_int8']}")  # fmt: skip
    for batch in (1, 16):
        t = acc[f"batch{batch}"]
        print(f"  batch {batch}: fp32 {ms(t['fp32'])}, int8 {ms(t['int8'])}, "
              f"speed-up {t['speedup']:.2f}x")  # fmt: skip
    print(f"  demo test split {acc['test_split']}: {acc['test_images']} images")
    for label, a in acc["auroc"].items():
        print(
            f"  AUROC {label}: fp32 {a['fp32']:.4f}, int8 {a['int8']:.4f}, change {a['int8'] - a['fp32']:+.4f}"
        )
    print(f"  largest probability change {acc['max_probability_change']}, decisions changed "
          f"{acc['decisions_changed']}")  # fmt: skip
    pg = acc["pointing_game"]
    print("\n(5) pointing game (heatmap peak inside the ground-truth box)")
    print(f"  {pg['hits']}/{pg['pairs']} = {pg['rate']}; chance {pg['chance']}; "
          f"on true positives {pg['true_positive_rate']} ({pg['true_positive_pairs']}); "
          f"per label {pg['per_label']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
