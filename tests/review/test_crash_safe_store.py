"""Crash-safe review saves: the previous model's review kept beside the study's file before the
new one replaces it, orphan temporary files cleaned on open, and ≥ 200 SIGKILLs of a saving
child process, each leaving the newest or the previous review."""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import stat
import threading
import time
from pathlib import Path

import pytest

from desktop_app.infra.atomicio import atomic_path
from desktop_app.infra.filelock import locked
from desktop_app.review import store as store_module
from desktop_app.review.state import ReviewState
from desktop_app.review.store import MAX_KEPT_PER_STUDY, ReviewStore
from tests.review import killsave
from tests.review.killsave import DONE, STARTED, STUDY, version_data, version_of

KILLS = 200
MAX_KILL_DELAY_S = 0.03  # a few saves' worth: the kills land all over the save


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def versions(paths: list[Path]) -> list[int]:
    return [version_of(ReviewState.from_dict(json.loads(p.read_text()))) for p in paths]


class TestModelChangeKeepsThePreviousReview:
    def test_kept_beside_byte_for_byte_before_the_new_one(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path)
        path = store.save_data(version_data(0))
        old_bytes = path.read_bytes()
        store.save_data(version_data(1))
        (kept,) = store.history(STUDY)
        assert kept.name == f"{path.stem}.{'a' * 12}.json"
        assert kept.read_bytes() == old_bytes
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert versions([path]) == [1]
        assert [s.study_uid for s in store.iter_states()] == [STUDY]

    def test_same_model_keeps_nothing(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path)
        store.save_data(version_data(0))
        store.save_data(version_data(2))
        assert store.history(STUDY) == []

    def test_switching_back_and_forth_keeps_each_review(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path)
        for n in range(5):
            path = store.save_data(version_data(n))
        kept = store.history(STUDY)
        assert versions(kept) == [0, 1, 2, 3]
        stem = path.stem
        assert [p.name for p in kept] == [
            f"{stem}.{'a' * 12}.json",
            f"{stem}.{'b' * 12}.2.json",
            f"{stem}.{'a' * 12}.3.json",
            f"{stem}.{'b' * 12}.4.json",
        ]

    def test_at_most_the_limit_per_study_oldest_dropped(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path)
        for n in range(MAX_KEPT_PER_STUDY + 4):
            store.save_data(version_data(n))
        kept = versions(store.history(STUDY))
        assert kept == list(range(3, MAX_KEPT_PER_STUDY + 3))

    def test_a_save_retried_after_a_kill_keeps_no_duplicate(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path)
        path = store.save_data(version_data(0))
        old_bytes = path.read_bytes()
        store.save_data(version_data(1))
        # As a kill between the copy and the rename leaves it: the copy, and the old file.
        path.write_bytes(old_bytes)
        store.save_data(version_data(1))
        assert versions(store.history(STUDY)) == [0]
        assert versions([path]) == [1]

    def test_a_hostile_model_hash_stays_a_plain_name(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path / "reviews")
        data = version_data(0)
        data["model"]["sha256"] = "../../../etc/passwd"
        path = store.save_data(data)
        store.save_data(version_data(1))
        (kept,) = store.history(STUDY)
        assert kept.parent == path.parent
        assert kept.name == f"{path.stem}.etcpasswd.json"

    def test_an_unreadable_file_is_kept_aside_not_overwritten(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path)
        path = store.path_for(STUDY)
        path.write_text("{broken")
        store.save_data(version_data(1))
        (corrupt,) = tmp_path.glob(f"{path.name}.corrupt-*")
        assert corrupt.read_text() == "{broken"
        assert store.history(STUDY) == []
        assert versions([path]) == [1]


class TestTemporaryFilesOfKilledSaves:
    def test_removed_when_the_store_opens(self, tmp_path: Path) -> None:
        stem = ReviewStore(tmp_path).path_for(STUDY).stem
        orphans = [f".{stem}.json.k3x_9a0q.tmp", f".{stem}.{'a' * 12}.json.00000000.tmp"]
        others = [
            ".settings.json.k3x_9a0q.tmp",  # another writer's target, not a review
            f".{stem}.json.tmp",  # not the temporary-name pattern
            "notes.tmp",
            f"{stem}.json",
        ]
        for name in orphans + others:
            (tmp_path / name).write_text("x")
        (tmp_path / f".{stem}.json.abcdefgh.tmp").mkdir()  # not a file
        store = ReviewStore(tmp_path)
        assert store.removed_temp_files == 2
        assert not any((tmp_path / name).exists() for name in orphans)
        assert all((tmp_path / name).exists() for name in others)

    def test_a_missing_folder_is_not_created(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path / "reviews")
        assert store.removed_temp_files == 0 and not (tmp_path / "reviews").exists()

    def test_a_live_writers_file_is_left_alone(self, tmp_path: Path) -> None:
        store = ReviewStore(tmp_path)
        target = store.path_for(STUDY)
        writing, finish = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:  # a save in progress, as save_data holds it
            try:
                with locked(store.lock_path), atomic_path(target, 0o600) as tmp:
                    tmp.write_text(json.dumps(version_data(7)))
                    writing.set()
                    finish.wait(60)
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        def opener() -> None:
            ReviewStore(tmp_path)

        threads = [threading.Thread(target=writer)]
        threads[0].start()
        assert writing.wait(60)
        assert len(temp_files(tmp_path)) == 1
        threads.append(threading.Thread(target=opener))
        threads[1].start()
        finish.set()
        for t in threads:
            t.join(60)
        assert errors == []
        assert versions([target]) == [7] and temp_files(tmp_path) == []


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="needs POSIX SIGKILL"
)
def test_review_survives_sigkills_at_random_points_of_save(tmp_path: Path) -> None:
    """A child saves versions 1, 2, 3... (every save a model change) and is SIGKILLed after a
    random delay, ``KILLS`` times. After each kill the re-opened store holds no temporary file,
    the study's review loads and is the version being saved or the one before it, and the
    previous model's review is in the history."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([killsave.__name__, store_module.__name__])
    root = tmp_path / "reviews"
    ReviewStore(root).save_data(version_data(0))
    rng = random.Random(20240612)
    first, mid_save = 1, 0
    for kill in range(KILLS):
        progress = context.RawArray("q", [first - 1, first - 1])
        ready = context.Event()
        child = context.Process(
            target=killsave.save_forever, args=(str(root), first, progress, ready), daemon=True
        )
        child.start()
        assert ready.wait(60), "the saving child did not start"
        time.sleep(rng.uniform(0.0, MAX_KILL_DELAY_S))  # where the kill lands: the randomness
        child.kill()
        child.join(60)
        assert child.exitcode == -signal.SIGKILL, f"kill {kill}: the child failed on its own"
        started, done = progress[STARTED], progress[DONE]
        mid_save += started != done

        store = ReviewStore(root)
        assert temp_files(root) == [], f"kill {kill}"
        state = store.load(STUDY)
        assert state is not None, f"kill {kill}: no review after a kill while saving {started}"
        loaded = version_of(state)
        allowed = {started} if done == started else {started - 1, started}
        assert loaded in allowed, f"kill {kill}: version {loaded}, saving {started}"
        kept = store.history(STUDY)
        assert len(kept) <= MAX_KEPT_PER_STUDY
        if loaded > 0:  # kept by this save or by the one killed before it: among the newest two
            assert loaded - 1 in versions(kept[-2:]), f"kill {kill}: previous review lost"
        first = loaded + 1
    assert mid_save >= KILLS // 2  # the child does little but save: most kills hit one
