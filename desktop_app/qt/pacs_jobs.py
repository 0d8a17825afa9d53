"""The PACS dialog's worker side: the workers' own thread pool, and retrieving several
studies in turn into the local store (:class:`RetrieveSummary`). Widgets never appear here."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QThreadPool

from desktop_app.infra.errors import Cancelled, PacsError
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.pacs.dimse import PacsClient
from desktop_app.pacs.query import RetrievePlan
from desktop_app.pacs.store import LocalStore
from desktop_app.qt.workers import make_pool

log = logging.getLogger(__name__)

_POOL: QThreadPool | None = None


def pacs_pool() -> QThreadPool:
    """The PACS workers' own pool: a PACS that makes us wait never holds up the threads that
    read headers or draw thumbnails. Module-wide, so that closing a dialog never blocks on a
    worker still waiting for a timeout."""
    global _POOL
    if _POOL is None:
        _POOL = make_pool(3)
    return _POOL


@dataclass(frozen=True)
class RetrieveSummary:
    """What one Retrieve brought back, over all the selected studies."""

    folders: tuple[Path, ...]  # store folder of each study with at least one instance
    stored: int
    failed: int
    problems: tuple[str, ...]

    def message(self) -> str:
        n = len(self.folders)
        text = f"Retrieved {self.stored} instance(s) of {n} stud{'y' if n == 1 else 'ies'}"
        if self.failed:
            text += f"; {self.failed} failed on the PACS"
        if self.problems:
            text += f"; {self.problems[0]}"
            if len(self.problems) > 1:
                text += f" (+{len(self.problems) - 1} more)"
        return text


def retrieve_all(
    client: PacsClient,
    store: LocalStore,
    uids: list[str],
    plan: RetrievePlan,
    progress: Callable[[int, int], None],
    stop: threading.Event,
) -> RetrieveSummary:
    """Retrieve each study in turn (worker thread). A study that fails is reported and the
    others still come; when none brought anything back, the first error is raised."""
    folders: list[Path] = []
    stored = failed = 0
    problems: list[str] = []
    first_error: PacsError | None = None
    for i, uid in enumerate(uids):
        if stop.is_set():
            raise Cancelled()

        def on_progress(done: int, total: int, i: int = i) -> None:
            progress(*plan.update(i, done, total))

        try:
            result = client.retrieve(uid, store=store, progress=on_progress, stop=stop)
        except PacsError as err:
            first_error = first_error or err
            problems.append(err.one_line())
            log.warning("retrieve of study %s failed", uid_hash(uid))
            continue
        if result.cancelled:
            raise Cancelled()
        progress(*plan.finish(i, len(result.stored)))
        stored += len(result.stored)
        failed += result.failed
        problems.extend(result.problems)
        if result.folder is not None:  # where the instances really are (PacsClient checks)
            folders.append(result.folder)
        log.info("retrieved study %s: %d instances", uid_hash(uid), len(result.stored))
    if not folders and first_error is not None:
        raise first_error
    return RetrieveSummary(tuple(folders), stored, failed, tuple(problems))
