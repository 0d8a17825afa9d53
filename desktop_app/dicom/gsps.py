"""Softcopy presentation states (GSPS and kin): which images they apply to, and their graphic and
text annotations, read with bounds.

A presentation state (PS3.3 A.33; Grayscale Softcopy Presentation State Storage
1.2.840.10008.5.1.4.1.1.11.1 and its colour, pseudo-colour and blending siblings) references
images in Referenced Series Sequence (0008,1115) > Referenced Image Sequence (0008,1140),
optionally narrowed to frames (Referenced Frame Number, 0008,1160). Its Graphic Annotation
Sequence (0070,0001) (PS3.3 C.10.5) holds, per graphic layer, Graphic Objects (0070,0009) and
Text Objects (0070,0008); an item may name its own Referenced Image Sequence, a subset of the
state's images, else it applies to all of them.

Units (PS3.3 C.10.5.1.1): PIXEL coordinates are image-relative (see
:mod:`desktop_app.dicom.graphics`); DISPLAY coordinates are fractions 0..1 of the displayed
area, here the Displayed Area Selection (0070,005A) that applies to the image, else the whole
image. Graphic Layer colours come from the layer's recommended CIELab value (PS3.3 C.10.7.1.1)
when it has one.

What is not applied: the state's VOI LUT, spatial transformation, shutters and displayed-area
zoom (the viewer keeps its own), compound graphics. Bounds: :data:`MAX_ITEMS` graphic and text
objects, :data:`MAX_REFERENCES` referenced images, text cut to :data:`TEXT_LIMIT` characters.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from desktop_app.dicom.graphics import Graphic, make_graphic

log = logging.getLogger(__name__)

PRESENTATION_STATE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State",
    "1.2.840.10008.5.1.4.1.1.11.2": "Color Softcopy Presentation State",
    "1.2.840.10008.5.1.4.1.1.11.3": "Pseudo-Color Softcopy Presentation State",
    "1.2.840.10008.5.1.4.1.1.11.4": "Blending Softcopy Presentation State",
}
MAX_ITEMS = 10_000
MAX_REFERENCES = 100_000
TEXT_LIMIT = 1024  # Unformatted Text Value is ST: 1024 characters (PS3.5 6.2)
SHORT_TEXT = 200


def is_presentation_state(sop_class_uid: str) -> bool:
    return str(sop_class_uid) in PRESENTATION_STATE_CLASSES


@dataclass(frozen=True)
class ImageRef:
    """A referenced image: its SOP Instance UID and 1-based frames (empty: every frame)."""

    sop_instance_uid: str
    frames: tuple[int, ...] = ()

    def matches(self, sop_instance_uid: str, frame: int) -> bool:
        """Whether this reference covers ``frame`` (1-based) of ``sop_instance_uid``."""
        return self.sop_instance_uid == sop_instance_uid and (
            not self.frames or frame in self.frames
        )


@dataclass(frozen=True)
class TextObject:
    """A text annotation: a bounding box (x0, y0, x1, y1) and/or an anchor point (x, y), in
    ``box_units`` / ``anchor_units`` ("PIXEL" or "DISPLAY")."""

    text: str
    box: tuple[float, float, float, float] | None = None
    box_units: str = "PIXEL"
    anchor: tuple[float, float] | None = None
    anchor_units: str = "PIXEL"
    anchor_visible: bool = False


@dataclass(frozen=True)
class AnnotationGroup:
    """One Graphic Annotation Sequence item: a layer's graphics and texts, and the images it
    applies to (empty: all of the state's images)."""

    layer: str
    images: tuple[ImageRef, ...]
    graphics: tuple[tuple[Graphic, str], ...]  # each with its units, PIXEL or DISPLAY
    texts: tuple[TextObject, ...]


@dataclass(frozen=True)
class DisplayedArea:
    """A Displayed Area Selection item: 1-based pixel corners (column, row) and its images."""

    top_left: tuple[float, float]
    bottom_right: tuple[float, float]
    images: tuple[ImageRef, ...]


@dataclass(frozen=True)
class PlacedText:
    """A text object in image pixels, ready to draw."""

    text: str
    box: tuple[float, float, float, float] | None
    anchor: tuple[float, float] | None
    anchor_visible: bool


@dataclass
class PresentationState:
    """What the viewer uses of one presentation state."""

    sop_instance_uid: str
    sop_class_uid: str
    label: str = ""
    description: str = ""
    creator: str = ""
    images: tuple[ImageRef, ...] = ()
    groups: list[AnnotationGroup] = field(default_factory=list)
    areas: list[DisplayedArea] = field(default_factory=list)
    layer_colors: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return PRESENTATION_STATE_CLASSES.get(self.sop_class_uid, "Presentation State")

    def applies_to(self, sop_instance_uid: str, frame: int = 1) -> bool:
        return any(r.matches(sop_instance_uid, frame) for r in self.images)

    def annotations_for(
        self, sop_instance_uid: str, frame: int, rows: int, columns: int
    ) -> tuple[list[tuple[Graphic, str]], list[tuple[PlacedText, str]]]:
        """The graphics and texts drawn on ``frame`` (1-based) of ``sop_instance_uid``, in
        image pixels, each with its layer name; nothing for an image the state does not
        reference. ``rows``/``columns``: the image's size (for DISPLAY units)."""
        if not self.applies_to(sop_instance_uid, frame):
            return [], []
        area = self._area(sop_instance_uid, frame, rows, columns)
        graphics: list[tuple[Graphic, str]] = []
        texts: list[tuple[PlacedText, str]] = []
        for group in self.groups:
            if group.images and not any(r.matches(sop_instance_uid, frame) for r in group.images):
                continue
            for graphic, units in group.graphics:
                graphics.append((_place_graphic(graphic, units, area), group.layer))
            for text in group.texts:
                texts.append((_place_text(text, area), group.layer))
        return graphics, texts

    def _area(
        self, sop: str, frame: int, rows: int, columns: int
    ) -> tuple[float, float, float, float]:
        """(x0, y0, width, height) of the displayed area in image pixels."""
        for area in self.areas:
            if not area.images or any(r.matches(sop, frame) for r in area.images):
                (c0, r0), (c1, r1) = area.top_left, area.bottom_right
                if c1 >= c0 and r1 >= r0:
                    return c0 - 1, r0 - 1, c1 - c0 + 1, r1 - r0 + 1
        return 0.0, 0.0, float(columns), float(rows)


def _place_point(
    p: tuple[float, float], units: str, area: tuple[float, float, float, float]
) -> tuple[float, float]:
    if units != "DISPLAY":
        return p
    x0, y0, w, h = area
    return x0 + p[0] * w, y0 + p[1] * h


def _place_graphic(
    graphic: Graphic, units: str, area: tuple[float, float, float, float]
) -> Graphic:
    if units != "DISPLAY":
        return graphic
    points = tuple(_place_point(p, units, area) for p in graphic.points)
    return Graphic(graphic.kind, points, graphic.filled)


def _place_text(text: TextObject, area: tuple[float, float, float, float]) -> PlacedText:
    box = None
    if text.box is not None:
        a = _place_point(text.box[:2], text.box_units, area)
        b = _place_point(text.box[2:], text.box_units, area)
        box = (min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))
    anchor = _place_point(text.anchor, text.anchor_units, area) if text.anchor else None
    return PlacedText(text.text, box, anchor, text.anchor_visible)


