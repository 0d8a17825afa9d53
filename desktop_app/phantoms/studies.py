"""Synthetic studies written as DICOM: the one entry point for tests, benchmarks, the bundled
samples and the training module's demo data.

- :func:`make_chest_xr` (from ``synthetic_xr``): a seeded chest radiograph array and its boxes;
- :func:`write_chest_xr`: the same as a DX or CR file (MONOCHROME1/2, RLE or deflate);
- :func:`make_ct_volume` (from ``synthetic_ct``): a seeded CT volume in HU with lesion truth;
- :func:`write_ct_series`: the same as a CT series, one file per slice.

Everything is a function of the seed: same seed, same pixels and UIDs.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from desktop_app.infra.atomicio import atomic_write_bytes
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import ConfigError
from desktop_app.phantoms.boxes import Box
from desktop_app.phantoms.chest_findings import available_findings, register_finding
from desktop_app.phantoms.chest_xr import (
    DEFAULT_FOV_MM,
    DEMO_FINDINGS,
    ChestAnnotations,
    make_chest_xr,
)
from desktop_app.phantoms.ct import (
    CtGeometry,
    Lesion,
    LesionTruth,
    ct_phantom,
    make_ct_volume,
)
from desktop_app.phantoms.dicomwrite import (
    Compression,
    Photometric,
    StudyIds,
    ct_dataset,
    dx_dataset,
    save_dataset,
    synthetic_uid,
)
from desktop_app.phantoms.seeds import derive_rng

__all__ = [
    "DEMO_FINDINGS",
    "Box",
    "ChestAnnotations",
    "CtGeometry",
    "CtSeries",
    "Lesion",
    "LesionTruth",
    "available_findings",
    "make_chest_xr",
    "make_ct_volume",
    "register_finding",
    "write_chest_xr",
    "write_ct_series",
    "write_mask_png",
]

log = logging.getLogger(__name__)


def write_chest_xr(
    path: str | Path,
    seed: int,
    *,
    rows: int = 512,
    cols: int | None = None,
    findings: Iterable[str] = (),
    acquisition_seed: int | None = None,
    patient_number: int | None = None,
    photometric: Photometric = "MONOCHROME2",
    modality: Literal["DX", "CR"] = "DX",
    compression: Compression = "none",
    fov_mm: float = DEFAULT_FOV_MM,
    finding_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Path, ChestAnnotations]:
    """Write one synthetic PA chest radiograph to ``path``; return the path and its truth.

    ``patient_number`` (default: ``seed``) names the fake patient (``PHANTOM^0042``); each
    ``acquisition_seed`` of one patient is a separate study of that patient.
    """
    image, ann = make_chest_xr(
        seed,
        rows=rows,
        cols=cols,
        findings=findings,
        acquisition_seed=acquisition_seed,
        fov_mm=fov_mm,
        finding_params=finding_params,
    )
    patient = seed if patient_number is None else patient_number
    ids = StudyIds.for_patient(patient, ("xr", ann.acquisition_seed))
    sop = synthetic_uid("xr", seed, ann.acquisition_seed, ann.rows, ann.cols, photometric, modality)
    ds = dx_dataset(
        image,
        ids=ids,
        sop_uid=sop,
        pixel_spacing_mm=ann.pixel_spacing_mm,
        photometric=photometric,
        modality=modality,
    )
    return save_dataset(ds, path, compression), ann


@dataclass(frozen=True)
class CtSeries:
    """A written CT series: ``paths[i]`` holds slice ``i`` (see ``synthetic_ct``)."""

    folder: Path
    paths: tuple[Path, ...]
    geometry: CtGeometry
    lesions: tuple[LesionTruth, ...]
    stopped: bool = False
    mask_paths: tuple[Path, ...] = ()  # per slice, when asked for (``mask_folder``)


def write_ct_series(
    folder: str | Path,
    seed: int,
    *,
    slices: int = 40,
    rows: int = 512,
    cols: int | None = None,
    pixel_spacing_mm: float | None = None,
    slice_thickness_mm: float = 2.5,
    tilt_deg: float = 0.0,
    lesions: Sequence[Lesion] | int = 0,
    noise_hu: float = 12.0,
    compression: Compression = "none",
    signed: bool = False,
    shuffle_names: bool = False,
    patient_number: int | None = None,
    mask_folder: str | Path | None = None,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> CtSeries:
    """Write a synthetic chest CT series into ``folder``, one file per slice.

    File names are ``CT0001.dcm``... in slice order, or, with ``shuffle_names``, a seeded
    permutation that sorts differently from the slices (readers must order by position).
    ``progress(done, total)`` is called after each slice; ``stop`` is checked between
    slices, and a stopped series reports ``stopped=True`` with the files written so far.
    With ``mask_folder``, each slice's lesion mask (``CtPhantom.lesion_mask``: lesion k is
    k + 1) goes there as an 8-bit PNG named after its DICOM file (``CT0001.png``).
    """
    phantom = ct_phantom(
        seed,
        slices=slices,
        rows=rows,
        cols=cols,
        pixel_spacing_mm=pixel_spacing_mm,
        slice_thickness_mm=slice_thickness_mm,
        tilt_deg=tilt_deg,
        lesions=lesions,
        noise_hu=noise_hu,
    )
    geometry = phantom.geometry
    truth = tuple(phantom.truth())
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"CT{i + 1:04d}.dcm" for i in range(slices)]
    if shuffle_names:
        order = derive_rng(seed, "ct-names").permutation(slices)
        names = [f"IM{int(k) + 1:04d}.dcm" for k in order]
    # One study per seed; each distinct set of series parameters is its own series.
    series_key = (
        "ct",
        seed,
        slices,
        geometry.rows,
        geometry.cols,
        geometry.pixel_spacing,
        slice_thickness_mm,
        tilt_deg,
        noise_hu,
        signed,
        tuple(t.lesion for t in truth),
    )
    ids = StudyIds.for_patient(seed if patient_number is None else patient_number, ("ct", seed))
    ids = replace(ids, series_uid=synthetic_uid("ct-series", *series_key))
    written: list[Path] = []
    masks: list[Path] = []
    if mask_folder is not None:
        Path(mask_folder).mkdir(parents=True, exist_ok=True)
    for i in range(slices):
        if stop_requested(stop):
            return CtSeries(out, tuple(written), geometry, truth, True, tuple(masks))
        ds = ct_dataset(
            phantom.slice(i),
            ids=ids,
            sop_uid=synthetic_uid("ct-image", *series_key, i),
            geometry=geometry.slice_geometry(i),
            instance_number=i + 1,
            signed=signed,
        )
        written.append(save_dataset(ds, out / names[i], compression))
        if mask_folder is not None:
            target = Path(mask_folder) / (Path(names[i]).stem + ".png")
            masks.append(write_mask_png(target, phantom.lesion_mask(i)))
        if progress is not None:
            progress(i + 1, slices)
    return CtSeries(out, tuple(written), geometry, truth, mask_paths=tuple(masks))


def write_mask_png(target: str | Path, mask: np.ndarray) -> Path:
    """A label mask as a lossless 8-bit grey PNG (0 background), written atomically."""
    from PIL import Image

    if mask.max(initial=0) > 255:
        raise ConfigError(f"a PNG mask holds labels up to 255, not {int(mask.max())}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(buf, format="PNG")
    target = Path(target)
    atomic_write_bytes(target, buf.getvalue())
    return target
