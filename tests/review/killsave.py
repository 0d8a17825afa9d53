"""A child process that saves one study's review in a loop until it is killed, for the
crash-safety test (tests/review/test_crash_safe_store.py).

Version ``n`` of the review is a real :class:`ReviewState` (40 findings with outlines and notes,
a few kilobytes) whose reviewer is ``"v<n>"``; even versions come from model A and odd ones
from model B, so every save is a model change: the path where the old review is kept aside.
The child runs in a forkserver process (preloaded with this module and the store), and reports
through shared memory the version it started saving and the last one it finished.
"""

from __future__ import annotations

from typing import Any

from desktop_app.review.state import FindingReview, ModelRef, ReviewState
from desktop_app.review.store import ReviewStore

STUDY = "1.2.826.0.1.3680043.8.498.12"
MODELS = (ModelRef("demo", "1.0", "a" * 64), ModelRef("demo", "2.0", "b" * 64))
STARTED, DONE = 0, 1


def version_data(n: int) -> dict[str, Any]:
    """Version ``n`` of the study's review, as the writer hands it to the store."""
    state = ReviewState(STUDY, reviewer=f"v{n}")
    model = MODELS[n % 2]
    findings = [
        FindingReview(
            finding_id=f"s#{k}:nodule",
            label="nodule",
            series_key=f"s#{k}",
            series_uid=f"1.2.3.{k}",
            probability=(n * 37 + k) % 100 / 100,
            model_threshold=0.5,
            box=(10.0 + k, 20.0, 30.0, 40.0),
            outline=[[(10.0 + i, 20.0 + i * k % 7) for i in range(12)]],
            note=f"version {n}, series {k}: " + "observation " * 4,
        )
        for k in range(40)
    ]
    state.merge_findings(findings, model)
    return state.to_dict()


def version_of(state: ReviewState) -> int:
    """The version number a saved state was written as (its reviewer is ``"v<n>"``)."""
    return int(state.reviewer.removeprefix("v"))


def save_forever(root: str, first: int, progress: Any, ready: Any) -> None:
    """Save versions ``first``, ``first + 1``, ... of the review until killed; ``progress``
    (shared int64 pair) holds the version started and the last one finished."""
    store = ReviewStore(root)
    ready.set()
    n = first
    while True:
        progress[STARTED] = n
        store.save_data(version_data(n))
        progress[DONE] = n
        n += 1
