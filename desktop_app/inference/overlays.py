"""Overlays as numpy: the peak region's box and outline, and a burned-in overlay image for PNG
files and secondary captures (numpy and Pillow, no Qt; heatmap colours: ``colormaps``).

- :func:`peak_region`: the connected region around a heatmap's maximum at or above ``level``
  times that maximum (4-connected, holes filled), its bounding box and its outline: a closed
  polygon along the pixel edges, in the pixel-corner convention of
  ``desktop_app.model.preprocessing.Geometry`` (pixel (r, c) covers [c, c+1) x [r, r+1)). Large
  heatmaps are block-averaged to at most ``max_side`` cells first, so the cost is bounded
  (a 1024² heatmap gives box edges on an 8-pixel grid; Grad-CAM's own grid is far coarser).
- :func:`render_overlay`: grey or RGB image + heatmaps + outlines + boxes + label text →
  uint8 RGB, for ``radassist predict``'s overlay PNG and the exports. The text says what the
  marks are; the caller adds the research-use notice through ``title``.
- :func:`render_lesions`: a segmentation's lesions on one slice (translucent fill, outline and
  "L1 24 mm" in each lesion's colour, :data:`LESION_COLOURS` as the viewer colours them, the
  longest diameter drawn where it was measured) → uint8 RGB, for ``radassist predict``.

Everything is pure array code: it runs in any thread and is the same on every platform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from desktop_app.inference.colormaps import heatmap_rgba, unit_heatmap

Point = tuple[float, float]
Box = tuple[float, float, float, float]
RGB = tuple[int, int, int]

# Distinct, saturated colours that stand out from grey anatomy and from the Turbo heatmap's
# blues and reds; one per label in the model's label order.
LABEL_COLOURS: tuple[RGB, ...] = (
    (0, 255, 255),  # cyan
    (255, 0, 255),  # magenta
    (255, 255, 0),  # yellow
    (0, 255, 0),  # green
    (255, 160, 0),  # orange
    (160, 160, 255),  # lavender
)


def label_colour(index: int) -> RGB:
    """The outline/box/text colour of the label at ``index`` in the model's label order."""
    return LABEL_COLOURS[index % len(LABEL_COLOURS)]


# --------------------------------------------------------------------------- peak region


@dataclass(frozen=True)
class PeakRegion:
    """The region around a heatmap's peak, in the heatmap's pixel coordinates.

    ``peak``: centre of the maximum's pixel; ``box``: (x, y, width, height) of the region;
    ``outline``: its outer boundary (closed polygon, last point not repeated, clockwise on
    screen); ``area``: pixels in the region (holes filled); ``level``: the fraction of the
    peak that defines it.
    """

    peak: Point
    box: Box
    outline: tuple[Point, ...]
    area: float
    level: float


