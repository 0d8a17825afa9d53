"""`radassist-train make-demo-data` and training.demo_data: manifest, per-patient splits, files."""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from desktop_app.commands._common import OneLineParser, guarded
from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.phantoms.studies import make_chest_xr
from training import cli
from training.commands import make_demo_data as command
from training.demo_data import (
    DemoDataOptions,
    make_demo_dataset,
    plan_demo_dataset,
    read_manifest_rows,
)

FINDINGS = ("nodule", "effusion", "cardiomegaly")


def _run_cli(argv: list[str]) -> int:
    """The command as `radassist-train make-demo-data` runs it, without importing torch."""
    parser = OneLineParser(prog="radassist-train make-demo-data")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    command.add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return guarded(lambda: command.run(args), "radassist-train make-demo-data")


class TestPlan:
    def test_splits_are_per_patient(self) -> None:
        plans = plan_demo_dataset(DemoDataOptions(n=400, seed=3))
        split_of: dict[int, set[str]] = defaultdict(set)
        for p in plans:
            split_of[p.patient_number].add(p.split)
        assert all(len(s) == 1 for s in split_of.values())
        per_patient = Counter(p.patient_number for p in plans)
        assert 1 <= max(per_patient.values()) <= 2
        assert sum(1 for c in per_patient.values() if c == 2) > 40  # follow-ups matter
        patients = Counter(next(iter(s)) for s in split_of.values())
        total = sum(patients.values())
        assert patients["train"] / total == pytest.approx(0.70, abs=0.03)
        assert patients["val"] / total == pytest.approx(0.15, abs=0.03)
        assert patients["test"] / total == pytest.approx(0.15, abs=0.03)

    def test_prevalence_and_independence(self) -> None:
        plans = plan_demo_dataset(DemoDataOptions(n=600, seed=1))
        for f in FINDINGS:
            rate = sum(f in p.findings for p in plans) / len(plans)
            assert 0.27 <= rate <= 0.43, (f, rate)
        both = sum({"nodule", "effusion"} <= set(p.findings) for p in plans) / len(plans)
        assert 0.06 <= both <= 0.2  # about 0.35 * 0.35: drawn independently

    def test_every_split_has_positives(self) -> None:
        plans = plan_demo_dataset(DemoDataOptions(n=60, seed=2))
        for split in ("train", "val", "test"):
            chosen = [p for p in plans if p.split == split]
            for f in FINDINGS:
                assert any(f in p.findings for p in chosen), (split, f)

    def test_follow_up_images_share_findings_not_acquisition(self) -> None:
        plans = plan_demo_dataset(DemoDataOptions(n=100, seed=4))
        by_patient = defaultdict(list)
        for p in plans:
            by_patient[p.patient_number].append(p)
        pairs = [v for v in by_patient.values() if len(v) == 2]
        assert pairs
        for a, b in pairs:
            assert a.findings == b.findings and a.patient_seed == b.patient_seed
            assert a.acquisition_seed != b.acquisition_seed

    def test_deterministic(self) -> None:
        options = DemoDataOptions(n=50, seed=9, nonsquare_fraction=0.5, monochrome1_fraction=0.5)
        assert plan_demo_dataset(options) == plan_demo_dataset(options)
        assert plan_demo_dataset(options) != plan_demo_dataset(DemoDataOptions(n=50, seed=10))

    def test_variants(self) -> None:
        plans = plan_demo_dataset(
            DemoDataOptions(
                n=40, nonsquare_fraction=1.0, monochrome1_fraction=1.0, rle_fraction=1.0
            )
        )
        assert all(p.rows != p.cols for p in plans)
        assert all(p.photometric == "MONOCHROME1" and p.compression == "rle" for p in plans)

    @pytest.mark.parametrize(
        "options, message",
        [
            (DemoDataOptions(n=0), r"--n 0 should be at least 1"),
            (DemoDataOptions(prevalence=1.5), r"--prevalence 1.5 should be between 0 and 1"),
            (DemoDataOptions(findings=("mass",)), r"unknown finding 'mass' \(available: "),
            (DemoDataOptions(size=10), r"--size 10 should be between 64 and 4096"),
        ],
    )
    def test_bad_options(self, options: DemoDataOptions, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            plan_demo_dataset(options)


class TestMakeDemoDataset:
    def test_writes_manifest_images_and_summary(self, tmp_path: Path) -> None:
        out = tmp_path / "demo"
        seen: list[tuple[int, int]] = []
        options = DemoDataOptions(n=8, seed=5, size=96, prevalence=0.6, rle_fraction=0.5)
        dataset = make_demo_dataset(out, options, progress=lambda d, t: seen.append((d, t)))
        assert seen[-1] == (8, 8) and len(seen) == 8
        rows = read_manifest_rows(out / "manifest.csv")
        assert list(rows[0]) == [
            "path",
            *FINDINGS,
            "patient_id",
            "split",
            "x",
            "y",
            "width",
            "height",
            "box_label",
            "mask",
        ]
        assert len(rows) == 8
        with open(out / "boxes.csv", encoding="utf-8", newline="") as fh:
            boxes = list(csv.DictReader(fh))
        assert len(boxes) == sum(int(r[f]) for r in rows for f in FINDINGS)
        for row in rows:
            path = out / row["path"]
            ds = pydicom.dcmread(path)
            assert ds.PatientID == row["patient_id"]
            positives = [f for f in FINDINGS if row[f] == "1"]
            if positives:
                assert row["box_label"] == positives[0]  # the first positive, in label order
                box = [int(row[k]) for k in ("x", "y", "width", "height")]
                first = next(
                    b for b in boxes if b["path"] == row["path"] and b["label"] == positives[0]
                )
                assert box == [int(first[k]) for k in ("x", "y", "width", "height")]
                assert box[0] + box[2] <= ds.Columns and box[1] + box[3] <= ds.Rows
            else:
                assert row["box_label"] == row["x"] == row["width"] == ""
        summary = json.loads((out / "dataset.json").read_text())
        assert summary == dataset.summary
        assert summary["images"] == 8
        assert sum(s["images"] for s in summary["splits"].values()) == 8
        assert summary["positives"] == {f: sum(int(r[f]) for r in rows) for f in FINDINGS}
        assert summary["synthetic"] is True

    def test_pixels_match_the_generator(self, tmp_path: Path) -> None:
        options = DemoDataOptions(n=2, seed=1, size=64, monochrome1_fraction=1.0, rle_fraction=1.0)
        make_demo_dataset(tmp_path / "d", options)
        plan = plan_demo_dataset(options)[0]
        ds = pydicom.dcmread(tmp_path / "d" / plan.path)
        assert ds.PhotometricInterpretation == "MONOCHROME1"
        assert ds.file_meta.TransferSyntaxUID == RLELossless
        image, _ = make_chest_xr(
            plan.patient_seed,
            rows=64,
            findings=plan.findings,
            acquisition_seed=plan.acquisition_seed,
        )
        assert np.array_equal(ds.pixel_array, 4095 - image)

    def test_png(self, tmp_path: Path) -> None:
        from PIL import Image

        options = DemoDataOptions(n=2, seed=1, size=64, image_format="png", nonsquare_fraction=1.0)
        make_demo_dataset(tmp_path / "p", options)
        plan = plan_demo_dataset(options)[1]
        assert plan.path.endswith(".png")
        with Image.open(tmp_path / "p" / plan.path) as im:
            values = np.asarray(im).astype(np.uint16)
        image, _ = make_chest_xr(
            plan.patient_seed,
            rows=plan.rows,
            cols=plan.cols,
            findings=plan.findings,
            acquisition_seed=plan.acquisition_seed,
        )
        assert values.shape == (plan.rows, plan.cols) and plan.rows != plan.cols
        assert np.array_equal(values, image)

    def test_refuses_a_non_empty_folder(self, tmp_path: Path) -> None:
        (tmp_path / "keep.txt").write_text("mine")
        with pytest.raises(DataError, match="exists and is not empty"):
            make_demo_dataset(tmp_path, DemoDataOptions(n=1, size=64))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]

    def test_stop(self, tmp_path: Path) -> None:
        dataset = make_demo_dataset(
            tmp_path / "s", DemoDataOptions(n=3, size=64), stop=lambda: True
        )
        assert dataset.stopped
        assert not (tmp_path / "s" / "manifest.csv").exists()

    @pytest.mark.slow
    def test_two_processes_give_the_same_dataset(self, tmp_path: Path) -> None:
        one = DemoDataOptions(n=4, seed=2, size=64, workers=1)
        two = DemoDataOptions(n=4, seed=2, size=64, workers=2)
        make_demo_dataset(tmp_path / "one", one)
        make_demo_dataset(tmp_path / "two", two)
        for name in ("manifest.csv", "boxes.csv"):
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
        for p in sorted((tmp_path / "one" / "images").iterdir()):
            assert p.read_bytes() == (tmp_path / "two" / "images" / p.name).read_bytes()


