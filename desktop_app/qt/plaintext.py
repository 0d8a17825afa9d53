"""Text from files, peers and model files made safe for widgets: escaped, cut, never rich text.

A tag value shown raw in a Qt widget can do harm two ways: a bidi override or a newline
reorders or splits what the reader sees, and a QLabel or tooltip in Qt's default AutoText mode
renders any value that looks like HTML (``<img src=…>``, ``<a href=…>``) as rich text. So a
value goes through :func:`shown` (control characters escaped, see
:mod:`desktop_app.infra.safetext`) before ``setText`` on a plain-text label or item, through
:func:`rich` (also HTML-escaped) before it is put into rich text, and through :func:`tooltip`
before ``setToolTip``.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from desktop_app.infra.safetext import escape_control

# A value is cut to this many characters in a cell, a tree row or a corner of the image.
SHOWN_CHARS = 200


def shown(text: object, limit: int | None = SHOWN_CHARS) -> str:
    """``text`` for a plain-text label or item: one line, control characters escaped."""
    return escape_control("" if text is None else text, limit=limit)


def rich(text: object, limit: int | None = SHOWN_CHARS) -> str:
    """``text`` for inside rich text (HTML): as :func:`shown`, then HTML-escaped."""
    return html.escape(shown(text, limit), quote=True)


def tooltip(*lines: object) -> str:
    """A tooltip of these lines, each escaped: forced to rich text (``<qt>``) so that no value
    can switch it into HTML by itself, with the lines kept apart by ``<br>``."""
    return "<qt>" + "<br>".join(rich(line) for line in lines) + "</qt>"


def plain_label(label: QLabel) -> QLabel:
    """Make ``label`` show its text as plain text whatever it contains; returns it."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label
