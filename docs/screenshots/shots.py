"""What the make_*.py screenshot scripts here share: their command line, a MainWindow on fresh
temporary settings and data folder, waiting on the Qt event loop, and writing a grabbed PNG.

Each script runs under a real X server (``xvfb-run -a -s "-screen 0 1600x1000x24"``) so that Qt's
xcb platform draws what a user sees; it imports this module from its own folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from desktop_app.qt.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "resources" / "sample"
HERE = Path(__file__).resolve().parent


def parse_args(doc: str, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """``--out`` (default: this folder) and ``--size WxH`` over ``parser``'s own options;
    ``args.out`` is a Path, ``args.width`` and ``args.height`` the size."""
    parser = parser or argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--size", default="1600x1000")
    args = parser.parse_args()
    args.width, args.height = (int(v) for v in args.size.split("x"))
    args.out = Path(args.out)
    return args


class Session:
    """A temporary folder whose ``data`` is the user data folder (``RADASSIST_DATA_DIR``), and
    the QApplication in the dark theme; the folder goes when the session does."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="radassist-docs-")
        self.folder = Path(self._tmp.name)
        os.environ["RADASSIST_DATA_DIR"] = str(self.folder / "data")
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))

        from PySide6.QtWidgets import QApplication

        from desktop_app.qt.theme import apply_dark_theme

        self.app: QApplication = QApplication(sys.argv[:1])
        self.app.setApplicationName("RadAssist")
        apply_dark_theme(self.app)

    def window(
        self, width: int, height: int, *, settings_name: str = "settings.ini", model: str = ""
    ) -> MainWindow:
        """A shown MainWindow of ``width`` x ``height`` at the screen's corner, on new settings
        (a reviewer's name; ``model``, when given, as the model file)."""
        from PySide6.QtCore import QSettings

        from desktop_app.qt.main_window import MainWindow

        settings = QSettings(str(self.folder / settings_name), QSettings.Format.IniFormat)
        settings.setValue("review/reviewer", "Dr A. Reader")
        if model:
            settings.setValue("inference/model_path", str(Path(model).resolve()))
        window = MainWindow(settings=settings, warm_up_ms=-1)
        window.resize(width, height)
        window.move(0, 0)
        window.show()
        return window


def wait(predicate: Callable[[], bool], timeout_s: float = 60) -> bool:
    """Run the event loop until ``predicate()`` holds or ``timeout_s`` has passed; whether it holds."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    timer = QTimer()
    left = [int(timeout_s * 1000 / 20)]

    def check() -> None:
        left[0] -= 1
        if predicate() or left[0] <= 0:
            loop.quit()

    timer.timeout.connect(check)
    timer.start(20)
    if not predicate():
        loop.exec()
    timer.stop()
    return predicate()


def settle(ms: int = 400) -> None:
    """Run the event loop for ``ms`` (repaints, late layouts) before a grab."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def open_and_show(window: MainWindow, paths: Sequence[Path], timeout_s: float = 60) -> bool:
    """Open ``paths`` in ``window`` and wait until a series is on screen; whether one is."""
    shown: list[str] = []
    window.studies.seriesShown.connect(shown.append)
    window.studies.open_paths(list(paths))
    return wait(lambda: bool(shown) and window.viewer.frame is not None, timeout_s)


def save_png(image: QImage, path: Path) -> None:
    """``image`` as a PNG at ``path`` (written atomically)."""
    from PySide6.QtCore import QBuffer, QIODevice

    from desktop_app.infra.atomicio import atomic_write_bytes

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stubs want bytes
    atomic_write_bytes(path, bytes(buffer.data().data()))
    print(f"wrote {path}")


def grab(window: MainWindow, path: Path, settle_ms: int = 400) -> None:
    """Let the window settle, then save what it draws (without the frame) at ``path``."""
    settle(settle_ms)
    save_png(window.grab().toImage(), path)


def grab_screen(path: Path, width: int, height: int, settle_ms: int = 300) -> None:
    """Let the screen settle, then save its top-left ``width`` x ``height`` (pop-ups and dialogs
    over the window included) at ``path``."""
    from PySide6.QtGui import QGuiApplication

    settle(settle_ms)
    screen = QGuiApplication.primaryScreen()
    save_png(screen.grabWindow(0, 0, 0, width, height).toImage(), path)
