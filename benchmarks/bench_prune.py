"""Pruning benchmark: the bundled demo model against its pruned versions and its int8 version.

For the unpruned model, ``radassist-train prune`` at each ``--amounts`` (structured channel
pruning + a short fine-tune on the model's own training manifest, ``training.prune``) and the
engine's int8 path (``fastpath.quantize_int8`` of the unpruned graph, calibrated as the engine
calibrates it), in one run:

- parameters and the ONNX graph's size;
- ONNX Runtime latency at batch 1 and batch 16 on the CPU: each contender's session is timed in
  its own block of calls (warm-up first; never alternating with another session), with ORT's
  spinning threads off (``session.intra_op.allow_spinning=0``), as the engine runs it; median
  and range (min-max) of the block;
- test-split AUROC per label and mean, with a stratified bootstrap 95 % CI, from the same ORT
  sessions on the test images preprocessed as the app does (``preprocess_file``);
- ratios against the unpruned model.

The data: the bundled model's training set, drawn again exactly by ``make-demo-data`` (--demo-n
1200 --demo-seed 0, as ``make model``; its manifest SHA-256 must match the one the model file
records) into ``--work`` (default build/bench_prune/), or ``--data MANIFEST``. Pruned files are
kept in ``--work`` and reused while their record (source tensor hash, amount, epochs, lr)
matches; ``--fresh`` prunes again.

    python benchmarks/bench_prune.py [--model FILE] [--data MANIFEST] [--amounts 0.3,0.5,0.7]
        [--epochs 2] [--lr 3e-4] [--repeat 30] [--threads N] [--work DIR] [--fresh] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# As radassist-train does, before torch loads OpenMP: on shared cores spinning OpenMP threads
# made the fine-tune's epochs several times slower (training/cli.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop_app.infra.cpus import available_cpus  # noqa: E402
from desktop_app.model.paths import default_model_path  # noqa: E402

DEMO_N, DEMO_SEED = 1200, 0  # the Makefile's MODEL_DEMO_N and MODEL_DEMO_SEED


@dataclass
class Contender:
    name: str
    parameters: int
    onnx: bytes
    note: str = ""
    latency: dict[int, dict[str, float]] = field(default_factory=dict)
    auroc: dict[str, Any] = field(default_factory=dict)


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def ort_session(onnx: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])


def timed_block(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> dict[str, float]:
    """Median, min and max wall seconds of ``repeat`` back-to-back calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


# --------------------------------------------------------------------------- data and models


def demo_manifest(work: Path, expected_sha: str | None) -> Path:
    """The bundled model's training set under ``work/demo`` (drawn again unless it is there
    with the manifest SHA-256 the model file records)."""
    from training.demo_data import DemoDataOptions, make_demo_dataset

    manifest = work / "demo" / "manifest.csv"
    if manifest.is_file():
        sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
        if expected_sha is None or sha == expected_sha:
            return manifest
    print(f"drawing the demo set again ({DEMO_N} images, seed {DEMO_SEED}) into {work / 'demo'}")
    t0 = time.perf_counter()
    options = DemoDataOptions(n=DEMO_N, seed=DEMO_SEED, workers=max(1, available_cpus()))
    make_demo_dataset(work / "demo", options)
    print(f"  {time.perf_counter() - t0:.0f} s")
    return manifest


def pruned_file(
    model: Path, data: Path, work: Path, amount: float, epochs: int, lr: float, fresh: bool
) -> Path:
    """``work/pruned-<pct>.safetensors``: reused when its record matches, else pruned now."""
    from desktop_app.model.modelfile import read_manifest
    from training.config import TrainConfig
    from training.pipeline import epoch_line
    from training.prune import prune_model_file

    source = read_manifest(model)
    out = work / f"pruned-{round(100 * amount)}.safetensors"
    if out.is_file() and not fresh:
        record = read_manifest(out).training_data.get("pruning", {})
        tune = record.get("fine_tune", {})
        if (
            record.get("from", {}).get("tensor_sha256") == source.tensor_sha256
            and record.get("amount") == amount
            and tune.get("epochs") == epochs
            and tune.get("lr") == lr
        ):
            print(f"reusing {out.name} (pruned {tune.get('train_seconds')} s of fine-tuning)")
            return out
    print(f"pruning {amount:.0%}, {epochs} fine-tune epoch(s) -> {out}")
    result = prune_model_file(
        model,
        data,
        out,
        TrainConfig(device="cpu"),
        amount,
        epochs=epochs,
        lr=lr,
        on_epoch=lambda entry, _h: print("  " + epoch_line(entry, epochs), flush=True),
        on_info=lambda line: print("  " + line, flush=True),
    )
    print(f"  {result.seconds:.0f} s")
    return out


