"""The synthetic demo dataset: seeded chest-radiograph phantoms, a manifest and a summary.

``make_demo_dataset(outdir, DemoDataOptions(n=500))`` writes

- ``images/img_00001.dcm`` … (or ``.png``): one PA chest phantom each, from
  ``desktop_app.phantoms.studies``;
- ``manifest.csv`` in the training manifest format (DESIGN.md "Training data"): ``path``
  (relative to the CSV), one 0/1 column per finding, ``patient_id``, ``split``, and
  ``x,y,width,height`` with ``box_label``: one row per image; when several findings are
  present the box is the first positive one in label order and ``box_label`` names it;
- ``boxes.csv``: every box (``path,label,x,y,width,height``), for localisation scoring;
- ``masks/img_00001.png`` …: one 8-bit label mask per image, its size, 0 where no finding
  is drawn and ``k`` where the ``k``-th finding (1-based, in ``--findings`` order) is, for the
  findings with an outline (nodule, effusion; the earlier finding wins where two overlap); the
  manifest's last column ``mask`` names it (an all-zero mask is a negative image);
- ``dataset.json``: counts per split and label, the options, and the manifest's sha256.

Findings are drawn per patient (independently, ``prevalence`` each), so a patient's
follow-up image shows the same findings with a new acquisition: splits must be per patient,
and they are (about 70/15/15, stratified by label combination, seeded).

PNG output keeps the 12-bit detector values in a 16-bit grey PNG (same numbers as the
DICOM pixel data); MONOCHROME1 and RLE apply to DICOM only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from desktop_app import __version__
from desktop_app.infra.atomicio import atomic_path, atomic_write_json, atomic_write_text
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.cpus import available_cpus
from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.phantoms.chest_xr import ChestAnnotations, make_chest_xr
from desktop_app.phantoms.seeds import derive_rng
from desktop_app.phantoms.studies import (
    DEMO_FINDINGS,
    available_findings,
    write_chest_xr,
    write_mask_png,
)

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
IMAGE_DIR = "images"
MASK_DIR = "masks"
MANIFEST = "manifest.csv"
BOXES = "boxes.csv"
SUMMARY = "dataset.json"
FORMAT_VERSION = 1
#: Findings whose renderer draws an outline (``FindingLayer.mask``); others leave 0 in masks.
MASKED_FINDINGS = frozenset({"nodule", "effusion", "faint_nodule"})


@dataclass(frozen=True)
class DemoDataOptions:
    """What to generate. Fractions are of images (MONOCHROME1, RLE, non-square) or of
    patients (``repeat_fraction``: patients with two images)."""

    n: int = 500
    seed: int = 0
    size: int = 512
    image_format: Literal["dicom", "png"] = "dicom"
    findings: tuple[str, ...] = DEMO_FINDINGS
    prevalence: float = 0.35
    repeat_fraction: float = 0.25
    monochrome1_fraction: float = 0.0
    rle_fraction: float = 0.0
    nonsquare_fraction: float = 0.0
    split_fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    workers: int = 1

    def validate(self) -> None:
        if self.n < 1:
            raise ConfigError(f"--n {self.n} should be at least 1")
        if self.seed < 0:
            raise ConfigError(f"--seed {self.seed} should be >= 0")
        if not 64 <= self.size <= 4096:
            raise ConfigError(f"--size {self.size} should be between 64 and 4096 pixels")
        if self.image_format not in ("dicom", "png"):
            raise ConfigError(f"--format {self.image_format!r} should be dicom or png")
        if not self.findings:
            raise ConfigError("--findings is empty", hint="name at least one finding")
        if len(set(self.findings)) != len(self.findings):
            raise ConfigError(f"--findings {','.join(self.findings)} names a finding twice")
        unknown = [f for f in self.findings if f not in available_findings()]
        if unknown:
            raise ConfigError(
                f"unknown finding {unknown[0]!r}",
                hint=f"available: {', '.join(available_findings())}",
            )
        for name in (
            "prevalence",
            "repeat_fraction",
            "monochrome1_fraction",
            "rle_fraction",
            "nonsquare_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} {value} should be between 0 and 1")
        fr = self.split_fractions
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6 or fr[0] <= 0:
            raise ConfigError(f"split fractions {fr} should be 3 non-negative numbers summing to 1")
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers} should be at least 1")


@dataclass(frozen=True)
class ImagePlan:
    """One image to draw: everything is decided before any pixel is made."""

    index: int
    path: str  # relative to the dataset root, POSIX separators
    patient_number: int
    patient_seed: int
    acquisition_seed: int
    findings: tuple[str, ...]
    rows: int
    cols: int
    photometric: Literal["MONOCHROME2", "MONOCHROME1"]
    compression: Literal["none", "rle"]
    split: str

    @property
    def patient_id(self) -> str:
        return f"PH{self.patient_number:06d}"  # the DICOM PatientID written into the file

    @property
    def mask_path(self) -> str:
        """The image's label mask, relative to the dataset root."""
        return f"{MASK_DIR}/{Path(self.path).stem}.png"