class TestCommand:
    def test_registered(self) -> None:
        assert cli.COMMANDS["make-demo-data"][0] == "training.commands.make_demo_data"

    def test_writes_a_dataset(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "demo"
        rc = _run_cli([str(out), "--n", "10", "--size", "64", "--seed", "3"])
        assert rc == 0
        captured = capsys.readouterr()
        assert "make-demo-data: 10/10" in captured.err  # the progress bar
        assert "10 images of" in captured.out
        rows = read_manifest_rows(out / "manifest.csv")
        assert len(rows) == 10
        splits: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            splits[row["patient_id"]].add(row["split"])
            assert (out / row["path"]).is_file()
        assert all(len(s) == 1 for s in splits.values())  # no patient in two splits

    def test_overwrite(self, tmp_path: Path) -> None:
        out = tmp_path / "demo"
        assert _run_cli([str(out), "--n", "3", "--size", "64", "--quiet"]) == 0
        assert _run_cli([str(out), "--n", "2", "--size", "64", "--quiet", "--overwrite"]) == 0
        assert len(read_manifest_rows(out / "manifest.csv")) == 2
        assert sorted(p.name for p in (out / "images").iterdir()) == [
            "img_00001.dcm",
            "img_00002.dcm",
        ]

    @pytest.mark.parametrize(
        "argv, message",
        [
            (["--n", "0"], "argument --n: 0 should be at least 1"),
            (["--n", "x"], "argument --n: 'x' is not a whole number"),
            (["--seed", "-1"], "argument --seed: -1 should be 0 or more"),
            (["--findings", "mass"], "argument --findings: unknown finding 'mass'"),
            (["--monochrome1-fraction", "2"], "argument --monochrome1-fraction: 2.0 should be"),
            (["--format", "jpeg"], "argument --format: invalid choice: 'jpeg'"),
        ],
    )
    def test_usage_errors(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
    ) -> None:
        rc = _run_cli([str(tmp_path / "new"), *argv])
        assert rc == 2
        err = capsys.readouterr().err
        assert message in err
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "new").exists()

    def test_non_empty_outdir_is_a_usage_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "x.txt").write_text("keep")
        assert _run_cli([str(tmp_path), "--n", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"radassist-train make-demo-data: error: {tmp_path}: exists and is not empty "
            "(choose a new folder, or pass --overwrite)"
        )
        assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]

    def test_outdir_is_a_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        target = tmp_path / "file"
        target.write_text("x")
        assert _run_cli([str(target)]) == 2
        assert "exists and is not a folder" in capsys.readouterr().err

    def test_help_lists_findings(self) -> None:
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        assert "consolidation" in parser.format_help()
