"""`radassist [PATH ...]`: build the QApplication and the main window; screenshot mode for docs.

Settings live in the platform's QSettings store; ``RADASSIST_SETTINGS_FILE`` names an INI file
to use instead (tests, portable installs). ``--screenshot`` runs on a fresh temporary settings
file and a fresh temporary data folder, so docs look the same on every machine and nothing of
the user's is written: no recent list, reviews, audit records, speed estimate, header index
cache or log file (the data folder is switched while the arguments are parsed, before the
entry point opens its log file there).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from desktop_app.settings.schema import DEVICES

log = logging.getLogger(__name__)

_SCREENSHOT_HOMES: list[tempfile.TemporaryDirectory[str]] = []  # removed at exit


class _ScreenshotAction(argparse.Action):
    """``--screenshot FILE``: also points ``RADASSIST_DATA_DIR`` at a new temporary folder,
    at parse time, so that everything the run writes (the log file included, opened by the
    entry point right after parsing) lands there and not in the user's data folder."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        if not _SCREENSHOT_HOMES:
            _SCREENSHOT_HOMES.append(tempfile.TemporaryDirectory(prefix="radassist-shot-"))
        os.environ["RADASSIST_DATA_DIR"] = str(Path(_SCREENSHOT_HOMES[0].name) / "data")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", metavar="FILE", help="model file (.safetensors); default: bundled"
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help="where to run the network (default: the saved setting, else auto)",
    )
    parser.add_argument(
        "--screenshot",
        action=_ScreenshotAction,
        metavar="FILE.png",
        help="load, render the main window to this PNG and exit (for docs and checks)",
    )
    parser.add_argument(
        "--run-inference",
        action="store_true",
        help="with --screenshot: run the model on the first series before the screenshot",
    )
    parser.add_argument(
        "--size",
        default="1600x1000",
        metavar="WxH",
        help="window size for --screenshot (default 1600x1000)",
    )


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(
            f"radassist: error: --size wants WxH, e.g. 1600x1000, not {text!r}"
        ) from None
    return max(w, 320), max(h, 240)


SETTINGS_ENV = "RADASSIST_SETTINGS_FILE"


def _settings(screenshot: bool, keep: list[object]) -> object:
    from PySide6.QtCore import QSettings

    path = os.environ.get(SETTINGS_ENV, "").strip()
    if screenshot:
        folder = tempfile.TemporaryDirectory(prefix="radassist-shot-")
        keep.append(folder)
        path = path or str(Path(folder.name) / "settings.ini")
        # a screenshot's inference lands in no reviews and no audit trail of the user's, even
        # when RADASSIST_DATA_DIR names a folder (already switched when --screenshot was
        # parsed; again here for a caller that builds its Namespace itself)
        if not _SCREENSHOT_HOMES:
            os.environ["RADASSIST_DATA_DIR"] = str(Path(folder.name) / "data")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings()


def _route_qt_messages() -> None:
    """Qt's own messages (e.g. the offscreen plugin's "does not support propagateSizeHints()")
    go to the log file under the logger "qt", never to the terminal (infra.logsetup)."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        qt_log.log(levels.get(kind, logging.WARNING), "%s", message)

    qInstallMessageHandler(handler)


def run(args: argparse.Namespace) -> int:
    if args.screenshot and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from desktop_app.qt.errors import install_exception_hook
    from desktop_app.qt.main_window import MainWindow
    from desktop_app.qt.theme import apply_dark_theme

    # The inference worker runs Python between its GIL-free network calls; a shorter switch
    # interval than the default 5 ms hands the GIL back to the GUI thread sooner.
    sys.setswitchinterval(0.002)
    _route_qt_messages()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("RadAssist")
    app.setOrganizationName("RadAssist")
    apply_dark_theme(app)  # type: ignore[arg-type]
    _set_window_icon(app)  # type: ignore[arg-type]
    install_exception_hook()
    keep: list[object] = []
    window = MainWindow(
        model_path=args.model,
        device=args.device,
        settings=_settings(bool(args.screenshot), keep),  # type: ignore[arg-type]
        warm_up_ms=-1 if args.screenshot else None,  # a screenshot loads the model only to run it
    )
    if args.screenshot:
        from desktop_app.qt.screenshot import take_screenshot

        size = _parse_size(args.size)
        return take_screenshot(
            window, [Path(p) for p in args.paths], Path(args.screenshot), size, args.run_inference
        )
    window.show()
    if args.paths:
        window.studies.open_paths([Path(p) for p in args.paths])
    return int(app.exec())


def _set_window_icon(app: object) -> None:
    """The app icon in the title bar and task switcher (resources/icons, also in the bundle)."""
    from PySide6.QtGui import QIcon

    from desktop_app.model.paths import resources_dir

    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        path = resources_dir() / "icons" / f"radassist-{size}.png"
        if path.is_file():
            icon.addFile(str(path))
    if not icon.isNull():
        app.setWindowIcon(icon)  # type: ignore[attr-defined]
