"""Secondary Capture images of an export: key images with the AI overlay burned in.

One image per key image: the slice of each positive finding that the reader did not mark
absent, and of each finding the reader says present and drew a box for (a missed finding's box
is on the image it was drawn on; several findings on one slice share it). The source image is
rendered as the viewer shows it by default (its window; MONOCHROME1 inverted), the findings are
drawn over it with ``overlays.render_overlay`` (heatmap, outline, box, "label probability ·
the reader's verdict"; a negative's heatmap and box are never drawn), and the
research-use notice is burned in at the top and the model's identity at the bottom, so the
image says what it is wherever a PACS shows it, including viewers that show no header. Images
under 512 pixels on their shorter side are first enlarged by a whole factor (pixel
replication: a 256² CT slice becomes 512²) so that the text stays legible.

Each becomes an RGB 8-bit Secondary Capture Image (PS3.3 A.8.1) in a new series of the source
study, built with highdicom's ``SCImage`` and marked as derived and AI-generated:

- Image Type DERIVED\\SECONDARY\\OTHER (PS3.3 C.7.6.1.1.2), Burned In Annotation YES
  (C.7.6.1.1.7), Conversion Type WSD (workstation, C.8.6.1);
- Series Description "RadAssist AI overlay - research use only", a Derivation Description
  (C.7.6.1.1.3) and Image Comments that say the overlay is AI output;
- Source Image Sequence (C.7.6.1) referencing the source instance (and frame), purpose
  DCM 121322 "Source image for image processing operation" (CID 7202);
- the patient and study modules copied from the (possibly de-identified) source header, and
  its Patient Orientation and Pixel Spacing (divided by the enlargement), since the grid is the
  source's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from highdicom.sc import SCImage
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from desktop_app import RESEARCH_USE_NOTICE, __version__
from desktop_app.dicom import dsvalues
from desktop_app.exports.content import Box, ExportFinding, ModelSummary
from desktop_app.exports.sr import (
    MANUFACTURER,
    build_failed,
    copy_deidentification,
    placeholder_names,
    restore_names,
)
from desktop_app.inference.overlays import OverlayMark, label_colour, render_overlay
from desktop_app.infra.errors import ExportError

log = logging.getLogger(__name__)

SC_SERIES_NUMBER = 9002
MIN_SIDE = 512
MAX_SCALE = 8
SC_SERIES_DESCRIPTION = "RadAssist AI overlay - research use only"
TITLE = f"{RESEARCH_USE_NOTICE} · AI overlay (RadAssist)"
_BIPED = {"A", "P", "R", "L", "H", "F"}
_ASCII_DASHES = str.maketrans({"—": "-", "–": "-", "−": "-"})


@dataclass(frozen=True)
class KeyImage:
    """One image that carries findings to show: ``findings`` are on this SOP instance and
    frame (0-based), at ``slice_index`` of their stack."""

    series_instance_uid: str
    sop_instance_uid: str
    frame: int
    slice_index: int
    findings: tuple[ExportFinding, ...]

    @property
    def caption(self) -> str:
        labels = "; ".join(
            f"{f.label} {f.probability:.2f} · {f.verdict_text}" for f in self.findings
        )
        return f"slice {self.slice_index + 1}: {labels}"


def key_images(findings: Iterable[ExportFinding]) -> list[KeyImage]:
    """Key images (``ExportFinding.on_key_image``), one per image the findings' regions are
    on, in order of their most probable finding (most probable first)."""
    groups: dict[tuple[str, int], list[ExportFinding]] = {}
    for f in findings:
        if f.on_key_image and f.region_sop_instance_uid:
            groups.setdefault((f.region_sop_instance_uid, f.region_frame), []).append(f)
    out = [
        KeyImage(
            series_instance_uid=fs[0].series_instance_uid,
            sop_instance_uid=sop,
            frame=frame,
            slice_index=fs[0].region_slice_index,
            findings=tuple(sorted(fs, key=lambda f: f.label_index)),
        )
        for (sop, frame), fs in groups.items()
    ]
    out.sort(key=lambda k: -max(f.probability for f in k.findings))
    return out


def marks_for(findings: Sequence[ExportFinding]) -> list[OverlayMark]:
    """Overlay marks: the model's heatmap, outline and box while it calls the label positive,
    the reader's box instead when there is one, and ``"label 0.93 · present (TP)"`` in the
    label's colour."""
    marks = []
    for f in findings:
        source = f.region_source
        box = f.reader_box if source in ("added", "edited") else f.box if source else None
        marks.append(
            OverlayMark(
                text=f"{f.label} {f.probability:.2f} · {f.verdict_text}",
                colour=label_colour(f.label_index),
                heatmap=f.drawn_heatmap,
                outline=f.outline if source in ("outline", "box") else None,
                box=box,
            )
        )
    return marks


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _footer(rgb: np.ndarray, text: str) -> np.ndarray:
    """Burn ``text`` bottom-left on a dark plate (the same scale as the overlay's title),
    shortened with "..." when it would not fit the width."""
    canvas = Image.fromarray(rgb, mode="RGB")
    draw = ImageDraw.Draw(canvas)
    rows, cols = rgb.shape[:2]
    short = min(rows, cols)
    font = _font(max(10, round(short / 40)))
    pad = max(1, round(short / 300))
    text = text.translate(_ASCII_DASHES)
    shown = text
    while True:
        left, top, right, bottom = draw.textbbox((0, 0), shown, font=font)
        if right - left + 2 * pad <= cols or len(shown) <= 4:
            break
        text = text[:-1]
        shown = text.rstrip() + "..."
    tw, th = right - left, bottom - top
    y = max(rows - th - 2 * pad, 0)
    draw.rectangle([0, y, min(tw + 2 * pad, cols), rows], fill=(0, 0, 0))
    draw.text((pad - left, y + pad - top), shown, fill=(255, 255, 255), font=font)
    return np.asarray(canvas, dtype=np.uint8).copy()


