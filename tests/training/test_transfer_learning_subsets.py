"""benchmarks/transfer_learning.py's data cutting: nested per-patient train subsets of exactly N
images, and subset manifests that give every run the same validation and test images."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers.tinydata import demo_dataset
from training.data import read_dataset, split_dataset
from training.demo_data import DemoDataOptions, plan_demo_dataset, read_manifest_rows

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "transfer_learning.py"


@pytest.fixture(scope="module")
def tl() -> ModuleType:
    spec = importlib.util.spec_from_file_location("transfer_learning_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def plan_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Manifest-like rows (patient_id, split) of a planned demo set; no pixels drawn."""
    return [
        {"path": p.path, "patient_id": p.patient_id, "split": p.split}
        for p in plan_demo_dataset(DemoDataOptions(n=n, seed=seed))
    ]


@pytest.mark.parametrize(("n_images", "seed"), [(400, 0), (400, 1), (1200, 1)])
def test_subsets_are_nested_exact_and_whole_patients(
    tl: ModuleType, n_images: int, seed: int
) -> None:
    rows = plan_rows(n_images, seed=seed)
    assert any(c == 2 for c in Counter(r["patient_id"] for r in rows).values())  # repeats exist
    sizes = [100, 200, 50] if n_images == 400 else [100, 200, 500]
    subsets = tl.subset_rows(rows, sizes, seed=0)
    assert sorted(subsets) == sorted(sizes)
    images_of: dict[str, set[int]] = {}
    for i, r in enumerate(rows):
        images_of.setdefault(r["patient_id"], set()).add(i)
    previous: set[int] = set()
    for n in sorted(sizes):
        chosen = subsets[n]
        assert len(chosen) == n == len(set(chosen))
        assert all(rows[i]["split"] == "train" for i in chosen)
        assert previous <= set(chosen), f"N={n} drops images of the smaller subset"
        for patient in {rows[i]["patient_id"] for i in chosen}:
            assert images_of[patient] <= set(chosen), f"N={n} splits patient {patient}"
        previous = set(chosen)


@pytest.mark.parametrize("seed", range(8))
def test_a_skipped_patient_does_not_break_nesting(tl: ModuleType, seed: int) -> None:
    """Patients of 2 and 1 images: N=3 passes over a 2-image patient that N=4 can take; the
    4 must still hold the 3 (the first version of the script broke this for 6 of these 8
    seeds)."""
    rows = [
        {"patient_id": p, "split": "train"}
        for p, count in (("A", 2), ("B", 2), ("C", 1), ("D", 1), ("E", 2), ("F", 1), ("G", 1))
        for _ in range(count)
    ] + [{"patient_id": "V", "split": "val"}, {"patient_id": "T", "split": "test"}]
    subsets = tl.subset_rows(rows, [4, 3], seed=seed)
    assert [len(subsets[n]) for n in (3, 4)] == [3, 4]
    assert set(subsets[3]) <= set(subsets[4])
    assert max(subsets[4]) < 10  # train rows only


def test_subsets_follow_the_seed(tl: ModuleType) -> None:
    rows = plan_rows(400, seed=0)
    assert tl.subset_rows(rows, [100], seed=3) == tl.subset_rows(rows, [100], seed=3)
    assert tl.subset_rows(rows, [100], seed=3) != tl.subset_rows(rows, [100], seed=4)


def test_too_few_train_images_is_refused(tl: ModuleType) -> None:
    rows = plan_rows(100, seed=0)
    train = sum(r["split"] == "train" for r in rows)
    with pytest.raises(SystemExit, match=rf"too few images for N={train + 1}: use more"):
        tl.subset_rows(rows, [10, train + 1], seed=0)


def test_subset_manifests_share_val_and_test(tl: ModuleType, tmp_path: Path) -> None:
    manifest = demo_dataset(tmp_path / "demo", n=40, size=64)
    rows = read_manifest_rows(manifest)
    subsets = tl.subset_rows(rows, [6, 12], seed=0)
    seen = {}
    for n, chosen in subsets.items():
        target = tmp_path / f"manifest_train{n}.csv"
        tl.write_subset_manifest(rows, chosen, manifest.parent, target)
        data = read_dataset(target)  # absolute image paths: readable from any folder
        splits = split_dataset(data, seed=0)
        assert splits.method == "manifest split column"
        pick = {
            name: [(data.records[i].row, data.records[i].path) for i in getattr(splits, name)]
            for name in ("train", "val", "test")
        }
        assert len(pick["train"]) == n
        assert {str(p) for _, p in pick["train"]} == {
            str((manifest.parent / rows[i]["path"]).resolve()) for i in chosen
        }
        seen[n] = pick
    # the same val and test images under the same row numbers (predictions.csv's "row")
    assert seen[6]["val"] == seen[12]["val"] and seen[6]["val"]
    assert seen[6]["test"] == seen[12]["test"] and seen[6]["test"]
    assert len(seen[6]["val"]) == sum(r["split"] == "val" for r in rows)
    assert len(seen[6]["test"]) == sum(r["split"] == "test" for r in rows)