def test_inputs(model: Path, data: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The test split (as the model's training split it), preprocessed as the app does."""
    from desktop_app.model.modelfile import read_manifest
    from desktop_app.model.preprocessing import preprocess_file
    from training.evaluate import _read_model_labels, _split_as_trained, layout_for_model

    m = read_manifest(model)
    dataset = _read_model_labels(data, list(m.labels), layout_for_model(m.training_data))
    test = _split_as_trained(dataset, m.training_data).test
    x = np.stack([preprocess_file(dataset.records[i].path, m.preprocessing)[0] for i in test])
    return x, dataset.label_matrix(test), m.labels


def contenders_for(model: Path, pruned: list[Path]) -> list[Contender]:
    from desktop_app.inference.fastpath import calibration_inputs, export_onnx, quantize_int8
    from desktop_app.model.modelfile import load_model_file

    out = []
    base_onnx = b""
    for path in [model, *pruned]:
        loaded = load_model_file(path)
        spec = loaded.manifest.preprocessing
        onnx = export_onnx(loaded.network, spec.image_size, spec.channels)
        params = sum(p.numel() for p in loaded.network.parameters())
        record = loaded.manifest.training_data.get("pruning")
        if record is None:
            base_onnx, base_params, base_spec = onnx, params, spec
            out.append(Contender("unpruned fp32", params, onnx))
        else:
            tune = record["fine_tune"]
            note = f"{tune['epochs_run']} epochs, best {tune['best_epoch']}"
            out.append(Contender(f"pruned {record['amount']:.0%}", params, onnx, note))
    t0 = time.perf_counter()
    int8 = quantize_int8(base_onnx, calibration_inputs(base_spec))
    note = f"static QDQ, quantized in {time.perf_counter() - t0:.0f} s"
    out.insert(1, Contender("unpruned int8", base_params, int8, note))
    return out


# --------------------------------------------------------------------------- measuring


def measure_auroc(c: Contender, x: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> None:
    from training.metrics import auroc, bootstrap_auroc

    session = ort_session(c.onnx, max(1, available_cpus()))
    logits = np.concatenate(
        [session.run(None, {"input": x[i : i + 16]})[0] for i in range(0, len(x), 16)]
    )
    for j, label in enumerate(labels):
        c.auroc[label] = (auroc(y[:, j], logits[:, j]), *bootstrap_auroc(y[:, j], logits[:, j]))
    values = [v[0] for v in c.auroc.values()]
    c.auroc["mean"] = (float(np.mean(values)), float("nan"), float("nan"))


def measure_latency(c: Contender, x: np.ndarray, threads: int, repeat: int) -> None:
    session = ort_session(c.onnx, threads)
    for batch in (1, 16):
        xb = np.ascontiguousarray(x[:batch])
        reps = repeat if batch == 1 else max(5, repeat // 4)

        def call(xb: np.ndarray = xb) -> Any:
            return session.run(None, {"input": xb})

        c.latency[batch] = timed_block(call, reps)


# --------------------------------------------------------------------------- report


def _ms(entry: dict[str, float]) -> str:
    return f"{1000 * entry['median']:.1f} [{1000 * entry['min']:.1f}-{1000 * entry['max']:.1f}]"


def report(contenders: list[Contender], labels: tuple[str, ...], n_test: int) -> list[str]:
    base = contenders[0]
    lines = [
        "| model | parameters | ONNX MB | batch 1 ms, median [range] | batch 16 ms, median "
        "[range] | speed-up b1 / b16 | test mean AUROC | " + " | ".join(labels) + " |",
        "| --- " * (7 + len(labels)) + "|",
    ]
    for c in contenders:
        speed = " / ".join(
            f"{base.latency[b]['median'] / c.latency[b]['median']:.2f}x" for b in (1, 16)
        )
        per_label = " | ".join(
            f"{c.auroc[k][0]:.3f} ({c.auroc[k][1]:.3f}-{c.auroc[k][2]:.3f})" for k in labels
        )
        mean = c.auroc["mean"][0] - base.auroc["mean"][0]
        lines.append(
            f"| {c.name}{f' ({c.note})' if c.note else ''} | {c.parameters:,} "
            f"({c.parameters / base.parameters:.2f}x) | {len(c.onnx) / 2**20:.1f} | "
            f"{_ms(c.latency[1])} | {_ms(c.latency[16])} | {speed} | "
            f"{c.auroc['mean'][0]:.3f} ({mean:+.3f}) | {per_label} |"
        )
    lines.append(f"\n{n_test} test images; AUROC 95 % CI: stratified bootstrap, 1000 resamples.")
    return lines


def main(argv: list[str] | None = None) -> int:
    from training.prune import DEFAULT_LR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--data", type=Path, default=None, help="its training manifest")
    parser.add_argument("--amounts", default="0.3,0.5,0.7")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--repeat", type=int, default=30, help="batch-1 calls per block")
    parser.add_argument("--threads", type=int, default=max(1, available_cpus()))
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench_prune")
    parser.add_argument("--fresh", action="store_true", help="prune again even if kept")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from desktop_app.model.modelfile import read_manifest

    torch.set_num_threads(args.threads)
    model = args.model or default_model_path()
    source = read_manifest(model)
    print(f"model {model.name} ({source.name} {source.version}); load average {_load()}")
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.data or demo_manifest(args.work, source.training_data.get("manifest_sha256"))
    amounts = [float(a) for a in args.amounts.split(",") if a.strip()]
    t0 = time.perf_counter()
    pruned = [
        pruned_file(model, data, args.work, a, args.epochs, args.lr, args.fresh) for a in amounts
    ]
    prune_s = time.perf_counter() - t0
    contenders = contenders_for(model, pruned)
    x, y, labels = test_inputs(model, data)
    for c in contenders:
        measure_auroc(c, x, y, labels)
    print(f"latency: ONNX Runtime, {args.threads} thread(s), no spinning; load {_load()}")
    for c in contenders:  # one block per contender, one after the other
        measure_latency(c, x, args.threads, args.repeat)
        print(f"  {c.name}: batch 1 {_ms(c.latency[1])} ms, batch 16 {_ms(c.latency[16])} ms")
    print()
    for line in report(contenders, labels, len(x)):
        print(line)
    print(f"pruning and fine-tuning: {prune_s:.0f} s; load average after: {_load()}")
    if args.json is not None:
        payload = [
            {
                "name": c.name,
                "note": c.note,
                "parameters": c.parameters,
                "onnx_bytes": len(c.onnx),
                "latency_s": {str(b): v for b, v in c.latency.items()},
                "auroc": {k: list(v) for k, v in c.auroc.items()},
            }
            for c in contenders
        ]
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