@dataclass(frozen=True)
class ImageResult:
    index: int
    boxes: dict[str, tuple[int, int, int, int]]


@dataclass
class DemoDataset:
    root: Path
    manifest: Path
    summary: dict[str, Any]
    plans: list[ImagePlan] = field(default_factory=list)
    boxes: dict[int, dict[str, tuple[int, int, int, int]]] = field(default_factory=dict)
    stopped: bool = False


def _assign_splits(
    patients: Sequence[tuple[int, tuple[str, ...]]],
    fractions: tuple[float, float, float],
    rng: np.random.Generator,
    findings: Sequence[str],
) -> dict[int, str]:
    """Per-patient splits, stratified by label combination.

    Patients are ordered by label combination (shuffled within each), then dealt out so that
    every prefix of the order matches the fractions as closely as possible; each
    combination therefore spreads over the splits in proportion.
    """
    keys = rng.random(len(patients))
    order = sorted(
        range(len(patients)),
        key=lambda i: (tuple(f in patients[i][1] for f in findings), keys[i]),
    )
    counts = [0, 0, 0]
    out: dict[int, str] = {}
    for position, i in enumerate(order, start=1):
        deficit = [fractions[s] * position - counts[s] for s in range(3)]
        s = int(np.argmax(deficit))
        counts[s] += 1
        out[patients[i][0]] = SPLITS[s]
    return out


def plan_demo_dataset(options: DemoDataOptions) -> list[ImagePlan]:
    """Decide every image's patient, findings, size, photometric, compression and split."""
    options.validate()
    rng = derive_rng(options.seed, "demo-plan")
    ext = "dcm" if options.image_format == "dicom" else "png"
    patients: list[tuple[int, tuple[str, ...]]] = []
    images: list[tuple[int, int]] = []  # (patient number, image number within patient)
    patient_seeds: dict[int, int] = {}
    number = 0
    while len(images) < options.n:
        number += 1
        patient_seeds[number] = int(rng.integers(0, 2**31 - 1))
        present = tuple(f for f in options.findings if rng.random() < options.prevalence)
        patients.append((number, present))
        count = 2 if rng.random() < options.repeat_fraction else 1
        for k in range(min(count, options.n - len(images))):
            images.append((number, k))
    findings_of = dict(patients)
    splits = _assign_splits(patients, options.split_fractions, rng, options.findings)
    plans = []
    for index, (patient, _) in enumerate(images):
        rows = cols = options.size
        if rng.random() < options.nonsquare_fraction:
            ratio = rng.uniform(0.78, 0.92) if rng.random() < 0.7 else rng.uniform(1.08, 1.25)
            cols = max(32, round(options.size * ratio))
        photometric: Literal["MONOCHROME2", "MONOCHROME1"] = (
            "MONOCHROME1" if rng.random() < options.monochrome1_fraction else "MONOCHROME2"
        )
        compression: Literal["none", "rle"] = (
            "rle" if rng.random() < options.rle_fraction else "none"
        )
        plans.append(
            ImagePlan(
                index=index,
                path=f"{IMAGE_DIR}/img_{index + 1:05d}.{ext}",
                patient_number=patient,
                patient_seed=patient_seeds[patient],
                acquisition_seed=int(
                    derive_rng(options.seed, "demo-acquisition", index).integers(0, 2**31 - 1)
                ),
                findings=findings_of[patient],
                rows=rows,
                cols=cols,
                photometric=photometric,
                compression=compression,
                split=splits[patient],
            )
        )
    return plans


