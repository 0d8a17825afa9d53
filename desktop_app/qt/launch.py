"""`radassist [PATH ...]`: build the QApplication and the main window; screenshot mode for docs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", metavar="FILE", help="model file (.safetensors); default: bundled"
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default=None,
        help="where to run the network (default: the saved setting, else auto)",
    )
    parser.add_argument(
        "--screenshot",
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


def run(args: argparse.Namespace) -> int:
    if args.screenshot and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from desktop_app.qt.errors import install_exception_hook
    from desktop_app.qt.main_window import MainWindow
    from desktop_app.qt.theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("RadAssist")
    app.setOrganizationName("RadAssist")
    apply_dark_theme(app)  # type: ignore[arg-type]
    install_exception_hook()
    window = MainWindow(model_path=args.model, device=args.device)
    if args.screenshot:
        from desktop_app.qt.screenshot import take_screenshot

        size = _parse_size(args.size)
        return take_screenshot(
            window, [Path(p) for p in args.paths], Path(args.screenshot), size, args.run_inference
        )
    window.show()
    if args.paths:
        window.open_paths([Path(p) for p in args.paths])
    return int(app.exec())
