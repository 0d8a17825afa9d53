"""The check before running: a series' headers against the model's intended input, and the
verdict (:class:`InputCheck`) that every output of the run carries.

A model file says which series it was made for (``IntendedInput``: modalities, body parts, view
positions, projection radiograph or cross-sectional slice, minimum matrix; PS3.3 C.7.3.1
General Series, C.8.11.7 DX Positioning). :func:`check_input` compares a series' headers
(:class:`SeriesHeaders`, from the studies index; one header read of the first instance adds
what the index does not keep: Body Part Examined, View Position, Image Type) with it:

- a known mismatch (modality; body part or view position when the tag is there; a CT/MR/PT/NM
  series or a stack of cross-sectional slices for a projection model, or the reverse; a matrix
  smaller than ``min_matrix``) makes the series *not applicable*, with one human reason each
  ("This model is for chest CR/DX radiographs; this series is CT");
- a missing tag (no Body Part Examined, a PNG/JPEG without any header) is a warning reason: the
  series stays applicable, and the reason says what could not be checked.

The engine refuses a not-applicable series (:class:`InputNotApplicable`) unless it is forced,
and then marks every output ``forced``. The out-of-distribution half of the verdict
(``in_distribution``, ``ood_score``, ``ood_threshold``) is filled in by the run itself
(``InferenceEngine``), from the features of the same forward pass.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import uid as dicom_uid

from desktop_app.infra.errors import InferenceError, RadAssistError
from desktop_app.infra.safetext import escape_control
from desktop_app.model.applicability import IntendedInput, OodModel, projection_modality
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import SeriesVolume

log = logging.getLogger(__name__)

CROSS_SECTIONAL_MODALITIES = frozenset({"CT", "MR", "PT", "NM", "US", "OCT"})
"""Modalities whose images are slices through the body, never projection radiographs."""

_SLICE_SOP_CLASSES = frozenset(
    {
        dicom_uid.CTImageStorage,
        dicom_uid.EnhancedCTImageStorage,
        dicom_uid.LegacyConvertedEnhancedCTImageStorage,
        dicom_uid.MRImageStorage,
        dicom_uid.EnhancedMRImageStorage,
        dicom_uid.LegacyConvertedEnhancedMRImageStorage,
        dicom_uid.PositronEmissionTomographyImageStorage,
        dicom_uid.EnhancedPETImageStorage,
        dicom_uid.LegacyConvertedEnhancedPETImageStorage,
        dicom_uid.NuclearMedicineImageStorage,
    }
)
_PROJECTION_SOP_CLASSES = frozenset(
    {
        dicom_uid.ComputedRadiographyImageStorage,
        dicom_uid.DigitalXRayImageStorageForPresentation,
        dicom_uid.DigitalXRayImageStorageForProcessing,
        dicom_uid.DigitalMammographyXRayImageStorageForPresentation,
        dicom_uid.DigitalMammographyXRayImageStorageForProcessing,
        dicom_uid.XRayAngiographicImageStorage,
        dicom_uid.XRayRadiofluoroscopicImageStorage,
    }
)
# Image Type value 3 (PS3.3 C.8.2.1.1.1 for CT): a reconstructed slice, or a localizer (scout),
# which is a projection even in a CT series.
_SLICE_IMAGE_TYPES = frozenset({"AXIAL", "REFORMATTED", "VOLUME", "MPR", "MIP", "PROJECTION IMAGE"})
_PROJECTION_IMAGE_TYPES = frozenset({"LOCALIZER"})
_BODY_PART_ALIASES = {"THORAX": "CHEST", "LUNG": "CHEST", "LUNGS": "CHEST"}
"""Body Part Examined values seen in the wild for the defined term CHEST (PS3.16 Annex L)."""

_KIND_WORDS = {"projection": "projection radiographs", "slice": "cross-sectional slices"}


@dataclass(frozen=True)
class SeriesHeaders:
    """What the check reads of a series: the tags (``None`` where absent, so that "missing" and
    "empty" are told apart only where it matters), the matrix and how many images it has.

    ``file_kind``: "dicom", "png", "jpeg" or "image" (arrays without any header). ``volume``:
    the stack's slices have positions along a normal (``SliceStack.slice_spacing``), i.e. it
    is a cross-sectional volume, not a set of radiographs."""

    file_kind: str = "dicom"
    modality: str | None = None
    body_part: str | None = None
    view_position: str | None = None
    image_type: tuple[str, ...] | None = None
    sop_class_uid: str = ""
    rows: int = 0
    columns: int = 0
    images: int = 1
    volume: bool = False

    @property
    def image_kind(self) -> str:
        """ "projection", "slice" or "" (unknown) from the modality, SOP class, Image Type and
        the stack's geometry."""
        kinds = (self.image_type or ())[2:3]
        if kinds and kinds[0] in _PROJECTION_IMAGE_TYPES:
            return "projection"
        modality = (self.modality or "").upper()
        if modality in CROSS_SECTIONAL_MODALITIES or self.sop_class_uid in _SLICE_SOP_CLASSES:
            return "slice"
        if kinds and kinds[0] in _SLICE_IMAGE_TYPES:
            return "slice"
        if self.images > 1 and self.volume:
            return "slice"
        if projection_modality(modality) or self.sop_class_uid in _PROJECTION_SOP_CLASSES:
            return "projection"
        return ""