# --------------------------------------------------------------------------- reading


def _items(ds: Dataset, keyword: str) -> Iterator[Dataset]:
    try:
        seq = ds.get(keyword)
    except Exception:
        return
    if seq is None:
        return
    try:
        items = list(seq)
    except TypeError:
        return
    for item in items:
        if isinstance(item, Dataset):
            yield item


def _str(ds: Dataset, keyword: str, limit: int = SHORT_TEXT) -> str:
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    return "" if value is None else str(value)[:limit]


def _pair(ds: Dataset, keyword: str) -> tuple[float, float] | None:
    try:
        value = ds.get(keyword)
        x, y = (float(v) for v in list(value)[:2])
    except Exception:
        return None
    graphic = make_graphic("POINT", [x, y])
    return graphic.points[0] if graphic is not None else None


def _image_refs(ds: Dataset, budget: list[int]) -> tuple[ImageRef, ...]:
    refs: list[ImageRef] = []
    for item in _items(ds, "ReferencedImageSequence"):
        if budget[0] <= 0:
            break
        budget[0] -= 1
        uid = _str(item, "ReferencedSOPInstanceUID", 64).strip()
        if not uid:
            continue
        try:
            raw = item.get("ReferencedFrameNumber")
            values = [] if raw is None else (list(raw) if not isinstance(raw, int | str) else [raw])
            frames = tuple(int(v) for v in values[:10_000])
        except Exception:
            frames = ()
        refs.append(ImageRef(uid, frames))
    return tuple(refs)


def _units(ds: Dataset, keyword: str) -> str:
    units = _str(ds, keyword, 16).strip().upper()
    return units if units in ("PIXEL", "DISPLAY") else "PIXEL"


def _lab_to_rgb(lab: tuple[int, int, int]) -> tuple[int, int, int]:
    """A DICOM CIELab value (PS3.3 C.10.7.1.1: L 0..100, a and b -128..127, each scaled to
    0..65535) as sRGB through XYZ with the D65 white point."""
    lightness = lab[0] / 65535 * 100
    a = lab[1] / 65535 * 255 - 128
    b = lab[2] / 65535 * 255 - 128
    fy = (lightness + 16) / 116
    fx, fz = fy + a / 500, fy - b / 200

    def inverse(t: float) -> float:
        return t**3 if t > 6 / 29 else 3 * (6 / 29) ** 2 * (t - 4 / 29)

    x, y, z = 0.95047 * inverse(fx), inverse(fy), 1.08883 * inverse(fz)
    linear = (
        3.2406 * x - 1.5372 * y - 0.4986 * z,
        -0.9689 * x + 1.8758 * y + 0.0415 * z,
        0.0557 * x - 0.2040 * y + 1.0570 * z,
    )

    def gamma(c: float) -> int:
        c = min(max(c, 0.0), 1.0)
        c = 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055
        return round(c * 255)

    r, g, bl = (gamma(c) for c in linear)
    return r, g, bl