def render_image(
    root: str, plan: ImagePlan, image_format: str, labels: tuple[str, ...] = DEMO_FINDINGS
) -> ImageResult:
    """Draw and write one planned image and its label mask (runs in a worker process too);
    ``labels`` orders the mask values (the dataset's findings)."""
    target = Path(root) / plan.path
    if image_format == "dicom":
        _, ann = write_chest_xr(
            target,
            plan.patient_seed,
            rows=plan.rows,
            cols=plan.cols,
            findings=plan.findings,
            acquisition_seed=plan.acquisition_seed,
            patient_number=plan.patient_number,
            photometric=plan.photometric,
            compression=plan.compression,
        )
    else:
        image, ann = make_chest_xr(
            plan.patient_seed,
            rows=plan.rows,
            cols=plan.cols,
            findings=plan.findings,
            acquisition_seed=plan.acquisition_seed,
        )
        _write_png16(target, image)
    write_mask_png(Path(root) / plan.mask_path, label_mask(ann, labels))
    return ImageResult(plan.index, {k: b.as_tuple() for k, b in ann.boxes.items()})


def label_mask(ann: ChestAnnotations, labels: Sequence[str]) -> np.ndarray:
    """The findings' masks as one label image: ``k`` for the ``k``-th of ``labels`` (1-based),
    painted last to first so that the earlier label wins where two overlap."""
    out = np.zeros((ann.rows, ann.cols), dtype=np.uint8)
    for value, name in reversed(list(enumerate(labels, start=1))):
        mask = ann.masks.get(name)
        if mask is not None:
            out[mask] = value
    return out


def _write_png16(target: Path, image: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint16)).save(buf, format="PNG")
    with atomic_path(target) as tmp:
        tmp.write_bytes(buf.getvalue())


def check_output_dir(outdir: Path, overwrite: bool) -> None:
    """Refuse a non-empty OUTDIR unless ``overwrite``; refuse a file where a folder should be."""
    if outdir.exists() and not outdir.is_dir():
        raise DataError("exists and is not a folder", outdir, "choose a folder path for OUTDIR")
    if outdir.is_dir() and any(outdir.iterdir()) and not overwrite:
        raise DataError(
            "exists and is not empty", outdir, "choose a new folder, or pass --overwrite"
        )


def _clear_previous(outdir: Path) -> None:
    """With --overwrite: remove only what an earlier run of this command wrote."""
    for name in (MANIFEST, BOXES, SUMMARY):
        (outdir / name).unlink(missing_ok=True)
    for folder in (outdir / IMAGE_DIR, outdir / MASK_DIR):
        if folder.is_dir():
            for p in folder.iterdir():
                if p.is_file() and p.name.startswith("img_") and p.suffix in (".dcm", ".png"):
                    p.unlink()


def make_demo_dataset(
    outdir: str | Path,
    options: DemoDataOptions,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> DemoDataset:
    """Write the demo dataset under ``outdir``; see the module docstring for the layout.

    The manifest and summary are written last (atomically), so an interrupted run never
    leaves a manifest that lists missing images. A stopped run returns ``stopped=True``.
    """
    root = Path(outdir)
    check_output_dir(root, overwrite)
    plans = plan_demo_dataset(options)
    if overwrite and root.is_dir():
        _clear_previous(root)
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (root / MASK_DIR).mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, tuple[int, int, int, int]]] = {}
    total = len(plans)
    workers = min(options.workers, total)
    stopped = False
    if workers <= 1:
        for plan in plans:
            if stop_requested(stop):
                stopped = True
                break
            results[plan.index] = render_image(
                str(root), plan, options.image_format, options.findings
            ).boxes
            if progress is not None:
                progress(len(results), total)
    else:
        stopped = _render_parallel(root, plans, options, workers, results, progress, stop)
    dataset = DemoDataset(root, root / MANIFEST, {}, plans, results, stopped)
    if stopped:
        log.info("demo data stopped after %d of %d images", len(results), total)
        return dataset
    manifest_text = _manifest_csv(plans, results, options.findings)
    atomic_write_text(root / MANIFEST, manifest_text)
    atomic_write_text(root / BOXES, _boxes_csv(plans, results))
    dataset.summary = _summary(plans, results, options, manifest_text)
    atomic_write_json(root / SUMMARY, dataset.summary)
    return dataset


