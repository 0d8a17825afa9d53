"""The one stop flag and progress callback that long work takes, in the CLI and the GUI alike.

Long work (indexing, loading a volume, inference, export, de-identification, PACS transfers,
training) reports ``progress(done, total)`` and checks a stop flag between steps. The GUI passes
a worker's ``threading.Event`` (or a callable bound to its generation number); a CLI passes
``None`` or a SIGINT-driven event. Stopping is cooperative: the work raises
:class:`desktop_app.infra.errors.Cancelled` (or returns early) at its next check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: ``progress(done, total)``: called after each step; ``total`` is the number of steps.
Progress = Callable[[int, int], None]

#: A stop request: an Event, a callable that returns True once stopping is wanted, or None.
StopFlag = threading.Event | Callable[[], bool] | None


def stop_requested(stop: StopFlag) -> bool:
    """Whether ``stop`` asks the work to end now (False for None)."""
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())
