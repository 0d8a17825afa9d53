"""The lesion strip places each tick under the slider handle that shows its slice, with the
slider's geometry looked up once per paint."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QVBoxLayout,
    QWidget,
)

from desktop_app.qt.lesion_strip import LesionStripWidget

COLOR = "#36c5f0"


def handle_centre(slider: QSlider) -> int:
    """Where the style draws the handle's centre (in the slider's coordinates)."""
    opt = QStyleOptionSlider()
    slider.initStyleOption(opt)
    handle = slider.style().subControlRect(
        QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, slider
    )
    return handle.center().x()


@pytest.fixture
def strip(qtbot):
    host = QWidget()
    qtbot.addWidget(host)
    layout = QVBoxLayout(host)
    layout.setContentsMargins(30, 0, 10, 0)  # the strip and slider not at x = 0 of the host
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 99)
    strip = LesionStripWidget(slider)
    layout.addWidget(slider)
    layout.addWidget(strip)
    host.resize(640, 60)
    host.show()
    qtbot.waitExposed(host)
    yield strip  # the host lives until the test ends
    host.close()


@pytest.mark.parametrize("inverted", [False, True])
def test_a_tick_sits_under_the_handle_of_its_slice(strip, inverted: bool) -> None:
    slider = strip.slider
    slider.setInvertedAppearance(inverted)
    for index in (0, 17, 63, 99):
        slider.setValue(index)
        handle_x = strip.mapFromGlobal(slider.mapToGlobal(QPoint(handle_centre(slider), 0))).x()
        assert abs(strip.x_of(index) - handle_x) <= 1


def test_the_painted_ticks_are_where_x_of_says(strip) -> None:
    strip.set_ticks([(20, COLOR), (70, COLOR)])
    strip.slider.setValue(45)
    image = strip.grab().toImage()
    row = strip.height() // 2 + 2  # below the bar, inside a tick
    for index in (20, 70):
        assert image.pixelColor(strip.x_of(index), row) == QColor(COLOR)
    assert image.pixelColor(strip.x_of(45) - 6, row) != QColor(COLOR)  # no tick there
    assert strip.slice_at(strip.x_of(70) + 3) == 70
    assert strip.slice_at(strip.x_of(45)) is None
