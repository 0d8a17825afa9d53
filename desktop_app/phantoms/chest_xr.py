"""Seeded frontal (PA) chest-radiograph phantoms with optional findings and their boxes.

``make_chest_xr(seed)`` returns ``(image, annotations)`` the way MONAI's
``create_test_image_2d`` does: the same seed always gives the same pixels. The image is a
12-bit ``uint16`` array in MONOCHROME2 sense (bright = more attenuation, PS3.3 C.7.6.3.1.2),
built from analytic shapes in normalised body coordinates (``chest_body``): body outline and
soft tissue, two lungs, heart and mediastinum, trachea, spine, posterior and anterior ribs,
clavicles, diaphragm domes, pulmonary vessels, smooth exposure variation and
signal-dependent noise (``chest_anatomy``).

Findings are drawn by renderers kept in a registry by name (``chest_findings``), so a new
finding is one function. Each finding comes with a ground-truth box in pixels (``boxes``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from desktop_app.infra.errors import ConfigError
from desktop_app.phantoms.boxes import Box, box_of
from desktop_app.phantoms.chest_anatomy import draw_anatomy, expose
from desktop_app.phantoms.chest_body import ChestCanvas, sample_acquisition, sample_anatomy
from desktop_app.phantoms.chest_findings import finding_spec
from desktop_app.phantoms.seeds import derive_rng

log = logging.getLogger(__name__)

DEFAULT_SIZE = 512
DEFAULT_FOV_MM = 430.0  # a 17-inch detector; at 2560 px this is 0.168 mm per pixel
DEMO_FINDINGS: tuple[str, ...] = ("nodule", "effusion", "cardiomegaly")


@dataclass(frozen=True)
class ChestAnnotations:
    """Ground truth for one phantom: boxes in pixels, one per present finding."""

    seed: int
    acquisition_seed: int
    rows: int
    cols: int
    pixel_spacing_mm: float
    cardiothoracic_ratio: float
    boxes: dict[str, Box]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per finding with an outline (nodule, effusion): the pixels it occupies (bool, rows x cols).
    masks: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    @property
    def findings(self) -> tuple[str, ...]:
        return tuple(self.boxes)

    def labels(self, names: Iterable[str] = DEMO_FINDINGS) -> dict[str, int]:
        """0/1 per finding name, for a manifest row."""
        return {n: int(n in self.boxes) for n in names}


def make_chest_xr(
    seed: int,
    *,
    rows: int = DEFAULT_SIZE,
    cols: int | None = None,
    findings: Iterable[str] = (),
    acquisition_seed: int | None = None,
    fov_mm: float = DEFAULT_FOV_MM,
    finding_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[np.ndarray, ChestAnnotations]:
    """A frontal chest radiograph phantom and its ground truth.

    ``seed`` fixes the patient (body and finding placement); ``acquisition_seed`` (default:
    ``seed``) fixes positioning, exposure and noise, so one patient can be imaged twice.
    ``rows`` x ``cols`` may be non-square; ``fov_mm`` is the field across the shorter side,
    so the pixel spacing is ``fov_mm / min(rows, cols)`` and finding sizes in mm stay true.
    Returns a ``uint16`` array with values in 0..4095 (MONOCHROME2) and the annotations.
    """
    cols = rows if cols is None else cols
    for label, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int | np.integer) or not 32 <= int(value) <= 8192:
            raise ConfigError(f"`{label}` {value!r} should be an integer between 32 and 8192")
    if not fov_mm > 0:
        raise ConfigError(f"`fov_mm` {fov_mm!r} should be positive")
    names = list(dict.fromkeys(findings))
    specs = [finding_spec(n) for n in names]
    params = dict(finding_params or {})
    for key in params:
        if key not in names:
            raise ConfigError(f"finding_params names {key!r}, which is not in findings {names}")
    acq_seed = seed if acquisition_seed is None else acquisition_seed
    anatomy = sample_anatomy(derive_rng(seed, "anatomy"))
    finding_rngs = {spec.name: derive_rng(seed, "finding", spec.name) for spec in specs}
    for spec in specs:
        if spec.adjust_anatomy is not None:
            anatomy = spec.adjust_anatomy(
                anatomy, finding_rngs[spec.name], params.get(spec.name, {})
            )
    acq = sample_acquisition(derive_rng(acq_seed, "acquisition"))
    cv = ChestCanvas(int(rows), int(cols), anatomy, acq, fov_mm / min(rows, cols))

    attenuation = draw_anatomy(cv, derive_rng(seed, "texture"), acq)
    boxes: dict[str, Box] = {}
    masks: dict[str, np.ndarray] = {}
    for spec in specs:
        layer = spec.render(cv, finding_rngs[spec.name], params.get(spec.name, {}))
        if layer.attenuation is not None:
            attenuation += layer.attenuation
        box = box_of(np.abs(layer.region))
        if box is None:
            raise ConfigError(f"finding {spec.name!r} drew nothing inside the image")
        boxes[spec.name] = box
        if layer.mask is not None:
            masks[spec.name] = layer.mask
    image = expose(attenuation, acq, derive_rng(acq_seed, "noise"))
    notes = (
        {"cardiomegaly": {"ctr": anatomy.cardiothoracic_ratio}} if "cardiomegaly" in boxes else {}
    )
    details = {**cv.finding_info, **notes}
    ann = ChestAnnotations(
        seed=int(seed),
        acquisition_seed=int(acq_seed),
        rows=int(rows),
        cols=int(cols),
        pixel_spacing_mm=float(cv.pixel_spacing_mm),
        cardiothoracic_ratio=anatomy.cardiothoracic_ratio,
        boxes=boxes,
        details=details,
        masks=masks,
    )
    return image, ann
