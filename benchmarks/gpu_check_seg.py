"""GPU check for segmentation: the CT sample through the PyTorch backend on CUDA against ONNX
Runtime on the CPU (the app's default path), with the same model file.

Checks that the GPU run stayed on the GPU (no CPU fallback), found the same lesions (count,
each volume within 1 %, mask Dice ≥ 0.99; cuDNN and TF32 may move a few border pixels) and
times the network per slice on both (one warm-up run each, then the median of ``--repeat``).
Prints one line, PASS or FAIL, and exits 0 or 1 (2: no model or series). ``--device cpu``
runs the same comparison with eager PyTorch on the CPU (a smoke test on a machine without
a GPU).

    python benchmarks/gpu_check_seg.py [--model FILE] [--series DIR] [--device cuda]
        [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "resources" / "models" / "radassist-ct-nodule-lite0.safetensors"
SAMPLE = ROOT / "resources" / "sample" / "ct_phantom"
VOLUME_RTOL = 0.01
MIN_DICE = 0.99


def load_series(folder: Path) -> Any:
    from desktop_app.studies.index import index_paths
    from desktop_app.studies.series import assemble
    from desktop_app.studies.volume import SeriesVolume

    (_, _, series), *_ = list(index_paths([str(folder)]).iter_series())
    return SeriesVolume(assemble(series).stacks[0], keep=True)


def timed(engine: Any, volume: Any, repeat: int) -> tuple[Any, float]:
    """The last result and the median network seconds per slice (after one warm-up run)."""
    engine.run(volume)
    runs = [engine.run(volume) for _ in range(repeat)]
    per_slice = [r.timings.network / max(1, len(r.slices)) for r in runs]
    return runs[-1], statistics.median(per_slice)


def compare(got: Any, ref: Any) -> list[str]:
    """What differs between two segmentation results (empty: the same lesions)."""
    import numpy as np

    problems = []
    a, b = got.lesions.lesions, ref.lesions.lesions
    if len(a) != len(b):
        problems.append(f"{len(a)} lesions against {len(b)}")
    for x, y in zip(a, b, strict=False):
        if abs(x.volume_mm3 - y.volume_mm3) > VOLUME_RTOL * y.volume_mm3:
            problems.append(f"lesion {y.id}: {x.volume_mm3:.0f} mm³ against {y.volume_mm3:.0f}")
    m, n = got.mask > 0, ref.mask > 0
    dice = 2.0 * float((m & n).sum()) / max(1, int(m.sum() + n.sum()))
    if (m.any() or n.any()) and dice < MIN_DICE:
        problems.append(f"mask Dice {dice:.4f} < {MIN_DICE}")
    if not np.array_equal(got.mask.shape, ref.mask.shape):
        problems.append(f"mask {got.mask.shape} against {ref.mask.shape}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--series", type=Path, default=SAMPLE)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (ONNX Runtime)")
    args = parser.parse_args(argv)
    for what, path in (("model", args.model), ("series", args.series)):
        if not path.exists():
            print(f"no {what} at {path}: pass --{what} (the CT model: make model-ct)")
            return 2

    from desktop_app.inference.engine import InferenceEngine

    volume = load_series(args.series)
    cpu = InferenceEngine(args.model, device="cpu", backend="onnxruntime", threads=args.threads)
    ref, cpu_s = timed(cpu, volume, args.repeat)
    dev = InferenceEngine(args.model, device=args.device, backend="torch", threads=args.threads)
    got, dev_s = timed(dev, volume, args.repeat)
    problems = compare(got, ref)
    wanted = args.device.split(":")[0]
    if not got.device.startswith(wanted) or got.warnings:
        problems.insert(0, f"ran on {got.device} ({'; '.join(got.warnings) or 'no warning'})")
    verdict = "FAIL" if problems else "PASS"
    volumes = ", ".join(f"{x.volume_mm3:.0f}" for x in ref.lesions.lesions[:4]) or "-"
    print(
        f"{verdict}: {dev.backend} on {got.device} vs {cpu.backend} on the CPU, "
        f"{len(got.slices)} slices: {len(ref.lesions)} lesion(s) ({volumes} mm³); network "
        f"{dev_s * 1e3:.1f} vs {cpu_s * 1e3:.1f} ms per slice ({cpu_s / max(dev_s, 1e-9):.1f}x)"
        + (f"; {'; '.join(problems)}" if problems else "")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