def _code(value: Any) -> str | None:
    """A CS value normalised (upper case, stripped; control characters escaped and at most 64
    characters: it goes into messages, SRs and PDFs); None when absent or empty."""
    if value is None:
        return None
    text = escape_control(str(value).strip().upper(), limit=64)
    return text or None


def _header_tags(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Body Part Examined, View Position and Image Type of one DICOM file (the index keeps
    none of the three); empty when the header can't be read (the run will say why)."""
    from desktop_app.dicom.dicomfile import quiet_pydicom, read_header

    try:
        with quiet_pydicom():
            ds = read_header(path)
            raw = ds.get("ImageType")
            image_type = (
                None
                if raw is None
                else (str(raw).strip().upper(),)
                if isinstance(raw, str)
                else tuple(str(v).strip().upper() for v in raw)
            )
            return {
                "body_part": _code(ds.get("BodyPartExamined")),
                "view_position": _code(ds.get("ViewPosition")),
                "image_type": image_type,
                "modality": _code(ds.get("Modality")),
                "sop_class_uid": str(ds.get("SOPClassUID", "") or ""),
                "rows": int(ds.get("Rows", 0) or 0),
                "columns": int(ds.get("Columns", 0) or 0),
                "images": max(1, int(ds.get("NumberOfFrames", 1) or 1)),
            }
    except (RadAssistError, ValueError, TypeError, AttributeError) as err:
        log.info("input check: header unreadable (%s)", type(err).__name__)
        return {}


def headers_of_stack(stack: SliceStack, *, read_tags: bool = True) -> SeriesHeaders:
    """A stack's headers: modality, SOP class, matrix and slice count from the studies index;
    Body Part Examined, View Position and Image Type from the first instance's header
    (``read_tags``; the index does not keep them)."""
    first = stack.slices[0].instance
    tags = _header_tags(first.path) if read_tags else {}
    return SeriesHeaders(
        file_kind="dicom",
        modality=_code(first.modality),
        body_part=tags.get("body_part"),
        view_position=tags.get("view_position"),
        image_type=tags.get("image_type"),
        sop_class_uid=first.sop_class_uid,
        rows=stack.rows,
        columns=stack.columns,
        images=len(stack),
        volume=stack.slice_spacing is not None,
    )


def headers_of(source: Any) -> SeriesHeaders:
    """The headers of what ``InferenceEngine.run`` takes (see ``sources.Source``)."""
    if isinstance(source, SeriesVolume):
        return headers_of_stack(source.stack)
    if isinstance(source, SliceStack):
        return headers_of_stack(source)
    if isinstance(source, str | os.PathLike):
        from desktop_app.model.imageio import image_kind

        path = Path(source)
        try:
            kind = image_kind(path)
        except RadAssistError:
            return SeriesHeaders(file_kind="dicom")  # the run names the problem
        if kind != "dicom":
            return SeriesHeaders(file_kind=kind)
        tags = _header_tags(path)
        return SeriesHeaders(file_kind="dicom", **tags)
    items = list(source) if isinstance(source, Sequence | np.ndarray) else []
    shapes = [np.shape(getattr(im, "values", im)) for im in items]
    rows = min((int(s[0]) for s in shapes if len(s) >= 2), default=0)
    cols = min((int(s[1]) for s in shapes if len(s) >= 2), default=0)
    return SeriesHeaders(file_kind="image", rows=rows, columns=cols, images=len(items))


@dataclass(frozen=True)
class InputCheck:
    """The verdict on one series, as findings.json's ``input_check`` (docs/findings-json-schema.md).

    ``applicable``: the series matches the model's intended input (missing tags do not make it
    inapplicable). ``reasons``: one human line per mismatch (first) and per tag that could not
    be checked. ``forced``: the run went ahead although the series is not applicable ("Run
    anyway", ``predict --force``): every output of it is marked out of scope.
    ``in_distribution``: no image of the run is over the out-of-distribution threshold (a
    segmentation's run: its median image is not; None when the model has no OOD statistics, or
    before the run); ``ood_score``: the highest score of the run's images (a segmentation's:
    the median); ``ood_threshold``: the model's threshold."""

    applicable: bool = True
    reasons: tuple[str, ...] = ()
    forced: bool = False
    in_distribution: bool | None = None
    ood_score: float | None = None
    ood_threshold: float | None = None

    @property
    def refusal(self) -> str:
        """The first reason when not applicable, else ""."""
        return self.reasons[0] if not self.applicable and self.reasons else ""

    @property
    def out_of_scope(self) -> bool:
        """Run although not applicable: every output says so."""
        return self.forced and not self.applicable

    @property
    def flagged(self) -> bool:
        """Out of scope, or out of distribution: the findings are unreliable."""
        return self.out_of_scope or self.in_distribution is False

    def warnings(self) -> list[str]:
        """One line per thing a reader must know (for banners, stderr, SR and PDF)."""
        lines = []
        if self.out_of_scope:
            lines.append(f"Outside the model's intended input (run anyway): {self.refusal}")
        if self.in_distribution is False:
            lines.append(
                f"Out of distribution: out-of-distribution score {self.ood_score:.2f} is over "
                f"the model's threshold {self.ood_threshold:.2f}; findings are unreliable"
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "applicable": self.applicable,
            "in_distribution": self.in_distribution,
            "ood_score": None if self.ood_score is None else round(float(self.ood_score), 6),
            "ood_threshold": None if self.ood_threshold is None else float(self.ood_threshold),
            "reasons": list(self.reasons),
            "forced": self.forced,
        }

    @classmethod
    def from_json(cls, data: Any) -> InputCheck:
        """Read ``input_check``; ValueError naming the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError("input_check must be an object")

        def flag(key: str, optional: bool = False) -> bool | None:
            value = data.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, bool):
                raise ValueError(f"input_check.{key} must be true or false, not {value!r}")
            return value

        def number(key: str) -> float | None:
            value = data.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"input_check.{key} must be a number or null, not {value!r}")
            return float(value)

        reasons = data.get("reasons", [])
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise ValueError("input_check.reasons must be a list of text")
        return cls(
            applicable=bool(flag("applicable")),
            reasons=tuple(reasons),
            forced=bool(flag("forced")),
            in_distribution=flag("in_distribution", optional=True),
            ood_score=number("ood_score"),
            ood_threshold=number("ood_threshold"),
        )

    def with_ood(
        self, scores: np.ndarray, flags: np.ndarray, threshold: float, per_slice: bool = False
    ) -> InputCheck:
        """This check with the run's out-of-distribution verdict: ``scores``/``flags`` of the
        images that were read. A classifier's run is out when any image is (its findings rest
        on every image: the maximum, and a negative verdict); with ``per_slice`` (a
        segmentation: each lesion rests on its own slices) the series is out when its median
        slice is, and a flagged slice marks only itself. The threshold is the 95th percentile
        of single validation slices, so "any of 40" would flag most in-distribution series."""
        s = np.asarray(scores, dtype=np.float64)
        if s.size == 0:
            return self
        if per_slice:
            score = float(np.median(np.where(np.isfinite(s), s, math.inf)))
            inside = math.isfinite(score) and score <= threshold
        else:
            finite = s[np.isfinite(s)]
            score = float(finite.max()) if finite.size else math.inf
            inside = not bool(np.asarray(flags).any())
        return replace(
            self, in_distribution=inside, ood_score=score, ood_threshold=float(threshold)
        )


class InputNotApplicable(InferenceError):
    """The series is outside the model's intended input; ``check`` holds the verdict. Run it
    anyway with ``force=True`` (the GUI's "Run anyway", ``predict --force``)."""

    def __init__(self, check: InputCheck, path: str | Path | None = None) -> None:
        self.check = check
        super().__init__(
            f"not run: {check.refusal}",
            path,
            "it can be run anyway, with every output marked as outside the intended input",
        )


@dataclass(frozen=True)
class RunMarks:
    """What a run marks its findings with: the input check with the run's OOD verdict, and
    each image's OOD score and flag (None without OOD statistics)."""

    check: InputCheck
    scores: np.ndarray | None = None
    per_slice: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        check: InputCheck,
        ood: OodModel | None,
        scores: np.ndarray | None,
        read: np.ndarray,
        segmentation: bool = False,
    ) -> RunMarks:
        """``scores`` (slices,) of the images ``read`` (bool mask) against ``ood``: an image
        over the threshold (or not finite) is flagged; any flagged image flags a classifier's
        run, the median slice a segmentation's (InputCheck.with_ood)."""
        if ood is None or scores is None:
            return cls(check)
        per_slice = ood.flags(scores) & read
        verdict = check.with_ood(scores[read], per_slice[read], ood.threshold, segmentation)
        if verdict.in_distribution is False:
            log.info("out of distribution: score %s > %.2f", verdict.ood_score, ood.threshold)
        return cls(verdict, scores, per_slice)

    def score(self, i: int) -> float | None:
        if self.scores is None or not math.isfinite(float(self.scores[i])):
            return None
        return float(self.scores[i])

    def flagged(self, i: int) -> bool:
        return bool(self.per_slice is not None and self.per_slice[i])


