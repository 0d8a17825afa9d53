"""Out-of-distribution score cost: its share of the network's forward pass (issue 13, goal <= 10 %).

The score needs the classifier head's input from the same forward pass (an extra output of the
exported ONNX graph, ``fastpath.PENULTIMATE_NAME``) and one Mahalanobis distance per image
(``OodModel.score``). Compared in one process, on the engine's CPU path (ONNX Runtime):

- baseline: the plain graph (logits only), ``OrtRunner.__call__``;
- with OOD: the graph with the extra output, ``OrtRunner.outputs`` + ``OodModel.score``.

Blocks of ``--calls`` calls of each, interleaved ``--blocks`` times (other people's work on a
shared machine inflates wall time unevenly); per-call medians and ranges over the blocks, and
the ratio (with OOD - baseline) / baseline of the medians and of the fastest blocks (the
least disturbed by other load). The network is the bundled model's
architecture and input size (seeded random weights when there is no bundled model: the cost
does not depend on the weights); the OOD statistics are a seeded Gaussian of the feature width.

    python benchmarks/bench_ood_cost.py [--model FILE] [--batch 1] [--blocks 15] [--calls 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop_app.inference.fastpath import OrtRunner, export_onnx, probe_input  # noqa: E402
from desktop_app.model.applicability import OodModel, OodSpec  # noqa: E402
from desktop_app.model.modelfile import load_model_file  # noqa: E402
from desktop_app.model.networks import build_network, feature_dim  # noqa: E402
from desktop_app.model.paths import bundled_model_files, default_model_path  # noqa: E402


def _network(model: str | None) -> tuple[torch.nn.Module, int, int, str]:
    path = model or (str(default_model_path()) if bundled_model_files() else None)
    if path is not None:
        loaded = load_model_file(path)
        spec = loaded.manifest.preprocessing
        return loaded.network.eval(), spec.image_size, spec.channels, Path(path).name
    torch.manual_seed(0)
    net = build_network("efficientnet-lite0", 3, pretrained=False, image_size=320).eval()
    return net, 320, 3, "efficientnet-lite0 at 320 px, random weights"


def _ood(d: int) -> OodModel:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    precision = (a @ a.T + np.eye(d)).astype(np.float32)
    spec = OodSpec("mahalanobis", d, 10.0, "benchmark", {})
    return OodModel(spec, rng.normal(size=d).astype(np.float32), precision)


def _block(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the bundled one)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    network, size, channels, name = _network(args.model)
    torch.set_num_threads(args.threads)
    plain = OrtRunner(export_onnx(network, size, channels), args.threads)
    extra = OrtRunner(export_onnx(network, size, channels, penultimate=True), args.threads)
    ood = _ood(feature_dim(network))
    x = probe_input(size, channels, n=args.batch)

    def baseline() -> object:
        return plain(x)

    def with_ood() -> object:
        out = extra.outputs(x)
        assert out.penultimate is not None
        return ood.score(out.penultimate)

    def score_only() -> object:
        return ood.score(features)

    features = extra.outputs(x).penultimate
    np.testing.assert_allclose(extra.outputs(x).logits, plain(x), rtol=1e-5, atol=1e-5)
    for fn in (baseline, with_ood, score_only):  # warm-up
        _block(fn, 2)
    times: dict[str, list[float]] = {"baseline": [], "with_ood": [], "score_only": []}
    for _ in range(args.blocks):
        times["baseline"].append(_block(baseline, args.calls))
        times["with_ood"].append(_block(with_ood, args.calls))
        times["score_only"].append(_block(score_only, args.calls))

    print(f"model: {name}; input {size}x{size}x{channels}; batch {args.batch}; "
          f"threads {args.threads}; features {feature_dim(network)}; "
          f"{args.blocks} blocks of {args.calls} calls, interleaved")  # fmt: skip
    for key, values in times.items():
        print(
            f"{key:>10}: median {statistics.median(values) * 1e3:8.3f} ms/call "
            f"(range {min(values) * 1e3:.3f}-{max(values) * 1e3:.3f})"
        )
    base = statistics.median(times["baseline"])
    ratio = (statistics.median(times["with_ood"]) - base) / base
    score_ratio = statistics.median(times["score_only"]) / base
    best = min(times["baseline"])
    best_ratio = (min(times["with_ood"]) - best) / best
    print(f"OOD cost / forward pass: {ratio * 100:+.1f} % of the medians, "
          f"{best_ratio * 100:+.1f} % of the fastest blocks (goal <= 10 %); "
          f"the Mahalanobis score alone {score_ratio * 100:.2f} % "
          f"({min(times['score_only']) / best * 100:.2f} % fastest)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
