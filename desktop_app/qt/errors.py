"""Unhandled exceptions in any thread are caught, logged and shown — never a crash.

Qt aborts the process when a Python exception escapes a slot under some bindings; this hook
keeps the app alive, writes the traceback to the log (not to the user) and shows one line.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class _ErrorRelay(QObject):
    error = Signal(str)


relay = _ErrorRelay()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"unexpected error: {type(exc).__name__}: {text}" if text else type(exc).__name__


def _hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log.error("unhandled exception", exc_info=(exc_type, exc, tb))
    relay.error.emit(_one_line(exc))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    log.error(
        "unhandled exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
    relay.error.emit(_one_line(args.exc_value))


def install_exception_hook() -> None:
    sys.excepthook = _hook
    threading.excepthook = _thread_hook