def _layer_colors(ds: Dataset) -> dict[str, tuple[int, int, int]]:
    colors: dict[str, tuple[int, int, int]] = {}
    for item in list(_items(ds, "GraphicLayerSequence"))[:1000]:
        name = _str(item, "GraphicLayer", 64)
        try:
            lab = item.get("GraphicLayerRecommendedDisplayCIELabValue")
            if lab is not None and len(lab) == 3:
                colors[name] = _lab_to_rgb((int(lab[0]), int(lab[1]), int(lab[2])))
                continue
            grey = item.get("GraphicLayerRecommendedDisplayGrayscaleValue")
            if grey is not None:
                level = round(int(grey) / 65535 * 255)
                colors[name] = (level, level, level)
        except Exception:
            continue
    return colors


def _text_object(item: Dataset) -> TextObject | None:
    text = _str(item, "UnformattedTextValue", TEXT_LIMIT)
    top_left = _pair(item, "BoundingBoxTopLeftHandCorner")
    bottom_right = _pair(item, "BoundingBoxBottomRightHandCorner")
    box = (*top_left, *bottom_right) if top_left and bottom_right else None
    anchor = _pair(item, "AnchorPoint")
    if not text or (box is None and anchor is None):
        return None
    return TextObject(
        text=text,
        box=box,
        box_units=_units(item, "BoundingBoxAnnotationUnits"),
        anchor=anchor,
        anchor_units=_units(item, "AnchorPointAnnotationUnits"),
        anchor_visible=_str(item, "AnchorPointVisibility", 4).strip().upper() == "Y",
    )


def read_presentation_state(ds: Dataset) -> PresentationState:
    """The presentation state in ``ds`` (see the module docstring). Objects that can't be
    drawn are left out and counted in ``problems``; never raises for what a file holds."""
    state = PresentationState(
        sop_instance_uid=_str(ds, "SOPInstanceUID", 64),
        sop_class_uid=_str(ds, "SOPClassUID", 64),
        label=_str(ds, "ContentLabel", 64),
        description=_str(ds, "ContentDescription", 64),
        creator=_str(ds, "ContentCreatorName", 64),
    )
    budget = [MAX_REFERENCES]
    refs: list[ImageRef] = []
    for series in _items(ds, "ReferencedSeriesSequence"):
        refs.extend(_image_refs(series, budget))
    state.images = tuple(refs)
    for area in list(_items(ds, "DisplayedAreaSelectionSequence"))[:1000]:
        tl = _pair(area, "DisplayedAreaTopLeftHandCorner")
        br = _pair(area, "DisplayedAreaBottomRightHandCorner")
        if tl and br:
            state.areas.append(DisplayedArea(tl, br, _image_refs(area, budget)))
    state.layer_colors = _layer_colors(ds)
    items = 0
    skipped = 0
    for group in _items(ds, "GraphicAnnotationSequence"):
        graphics: list[tuple[Graphic, str]] = []
        texts: list[TextObject] = []
        for obj in _items(group, "GraphicObjectSequence"):
            items += 1
            if items > MAX_ITEMS:
                break
            graphic = make_graphic(
                obj.get("GraphicType"),
                obj.get("GraphicData"),
                _str(obj, "GraphicFilled", 4).strip().upper() == "Y",
            )
            if graphic is None:
                skipped += 1
                continue
            graphics.append((graphic, _units(obj, "GraphicAnnotationUnits")))
        for obj in _items(group, "TextObjectSequence"):
            items += 1
            if items > MAX_ITEMS:
                break
            text = _text_object(obj)
            if text is None:
                skipped += 1
                continue
            texts.append(text)
        layer = _str(group, "GraphicLayer", 64)
        images = _image_refs(group, budget)
        state.groups.append(AnnotationGroup(layer, images, tuple(graphics), tuple(texts)))
        if items > MAX_ITEMS:
            state.problems.append(f"more than {MAX_ITEMS} annotations: the rest are not shown")
            break
    if skipped:
        state.problems.append(f"{skipped} annotation(s) with invalid graphic data not shown")
    if not state.images:
        state.problems.append("references no images")
    return state


__all__ = [
    "PRESENTATION_STATE_CLASSES",
    "AnnotationGroup",
    "DisplayedArea",
    "ImageRef",
    "PlacedText",
    "PresentationState",
    "TextObject",
    "is_presentation_state",
    "read_presentation_state",
]