def scale_factor(shape: Sequence[int]) -> int:
    """The whole-number enlargement that brings the shorter side to at least
    :data:`MIN_SIDE` pixels (at most :data:`MAX_SCALE`), so that burned-in text stays legible
    on small images (a 256² CT slice becomes 512²)."""
    short = max(1, min(int(shape[0]), int(shape[1])))
    return int(min(MAX_SCALE, max(1, math.ceil(MIN_SIDE / short))))


def _enlarged(finding: ExportFinding, factor: int, shape: tuple[int, int]) -> ExportFinding:
    if factor == 1:
        return finding

    def point(p: Sequence[float]) -> tuple[float, float]:
        return (float(p[0]) * factor, float(p[1]) * factor)

    heat = finding.heatmap
    if heat is not None:
        heat = np.asarray(
            Image.fromarray(np.asarray(heat, np.float32), mode="F").resize(
                (shape[1], shape[0]), Image.Resampling.BILINEAR
            )
        )

    def scaled(box: Box | None) -> Box | None:
        return (
            None
            if box is None
            else (box[0] * factor, box[1] * factor, box[2] * factor, box[3] * factor)
        )

    return replace(
        finding,
        box=scaled(finding.box),
        reader_box=scaled(finding.reader_box),
        outline=None if finding.outline is None else tuple(point(p) for p in finding.outline),
        heatmap=heat,
    )


def render_key_image(image: np.ndarray, key: KeyImage, model: ModelSummary) -> np.ndarray:
    """The key image with its findings, the notice (top) and the model (bottom) burned in:
    uint8 RGB, the source's size times :func:`scale_factor` (pixel replication)."""
    factor = scale_factor(image.shape)
    if factor > 1:
        image = np.repeat(np.repeat(np.asarray(image), factor, axis=0), factor, axis=1)
    shape = (int(image.shape[0]), int(image.shape[1]))
    findings = [_enlarged(f, factor, shape) for f in key.findings]
    rgb = render_overlay(image, marks_for(findings), title=TITLE)
    footer = (
        f"AI-generated: {model.name} {model.version} (RadAssist {__version__})"
        f" · slice {key.slice_index + 1}"
    )
    return _footer(rgb, footer)


def patient_orientation(ds: Dataset) -> tuple[str, str] | None:
    """Patient Orientation (0020,0020) for the SC: the source's, else the dominant patient
    direction of its rows and columns from Image Orientation (Patient) (PS3.3 C.7.6.1.1.1);
    None when neither is known."""
    values = dsvalues.texts(ds, "PatientOrientation")
    if len(values) == 2 and all(v in _BIPED for v in values):
        return values[0], values[1]
    cosines = dsvalues.floats(ds, "ImageOrientationPatient")
    if len(cosines) == 6 and all(c is not None for c in cosines):
        row = [float(c) for c in cosines[:3]]  # type: ignore[arg-type]
        col = [float(c) for c in cosines[3:]]  # type: ignore[arg-type]
        return _direction(row), _direction(col)
    return None


