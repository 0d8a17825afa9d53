"""Fits 1280×720: the toolbar overflows into Qt's extension pop-up instead of clipping, the side
panels are sized for the screen and can be closed or narrowed, and thumbnails stay readable."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton

from desktop_app.qt.main_window import side_panel_widths
from desktop_app.qt.study_browser import THUMB_PX
from tests.qt.conftest import SAMPLE_XR, open_and_wait


def _small(make_window):  # type: ignore[no-untyped-def]
    window = make_window()
    window.resize(1280, 720)
    window._panels_sized = False  # as on a first show at this size
    window.hide()
    window.show()
    return window


def test_the_toolbar_overflows_instead_of_clipping(qtbot, make_window) -> None:
    window = _small(make_window)
    bar = window.toolbar
    qtbot.waitUntil(lambda: bar.width() <= 1280)
    (ext,) = bar.findChildren(QToolButton, "qt_toolbar_ext_button")
    assert ext.isVisible() and not ext.icon().isNull()
    shown, hidden = [], []
    for act in bar.actions():
        widget = bar.widgetForAction(act)
        if widget is None or act.isSeparator():
            continue
        (shown if widget.isVisible() else hidden).append(widget)
    assert hidden, "at 1280 px some tools must overflow"
    assert all(w.geometry().right() < ext.geometry().left() for w in shown)  # none cut off
    qtbot.mouseClick(ext, Qt.MouseButton.LeftButton)  # the pop-up holds the rest
    qtbot.waitUntil(lambda: all(w.isVisible() for w in hidden))
    run = bar.widgetForAction(window.acts["run_inference"])
    assert run is not None and run.isVisible()


def test_side_panels_leave_the_image_half_the_window(qtbot, make_window) -> None:
    assert side_panel_widths(1280) == (294, 330)
    assert side_panel_widths(1920) == (390, 430)
    window = _small(make_window)
    qtbot.waitUntil(lambda: window.viewports.width() >= 540)
    assert window.studies_dock.width() <= 330
    # each panel can be narrowed further by hand, or closed from View ▸ (its toggle)
    assert window.studies_dock.minimumSizeHint().width() <= 240
    window.studies_dock.toggleViewAction().trigger()
    assert not window.studies_dock.isVisible()
    qtbot.waitUntil(lambda: window.viewports.width() >= 800)
    window.findings_dock.toggleViewAction().trigger()
    assert not window.findings_dock.isVisible()


def test_thumbnails_are_readable_and_names_whole(qtbot, make_window) -> None:
    window = _small(make_window)
    open_and_wait(qtbot, window, [SAMPLE_XR])
    browser = window.browser
    assert THUMB_PX >= 64 and browser.iconSize().width() == THUMB_PX
    qtbot.waitUntil(lambda: browser.has_thumbnail(window.shown.key), timeout=20_000)
    item = browser.currentItem()
    assert item.text(0) == "PA CHEST (synthetic)"
    rect = browser.visualItemRect(item)
    assert rect.height() >= THUMB_PX
    # the name wraps beside the thumbnail instead of being cut: all of it fits the column
    text_width = browser.fontMetrics().horizontalAdvance(item.text(0))
    column = browser.columnWidth(0) - THUMB_PX - browser.indentation() * 3
    lines = browser.fontMetrics().lineSpacing() * (1 + text_width // max(column, 1))
    assert lines <= rect.height()