def _block_mean(h: np.ndarray, f: int) -> np.ndarray:
    rows, cols = h.shape
    pr, pc = (-rows) % f, (-cols) % f
    padded = np.pad(h, ((0, pr), (0, pc)), mode="edge") if pr or pc else h
    r2, c2 = padded.shape
    # sum along the rows' contiguous runs first, then across rows: two cheap passes
    across = padded.reshape(r2, c2 // f, f).sum(axis=2, dtype=np.float32)
    return across.reshape(r2 // f, f, c2 // f).sum(axis=1) / np.float32(f * f)


def _dilate4(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _flood(seed: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The 4-connected part of ``allowed`` reachable from ``seed`` (iterated dilation)."""
    region = seed & allowed
    while True:
        grown = _dilate4(region) & allowed
        if np.array_equal(grown, region):
            return region
        region = grown


def connected_component(mask: np.ndarray, row: int, col: int) -> np.ndarray:
    """The 4-connected component of ``mask`` containing pixel (row, col) (empty if unset)."""
    m = np.asarray(mask, dtype=bool)
    seed = np.zeros_like(m)
    if m[row, col]:
        seed[row, col] = True
    return _flood(seed, m)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every background pixel not 4-connected to the border set."""
    m = np.asarray(mask, dtype=bool)
    padded = np.pad(m, 1, constant_values=False)
    seed = np.zeros_like(padded)
    seed[0, :] = seed[-1, :] = seed[:, 0] = seed[:, -1] = True
    outside = _flood(seed, ~padded)
    return ~outside[1:-1, 1:-1]


# Direction vectors (dx, dy) of boundary edges, clockwise on screen (y down): E, S, W, N.
_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))


def trace_outline(mask: np.ndarray) -> list[tuple[int, int]]:
    """The outer boundary of a 4-connected, hole-free ``mask`` as polygon vertices ``(x, y)``
    at pixel corners, clockwise on screen, collinear points removed ([] for an empty mask)."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return []
    p = np.pad(m, 1, constant_values=False)
    inner = p[1:-1, 1:-1]
    # Boundary edges with the region on the right-hand side (y down): top edges run east,
    # right edges south, bottom edges west, left edges north.
    outgoing: dict[tuple[int, int], list[int]] = {}
    sides = (
        (inner & ~p[:-2, 1:-1], 0, (0, 0)),  # top: (c, r) -> (c+1, r)
        (inner & ~p[1:-1, 2:], 1, (1, 0)),  # right: (c+1, r) -> (c+1, r+1)
        (inner & ~p[2:, 1:-1], 2, (1, 1)),  # bottom: (c+1, r+1) -> (c, r+1)
        (inner & ~p[1:-1, :-2], 3, (0, 1)),  # left: (c, r+1) -> (c, r)
    )
    for edges, direction, (ox, oy) in sides:
        rs, cs = np.nonzero(edges)
        for r, c in zip(rs.tolist(), cs.tolist()):
            outgoing.setdefault((c + ox, r + oy), []).append(direction)
    rows, cols = np.nonzero(m)
    first = int(np.argmin(rows * (m.shape[1] + 1) + cols))
    start = (int(cols[first]), int(rows[first]))  # top-left corner of the first pixel
    vertex, direction = start, 3  # as if arriving along the left edge, heading north
    path = [start]
    for _ in range(4 * m.size + 4):
        options = outgoing.get(vertex, [])
        # prefer a right turn, then straight, then left: the region stays 4-connected
        for turn in (1, 0, 3):
            d = (direction + turn) % 4
            if d in options:
                direction = d
                break
        else:  # pragma: no cover - a hole-free region's boundary is always closed
            break
        options.remove(direction)
        dx, dy = _DIRS[direction]
        vertex = (vertex[0] + dx, vertex[1] + dy)
        if vertex == start:
            break
        path.append(vertex)
    return _drop_collinear(path)


def _drop_collinear(path: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if len(path) < 3:
        return path
    out = []
    n = len(path)
    for i in range(n):
        a, b, c = path[i - 1], path[i], path[(i + 1) % n]
        if (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]) != 0:
            out.append(b)
    return out


def peak_region(heatmap: np.ndarray, level: float = 0.5, max_side: int = 128) -> PeakRegion | None:
    """The connected region around the heatmap's maximum at or above ``level`` × maximum.

    None when the heatmap has no positive value. Coordinates are the heatmap's pixels (see
    the module docstring); the peak is found at full resolution, the region on a grid of at
    most ``max_side`` cells per side.
    """
    if not 0.0 < level <= 1.0:
        raise ValueError(f"level {level} must be in (0, 1]")
    h = unit_heatmap(heatmap)
    rows, cols = h.shape
    if rows == 0 or cols == 0 or float(h.max()) <= 0.0:
        return None
    pr, pc = np.unravel_index(int(np.argmax(h)), h.shape)
    f = max(1, math.ceil(max(rows, cols) / max(8, int(max_side))))
    coarse = _block_mean(h, f) if f > 1 else h
    # seed at the peak's cell; on the coarse grid the cell's mean may sit below the level,
    # so the level is taken relative to the coarse maximum, seeded at the best cell near it
    cr, cc = int(pr) // f, int(pc) // f
    r0, r1 = max(cr - 1, 0), min(cr + 2, coarse.shape[0])
    c0, c1 = max(cc - 1, 0), min(cc + 2, coarse.shape[1])
    window = coarse[r0:r1, c0:c1]
    wr, wc = np.unravel_index(int(np.argmax(window)), window.shape)
    seed_r, seed_c = r0 + int(wr), c0 + int(wc)
    threshold = level * float(coarse[seed_r, seed_c])
    region = connected_component(coarse >= threshold, seed_r, seed_c)
    rr, cc_ = np.nonzero(region)
    top, bottom, left, right = int(rr.min()), int(rr.max()) + 1, int(cc_.min()), int(cc_.max()) + 1
    crop = fill_holes(region[top:bottom, left:right])
    outline = [
        (min((x + left) * f, cols) * 1.0, min((y + top) * f, rows) * 1.0)
        for x, y in trace_outline(crop)
    ]
    x0, y0 = left * f, top * f
    x1, y1 = min(right * f, cols), min(bottom * f, rows)
    return PeakRegion(
        peak=(float(pc) + 0.5, float(pr) + 0.5),
        box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
        outline=tuple(outline),
        area=float(crop.sum()) * f * f,
        level=level,
    )


def polygon_area(points: Sequence[Point]) -> float:
    """Area enclosed by a simple polygon (shoelace), in squared pixel units."""
    if len(points) < 3:
        return 0.0
    x = np.asarray([p[0] for p in points], dtype=np.float64)
    y = np.asarray([p[1] for p in points], dtype=np.float64)
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


# --------------------------------------------------------------------------- burned-in overlay


@dataclass(frozen=True)
class OverlayMark:
    """What to draw for one finding: its heatmap (same grid as the image), outline, box and a
    label text such as ``"nodule 0.93"``, in ``colour``."""

    text: str
    colour: RGB = LABEL_COLOURS[0]
    heatmap: np.ndarray | None = None
    outline: Sequence[Point] | None = None
    box: Box | None = None


def marks_from_findings(
    findings: Sequence[Any], labels: Sequence[str] | None = None, positive_only: bool = True
) -> list[OverlayMark]:
    """Overlay marks for ``findings`` (objects with ``label``, ``probability``, ``positive``,
    ``heatmap``, ``outline``, ``box``, like ``findings.Finding``); colours follow the label's
    position in ``labels`` (default: the findings' order)."""
    order = list(labels) if labels is not None else [f.label for f in findings]
    marks: list[OverlayMark] = []
    for f in findings:
        if positive_only and not f.positive:
            continue
        index = order.index(f.label) if f.label in order else len(marks)
        marks.append(
            OverlayMark(
                text=f"{f.label} {f.probability:.2f}",
                colour=label_colour(index),
                heatmap=f.heatmap,
                outline=f.outline,
                box=f.box,
            )
        )
    return marks


# Pillow's built-in font has no dashes beyond ASCII; the research-use notice has one.
_ASCII_DASHES = str.maketrans({"—": "-", "–": "-", "−": "-"})


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 grey (H, W) or RGB (H, W, 3) → a new uint8 RGB array."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"the image must be uint8 (rendered for display), got {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 3:
        return img.copy()
    raise ValueError(f"the image must be (H, W) or (H, W, 3), got {img.shape}")


def blend(rgb: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """Alpha-composite ``rgba`` (H, W, 4) over ``rgb`` (H, W, 3), both uint8 → uint8 RGB
    (8-bit "over" compositing, rounded)."""
    if rgb.shape[:2] != rgba.shape[:2]:
        raise ValueError(f"heatmap {rgba.shape[:2]} and image {rgb.shape[:2]} differ in size")
    base = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
    over = Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), mode="RGBA")
    base.paste(over, (0, 0), over)  # Pillow's C compositing: 5-10x faster than numpy here
    return np.asarray(base, dtype=np.uint8).copy()


def render_overlay(
    image: np.ndarray,
    marks: Sequence[OverlayMark],
    *,
    opacity: float = 0.45,
    title: str | None = None,
    line_width: int | None = None,
) -> np.ndarray:
    """Burn ``marks`` into ``image`` (uint8 grey or RGB, as rendered for display) → uint8 RGB.

    Per mark: the heatmap blended (Turbo, ``opacity``), the outline as a polygon and the box as
    a rectangle in the mark's colour, and its text above the box (below it at the top edge) on
    a dark plate. ``title`` (e.g. the research-use notice) goes top-left. Line width and text
    size scale with the image (about 1/300 and 1/40 of the shorter side).
    """
    rgb = to_rgb(image)
    rows, cols = rgb.shape[:2]
    for mark in marks:
        if mark.heatmap is not None:
            rgb = blend(rgb, heatmap_rgba(mark.heatmap, opacity=opacity))
    canvas = Image.fromarray(rgb, mode="RGB")
    draw = ImageDraw.Draw(canvas)
    short = min(rows, cols)
    width = line_width or max(1, round(short / 300))
    font = _font(max(10, round(short / 40)))
    pad = max(1, width)
    for mark in marks:
        if mark.outline is not None and len(mark.outline) >= 3:
            pts = [(float(x), float(y)) for x, y in mark.outline]
            draw.line([*pts, pts[0]], fill=mark.colour, width=width, joint="curve")
        anchor_xy = (4.0, 4.0)
        if mark.box is not None:
            x, y, w, h = (float(v) for v in mark.box)
            draw.rectangle(
                [x, y, max(x, x + w - 1), max(y, y + h - 1)], outline=mark.colour, width=width
            )
            anchor_xy = (x, y)
        text = mark.text.translate(_ASCII_DASHES)
        if text:
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            tw, th = right - left, bottom - top
            tx = min(max(anchor_xy[0], 0.0), max(cols - tw - 2 * pad, 0))
            ty = anchor_xy[1] - th - 3 * pad
            if mark.box is not None and ty < 0:
                ty = anchor_xy[1] + float(mark.box[3]) + pad
            ty = min(max(ty, 0.0), max(rows - th - 2 * pad, 0))
            draw.rectangle([tx, ty, tx + tw + 2 * pad, ty + th + 2 * pad], fill=(0, 0, 0))
            draw.text((tx + pad - left, ty + pad - top), text, fill=mark.colour, font=font)
    if title:
        _title_plate(draw, title, font, pad)
    return np.asarray(canvas, dtype=np.uint8).copy()


def _title_plate(draw: Any, title: str, font: Any, pad: int) -> None:
    """``title`` in white on a black plate in the top left corner."""
    title = title.translate(_ASCII_DASHES)
    left, top, right, bottom = draw.textbbox((0, 0), title, font=font)
    draw.rectangle([0, 0, right - left + 2 * pad, bottom - top + 2 * pad], fill=(0, 0, 0))
    draw.text((pad - left, pad - top), title, fill=(255, 255, 255), font=font)


# --------------------------------------------------------------------------- lesions

#: One colour per lesion id (1-based, repeating after ten), the viewer's too (``qt.lesion_overlay``
#: ``PALETTE``), distinct on a grey CT and apart from the findings' red and green.
LESION_COLOURS: tuple[RGB, ...] = (
    (0xFF, 0xB0, 0x00),
    (0x36, 0xC5, 0xF0),
    (0xFF, 0x5C, 0xA8),
    (0x7B, 0xD8, 0x8F),
    (0xB4, 0x8C, 0xFF),
    (0xFF, 0x8A, 0x3D),
    (0x3E, 0xE0, 0xC9),
    (0xF2, 0xE8, 0x5C),
    (0x6F, 0x9B, 0xFF),
    (0xE0, 0x7A, 0x7A),
)
LESION_FILL_ALPHA = 90  # the viewer's LESION_ALPHA: the image reads under the fill


def lesion_colour(lesion_id: int) -> RGB:
    """The colour of lesion ``lesion_id`` (1-based), as the viewer draws it."""
    return LESION_COLOURS[(max(int(lesion_id), 1) - 1) % len(LESION_COLOURS)]


@dataclass(frozen=True)
class LesionMark:
    """One lesion on one slice: its pixels (bool, the image's grid), its colour, its text
    ("L1 24 mm") and, on the slice where it was measured, its longest diameter (x0, y0, x1, y1)
    in pixel-corner coordinates."""

    mask: np.ndarray
    colour: RGB
    text: str = ""
    diameter: Box | None = None


def _erode4(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1, constant_values=False)
    return mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def _text_plate(
    draw: ImageDraw.ImageDraw,
    xy: Point,
    text: str,
    colour: RGB,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    pad: int,
    size: tuple[int, int],
) -> None:
    """``text`` on a dark plate whose bottom-left is near ``xy``, kept inside the image."""
    rows, cols = size
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    tw, th = right - left, bottom - top
    tx = min(max(xy[0], 0.0), max(cols - tw - 2 * pad, 0))
    ty = min(max(xy[1] - th - 3 * pad, 0.0), max(rows - th - 2 * pad, 0))
    draw.rectangle([tx, ty, tx + tw + 2 * pad, ty + th + 2 * pad], fill=(0, 0, 0))
    draw.text((tx + pad - left, ty + pad - top), text, fill=colour, font=font)


def render_lesions(
    image: np.ndarray,
    marks: Sequence[LesionMark],
    *,
    title: str | None = None,
    fill_alpha: int = LESION_FILL_ALPHA,
) -> np.ndarray:
    """Burn lesions into ``image`` (uint8 grey or RGB, as rendered for display) → uint8 RGB.

    Per mark: its pixels filled translucent (``fill_alpha`` of 255), its outline (the pixels at
    its edge, about 1/300 of the shorter side thick) and its diameter line opaque in its colour,
    its text above its top-left corner. ``title`` (the research-use notice) goes top-left.
    """
    rgb = to_rgb(image)
    rows, cols = rgb.shape[:2]
    short = min(rows, cols)
    width = max(1, round(short / 300))
    fill = np.zeros((rows, cols, 4), dtype=np.uint8)
    edges = np.zeros((rows, cols, 4), dtype=np.uint8)
    for mark in marks:
        m = np.asarray(mark.mask, dtype=bool)
        if m.shape != (rows, cols):
            raise ValueError(f"lesion mask {m.shape} and image {(rows, cols)} differ in size")
        inner = m
        for _ in range(width):
            inner = _erode4(inner)
        fill[m] = (*mark.colour, fill_alpha)
        edges[m & ~inner] = (*mark.colour, 255)
    rgb = blend(blend(rgb, fill), edges)
    canvas = Image.fromarray(rgb, mode="RGB")
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, round(short / 40)))
    pad = max(1, width)
    for mark in marks:
        if mark.diameter is not None:
            draw.line([tuple(mark.diameter[:2]), tuple(mark.diameter[2:])], fill=mark.colour,
                      width=width)  # fmt: skip
    for mark in marks:
        rr, cc = np.nonzero(mark.mask)
        if mark.text and rr.size:
            xy = (float(cc.min()), float(rr.min()))
            _text_plate(draw, xy, mark.text.translate(_ASCII_DASHES), mark.colour, font, pad,
                        (rows, cols))  # fmt: skip
    if title:
        _title_plate(draw, title, font, pad)
    return np.asarray(canvas, dtype=np.uint8).copy()
