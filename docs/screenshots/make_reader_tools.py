"""Screenshots of the reader's annotation tools (reader-tools-*): ellipse and rectangle ROIs
with their HU statistics, an angle, an arrow with text and the key-image flag on the CT phantom.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python \
        docs/screenshots/make_reader_tools.py --size 1600x1000   # and --size 1280x720

Opens the bundled CT phantom on fresh temporary settings and data folder (no model run),
draws each annotation with the mouse (QTest) as a reader would, and grabs the window.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from shots import SAMPLE, Session, grab, open_and_show, parse_args, settle, wait


def main() -> int:
    args = parse_args(__doc__)
    session = Session()
    window = session.window(args.width, args.height)
    canvas = window.canvas
    left = Qt.MouseButton.LeftButton

    def at(x: float, y: float) -> QPoint:
        return canvas.image_to_widget(QPointF(x, y)).toPoint()

    def drag(a: tuple[float, float], b: tuple[float, float]) -> None:
        QTest.mousePress(canvas, left, Qt.KeyboardModifier.NoModifier, at(*a))
        QTest.mouseMove(canvas, at((a[0] + b[0]) / 2, (a[1] + b[1]) / 2))
        QTest.mouseMove(canvas, at(*b))
        QTest.mouseRelease(canvas, left, Qt.KeyboardModifier.NoModifier, at(*b))

    if not open_and_show(window, [SAMPLE / "ct_phantom"]):
        print("error: the CT phantom did not open", file=sys.stderr)
        return 1
    window.viewer.set_index(17)  # the lesion's largest slice
    wait(lambda: window.annotations._image_ref() is not None and window.viewer.index == 17)
    window.canvas.zoom_by(1.5)
    settle()
    ctl = window.annotations
    window.acts["tool_ellipse"].trigger()
    drag((71.5, 112.5), (84, 124.5))  # inside the 50 HU lesion
    window.acts["tool_rectangle"].trigger()
    drag((160, 100), (195, 135))  # lung on the other side
    window.acts["tool_angle"].trigger()
    drag((200, 150), (168, 168))
    QTest.mouseClick(canvas, left, Qt.KeyboardModifier.NoModifier, at(196, 192))
    window.acts["tool_arrow"].trigger()
    drag((72, 108), (95, 70))
    if ctl.text_dialog is not None:
        ctl.text_dialog.setTextValue("round 50 HU nodule")
        ctl.text_dialog.accept()
    ctl.toggle_key_image()
    ctl.selected = next(a.id for a in ctl.here() if a.kind == "ellipse")
    canvas.update()
    grab(window, args.out / f"reader-tools-{args.width}.png")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