# ------------------------------------------------------------------------------- the check


def _describe_series(headers: SeriesHeaders) -> str:
    modality = headers.modality or "of unknown modality"
    if headers.images > 1 and headers.image_kind == "slice":
        return f"{headers.images} cross-sectional {modality} slices"
    return modality


def _mismatches(headers: SeriesHeaders, intended: IntendedInput) -> list[str]:
    want = intended.describe()
    out = []
    if intended.modalities and headers.modality and headers.modality not in intended.modalities:
        out.append(f"This model is for {want}; this series is {headers.modality}")
    kind = headers.image_kind
    if intended.image_kind != "any" and kind and kind != intended.image_kind and not out:
        out.append(
            f"This model is for {want} ({_KIND_WORDS[intended.image_kind]}); this series is "
            f"{_KIND_WORDS[kind]} ({_describe_series(headers)})"
        )
    part = headers.body_part or ""
    if (
        intended.body_parts
        and part
        and _BODY_PART_ALIASES.get(part, part) not in intended.body_parts
    ):
        out.append(
            f"This model is for {want}; this series is of the {part.lower()} (Body Part Examined)"
        )
    views = intended.view_positions
    if views and headers.view_position and headers.view_position not in views:
        out.append(
            f"This model is for {'/'.join(views)} views; this image is "
            f"{headers.view_position} (View Position)"
        )
    side = min(headers.rows, headers.columns)
    if intended.min_matrix and side and side < intended.min_matrix:
        out.append(
            f"This model needs images of at least {intended.min_matrix} pixels a side; this one "
            f"is {headers.rows}x{headers.columns}"
        )
    return out


