"""Training throughput: ``radassist-train fit``'s loop against a MONAI-tutorial-style loop.

One run, the same process, the same images, network and batch size; ratios, no assertions.

For each image size (``--sizes``, default 512 and 2048: the demo generator's size and a real
chest radiograph's, which is 2000-3000 px) the benchmark writes ``--n`` demo phantoms as DICOM
(``training.demo_data``, seed 0) into a temporary folder and trains one epoch over them with
each loop, ``--rounds`` times, the loops interleaved (their order rotates each round), and
reports the medians in images per second, wall and CPU (this process, all threads).

- **tutorial** (the baseline, as in MONAI's classification tutorials): a ``Dataset`` whose
  transform chain runs on every item of every epoch: ``LoadImage(reader="PydicomReader")``,
  ``EnsureChannelFirst``, ``ScaleIntensity``, ``Resize`` to the network's input,
  ``RandRotate`` (±15°, p 0.5), ``RandZoom`` (0.9-1.1, p 0.5) and ``RepeatChannel(3)``; a plain
  ``DataLoader`` (shuffle, in-process), ``AdamW`` over all parameters, BCE with logits,
  NCHW tensors. No cache, no channels_last.
- **tutorial, no augmentation**: the same without the two random transforms, for reference:
  it does less work per image than either ``fit`` row.
- **fit**: ``training.loop.train_model`` for one epoch, exactly as ``fit`` runs it with the
  defaults: images decoded and preprocessed once (``training.dataset.load_units``, timed
  separately as "decode once"), each epoch's images augmented from that cache (affine,
  contrast, intensity, noise), channels_last, AdamW with four parameter groups, the warm-up +
  cosine schedule and gradient clipping.
- **fit, NCHW**: the same with ``optim.channels_last=false``, to show what the memory format
  gives and what the cache gives.

Every loop trains a fresh pretrained EfficientNet-Lite0 (``training.optim.build_model``, the
same network and head) at ``--image-size`` (224) with batch ``--batch-size`` (8) on
``--threads`` CPU threads (default: every usable core). The per-epoch ratio is the steady
state; the "12 epochs" ratio also charges ``fit`` its one-off decode, over the default 12
epochs. Goal: fit >= 2x the tutorial loop.

    python benchmarks/bench_fit_throughput.py [--sizes 512,2048] [--n 96] [--rounds 3]
        [--image-size 224] [--batch-size 8] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop_app.infra.atomicio import atomic_write_json  # noqa: E402
from desktop_app.infra.cpus import available_cpus  # noqa: E402
from training.config import TrainConfig, apply_overrides, parse_set_option  # noqa: E402
from training.data import Dataset, read_dataset  # noqa: E402
from training.dataset import load_units  # noqa: E402
from training.demo_data import DemoDataOptions, default_workers, make_demo_dataset  # noqa: E402
from training.loop import train_model  # noqa: E402
from training.optim import build_model  # noqa: E402
from training.runtime import Runtime  # noqa: E402

DEFAULT_EPOCHS = 12  # training/defaults.yaml optim.epochs: the horizon the decode is spread over


@dataclass
class Epoch:
    images: int
    wall: float
    cpu: float


def config_for(image_size: int, batch_size: int, *extra: str) -> TrainConfig:
    texts = [
        f"preprocessing.image_size={image_size}",
        f"optim.batch_size={batch_size}",
        "output.tensorboard=false",
        "output.plots=false",
        *extra,
    ]
    return apply_overrides(TrainConfig(), [parse_set_option(t) for t in texts]).resolved()


# --------------------------------------------------------------------------- the baseline


def tutorial_transform(image_size: int, augment: bool) -> Callable[[str], Any]:
    from monai.transforms import (
        Compose,
        EnsureChannelFirst,
        LoadImage,
        RandRotate,
        RandZoom,
        RepeatChannel,
        Resize,
        ScaleIntensity,
    )

    # Resize before the random transforms, as the tutorials that resize do (e.g. MONAI's
    # densenet_training_array): rotating and zooming the full-size image would make the
    # baseline slower than a careful user's
    steps: list[Any] = [
        LoadImage(image_only=True, reader="PydicomReader"),
        EnsureChannelFirst(),
        ScaleIntensity(),
        Resize((image_size, image_size)),
    ]
    if augment:
        steps += [
            RandRotate(range_x=math.pi / 12, prob=0.5, keep_size=True),
            RandZoom(min_zoom=0.9, max_zoom=1.1, prob=0.5),
        ]
    steps += [RepeatChannel(3)]
    chain = Compose(steps)
    chain.set_random_state(seed=0)
    return chain  # type: ignore[no-any-return]


class TutorialDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Decodes and transforms every item on every access, as the tutorials do."""

    def __init__(self, data: Dataset, indices: list[int], transform: Callable[[str], Any]) -> None:
        self.records = [data.records[i] for i in indices]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.records[i]
        image = torch.as_tensor(self.transform(str(r.path))).as_subclass(torch.Tensor)
        return image.float(), torch.tensor(r.labels, dtype=torch.float32)


