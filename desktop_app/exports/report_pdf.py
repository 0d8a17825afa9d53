"""Lays out a :class:`~desktop_app.exports.report_model.ReportContent` as a PDF with
reportlab (Qt-free, so it runs headless and in tests). Layout only: what the report says is
decided in ``report_model``.

A4 portrait. Every page carries the research-use notice at the top and the disclaimer, the
generator and the page number at the bottom (drawn by the page template, so no page can lack
them). Text uses DejaVu Sans (shipped with matplotlib, a dependency) for its wide character
coverage; Helvetica when it is missing. Key images are embedded as JPEG (quality 92) at most
1024 pixels on the longer side.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image as PILImage
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from desktop_app.exports.report_model import ReportContent

log = logging.getLogger(__name__)

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 15 * mm
TOP_BAND = 14 * mm
BOTTOM_BAND = 20 * mm
MAX_IMAGE_PIXELS = 1024
ACCENT = colors.HexColor("#b00020")
GRID = colors.HexColor("#9e9e9e")
SHADE = colors.HexColor("#eeeeee")


@lru_cache(maxsize=1)
def fonts() -> tuple[str, str]:
    """(regular, bold) font names: DejaVu Sans registered from matplotlib's data folder, or
    Helvetica when it can't be found."""
    try:
        import matplotlib

        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdfmetrics.registerFont(TTFont("RA-Sans", str(folder / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("RA-Sans-Bold", str(folder / "DejaVuSans-Bold.ttf")))
        return "RA-Sans", "RA-Sans-Bold"
    except Exception as err:  # any failure: the built-in font still renders Latin text
        log.debug("DejaVu Sans unavailable (%s); using Helvetica", type(err).__name__)
        return "Helvetica", "Helvetica-Bold"


def _styles() -> dict[str, ParagraphStyle]:
    regular, bold = fonts()
    base = ParagraphStyle("base", fontName=regular, fontSize=9, leading=11.5, alignment=TA_LEFT)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5),
        "cell": ParagraphStyle("cell", parent=base, fontSize=7.5, leading=9),
        "head": ParagraphStyle("head", parent=base, fontName=bold, fontSize=7.5, leading=9),
        "title": ParagraphStyle("title", parent=base, fontName=bold, fontSize=16, leading=20),
        "h2": ParagraphStyle(
            "h2",
            parent=base,
            fontName=bold,
            fontSize=11.5,
            leading=14,
            spaceBefore=8,
            spaceAfter=4,
        ),
        "warn": ParagraphStyle(
            "warn", parent=base, textColor=ACCENT, fontName=bold, fontSize=8.5, leading=11
        ),
        "caption": ParagraphStyle("caption", parent=base, fontSize=8, leading=10),
    }


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _image(rgb: np.ndarray, max_width: float, max_height: float) -> Image:
    pil = PILImage.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
    if max(pil.size) > MAX_IMAGE_PIXELS:
        pil.thumbnail((MAX_IMAGE_PIXELS, MAX_IMAGE_PIXELS), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=92)
    buffer.seek(0)
    w, h = pil.size
    scale = min(max_width / w, max_height / h)
    return Image(buffer, width=w * scale, height=h * scale)


def _page_decorations(content: ReportContent) -> Any:
    regular, bold = fonts()

    def draw(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        top = PAGE_HEIGHT - MARGIN + 4 * mm
        canvas.setFillColor(ACCENT)
        canvas.setFont(bold, 10)
        canvas.drawString(MARGIN, top - 4 * mm, f"⚠ {content.notice}")
        canvas.setFillColor(colors.black)
        canvas.setFont(regular, 8)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, top - 4 * mm, content.title)
        canvas.setStrokeColor(ACCENT)
        canvas.setLineWidth(0.8)
        canvas.line(MARGIN, top - 6 * mm, PAGE_WIDTH - MARGIN, top - 6 * mm)
        width = PAGE_WIDTH - 2 * MARGIN
        lines = simpleSplit(content.disclaimer, regular, 7, width)
        y = MARGIN - 2 * mm + 9 * mm
        canvas.setStrokeColor(GRID)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, y + 3.5 * mm, PAGE_WIDTH - MARGIN, y + 3.5 * mm)
        canvas.setFont(regular, 7)
        for line in lines:
            canvas.drawString(MARGIN, y, line)
            y -= 8.5
        canvas.setFont(regular, 7)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(MARGIN, y - 2, content.footer)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, y - 2, f"Page {doc.page}")
        canvas.restoreState()

    return draw