def _direction(v: Sequence[float]) -> str:
    # LPS patient axes (PS3.3 C.7.6.2.1.1): +x left, +y posterior, +z head
    axis = int(np.argmax(np.abs(v)))
    positive = v[axis] >= 0
    return (("L", "R"), ("P", "A"), ("H", "F"))[axis][0 if positive else 1]


def build_sc(
    rgb: np.ndarray,
    source: Dataset,
    *,
    source_sop_class: str,
    source_sop_uid: str,
    source_frame: int | None,
    series_instance_uid: str,
    instance_number: int,
    model: ModelSummary,
    sop_instance_uid: str = "",
) -> SCImage:
    """The Secondary Capture of ``rgb`` (uint8 (rows, cols, 3)) derived from ``source`` (the
    exported header of the source image; ``source_sop_uid`` its exported SOP Instance UID,
    ``source_frame`` its 1-based frame number for a multi-frame source, else None)."""
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ExportError(f"a secondary capture needs an RGB image, got shape {pixels.shape}")
    orientation = patient_orientation(source)
    ref, names = placeholder_names(source)
    try:
        sc = SCImage.from_ref_dataset(
            ref_dataset=ref,
            pixel_array=pixels,
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=series_instance_uid,
            series_number=SC_SERIES_NUMBER,
            sop_instance_uid=sop_instance_uid or generate_uid(),
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            # highdicom annotates the spacing as ints; it takes (and needs) floats
            pixel_spacing=_pixel_spacing(source, pixels.shape[0]),  # type: ignore[arg-type]
            patient_orientation=orientation or ("L", "F"),
            transfer_syntax_uid=ExplicitVRLittleEndian,
            specific_character_set="ISO_IR 192",
            series_description=SC_SERIES_DESCRIPTION,
            software_versions=f"RadAssist {__version__}",
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise build_failed("secondary capture", err) from None
    restore_names(sc, names)
    if orientation is None:
        sc["PatientOrientation"].value = ""  # Type 2C: present, unknown (PS3.3 C.7.6.1.1.1)
    _mark_derived(sc, model)
    sc.SourceImageSequence = [_source_image(source_sop_class, source_sop_uid, source_frame)]
    copy_deidentification(sc, source)
    return sc


def _pixel_spacing(source: Dataset, rows: int) -> tuple[float, float] | None:
    """The source's Pixel Spacing for an image of ``rows`` rows, which may be an enlargement
    of the source (``render_key_image``): the spacing shrinks by the factor."""
    factor = max(1, round(rows / max(1, dsvalues.first_int(source, "Rows") or 1)))
    spacing = tuple(s / factor if s else s for s in dsvalues.floats(source, "PixelSpacing"))
    if len(spacing) == 2 and all(s for s in spacing):
        return float(spacing[0]), float(spacing[1])  # type: ignore[arg-type]
    return None


def _mark_derived(sc: Dataset, model: ModelSummary) -> None:
    """Say that the image is a workstation capture with AI output burned in (PS3.3 C.8.6.1,
    C.7.6.1.1.7, C.7.6.1.1.3)."""
    sc.ConversionType = "WSD"
    sc.BurnedInAnnotation = "YES"
    sc.RecognizableVisualFeatures = "NO"
    sc.LossyImageCompression = "00"
    sc.DerivationDescription = (
        f"AI overlay burned in by RadAssist {__version__} with model {model.name} "
        f"{model.version} (tensor SHA-256 {model.tensor_sha256[:16] or 'unknown'}): Grad-CAM "
        "heatmap, region outline or box and finding text over the source image, windowed for "
        "display. Research use only - not for diagnosis."
    )[:1024]
    sc.ImageComments = "AI-generated overlay (RadAssist). Research use only - not for diagnosis."


def _source_image(sop_class: str, sop_uid: str, frame: int | None) -> Dataset:
    """A Source Image Sequence item (PS3.3 C.7.6.1), purpose DCM 121322 (CID 7202)."""
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_uid
    if frame is not None:
        item.ReferencedFrameNumber = frame
    purpose = Dataset()
    code = codes.DCM.SourceImageForImageProcessingOperation
    purpose.CodeValue = code.value
    purpose.CodingSchemeDesignator = code.scheme_designator
    purpose.CodeMeaning = code.meaning
    item.PurposeOfReferenceCodeSequence = [purpose]
    return item
