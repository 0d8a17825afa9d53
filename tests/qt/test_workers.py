"""TaskChannel: generation numbers, stale results dropped, cooperative cancel, off-thread work."""

from __future__ import annotations

import threading

from desktop_app.infra.errors import Cancelled, DicomReadError
from desktop_app.qt.workers import TaskChannel, make_pool


def test_work_runs_off_the_main_thread_and_delivers(qtbot) -> None:
    channel = TaskChannel("t")
    seen: list[int] = []

    def work(progress, stop):
        seen.append(threading.get_ident())
        progress(1, 2)
        return 42

    with qtbot.waitSignal(channel.finished, timeout=20_000) as got:
        channel.submit(work)
    assert got.args == [42]
    assert seen and seen[0] != threading.get_ident()
    assert not channel.running
    channel.wait_idle()


def test_a_newer_request_drops_the_older_result(qtbot) -> None:
    channel = TaskChannel("t", pool=make_pool(2))
    release = threading.Event()
    results: list[object] = []
    channel.finished.connect(results.append)
    stopped_flags: list[bool] = []

    def slow(progress, stop):
        release.wait(10)
        stopped_flags.append(stop.is_set())
        return "old"

    channel.submit(slow)
    with qtbot.waitSignal(channel.finished, timeout=20_000):
        channel.submit(lambda progress, stop: "new")
    release.set()
    assert channel.wait_idle()
    qtbot.wait(50)
    assert results == ["new"]
    assert stopped_flags == [True]  # the older request was told to stop


def test_cancel_is_cooperative(qtbot) -> None:
    channel = TaskChannel("t")
    started = threading.Event()

    def work(progress, stop):
        started.set()
        while not stop.wait(0.005):
            pass
        raise Cancelled("stopped")

    channel.submit(work)
    started.wait(5)
    with qtbot.waitSignal(channel.cancelled, timeout=20_000):
        channel.cancel()
    assert channel.shutdown()


def test_errors_arrive_as_one_line(qtbot) -> None:
    channel = TaskChannel("t")

    def bad(progress, stop):
        raise DicomReadError("pixel data is cut off", "/x/y.dcm", "re-export it")

    with qtbot.waitSignal(channel.failed, timeout=20_000) as got:
        channel.submit(bad)
    assert got.args == ["/x/y.dcm: pixel data is cut off (re-export it)"]

    def bug(progress, stop):
        raise KeyError("k")

    with qtbot.waitSignal(channel.failed, timeout=20_000) as got:
        channel.submit(bug)
    assert got.args == ["unexpected error: KeyError: 'k'"]


def test_streaming_items_of_a_stale_request_are_dropped(qtbot) -> None:
    channel = TaskChannel("t", pool=make_pool(2))
    items: list[object] = []
    channel.partial.connect(items.append)
    go = threading.Event()

    def stale(progress, stop, emit):
        go.wait(10)
        emit("stale")
        return None

    def fresh(progress, stop, emit):
        emit("fresh")
        return None

    channel.submit_streaming(stale)
    with qtbot.waitSignal(channel.finished, timeout=20_000):
        channel.submit_streaming(fresh)
    go.set()
    channel.wait_idle()
    qtbot.wait(50)
    assert items == ["fresh"]


def test_a_job_outliving_its_channel_does_not_crash(qtbot) -> None:
    channel = TaskChannel("t", pool=make_pool(1))
    go = threading.Event()
    done = threading.Event()

    def work(progress, stop):
        go.wait(10)
        progress(1, 1)  # the relay is gone by now: dropped, and the job is told to stop
        done.set()
        return 1

    channel.submit(work)
    channel.deleteLater()
    qtbot.wait(20)
    go.set()
    assert done.wait(10)


def test_worker_priority_is_lowered_on_linux() -> None:
    import os
    import sys

    import pytest

    from desktop_app.qt.workers import lower_thread_priority

    if not sys.platform.startswith("linux"):
        pytest.skip("per-thread nice is Linux's")
    before = os.getpriority(os.PRIO_PROCESS, 0)
    seen: list[int] = []

    def body() -> None:
        lower_thread_priority(7)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [max(7, before)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # only the worker thread changed