def _unchecked(headers: SeriesHeaders, intended: IntendedInput) -> list[str]:
    want = intended.describe()
    if headers.file_kind != "dicom":
        what = {"png": "a PNG image", "jpeg": "a JPEG image"}.get(headers.file_kind, "an image")
        return [
            f"This is {what} without DICOM headers: its modality, body part and view can't be "
            f"checked against the model's intended input ({want})"
        ]
    out = []
    if intended.modalities and not headers.modality:
        out.append(f"Modality is missing: can't check that this series is {want}")
    if intended.body_parts and not headers.body_part:
        out.append(
            f"Body Part Examined is missing: can't check that this series is "
            f"{'/'.join(p.lower() for p in intended.body_parts)}"
        )
    if intended.view_positions and not headers.view_position:
        out.append(
            f"View Position is missing: can't check that this is a "
            f"{'/'.join(intended.view_positions)} view"
        )
    if intended.image_kind != "any" and not headers.image_kind and headers.modality:
        out.append(
            f"Can't tell whether this {headers.modality} series is a projection radiograph or "
            "a cross-sectional slice"
        )
    return out


def check_input(headers: SeriesHeaders, intended: IntendedInput) -> InputCheck:
    """The verdict on ``headers`` against ``intended`` (before any pixel is decoded)."""
    mismatches = _mismatches(headers, intended)
    unchecked = _unchecked(headers, intended)
    return InputCheck(applicable=not mismatches, reasons=tuple(mismatches + unchecked))


__all__ = [
    "CROSS_SECTIONAL_MODALITIES",
    "InputCheck",
    "InputNotApplicable",
    "RunMarks",
    "SeriesHeaders",
    "check_input",
    "headers_of",
    "headers_of_stack",
]
