"""Saves review states and appends audit records on one background thread (Qt-free)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from desktop_app.infra.errors import describe
from desktop_app.review.state import ReviewState
from desktop_app.review.store import ReviewStore

if TYPE_CHECKING:
    from desktop_app.privacy.audit import AuditLog

log = logging.getLogger(__name__)


class ReviewWriter:
    """Saves review states and appends audit records on one background thread, in order.

    The GUI thread only snapshots the state (``to_dict``: plain lists and numbers) and queues
    it; the JSON encoding and the fsyncs happen here, so a slow disk never freezes the window. Saves of the same study that
    are still queued collapse into the newest one (it holds every earlier change); audit
    records are never dropped or reordered. ``flush()`` waits until everything queued is on
    disk. Failures go to ``on_error`` with a one-line reason, and the next change retries.
    """

    def __init__(
        self,
        store: ReviewStore,
        audit: AuditLog | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.audit_log = audit
        self.on_error = on_error
        self._queue: deque[tuple[str, Any]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self.saves = 0
        self._thread = threading.Thread(
            target=self._run, name="radassist-review-writer", daemon=True
        )
        self._thread.start()

    def save(self, state: ReviewState) -> None:
        snapshot = state.to_dict()
        with self._cond:
            for i, (kind, item) in enumerate(self._queue):
                if kind == "save" and item["study_uid"] == snapshot["study_uid"]:
                    self._queue[i] = ("save", snapshot)
                    break
            else:
                self._queue.append(("save", snapshot))
            self._cond.notify_all()

    def audit(self, kind: str, **fields: Any) -> None:
        """Queue one audit record (``AuditLog.append(kind, **fields)``); no-op without a log."""
        if self.audit_log is None:
            return
        with self._cond:
            self._queue.append(("audit", (kind, fields)))
            self._cond.notify_all()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every queued save and record is written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        ok = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return ok

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue and self._closed:
                    return
                kind, item = self._queue.popleft()
                self._busy = True
            try:
                if kind == "save":
                    self.store.save_data(item)
                    self.saves += 1
                elif self.audit_log is not None:
                    record_kind, fields = item
                    self.audit_log.append(record_kind, **fields)
            except Exception as err:  # reported, never fatal: the next change retries a save
                log.warning("review writer: %s failed: %s", kind, type(err).__name__)
                if self.on_error is not None:
                    what = "review not saved" if kind == "save" else "audit record not written"
                    self.on_error(f"{what}: {describe(err)}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
