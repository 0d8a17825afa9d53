"""Long work off the GUI thread, the ndv/superqt way.

A :class:`TaskChannel` runs one kind of request (load a series, run inference) on a thread
pool. Every request carries a generation number; a result from an older generation than the
current one is dropped, so a newer request always supersedes an older one. Cancelling is
cooperative: the work function receives a stop event and checks it between units of work.
Workers never touch widgets: results reach the GUI thread through queued signals.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from desktop_app.infra.errors import Cancelled, RadAssistError, describe

log = logging.getLogger(__name__)

# fn(progress, stop) -> result; progress(done, total); stop: threading.Event
WorkFunction = Callable[[Callable[[int, int], None], threading.Event], Any]
# fn(progress, stop, emit) -> result; emit(item) delivers a partial result (e.g. one thumbnail)
StreamingWorkFunction = Callable[
    [Callable[[int, int], None], threading.Event, Callable[[object], None]], Any
]


__all__ = ["Cancelled", "TaskChannel", "make_pool"]  # Cancelled: the core's, raised by work


def lower_thread_priority(niceness: int = 10) -> None:
    """Lower the calling (worker) thread's CPU priority, so that when it and the GUI thread
    both want a core the GUI thread gets it (Linux: per-thread nice; elsewhere nothing).
    Threads it creates afterwards (e.g. ONNX Runtime's pool) inherit it."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)


def make_pool(threads: int, parent: QObject | None = None) -> QThreadPool:
    """A thread pool of its own, so that one kind of long job (inference) never queues the
    quick ones (the shown slice, thumbnails) behind it in the global pool."""
    pool = QThreadPool(parent)
    pool.setMaxThreadCount(max(1, threads))
    return pool


class _Relay(QObject):
    """Lives in the GUI thread; emitted from pool threads, delivered queued."""

    progressed = Signal(int, int, int)  # generation, done, total
    succeeded = Signal(int, object)  # generation, result
    errored = Signal(int, str)  # generation, one-line message
    stopped = Signal(int)  # generation
    partial = Signal(int, object)  # generation, item


class _Activity:
    """Counts a channel's jobs that have not finished, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def enter(self) -> None:
        with self.cond:
            self.count += 1

    def leave(self) -> None:
        with self.cond:
            self.count -= 1
            self.cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.count == 0, timeout)


class _Job(QRunnable):
    def __init__(
        self,
        relay: _Relay,
        generation: int,
        fn: WorkFunction | StreamingWorkFunction,
        stop: threading.Event,
        streaming: bool,
        activity: _Activity,
    ):
        super().__init__()
        self.setAutoDelete(True)
        self.relay = relay
        self.generation = generation
        self.fn = fn
        self.stop = stop
        self.streaming = streaming
        self.activity = activity

    def _send(self, name: str, *args: object) -> None:
        """Emit on the relay unless its window is gone (then there is no one to tell)."""
        try:
            getattr(self.relay, name).emit(*args)
        except RuntimeError:  # the relay's C++ object was deleted with its channel
            self.stop.set()

    def run(self) -> None:  # runs in a pool thread
        gen = self.generation

        def progress(done: int, total: int) -> None:
            self._send("progressed", gen, int(done), int(total))

        def emit(item: object) -> None:
            self._send("partial", gen, item)

        try:
            if self.streaming:
                result = self.fn(progress, self.stop, emit)  # type: ignore[call-arg]
            else:
                result = self.fn(progress, self.stop)  # type: ignore[call-arg]
        except Cancelled:
            self._send("stopped", gen)
        except RadAssistError as err:
            self._send("errored", gen, err.one_line())
        except Exception as err:  # a bug: log it, show one line, keep the app alive
            log.exception("background task failed")
            self._send("errored", gen, describe(err))
        else:
            if self.stop.is_set():
                self._send("stopped", gen)
            else:
                self._send("succeeded", gen, result)
        finally:
            self.fn = None  # type: ignore[assignment]  # drop captured data in this thread
            self.activity.leave()


class TaskChannel(QObject):
    """One stream of requests of the same kind; only the newest one's outcome is delivered."""

    started = Signal(int)
    progressed = Signal(int, int)  # done, total (current generation only)
    finished = Signal(object)  # the result (current generation only)
    failed = Signal(str)  # one-line message (current generation only)
    cancelled = Signal()
    partial = Signal(object)  # an item a streaming job emitted (current generation only)

    def __init__(self, name: str, parent: QObject | None = None, pool: QThreadPool | None = None):
        super().__init__(parent)
        self.name = name
        self._pool = pool or QThreadPool.globalInstance()
        self._relay = _Relay(self)
        self._relay.progressed.connect(self._on_progress)
        self._relay.succeeded.connect(self._on_success)
        self._relay.errored.connect(self._on_error)
        self._relay.stopped.connect(self._on_stopped)
        self._relay.partial.connect(self._on_partial)
        self._generation = 0
        self._stop: threading.Event | None = None
        self._running = False
        self._activity = _Activity()

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def running(self) -> bool:
        return self._running

    def submit(self, fn: WorkFunction) -> int:
        """Start ``fn`` in a pool thread; any earlier request of this channel is cancelled."""
        return self._start(fn, streaming=False)

    def submit_streaming(self, fn: StreamingWorkFunction) -> int:
        """Like :meth:`submit`, and ``fn`` gets a third argument ``emit(item)`` whose items
        arrive as :attr:`partial` signals (dropped when a newer request has started)."""
        return self._start(fn, streaming=True)

    def _start(self, fn: WorkFunction | StreamingWorkFunction, streaming: bool) -> int:
        if self._stop is not None:
            self._stop.set()
        self._generation += 1
        self._stop = threading.Event()
        self._running = True
        self._activity.enter()
        job = _Job(self._relay, self._generation, fn, self._stop, streaming, self._activity)
        self._pool.start(job)
        self.started.emit(self._generation)
        return self._generation

    def cancel(self) -> None:
        """Ask the running request to stop; its outcome arrives as :attr:`cancelled`."""
        if self._stop is not None:
            self._stop.set()

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        """Block until every job of this channel has returned (not only the current one)."""
        return self._activity.wait(timeout_ms / 1000.0)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel and wait for this channel's jobs, before its owner goes away."""
        self.cancel()
        return self.wait_idle(timeout_ms)

    def _on_partial(self, generation: int, item: object) -> None:
        if self._current(generation):
            self.partial.emit(item)

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