def _render_parallel(
    root: Path,
    plans: list[ImagePlan],
    options: DemoDataOptions,
    workers: int,
    results: dict[int, dict[str, tuple[int, int, int, int]]],
    progress: Progress | None,
    stop: StopFlag,
) -> bool:
    # spawn: the same behaviour on every OS, and no fork of a parent that holds threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: list[Future[ImageResult]] = [
            pool.submit(render_image, str(root), plan, options.image_format, options.findings)
            for plan in plans
        ]
        for future in pending:
            if stop_requested(stop):
                for f in pending:
                    f.cancel()
                return True
            result = future.result()
            results[result.index] = result.boxes
            if progress is not None:
                progress(len(results), len(plans))
    return False


def _manifest_csv(
    plans: list[ImagePlan],
    results: dict[int, dict[str, tuple[int, int, int, int]]],
    findings: Sequence[str],
) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["path", *findings, "patient_id", "split", "x", "y", "width", "height", "box_label", "mask"]
    )
    for plan in plans:
        boxes = results[plan.index]
        first = next((f for f in findings if f in boxes), None)
        box: Sequence[object] = boxes[first] if first is not None else ("", "", "", "")
        writer.writerow(
            [
                plan.path,
                *(int(f in plan.findings) for f in findings),
                plan.patient_id,
                plan.split,
                *box,
                first or "",
                plan.mask_path,
            ]
        )
    return buf.getvalue()


def _boxes_csv(
    plans: list[ImagePlan], results: dict[int, dict[str, tuple[int, int, int, int]]]
) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label", "x", "y", "width", "height"])
    for plan in plans:
        for label, box in results[plan.index].items():
            writer.writerow([plan.path, label, *box])
    return buf.getvalue()


def _summary(
    plans: list[ImagePlan],
    results: dict[int, dict[str, tuple[int, int, int, int]]],
    options: DemoDataOptions,
    manifest_text: str,
) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    for split in SPLITS:
        chosen = [p for p in plans if p.split == split]
        splits[split] = {
            "images": len(chosen),
            "patients": len({p.patient_number for p in chosen}),
            "positives": {f: sum(f in p.findings for p in chosen) for f in options.findings},
        }
    return {
        "format": "radassist-demo-data",
        "format_version": FORMAT_VERSION,
        "radassist_version": __version__,
        "synthetic": True,
        "description": "Synthetic PA chest-radiograph phantoms for demonstration, not patient data.",
        "manifest": MANIFEST,
        "manifest_sha256": hashlib.sha256(manifest_text.encode("utf-8")).hexdigest(),
        "images": len(plans),
        "patients": len({p.patient_number for p in plans}),
        "labels": list(options.findings),
        "positives": {f: sum(f in p.findings for p in plans) for f in options.findings},
        "splits": splits,
        "monochrome1_images": sum(p.photometric == "MONOCHROME1" for p in plans),
        "rle_images": sum(p.compression == "rle" for p in plans),
        "nonsquare_images": sum(p.rows != p.cols for p in plans),
        "boxes": sum(len(results[p.index]) for p in plans),
        "masks": MASK_DIR,
        "mask_values": {
            name: value
            for value, name in enumerate(options.findings, start=1)
            if name in MASKED_FINDINGS
        },
        "options": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()
        },
    }


def default_workers() -> int:
    """Processes worth starting: rendering is CPU-bound numpy, about one image per 0.1 s."""
    return min(available_cpus(), 4)


def read_manifest_rows(path: str | Path) -> list[dict[str, str]]:
    """The manifest's rows as dicts (a small helper for tests and scripts)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def summary_text(summary: dict[str, Any]) -> str:
    """A few human lines about a written dataset."""
    lines = [
        f"{summary['images']} images of {summary['patients']} patients; positives: "
        + ", ".join(f"{k} {v}" for k, v in summary["positives"].items())
    ]
    for split, info in summary["splits"].items():
        lines.append(
            f"  {split:5s} {info['images']:5d} images {info['patients']:5d} patients  "
            + json.dumps(info["positives"])
        )
    return "\n".join(lines)