def render_pdf(content: ReportContent) -> bytes:
    """The report as PDF bytes: header, summary and warnings, key images, findings, model."""
    styles = _styles()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + TOP_BAND - 4 * mm,
        bottomMargin=MARGIN + BOTTOM_BAND - 4 * mm,
        title=content.title,
        author="RadAssist",
        subject=content.notice,
        creator="RadAssist",
    )
    width = doc.width
    story: list[Any] = [_p(content.title, styles["title"]), Spacer(1, 3 * mm)]
    story += [_header_table(content, styles, width), Spacer(1, 3 * mm)]
    story.append(_p(content.summary, styles["body"]))
    for warning in content.warnings:
        story += [Spacer(1, 1.5 * mm), _p(f"⚠ {warning}", styles["warn"])]
    story += _key_images(content, styles, width)
    story += [_p("Findings", styles["h2"]), _findings_table(content, styles, width)]
    story += _lesions(content, styles, width)
    story += _missed(content, styles)
    story += _annotations(content, styles, width)
    story += _model_card(content, styles, width)
    decorate = _page_decorations(content)
    doc.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def _header_table(content: ReportContent, styles: dict[str, ParagraphStyle], width: float) -> Table:
    """The patient and study header, two (key, value) pairs per row."""
    pairs = list(content.header)
    cells = []
    for i in range(0, len(pairs), 2):
        row: list[Any] = []
        for key, value in pairs[i : i + 2]:
            row += [_p(key, styles["head"]), _p(value, styles["cell"])]
        while len(row) < 4:
            row.append("")
        cells.append(row)
    header = Table(cells, colWidths=[0.14 * width, 0.36 * width, 0.14 * width, 0.36 * width])
    header.setStyle(
        TableStyle(
            [
                ("BOX", (0, 0), (-1, -1), 0.6, GRID),
                ("BACKGROUND", (0, 0), (0, -1), SHADE),
                ("BACKGROUND", (2, 0), (2, -1), SHADE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("INNERGRID", (0, 0), (-1, -1), 0.3, GRID),
            ]
        )
    )
    return header


def _key_images(
    content: ReportContent, styles: dict[str, ParagraphStyle], width: float
) -> list[Any]:
    story: list[Any] = [_p("Key images", styles["h2"])]
    if not content.images:
        story.append(
            _p(
                "No key image: no positive finding that the reader did not mark absent, "
                "and no finding the reader drew a box for.",
                styles["body"],
            )
        )
    for image in content.images:
        flow = _image(image.rgb, width, 120 * mm)
        story.append(KeepTogether([flow, Spacer(1, 1 * mm), _p(image.caption, styles["caption"])]))
        story.append(Spacer(1, 4 * mm))
    return story


def _findings_table(
    content: ReportContent, styles: dict[str, ParagraphStyle], width: float
) -> Table:
    fractions = (0.04, 0.13, 0.15, 0.22, 0.2, 0.26)
    return _grid_table(content.columns, content.rows, fractions, styles, width)


def _grid_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    fractions: Sequence[float],
    styles: dict[str, ParagraphStyle],
    width: float,
) -> Table:
    """A gridded table of ``rows`` under a shaded ``columns`` row (repeated on each page),
    column widths the ``fractions`` of ``width``."""
    table = Table(
        [[_p(c, styles["head"]) for c in columns]]
        + [[_p(cell, styles["cell"]) for cell in row] for row in rows],
        colWidths=[f * width for f in fractions],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.3, GRID),
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _lesions(content: ReportContent, styles: dict[str, ParagraphStyle], width: float) -> list[Any]:
    """The reviewed lesions (segmentation), when there are any."""
    if not content.lesion_rows:
        return []
    fractions = (0.08, 0.12, 0.1, 0.22, 0.12, 0.12, 0.14, 0.1)
    table = _grid_table(content.lesion_columns, content.lesion_rows, fractions, styles, width)
    return [_p("Lesions", styles["h2"]), table]


def _missed(content: ReportContent, styles: dict[str, ParagraphStyle]) -> list[Any]:
    """The findings the model missed (the reader's false negatives), when there are any."""
    if not content.missed:
        return []
    story: list[Any] = [_p("Findings the model missed (added by the reader)", styles["h2"])]
    story += [_p(f"• {line}", styles["body"]) for line in content.missed]
    return story


def _annotations(
    content: ReportContent, styles: dict[str, ParagraphStyle], width: float
) -> list[Any]:
    """The reader's measurements and annotations (ROIs, angles, arrows, key images)."""
    if not content.annotation_rows:
        return []
    fractions = (0.05, 0.17, 0.18, 0.32, 0.28)
    table = _grid_table(
        content.annotation_columns, content.annotation_rows, fractions, styles, width
    )
    return [_p("Reader's measurements and annotations", styles["h2"]), table]


def _model_card(
    content: ReportContent, styles: dict[str, ParagraphStyle], width: float
) -> list[Any]:
    """The model card summary table, then intended use, metrics and training data."""
    model = Table(
        [[_p(k, styles["head"]), _p(v, styles["cell"])] for k, v in content.model],
        colWidths=[0.2 * width, 0.8 * width],
    )
    model.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.3, GRID),
                ("BACKGROUND", (0, 0), (0, -1), SHADE),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story: list[Any] = [KeepTogether([_p("Model card summary", styles["h2"]), model])]
    story += [Spacer(1, 2 * mm), _p("Intended use", styles["head"])]
    story += [_p(content.intended_use, styles["small"]), Spacer(1, 2 * mm)]
    story.append(_p("Metrics", styles["head"]))
    story += [_p(f"• {line}", styles["small"]) for line in content.metrics]
    story += [Spacer(1, 2 * mm), _p("Training data", styles["head"])]
    story += [_p(f"• {line}", styles["small"]) for line in content.training]
    return story
