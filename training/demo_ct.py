"""`make-demo-data --ct`: seeded chest CT phantom series with per-slice 3-D nodule masks.

Layout under OUTDIR:

- ``series/S0000/CT0001.dcm``...: one folder per series, files named by slice index (slice
  ``i`` is ``CT{i+1:04d}.dcm``, Instance Number ``i + 1``), never by tag values;
- ``masks/S0000/CT0001.png``...: each slice's nodule labels (8-bit; nodule ``k`` of the
  series is ``k``, 0 elsewhere) from ``CtPhantom.lesion_mask``: the spheres' true 3-D extent
  cut by that slice's plane, the same cut that paints the nodule;
- ``manifest.csv``: one row per slice: ``path``, ``mask``, ``nodule`` (0/1: the slice shows a
  nodule), ``patient_id`` (one per series) and ``split`` (about 70/15/15 by series,
  stratified on whether the series has nodules, seeded). With ``max_empty_slices`` K, each
  series lists every slice that shows a nodule and only K of the others (evenly spread): the
  series stay complete on disk, and training sees a balanced set at a fraction of the cost;
- ``truth.json``: per series its parameters and each nodule's centre, radius, volume and
  slices; ``dataset.json``: counts per split and the options.

Each series draws its own phantom seed, slice count, slice thickness, field of view, noise
and 0-3 nodules (4-12 mm radius, ``random_lung_lesions``) from ``seed``. Every series keeps
the phantom writer's VOI windows (mediastinum 40/400 first, lung -600/1500), the same as the
sample series, because a model trained with ``normalization: window`` reads the first one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from desktop_app import __version__
from desktop_app.infra.atomicio import atomic_write_json, atomic_write_text
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import ConfigError
from desktop_app.phantoms.seeds import derive_rng
from desktop_app.phantoms.studies import write_ct_series
from training.demo_data import MANIFEST, SPLITS, SUMMARY, check_output_dir

log = logging.getLogger(__name__)

SERIES_DIR = "series"
MASK_DIR = "masks"
TRUTH = "truth.json"
LABEL = "nodule"
FORMAT_VERSION = 1
THICKNESSES_MM = (2.5, 3.0, 4.0, 5.0)


@dataclass(frozen=True)
class CtDemoOptions:
    """What to generate: ``n`` series of ``size`` x ``size`` slices, ``min_slices`` to
    ``max_slices`` each; a series has no nodule with ``empty_fraction``, else 1-``max_nodules``."""

    n: int = 40
    seed: int = 0
    size: int = 256
    min_slices: int = 30
    max_slices: int = 60
    max_nodules: int = 3
    empty_fraction: float = 0.2
    max_empty_slices: int | None = None  # None: every slice goes into the manifest

    def validate(self) -> None:
        if self.n < 1:
            raise ConfigError(f"--n {self.n} should be at least 1 series")
        if not 64 <= self.size <= 1024:
            raise ConfigError(f"--size {self.size} should be between 64 and 1024 pixels")
        if not 8 <= self.min_slices <= self.max_slices <= 1000:
            raise ConfigError(
                f"--slices {self.min_slices}-{self.max_slices} should satisfy "
                "8 <= first <= second <= 1000"
            )
        if not 1 <= self.max_nodules <= 20:
            raise ConfigError(f"--max-nodules {self.max_nodules} should be between 1 and 20")
        if not 0.0 <= self.empty_fraction <= 1.0:
            raise ConfigError(f"empty fraction {self.empty_fraction} should be in [0, 1]")
        if self.max_empty_slices is not None and self.max_empty_slices < 1:
            raise ConfigError(f"--max-empty-slices {self.max_empty_slices} should be at least 1")


@dataclass(frozen=True)
class SeriesPlan:
    """One series to write: its folder name, phantom parameters, patient and split."""

    index: int
    name: str
    phantom_seed: int
    slices: int
    thickness_mm: float
    pixel_spacing_mm: float
    noise_hu: float
    nodules: int
    split: str

    @property
    def patient_id(self) -> str:
        return f"CTDEMO{self.index:05d}"


@dataclass
class CtDemoDataset:
    """What was written: the manifest, the summary, and whether a stop cut it short."""

    root: Path
    manifest: Path
    summary: dict[str, Any]
    stopped: bool = False


def plan_ct_dataset(options: CtDemoOptions) -> list[SeriesPlan]:
    """Every series' parameters and split, from ``options.seed`` alone."""
    options.validate()
    rng = derive_rng(options.seed, "ct-demo")
    drawn = []
    for i in range(options.n):
        empty = bool(rng.random() < options.empty_fraction)
        drawn.append(
            (
                i,
                int(rng.integers(0, 2**31 - 1)),
                int(rng.integers(options.min_slices, options.max_slices + 1)),
                float(THICKNESSES_MM[int(rng.integers(0, len(THICKNESSES_MM)))]),
                round(float(rng.uniform(330.0, 420.0)) / options.size, 4),
                round(float(rng.uniform(6.0, 18.0)), 1),
                0 if empty else int(rng.integers(1, options.max_nodules + 1)),
            )
        )
    splits = _splits([d[6] > 0 for d in drawn], int(rng.integers(0, 2**31 - 1)))
    return [
        SeriesPlan(i, f"S{i:04d}", seed, slices, thick, spacing, noise, nodules, splits[i])
        for (i, seed, slices, thick, spacing, noise, nodules) in drawn
    ]