def tutorial_epoch(
    config: TrainConfig, data: Dataset, indices: list[int], augment: bool, seed: int
) -> Epoch:
    torch.manual_seed(seed)
    model = build_model(config, len(data.labels))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = torch.nn.BCEWithLogitsLoss()
    ds = TutorialDataset(
        data, indices, tutorial_transform(config.preprocess_spec().image_size, augment)
    )
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=config.optim.batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
    )
    c0, t0 = time.process_time(), time.perf_counter()
    n = 0
    for x, y in loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        n += len(x)
    return Epoch(n, time.perf_counter() - t0, time.process_time() - c0)


# --------------------------------------------------------------------------- fit's loop


def fit_epoch(config: TrainConfig, data: Dataset, units: torch.Tensor, indices: list[int]) -> Epoch:
    result = train_model(
        config, data, units, indices, [], None, Runtime(torch.device("cpu")), fixed_epochs=1
    )
    entry = result.history[0]
    return Epoch(int(entry["images"]), float(entry["seconds"]), float(entry["cpu_seconds"]))


# --------------------------------------------------------------------------- per-image costs


def per_image_input_cost(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    """Wall and CPU seconds per image of building the network inputs alone (no network)."""
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def run_size(size: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    folder = root / f"demo_{size}"
    t = time.perf_counter()
    make_demo_dataset(
        folder, DemoDataOptions(n=args.n, seed=0, size=size, workers=default_workers())
    )
    print(f"  wrote {args.n} phantoms of {size}² in {time.perf_counter() - t:.0f} s", flush=True)
    data = read_dataset(folder / "manifest.csv")
    indices = list(range(len(data.records)))
    fit_cfg = config_for(args.image_size, args.batch_size)
    nchw_cfg = config_for(args.image_size, args.batch_size, "optim.channels_last=false")
    spec = fit_cfg.preprocess_spec()

    c0, t0 = time.process_time(), time.perf_counter()
    units = load_units(data.records, spec, workers=max(1, min(4, available_cpus())))
    decode = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}

    # what building one network input costs, without the network
    from training.augment import build_augmenter
    from training.dataset import UnitImageDataset

    fit_ds = UnitImageDataset(
        units,
        data.label_matrix(),
        indices,
        spec,
        build_augmenter(fit_cfg.augment, spec.image_size),
        fit_cfg.seed,
    )
    tut_ds = TutorialDataset(data, indices, tutorial_transform(spec.image_size, True))
    inputs = {
        "tutorial": per_image_input_cost(tut_ds.__getitem__, len(tut_ds)),
        "fit": per_image_input_cost(fit_ds.__getitem__, len(fit_ds)),
    }

    loops: dict[str, Callable[[int, list[int]], Epoch]] = {
        "tutorial": lambda r, idx: tutorial_epoch(fit_cfg, data, idx, True, r),
        "tutorial, no augmentation": lambda r, idx: tutorial_epoch(fit_cfg, data, idx, False, r),
        "fit": lambda r, idx: fit_epoch(fit_cfg, data, units, idx),
        "fit, NCHW": lambda r, idx: fit_epoch(nchw_cfg, data, units, idx),
    }
    # warm-up, not timed: the first steps of a process pay one-off costs (oneDNN kernels for
    # each memory format, allocator growth, lazy imports)
    for loop in loops.values():
        loop(0, indices[: 3 * args.batch_size])
    runs: dict[str, list[Epoch]] = {k: [] for k in loops}
    names = list(loops)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            runs[name].append(loops[name](r, indices))
        print(
            f"  round {r + 1}/{args.rounds}: "
            + ", ".join(f"{k} {runs[k][-1].images / runs[k][-1].wall:.1f}" for k in names)
            + " img/s",
            flush=True,
        )
    rates: dict[str, dict[str, float]] = {}
    for name, epochs in runs.items():
        rates[name] = {
            "wall_img_s": statistics.median(e.images / e.wall for e in epochs),
            "cpu_img_s": statistics.median(e.images / e.cpu for e in epochs),
            "images": epochs[0].images,
        }
    base = rates["tutorial"]
    n_img = rates["fit"]["images"]
    base_12 = DEFAULT_EPOCHS * n_img / base["wall_img_s"]
    fit_12 = (
        decode["wall"] * n_img / len(data.records)
        + DEFAULT_EPOCHS * n_img / rates["fit"]["wall_img_s"]
    )
    return {
        "size": size,
        "images": len(data.records),
        "decode_once": decode,
        "input_per_image": {k: {"wall": v[0], "cpu": v[1]} for k, v in inputs.items()},
        "rates": rates,
        "ratio_wall": {k: v["wall_img_s"] / base["wall_img_s"] for k, v in rates.items()},
        "ratio_cpu": {k: v["cpu_img_s"] / base["cpu_img_s"] for k, v in rates.items()},
        "ratio_12_epochs_with_decode": base_12 / fit_12,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    print()
    print("| images | loop | img/s wall | img/s CPU | vs tutorial: wall (CPU) |")
    print("| --- | --- | ---: | ---: | --- |")
    for res in results:
        for name, rate in res["rates"].items():
            print(
                f"| {res['size']}² | {name} | {rate['wall_img_s']:.1f} | {rate['cpu_img_s']:.1f} "
                f"| {res['ratio_wall'][name]:.2f}x ({res['ratio_cpu'][name]:.2f}x) |"
            )
    print()
    for res in results:
        d = res["decode_once"]
        inp = res["input_per_image"]
        print(
            f"{res['size']}²: fit's decode once {d['wall']:.1f} s wall for {res['images']} images "
            f"({1000 * d['wall'] / res['images']:.0f} ms each); network input per image without "
            f"the network: tutorial {1000 * inp['tutorial']['wall']:.0f} ms, fit "
            f"{1000 * inp['fit']['wall']:.0f} ms; over {DEFAULT_EPOCHS} epochs with the decode "
            f"charged: {res['ratio_12_epochs_with_decode']:.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,2048", help="demo image sizes (comma-separated)")
    parser.add_argument("--n", type=int, default=96, help="images per size (one epoch)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--image-size", type=int, default=224, help="network input side")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # MONAI's PydicomReader warns about a missing GPU decoder and the missing geometry tags of
    # a radiograph on every file; neither matters here.
    warnings.filterwarnings("ignore", module="monai")
    warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    threads = args.threads or available_cpus()
    torch.set_num_threads(threads)
    load = os.getloadavg()[0]
    print(
        f"fit vs tutorial loop: EfficientNet-Lite0 (pretrained) at {args.image_size}², batch "
        f"{args.batch_size}, {args.n} images/epoch, {threads} threads, {args.rounds} rounds; "
        f"load average {load:.2f}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="radassist-bench-fit-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"== {size}² images", flush=True)
            results.append(run_size(size, args, Path(tmp)))
    print_table(results)
    print(f"load average before {load:.2f}, after {os.getloadavg()[0]:.2f}")
    if args.json is not None:
        atomic_write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
