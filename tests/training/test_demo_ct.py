"""`make-demo-data --ct` (training.demo_ct) and the bundled CT nodule segmentation model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from desktop_app.commands._common import OneLineParser, guarded
from desktop_app.phantoms.ct import ct_phantom
from training.commands import make_demo_data as command
from training.demo_ct import CtDemoOptions, make_ct_dataset, plan_ct_dataset
from training.demo_data import read_manifest_rows

ROOT = Path(__file__).resolve().parents[2]
CT_MODEL = ROOT / "resources" / "models" / "radassist-ct-nodule-lite0.safetensors"
SAMPLE = ROOT / "resources" / "sample" / "ct_phantom"


def _run_cli(argv: list[str]) -> int:
    """The command as `radassist-train make-demo-data` runs it, without importing torch."""
    parser = OneLineParser(prog="radassist-train make-demo-data")
    command.add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return guarded(lambda: command.run(args), "radassist-train make-demo-data")


SMALL = CtDemoOptions(n=5, seed=3, size=64, min_slices=8, max_slices=12, empty_fraction=0.2)


@pytest.fixture(scope="module")
def small_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ctdemo")
    make_ct_dataset(root, SMALL)
    return root


class TestMakeCtDataset:
    def test_manifest_rows_one_per_slice_with_files_named_by_index(self, small_ct: Path) -> None:
        rows = read_manifest_rows(small_ct / "manifest.csv")
        plans = plan_ct_dataset(SMALL)
        assert len(rows) == sum(p.slices for p in plans)
        assert list(rows[0]) == ["path", "mask", "nodule", "patient_id", "split"]
        for plan in plans:
            mine = [r for r in rows if r["patient_id"] == plan.patient_id]
            assert [r["path"] for r in mine] == [
                f"series/{plan.name}/CT{i + 1:04d}.dcm" for i in range(plan.slices)
            ]
            assert {r["split"] for r in mine} == {plan.split}  # one split per patient
            ds = pydicom.dcmread(small_ct / mine[0]["path"], stop_before_pixels=True)
            assert ds.Modality == "CT" and int(ds.Rows) == SMALL.size
            assert str(ds.PatientID) not in mine[0]["path"]
            assert len({str(pydicom.dcmread(small_ct / r["path"]).SeriesInstanceUID)
                        for r in mine[:2]}) == 1  # fmt: skip

    def test_masks_are_the_phantoms_truth_on_every_slice(self, small_ct: Path) -> None:
        rows = read_manifest_rows(small_ct / "manifest.csv")
        truth = json.loads((small_ct / "truth.json").read_text())["series"]
        assert any(s["nodules"] for s in truth)
        for plan, series in zip(plan_ct_dataset(SMALL), truth, strict=True):
            phantom = ct_phantom(
                plan.phantom_seed, slices=plan.slices, rows=SMALL.size, cols=None,
                pixel_spacing_mm=plan.pixel_spacing_mm, slice_thickness_mm=plan.thickness_mm,
                tilt_deg=0.0, lesions=plan.nodules, noise_hu=plan.noise_hu,
            )  # fmt: skip
            mine = [r for r in rows if r["patient_id"] == plan.patient_id]
            shown = {
                i for n in series["nodules"] for i in range(n["first_slice"], n["last_slice"] + 1)
            }
            assert len(series["nodules"]) == plan.nodules
            for i, row in enumerate(mine):
                mask = np.asarray(Image.open(small_ct / row["mask"]))
                np.testing.assert_array_equal(mask, phantom.lesion_mask(i))
                assert bool(mask.any()) == (i in shown) == (row["nodule"] == "1")

    def test_splits_by_series_and_a_series_without_nodules(self) -> None:
        plans = plan_ct_dataset(CtDemoOptions(n=40, seed=0))
        counts = {s: sum(p.split == s for p in plans) for s in ("train", "val", "test")}
        assert counts["train"] >= 26 and counts["val"] >= 5 and counts["test"] >= 5
        assert any(p.nodules == 0 for p in plans) and any(p.nodules > 1 for p in plans)
        assert len({p.slices for p in plans}) > 5 and len({p.thickness_mm for p in plans}) > 1
        for split in ("val", "test"):
            assert any(p.nodules for p in plans if p.split == split)

    def test_the_same_seed_writes_the_same_bytes(self, small_ct: Path, tmp_path: Path) -> None:
        make_ct_dataset(tmp_path, SMALL)
        for name in ("manifest.csv", "truth.json"):
            assert (tmp_path / name).read_bytes() == (small_ct / name).read_bytes()
        row = read_manifest_rows(tmp_path / "manifest.csv")[-1]
        for column in ("path", "mask"):
            assert (tmp_path / row[column]).read_bytes() == (small_ct / row[column]).read_bytes()
        other = plan_ct_dataset(CtDemoOptions(n=5, seed=4, size=64, min_slices=8, max_slices=12))
        assert [p.phantom_seed for p in other] != [p.phantom_seed for p in plan_ct_dataset(SMALL)]

    def test_max_empty_slices_lists_every_nodule_slice_and_k_others(
        self, small_ct: Path, tmp_path: Path
    ) -> None:
        options = CtDemoOptions(**{**SMALL.__dict__, "max_empty_slices": 2})
        make_ct_dataset(tmp_path, options)
        full = read_manifest_rows(small_ct / "manifest.csv")
        rows = read_manifest_rows(tmp_path / "manifest.csv")
        assert {r["path"] for r in full if r["nodule"] == "1"} <= {r["path"] for r in rows}
        for plan in plan_ct_dataset(options):
            mine = [r for r in rows if r["patient_id"] == plan.patient_id]
            empty = sum(r["nodule"] == "0" and r["patient_id"] == plan.patient_id for r in full)
            assert sum(r["nodule"] == "0" for r in mine) == min(2, empty)
            assert len(list((tmp_path / "series" / plan.name).iterdir())) == plan.slices

    def test_dataset_json_counts(self, small_ct: Path) -> None:
        summary = json.loads((small_ct / "dataset.json").read_text())
        rows = read_manifest_rows(small_ct / "manifest.csv")
        assert summary["synthetic"] is True and summary["labels"] == ["nodule"]
        assert summary["images"] == len(rows) and summary["series"] == SMALL.n
        assert summary["positives"]["nodule"] == sum(r["nodule"] == "1" for r in rows)
        assert sum(s["images"] for s in summary["splits"].values()) == len(rows)


class TestCommand:
    def test_writes_a_dataset(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "ct"
        code = _run_cli(
            [str(out), "--ct", "--n", "2", "--size", "64", "--slices", "8-9",
             "--quiet"]
        )  # fmt: skip
        assert code == 0
        assert "wrote" in capsys.readouterr().out
        assert len(list((out / "series").iterdir())) == 2

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--slices", "9-8"], "give MIN-MAX slices"),
            (["--slices", "x"], "give MIN-MAX slices"),
            (["--size", "32"], "between 64 and 4096"),
            (["--max-nodules", "50"], "--max-nodules 50 should be between 1 and 20"),
            (["--max-empty-slices", "0"], "0 should be at least 1"),
        ],
    )
    def test_refuses_bad_options_in_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
    ) -> None:
        assert _run_cli([str(tmp_path / "o"), "--ct", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
        assert not (tmp_path / "o").exists()

    def test_slices_without_ct_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = _run_cli([str(tmp_path / "o"), "--slices", "10-20"])
        assert code == 2
        assert "--slices applies to --ct only" in capsys.readouterr().err


class TestBundledCtModel:
    def test_manifest_declares_ct_only_segmentation(self) -> None:
        from desktop_app.model.modeldata import read_model_data

        data = read_model_data(CT_MODEL)
        manifest = data.manifest
        assert manifest.task == "segmentation" and manifest.labels == ("nodule",)
        assert manifest.architecture == "unet-lite0"
        assert manifest.intended_input.modalities == ("CT",)
        assert manifest.intended_input.image_kind == "slice"
        assert manifest.preprocessing.normalization == "window"
        assert CT_MODEL.stat().st_size <= 30 * 1024**2
        assert CT_MODEL.with_suffix(".md").is_file()

    def test_export_onnx_embeds_the_segmentation_forward_graph(self, tmp_path: Path) -> None:
        """What installer/build.sh does to each bundled model (a segmentation model gets its
        forward graph only: per-pixel logits, no heatmaps)."""
        from desktop_app.model.modeldata import read_model_data
        from training.commands.export_onnx import embed

        target, kinds = embed(CT_MODEL, tmp_path / "ct.safetensors")
        assert kinds == ["forward"]
        data = read_model_data(target)
        assert list(data.graphs) == ["forward"]
        assert data.manifest.tensor_sha256 == read_model_data(CT_MODEL).manifest.tensor_sha256

    def test_finds_the_sample_nodule_with_its_volume(self) -> None:
        from desktop_app.inference.engine import InferenceEngine
        from desktop_app.studies.index import index_paths
        from desktop_app.studies.series import assemble
        from desktop_app.studies.volume import SeriesVolume

        truth = json.loads((SAMPLE / "truth.json").read_text())["lesions"][0]
        index = index_paths([str(SAMPLE)])
        (_, _, series), *_ = list(index.iter_series())
        volume = SeriesVolume(assemble(series).stacks[0], keep=True)
        engine = InferenceEngine(CT_MODEL, device="cpu")
        assert engine.backend.startswith("onnxruntime")
        result = engine.run(volume)
        assert result.lesions is not None and len(result.lesions) == 1
        lesion = result.lesions.lesions[0]
        assert abs(lesion.first_slice - truth["first_slice"]) <= 1
        assert abs(lesion.last_slice - truth["last_slice"]) <= 1
        assert lesion.volume_mm3 is not None
        assert lesion.volume_mm3 == pytest.approx(truth["volume_mm3"], rel=0.25)
        (finding,) = result.findings  # it opens where the nodule is widest, as predict's PNG
        assert finding.positive and finding.slice_index == lesion.diameter_slice