def _splits(positive: list[bool], seed: int) -> list[str]:
    """About 70/15/15 of the series, per stratum (with/without nodules), seeded."""
    import numpy as np

    rng = np.random.default_rng(int(seed))
    out = ["train"] * len(positive)
    for stratum in (True, False):
        members = [i for i, p in enumerate(positive) if p == stratum]
        order = [members[int(k)] for k in rng.permutation(len(members))]
        n_test = round(0.15 * len(order)) if len(positive) >= 3 else 0
        n_val = round(0.15 * len(order)) if len(positive) >= 3 else 0
        for k, i in enumerate(order):
            out[i] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return out


def make_ct_dataset(
    outdir: str | Path,
    options: CtDemoOptions,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> CtDemoDataset:
    """Write the CT demo dataset under ``outdir`` (module docstring). The manifest and the
    summaries come last, atomically: a stopped run leaves no manifest (``stopped=True``)."""
    root = Path(outdir)
    check_output_dir(root, overwrite)
    plans = plan_ct_dataset(options)
    if overwrite and root.is_dir():
        for name in (MANIFEST, SUMMARY, TRUTH):
            (root / name).unlink(missing_ok=True)
    total = sum(p.slices for p in plans)
    done = 0
    rows: list[list[object]] = []
    truth: list[dict[str, Any]] = []
    for plan in plans:
        if stop_requested(stop):
            return CtDemoDataset(root, root / MANIFEST, {}, stopped=True)
        offset = done

        def step(k: int, _n: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + k, total)

        series = write_ct_series(
            root / SERIES_DIR / plan.name,
            plan.phantom_seed,
            slices=plan.slices,
            rows=options.size,
            pixel_spacing_mm=plan.pixel_spacing_mm,
            slice_thickness_mm=plan.thickness_mm,
            lesions=plan.nodules,
            noise_hu=plan.noise_hu,
            patient_number=plan.index,
            mask_folder=root / MASK_DIR / plan.name,
            progress=step,
            stop=stop,
        )
        if series.stopped:
            return CtDemoDataset(root, root / MANIFEST, {}, stopped=True)
        done += plan.slices
        shown = {i for t in series.lesions for i in range(t.first_slice, t.last_slice + 1)}
        listed = _listed_slices(plan.slices, shown, options.max_empty_slices)
        for i, (image, mask) in enumerate(zip(series.paths, series.mask_paths, strict=True)):
            if i not in listed:
                continue
            rows.append(
                [
                    image.relative_to(root).as_posix(),
                    mask.relative_to(root).as_posix(),
                    int(i in shown),
                    plan.patient_id,
                    plan.split,
                ]
            )
        truth.append(_series_truth(plan, series))
    manifest_text = _manifest_csv(rows)
    atomic_write_text(root / MANIFEST, manifest_text)
    atomic_write_json(root / TRUTH, {"series": truth})
    summary = _summary(plans, rows, options, manifest_text)
    atomic_write_json(root / SUMMARY, summary)
    return CtDemoDataset(root, root / MANIFEST, summary)


def _listed_slices(slices: int, shown: set[int], max_empty: int | None) -> set[int]:
    """The slices a series lists in the manifest: all, or every nodule slice and ``max_empty``
    of the others, evenly spread from the first to the last."""
    empty = [i for i in range(slices) if i not in shown]
    if max_empty is None or len(empty) <= max_empty:
        return set(range(slices))
    picks = {empty[round(k * (len(empty) - 1) / max(1, max_empty - 1))] for k in range(max_empty)}
    return shown | picks


def _series_truth(plan: SeriesPlan, series: Any) -> dict[str, Any]:
    return {
        "series": plan.name,
        "folder": f"{SERIES_DIR}/{plan.name}",
        "patient_id": plan.patient_id,
        "split": plan.split,
        "slices": plan.slices,
        "slice_thickness_mm": plan.thickness_mm,
        "pixel_spacing_mm": series.geometry.pixel_spacing[0],
        "noise_hu": plan.noise_hu,
        "nodules": [
            {
                "value": k,
                "center_mm": list(t.lesion.center_mm),
                "radius_mm": t.lesion.radius_mm,
                "volume_mm3": round(t.lesion.volume_mm3, 1),
                "first_slice": t.first_slice,
                "last_slice": t.last_slice,
                "largest_slice": t.largest_slice,
            }
            for k, t in enumerate(series.lesions, start=1)
        ],
    }


def _manifest_csv(rows: list[list[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "mask", LABEL, "patient_id", "split"])
    writer.writerows(rows)
    return buf.getvalue()


def _summary(
    plans: list[SeriesPlan], rows: list[list[object]], options: CtDemoOptions, manifest: str
) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    for split in SPLITS:
        chosen = [r for r in rows if r[4] == split]
        splits[split] = {
            "images": len(chosen),
            "patients": sum(p.split == split for p in plans),
            "positives": {LABEL: sum(int(str(r[2])) for r in chosen)},
            "nodules": sum(p.nodules for p in plans if p.split == split),
        }
    return {
        "format": "radassist-demo-data-ct",
        "format_version": FORMAT_VERSION,
        "radassist_version": __version__,
        "synthetic": True,
        "description": "Synthetic chest CT phantoms with nodule masks, not patient data.",
        "manifest": MANIFEST,
        "manifest_sha256": hashlib.sha256(manifest.encode("utf-8")).hexdigest(),
        "images": len(rows),
        "patients": len(plans),
        "series": len(plans),
        "labels": [LABEL],
        "positives": {LABEL: sum(int(str(r[2])) for r in rows)},
        "nodules": sum(p.nodules for p in plans),
        "series_without_nodules": sum(p.nodules == 0 for p in plans),
        "splits": splits,
        "masks": MASK_DIR,
        "mask_values": {LABEL: "k for the series' nodule k (1-based); 0 background"},
        "options": asdict(options),
    }
