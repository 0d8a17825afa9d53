"""Long work off the GUI thread, the ndv/superqt way.

A :class:`TaskChannel` runs one kind of request (load a series, run inference) on a thread
pool. Every request carries a generation number; a result from an older generation than the
current one is dropped, so a newer request always supersedes an older one. Cancelling is
cooperative: the work function receives a stop event and checks it between units of work.
Workers never touch widgets: results reach the GUI thread through queued signals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from desktop_app.core.errors import RadAssistError

log = logging.getLogger(__name__)

# fn(progress, stop) -> result; progress(done, total); stop: threading.Event
WorkFunction = Callable[[Callable[[int, int], None], threading.Event], Any]


class Cancelled(Exception):
    """Raised by a work function that noticed its stop event."""


class _Relay(QObject):
    """Lives in the GUI thread; emitted from pool threads, delivered queued."""

    progressed = Signal(int, int, int)  # generation, done, total
    succeeded = Signal(int, object)  # generation, result
    errored = Signal(int, str)  # generation, one-line message
    stopped = Signal(int)  # generation


class _Job(QRunnable):
    def __init__(self, relay: _Relay, generation: int, fn: WorkFunction, stop: threading.Event):
        super().__init__()
        self.setAutoDelete(True)
        self.relay = relay
        self.generation = generation
        self.fn = fn
        self.stop = stop

    def run(self) -> None:  # runs in a pool thread
        gen = self.generation

        def progress(done: int, total: int) -> None:
            self.relay.progressed.emit(gen, int(done), int(total))

        try:
            result = self.fn(progress, self.stop)
        except Cancelled:
            self.relay.stopped.emit(gen)
        except RadAssistError as err:
            self.relay.errored.emit(gen, err.one_line())
        except Exception as err:  # a bug: log it, show one line, keep the app alive
            log.exception("background task failed")
            self.relay.errored.emit(gen, f"unexpected error: {type(err).__name__}: {err}")
        else:
            if self.stop.is_set():
                self.relay.stopped.emit(gen)
            else:
                self.relay.succeeded.emit(gen, result)


class TaskChannel(QObject):
    """One stream of requests of the same kind; only the newest one's outcome is delivered."""

    started = Signal(int)
    progressed = Signal(int, int)  # done, total (current generation only)
    finished = Signal(object)  # the result (current generation only)
    failed = Signal(str)  # one-line message (current generation only)
    cancelled = Signal()

    def __init__(self, name: str, parent: QObject | None = None, pool: QThreadPool | None = None):
        super().__init__(parent)
        self.name = name
        self._pool = pool or QThreadPool.globalInstance()
        self._relay = _Relay(self)
        self._relay.progressed.connect(self._on_progress)
        self._relay.succeeded.connect(self._on_success)
        self._relay.errored.connect(self._on_error)
        self._relay.stopped.connect(self._on_stopped)
        self._generation = 0
        self._stop: threading.Event | None = None
        self._running = False

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def running(self) -> bool:
        return self._running

    def submit(self, fn: WorkFunction) -> int:
        """Start ``fn`` in a pool thread; any earlier request of this channel is cancelled."""
        if self._stop is not None:
            self._stop.set()
        self._generation += 1
        self._stop = threading.Event()
        self._running = True
        self._pool.start(_Job(self._relay, self._generation, fn, self._stop))
        self.started.emit(self._generation)
        return self._generation

    def cancel(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    def _on_progress(self, generation: int, done: int, total: int) -> None:
        if self._current(generation):
            self.progressed.emit(done, total)

    def _on_success(self, generation: int, result: object) -> None:
        if self._current(generation):
            self._running = False
            self.finished.emit(result)
        else:
            log.debug("%s: dropped stale result of generation %d", self.name, generation)

    def _on_error(self, generation: int, message: str) -> None:
        if self._current(generation):
            self._running = False
            self.failed.emit(message)

    def _on_stopped(self, generation: int) -> None:
        if self._current(generation):
            self._running = False
            self.cancelled.emit()
