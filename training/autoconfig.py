"""Self-configuration: fit's choice of every key the config leaves open, with its reason.

From the dataset fingerprint (``training.fingerprint``), the config and the device, for each
key that is None (or ``class_weights: auto``); an explicit value always wins:

- ``preprocessing.image_size``: the 5th-percentile annotated box keeps
  ``recipe.min_finding_pixels`` pixels at input size, rounded up to a multiple of 32, never
  below the architecture's native size nor above ``MAX_IMAGE_SIZE`` or the images' own median
  longer side; within ``recipe.time_budget_minutes`` by an estimate of seconds per image;
  ``DEFAULT_IMAGE_SIZE`` without boxes;
- ``optim.batch_size``: ``TARGET_BATCH_SIZE`` where the activation memory fits (free RAM on
  the CPU, ``torch.cuda.mem_get_info`` on CUDA), at most a quarter of the train split, in
  ``[MIN_BATCH_SIZE, MAX_BATCH_SIZE]``;
- ``optim.class_weights``: "prevalence" when a label's train prevalence is outside
  ``[IMBALANCE, 1 - IMBALANCE]``, else "none";
- ``augment.strength``: ``augment_strength(train images, smallest finding)``;
- ``optim.lr``: an LR range test (Smith 2015, "Cyclical Learning Rates for Training Neural
  Networks"): ``LR_TEST_STEPS`` steps of exponentially growing LR on a copy of the model, the
  LR at the smoothed loss's minimum / 10, clamped; 1e-3 when the test is off or unreliable.

The choices go into DIR/config.yaml (a comment line above each chosen key) and DIR/recipe.json;
a resumed run reads them back from recipe.json instead of choosing again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from desktop_app.infra.atomicio import atomic_write_json
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.cpus import available_cpus
from desktop_app.model.networks import get_arch
from training.config import STATIC_LR, TrainConfig
from training.fingerprint import smallest_finding

log = logging.getLogger(__name__)

RECIPE = "recipe.json"
RECIPE_VERSION = 1

# --- input size
DEFAULT_IMAGE_SIZE = 256  # without annotated boxes (the lead sets it from experiments)
MAX_IMAGE_SIZE = 512
SIZE_STEP = 32
# Core-seconds per training image (forward + backward + augmentation) of each architecture at
# 224 px on the CPU: Lite0 trained 17-20 images/s on 2 cores here (benchmarks/README.md,
# bench_fit_throughput); the others scaled by their FLOPs. Rough: only the time budget uses it.
CPU_CORE_SECONDS_224 = {
    "efficientnet-lite0": 0.11,
    "efficientnet-lite1": 0.17,
    "efficientnet-lite2": 0.24,
    "densenet121": 0.33,
    "resnet18": 0.10,
    "resnet34": 0.20,
    "resnet50": 0.29,
}
CUDA_SPEEDUP = 60.0  # one data-centre GPU against one CPU core, for the same estimate
MPS_SPEEDUP = 8.0

# --- batch size
TARGET_BATCH_SIZE = 16
MIN_BATCH_SIZE = 4
MAX_BATCH_SIZE = 32
# MB of activations (kept for backward) + gradients per training image at 224 px, float32;
# rough figures for these networks' published memory at batch 32, scaled by (S / 224)^2.
ACTIVATION_MB_224 = {
    "efficientnet-lite0": 110.0,
    "efficientnet-lite1": 150.0,
    "efficientnet-lite2": 200.0,
    "densenet121": 250.0,
    "resnet18": 45.0,
    "resnet34": 70.0,
    "resnet50": 160.0,
}
AMP_MEMORY_FACTOR = 0.6  # float16 autocast keeps most activations in half precision
MEMORY_FRACTION = 0.5  # of the free memory that training may plan to use
MODEL_OVERHEAD_MB = 400.0  # weights, AdamW state, gradients, the framework's workspace

# --- class weights
IMBALANCE = 0.2

# --- augmentation strength
STRENGTH_AT_1000 = 0.5  # the strength at 1000 train images
STRENGTH_PER_DECADE = 0.15  # stronger by this for 10x fewer images, weaker for 10x more
STRENGTH_RANGE = (0.25, 0.8)  # before the small-finding factor
SMALL_FINDING = 0.1  # boxes (min side / longer image side) below this soften augmentation
MIN_STRENGTH = 0.1

# --- LR range test
LR_TEST_MIN, LR_TEST_MAX = 1e-5, 1e-1
LR_TEST_STEPS = 40
# The test runs its batches at most this size (downsampled): the LR that suits a pretrained
# network barely depends on the input size, and at 512 px the test would cost minutes on a CPU.
LR_TEST_MAX_SIZE = 256
LR_TEST_MIN_TRAIN_IMAGES = 100  # fewer: 40 steps cycle over the same images (memorised)
LR_TEST_SMOOTHING = 0.8  # exponential moving average of the loss, bias-corrected
LR_TEST_DIVERGED = 4.0  # stop once the smoothed loss is this many times its minimum
# ... but not before this many steps: with class weights (pos_weight ~ 14 at 5 % prevalence) the
# first batches' losses swing by more than that whether or not the LR is too high.
LR_TEST_MIN_STEPS = 10
LR_TEST_MIN_DROP = 0.03  # the smoothed minimum must be this much below the start
LR_CLAMP = (5e-4, 2e-3)  # around AdamW's 1e-3, which fine-tunes pretrained CNNs well
FALLBACK_LR = STATIC_LR


@dataclass(frozen=True)
class Choice:
    """One key fit filled in: its value and why."""

    key: str  # "section.key"
    value: Any
    reason: str
    recorded: bool = False  # read back from the resumed run's recipe.json

    def line(self) -> str:
        return f"{self.key} = {self.value}: {self.reason}"


@dataclass
class Recipe:
    """What fit chose (and, after an LR range test, its curve and time)."""

    choices: list[Choice] = field(default_factory=list)
    lr_test: dict[str, Any] | None = None

    def add(self, key: str, value: Any, reason: str) -> None:
        self.choices = [c for c in self.choices if c.key != key] + [Choice(key, value, reason)]
        log.info("chosen: %s", self.choices[-1].line())

    def comments(self) -> dict[str, str]:
        return {c.key: f"chosen by fit: {c.reason}" for c in self.choices}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECIPE_VERSION,
            "choices": {c.key: {"value": c.value, "reason": c.reason} for c in self.choices},
            "lr_range_test": self.lr_test,
        }


def set_key(config: TrainConfig, key: str, value: Any) -> TrainConfig:
    section, name = key.split(".")
    return replace(config, **{section: replace(getattr(config, section), **{name: value})})


def get_key(config: TrainConfig, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


# --------------------------------------------------------------------------- input size


def _round_up(value: float, step: int = SIZE_STEP) -> int:
    return int(math.ceil(value / step) * step)


def seconds_per_image(arch: str, size: int, device: torch.device, threads: int) -> float:
    """Estimated seconds per training image at ``size`` px on ``device`` (rough constants)."""
    core = CPU_CORE_SECONDS_224.get(arch, 0.2) * (size / 224.0) ** 2
    if device.type == "cuda":
        return core / CUDA_SPEEDUP
    if device.type == "mps":
        return core / MPS_SPEEDUP
    return core / max(1, threads)


def choose_image_size(
    config: TrainConfig,
    fingerprint: Mapping[str, Any],
    device: torch.device,
    threads: int,
) -> tuple[int, str]:
    """(input size, reason); see the module docstring."""
    arch = get_arch(config.model.arch)
    native = arch.default_image_size
    longer = (fingerprint["image"].get("longer_side") or {}).get("median")
    cap = max(native, min(MAX_IMAGE_SIZE, _round_up(longer))) if longer else MAX_IMAGE_SIZE
    # Compute grows with the pixels: at most max_slowdown x the native size's training time.
    slowest = max(
        native, int(native * math.sqrt(config.recipe.max_slowdown)) // SIZE_STEP * SIZE_STEP
    )
    cap = min(cap, slowest)
    k = config.recipe.min_finding_pixels
    smallest = smallest_finding(fingerprint)
    if smallest is None:
        size = min(max(DEFAULT_IMAGE_SIZE, native), cap)
        reason = f"no annotated boxes: the default {DEFAULT_IMAGE_SIZE} px"
        if size != DEFAULT_IMAGE_SIZE:
            reason += f", kept within {native}..{cap} px (native size, median image side)"
    else:
        label, p5, count = smallest
        need = _round_up(k / p5)
        size = min(max(need, native), cap)
        reason = (
            f"{size} px keeps the smallest {label} boxes >= {p5 * size:.0f} px (5th pct "
            f"{p5:.3f} of the image side, {count} boxes; {k} px wanted)"
        )
        if need > cap:
            reason += (
                f"; capped at {cap} px (max {MAX_IMAGE_SIZE}, the median image side, and "
                f"recipe.max_slowdown {config.recipe.max_slowdown:g}x the native {native} px's time)"
            )
        elif need < native:
            reason += f"; not below the architecture's native {native} px"
    budget = config.recipe.time_budget_minutes
    if budget is not None:
        images = fingerprint["splits"]["train"]["images"] * config.optim.epochs
        estimate = seconds_per_image(arch.name, size, device, threads) * images
        before = size
        while estimate > budget * 60 and size - SIZE_STEP >= native:
            size -= SIZE_STEP
            estimate = seconds_per_image(arch.name, size, device, threads) * images
        if size != before:
            reason += (
                f"; {size} px to fit the {budget:g}-minute budget (estimate "
                f"{estimate / 60:.0f} min)"
            )
            if smallest is not None:
                reason += f", the smallest boxes then keep {smallest[1] * size:.0f} px"
        if estimate > budget * 60:
            reason += (
                f"; the estimate ({estimate / 60:.0f} min) is over the {budget:g}-minute budget "
                f"even at the native {native} px: lower optim.epochs"
            )
    return size, reason


# --------------------------------------------------------------------------- batch size


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory for training: CUDA's free memory, else the system's available RAM."""
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def choose_batch_size(
    config: TrainConfig,
    image_size: int,
    train_images: int,
    total_images: int,
    device: torch.device,
    world_size: int = 1,
    free_bytes: int | None = None,
) -> tuple[int, str]:
    """(images per batch and process, reason); see the module docstring."""
    arch = get_arch(config.model.arch).name
    per_image = ACTIVATION_MB_224.get(arch, 200.0) * (image_size / 224.0) ** 2 * 2**20
    amp = config.optim.amp and device.type == "cuda"
    if amp:
        per_image *= AMP_MEMORY_FACTOR
    free = free_bytes if free_bytes is not None else free_memory_bytes(device)
    parts = []
    fits = MAX_BATCH_SIZE
    if free is not None:
        usable = free * MEMORY_FRACTION - MODEL_OVERHEAD_MB * 2**20
        if device.type != "cuda" and config.data.cache == "memory":
            bytes_per = 2 if config.data.cache_dtype == "float16" else 4
            usable -= total_images * image_size * image_size * bytes_per  # the decoded cache
        fits = max(0, int(usable // per_image))
        where = "GPU" if device.type == "cuda" else "RAM"
        parts.append(
            f"{fits} images fit in half the free {where} ({free / 2**30:.1f} GiB, about "
            f"{per_image / 2**20:.0f} MB each at {image_size} px{' with AMP' if amp else ''})"
        )
    quarter = max(1, train_images // (4 * max(1, world_size)))
    batch = min(TARGET_BATCH_SIZE, fits, quarter)
    batch = max(MIN_BATCH_SIZE, min(MAX_BATCH_SIZE, batch))
    if batch == TARGET_BATCH_SIZE:
        head = f"the target {TARGET_BATCH_SIZE}"
    elif quarter < min(TARGET_BATCH_SIZE, fits):
        head = f"a quarter of the {train_images} train images"
    elif fits < MIN_BATCH_SIZE:
        head = f"the minimum {MIN_BATCH_SIZE}, though memory is short"
    else:
        head = "what memory allows"
    return batch, "; ".join([head, *parts])


# --------------------------------------------------------------------------- weights, strength


def choose_class_weights(train_prevalence: Mapping[str, float | None]) -> tuple[str, str]:
    known = {k: v for k, v in train_prevalence.items() if v is not None}
    skewed = {k: v for k, v in known.items() if v < IMBALANCE or v > 1.0 - IMBALANCE}
    if skewed:
        label, p = min(skewed.items(), key=lambda kv: min(kv[1], 1 - kv[1]))
        return "prevalence", (
            f"{label} is {p:.1%} positive in the train split (outside {IMBALANCE:.0%}.."
            f"{1 - IMBALANCE:.0%}): BCE pos_weight = negatives / positives"
        )
    return (
        "none",
        f"every label is {IMBALANCE:.0%}..{1 - IMBALANCE:.0%} positive in the train split",
    )


def augment_strength(train_images: int, smallest_fraction: float | None) -> float:
    """Fewer images -> stronger, small findings -> weaker: ``STRENGTH_AT_1000`` at 1000 train
    images, +-``STRENGTH_PER_DECADE`` per tenfold fewer/more (within ``STRENGTH_RANGE``), times
    ``fraction / SMALL_FINDING`` (at least 0.5) when the 5th-percentile box is smaller than
    ``SMALL_FINDING`` of the image side."""
    n = max(1, train_images)
    s = STRENGTH_AT_1000 - STRENGTH_PER_DECADE * math.log10(n / 1000.0)
    s = min(STRENGTH_RANGE[1], max(STRENGTH_RANGE[0], s))
    if smallest_fraction is not None and smallest_fraction < SMALL_FINDING:
        s *= max(0.5, smallest_fraction / SMALL_FINDING)
    return round(max(MIN_STRENGTH, s), 2)


def choose_strength(fingerprint: Mapping[str, Any]) -> tuple[float, str]:
    n = int(fingerprint["splits"]["train"]["images"])
    smallest = smallest_finding(fingerprint)
    value = augment_strength(n, smallest[1] if smallest else None)
    reason = f"{n} train images"
    if smallest is not None and smallest[1] < SMALL_FINDING:
        reason += f", small {smallest[0]} boxes (5th pct {smallest[1]:.3f} of the side): weaker"
    return value, reason


# --------------------------------------------------------------------------- the plan


def choose_without_images(
    config: TrainConfig,
    fingerprint: Mapping[str, Any],
    device: torch.device,
    *,
    threads: int | None = None,
    world_size: int = 1,
    recipe: Recipe | None = None,
    free_bytes: int | None = None,
) -> tuple[TrainConfig, Recipe]:
    """Fill the open keys that need no pixels (all but ``optim.lr``)."""
    recipe = recipe or Recipe()
    threads = threads or torch.get_num_threads() or available_cpus()
    if config.preprocessing.image_size is None:
        size, why = choose_image_size(config, fingerprint, device, threads)
        config = set_key(config, "preprocessing.image_size", size)
        recipe.add("preprocessing.image_size", size, why)
    if config.optim.batch_size is None:
        train = int(fingerprint["splits"]["train"]["images"])
        batch, why = choose_batch_size(
            config,
            int(config.preprocess_spec().image_size),
            train,
            int(fingerprint["images"]),
            device,
            world_size,
            free_bytes,
        )
        config = set_key(config, "optim.batch_size", batch)
        recipe.add("optim.batch_size", batch, why)
    if config.optim.class_weights == "auto":
        weights, why = choose_class_weights(fingerprint["prevalence"]["train"])
        config = set_key(config, "optim.class_weights", weights)
        recipe.add("optim.class_weights", weights, why)
    if config.augment.strength is None:
        strength, why = choose_strength(fingerprint)
        config = set_key(config, "augment.strength", strength)
        recipe.add("augment.strength", strength, why)
    return config, recipe


def lr_without_test(config: TrainConfig, train_images: int) -> str | None:
    """Why no LR range test runs (None: it runs)."""
    if not config.recipe.lr_range_test:
        return f"recipe.lr_range_test is off: {FALLBACK_LR:g}"
    if train_images < LR_TEST_MIN_TRAIN_IMAGES:
        return (
            f"{train_images} train images are too few for an LR range test "
            f"(< {LR_TEST_MIN_TRAIN_IMAGES}): {FALLBACK_LR:g}"
        )
    return None


# --------------------------------------------------------------------------- LR range test


@dataclass
class LrTest:
    lrs: list[float]
    losses: list[float]  # raw per step
    smoothed: list[float]
    lr: float | None  # None: unreliable
    reason: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "lrs": [float(f"{v:.4g}") for v in self.lrs],
            "losses": [round(v, 5) if math.isfinite(v) else None for v in self.losses],
            "smoothed": [round(v, 5) if math.isfinite(v) else None for v in self.smoothed],
            "lr": self.lr,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
        }


def smooth(losses: Sequence[float], beta: float = LR_TEST_SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average (NaN stays NaN from there on)."""
    out, avg = [], 0.0
    for k, v in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**k))
    return out


def pick_lr(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float | None, str]:
    """The LR at the smoothed loss's minimum / 10 (clamped), or None with the reason the
    test is unreliable (no finite loss, or the loss never fell)."""
    s = smooth(losses)
    finite = [k for k, v in enumerate(s) if math.isfinite(v)]
    if not finite or finite[0] != 0:
        return None, "the loss was not finite"
    if len(finite) < 5:
        return None, f"the test stopped after {len(finite)} steps"
    k_min = min(finite, key=lambda k: s[k])
    if s[k_min] > s[0] * (1 - LR_TEST_MIN_DROP) or k_min == 0:
        return None, f"the loss never fell (start {s[0]:.3f}, minimum {s[k_min]:.3f})"
    at_min = lrs[k_min]
    slopes = np.diff(np.asarray(s[: k_min + 1])) / np.diff(np.log(np.asarray(lrs[: k_min + 1])))
    steepest = lrs[int(np.argmin(slopes)) + 1] if len(slopes) else at_min
    lr = min(LR_CLAMP[1], max(LR_CLAMP[0], at_min / 10))
    reason = (
        f"LR range test: smoothed loss lowest at {at_min:.2g} ({s[0]:.3f} -> {s[k_min]:.3f}), "
        f"steepest at {steepest:.2g}; {at_min:.2g} / 10"
    )
    if lr != at_min / 10:
        reason += f", clamped to {LR_CLAMP[0]:g}..{LR_CLAMP[1]:g}"
    return float(f"{lr:.3g}"), reason


def lr_range_test(
    config: TrainConfig,
    units: torch.Tensor,
    label_matrix: np.ndarray,
    train_idx: Sequence[int],
    device: torch.device,
    *,
    steps: int = LR_TEST_STEPS,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> LrTest:
    """Smith's LR range test on a fresh copy of the model (``training.optim``'s builders): one
    batch per step over a seeded subset of the train split, the LR of every parameter group
    multiplied from ``LR_TEST_MIN`` to ``LR_TEST_MAX`` exponentially; no augmentation.
    Raises ``training.dataset.Stopped`` when ``stop`` is set."""
    from training.dataset import Stopped, UnitImageDataset
    from training.optim import build_model, make_optimizer
    from training.seeding import seed_everything

    start = time.perf_counter()
    cfg = set_key(config, "optim.lr", LR_TEST_MIN)
    batch = int(cfg.optim.batch_size or 8)
    seed_everything(cfg.seed)
    train = np.asarray(list(train_idx))
    y_train = label_matrix[train]
    known = np.isfinite(y_train)  # a reader may leave a label unknown (NaN): masked out
    positives = np.where(known, y_train, 0.0).sum(axis=0)
    counts = np.maximum(known.sum(axis=0), 1)
    prevalence = positives / counts
    model = build_model(cfg, label_matrix.shape[1], prevalence).to(device)
    channels_last = cfg.optim.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = make_optimizer(model, cfg)
    base = [float(g["lr"]) for g in optimizer.param_groups]
    amp = cfg.optim.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    pos_weight = None
    if cfg.optim.class_weights == "prevalence":
        negatives = counts - positives
        w = np.where((positives > 0) & (negatives > 0), negatives / np.maximum(positives, 1), 1.0)
        pos_weight = torch.as_tensor(w, dtype=torch.float32, device=device)
    criterion = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    rng = np.random.default_rng([cfg.seed, 0x1B7E])
    need = steps * batch
    order = np.concatenate([rng.permutation(train) for _ in range(math.ceil(need / len(train)))])
    ds = UnitImageDataset(units, label_matrix, order[:need].tolist(), cfg.preprocess_spec())
    lrs: list[float] = []
    losses: list[float] = []
    best = math.inf
    for step in range(steps):
        if stop_requested(stop):
            raise Stopped
        factor = (LR_TEST_MAX / LR_TEST_MIN) ** (step / max(1, steps - 1))
        for group, lr0 in zip(optimizer.param_groups, base, strict=True):
            group["lr"] = lr0 * factor
        items = [ds[k] for k in range(step * batch, (step + 1) * batch)]
        x = torch.stack([it[0] for it in items]).to(device)
        y = torch.stack([it[1] for it in items]).to(device)
        if x.shape[-1] > LR_TEST_MAX_SIZE:
            x = torch.nn.functional.interpolate(
                x, size=(LR_TEST_MAX_SIZE, LR_TEST_MAX_SIZE), mode="bilinear", antialias=True
            )
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", enabled=amp):
            logits = model(x)
        mask = torch.isfinite(y)
        per = criterion(logits.float(), torch.where(mask, y, torch.zeros_like(y)))
        loss = (per * mask).sum() / mask.sum().clamp(min=1)
        value = float(loss.item())
        lrs.append(LR_TEST_MIN * factor)
        losses.append(value)
        if progress is not None:
            progress(step + 1, steps)
        current = smooth(losses)[-1]
        if not math.isfinite(current) or (
            step + 1 >= LR_TEST_MIN_STEPS and current > LR_TEST_DIVERGED * best
        ):
            break
        best = min(best, current)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.optim.grad_clip_norm > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip_norm)
        scaler.step(optimizer)
        scaler.update()
    lr, reason = pick_lr(lrs, losses)
    seconds = time.perf_counter() - start
    del model, optimizer
    return LrTest(lrs, losses, smooth(losses), lr, reason, seconds)


def choose_lr(
    config: TrainConfig,
    recipe: Recipe,
    run_test: Callable[[], LrTest] | None,
    train_images: int,
) -> TrainConfig:
    """Fill ``optim.lr`` when open: the range test's pick (``run_test``), or the fallback."""
    if config.optim.lr is not None:
        return config
    why_not = lr_without_test(config, train_images)
    if why_not is not None or run_test is None:
        recipe.add("optim.lr", FALLBACK_LR, why_not or f"{FALLBACK_LR:g}")
        return set_key(config, "optim.lr", FALLBACK_LR)
    test = run_test()
    recipe.lr_test = test.to_dict()
    if test.lr is None:
        reason = f"LR range test unreliable ({test.reason}): {FALLBACK_LR:g}"
        value = FALLBACK_LR
    else:
        reason, value = test.reason, test.lr
    recipe.add("optim.lr", value, f"{reason} ({test.seconds:.0f} s, {len(test.lrs)} steps)")
    return set_key(config, "optim.lr", value)


# --------------------------------------------------------------------------- records


def read_recipe(out_dir: Path) -> Recipe | None:
    """DIR/recipe.json of an earlier run (None when absent or unreadable)."""
    path = Path(out_dir) / RECIPE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        choices = [Choice(str(k), v["value"], str(v["reason"])) for k, v in raw["choices"].items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Recipe(choices, raw.get("lr_range_test"))


def apply_recorded(config: TrainConfig, recorded: Recipe) -> tuple[TrainConfig, Recipe]:
    """The earlier run's choices for the keys this config leaves open; a key the config sets
    to the recorded value keeps its recorded reason (resume from DIR/config.yaml)."""
    kept = Recipe(lr_test=recorded.lr_test)
    open_keys = set(config.open_keys())
    for choice in recorded.choices:
        if choice.key in open_keys:
            config = set_key(config, choice.key, choice.value)
            kept.choices.append(replace(choice, recorded=True))
        elif get_key(config, choice.key) == choice.value:
            kept.choices.append(replace(choice, recorded=True))
    return config, kept


def write_recipe(recipe: Recipe, out_dir: Path) -> Path:
    return atomic_write_json(Path(out_dir) / RECIPE, recipe.to_dict())
