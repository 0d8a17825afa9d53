"""3-D segmentation (training.seg3d): volumes resampled per the fingerprint, patch training of
SegResNet, sliding-window scoring, the model file the app refuses in one line."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch

from desktop_app.infra.errors import DataError, ModelFileError
from desktop_app.model.archs import refuse_volume_model, volume_arch_args
from desktop_app.model.networks import build_from_arch_args
from training import seg3ddata

SIDE = 32


def sphere_case(
    seed: int, spacing: tuple[float, float, float], radius_mm: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """A (x, y, z) CT-like volume in HU (air-ish lung around a soft-tissue ball) and its mask."""
    rng = np.random.default_rng(seed)
    grid = np.indices((SIDE, SIDE, SIDE)).astype(np.float64)
    centre = rng.uniform(SIDE * 0.35, SIDE * 0.65, 3)
    dist = np.sqrt(sum(((grid[k] - centre[k]) * spacing[k]) ** 2 for k in range(3)))
    mask = (dist <= radius_mm).astype(np.uint8)
    image = np.where(mask > 0, 40.0, -750.0) + rng.normal(0.0, 60.0, mask.shape)
    return image.astype(np.int16), mask


def write_nifti(path: Path, data: np.ndarray, spacing: tuple[float, float, float]) -> None:
    nib.save(nib.Nifti1Image(data, np.diag([*spacing, 1.0])), str(path))


def write_msd(root: Path, n: int, *, seed: int = 0) -> Path:
    """An MSD folder of ``n`` sphere cases at two spacings (1.0 and 1.5 mm)."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(n):
        spacing = (1.0, 1.0, 1.0) if i % 2 else (1.5, 1.5, 1.5)
        image, mask = sphere_case(seed + i, spacing)
        write_nifti(root / "imagesTr" / f"ball_{i:03d}.nii.gz", image, spacing)
        write_nifti(root / "labelsTr" / f"ball_{i:03d}.nii.gz", mask, spacing)
    meta = {"name": "balls", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "ball"}}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any], str]:
    """One small ``radassist-train fit`` (12 cases, 32^3 patches, 2 epochs on the CPU): the
    data, the run folder, its metrics.json and what fit printed."""
    from training.cli import main

    data = write_msd(tmp_path_factory.mktemp("msd") / "Task01_Balls", 12)
    out = tmp_path_factory.mktemp("run") / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            ["fit", "--task", "segmentation", "--arch", "segresnet3d", "--data", str(data),
             "--out", str(out), "--image-size", "32", "--epochs", "2", "--lr", "3e-3",
             "--device", "cpu", "--quiet", "--set", "evaluation.bootstrap=100"]
        )  # fmt: skip
    assert code == 0, stderr.getvalue()
    metrics = json.loads((out / "metrics.json").read_text())
    return data, out, metrics, stdout.getvalue()


class TestResample:
    def test_a_spheres_volume_in_mm3_is_kept(self) -> None:
        spacing = (2.5, 0.8, 0.8)
        grid = np.indices((24, 64, 64)).astype(np.float64)
        centre = (12.0, 32.0, 32.0)
        dist = np.sqrt(sum(((grid[k] - centre[k]) * spacing[k]) ** 2 for k in range(3)))
        mask = dist <= 10.0
        out = seg3ddata.resample(mask, spacing, (1.25, 1.25, 1.25), label=True)
        assert out.dtype == bool
        before = mask.sum() * math.prod(spacing)
        after = out.sum() * 1.25**3
        assert after == pytest.approx(before, rel=0.10)
        assert before == pytest.approx(4 / 3 * math.pi * 1000, rel=0.10)

    def test_same_spacing_is_unchanged(self) -> None:
        x = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
        assert seg3ddata.resample(x, (1, 1, 1), (1, 1, 1), label=False) is x


class TestLoad:
    def test_volumes_resampled_to_the_median_spacing(self, tmp_path: Path) -> None:
        root = write_msd(tmp_path / "Task", 3)
        vols = seg3ddata.load_volume_data(root)
        assert vols.spacing == (1.5, 1.5, 1.5)  # median of 1.5, 1.0, 1.5
        assert vols.modality == "CT"
        assert [m.shape for m in vols.masks] == [(32, 32, 32), (21, 21, 21), (32, 32, 32)]
        assert all(r.labels == (1.0,) for r in vols.data.records)
        for i, m in enumerate(vols.masks):  # each ball keeps its volume in mm3 within 10 %
            spacing = (1.0, 1.0, 1.0) if i % 2 else (1.5, 1.5, 1.5)
            before = sphere_case(i, spacing)[1].sum() * math.prod(spacing)
            assert m.sum() * 1.5**3 == pytest.approx(before, rel=0.10)

    def test_a_volume_over_the_limit_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        root = write_msd(tmp_path / "Task", 2)
        monkeypatch.setattr(seg3ddata, "MAX_VOXELS", 1000)
        with pytest.raises(
            DataError,
            match=r"case ball_000: volume 32x32x32 .* 32768 voxels, over the limit of 1000",
        ):
            seg3ddata.load_volume_data(root)

    def test_a_label_on_another_grid_is_refused(self, tmp_path: Path) -> None:
        root = write_msd(tmp_path / "Task", 2)
        write_nifti(
            root / "labelsTr" / "ball_001.nii.gz", np.zeros((16, 32, 32), np.uint8), (1, 1, 1)
        )
        with pytest.raises(
            DataError, match="case ball_001: the label volume 32x32x16 is on another grid"
        ):
            seg3ddata.load_volume_data(root)
        write_nifti(
            root / "labelsTr" / "ball_001.nii.gz", np.zeros((32, 32, 32), np.uint8), (2, 2, 2)
        )
        with pytest.raises(DataError, match="on another grid than its image 32x32x32"):
            seg3ddata.load_volume_data(root)

    def test_a_manifest_of_volumes(self, tmp_path: Path) -> None:
        write_msd(tmp_path / "Task", 2)
        csv = tmp_path / "volumes.csv"
        csv.write_text(
            "path,mask,patient_id\n"
            + "".join(
                f"Task/imagesTr/ball_00{i}.nii.gz,Task/labelsTr/ball_00{i}.nii.gz,p{i}\n"
                for i in range(2)
            )
        )
        vols = seg3ddata.load_volume_data(csv)
        assert [r.patient for r in vols.data.records] == ["p0", "p1"]
        assert vols.modality == "CT" and "HU" in vols.modality_source

    def test_a_manifest_of_slices_is_refused(self, tmp_path: Path) -> None:
        csv = tmp_path / "slices.csv"
        csv.write_text("path,mask,slice\na.nii.gz,b.nii.gz,3\n")
        with pytest.raises(DataError, match="no 'slice' column"):
            seg3ddata.load_volume_data(csv)


class TestNormalize:
    def test_window_scales_to_unit(self) -> None:
        x = np.array([-2000.0, -1000.0, 0.0, 500.0, 3000.0], np.float32)
        assert seg3ddata.normalize(x, [-1000.0, 500.0]).tolist() == pytest.approx(
            [0.0, 0.0, 2 / 3, 1.0, 1.0]
        )

    def test_z_score_without_window(self) -> None:
        x = np.random.default_rng(0).normal(300.0, 50.0, 10_000).astype(np.float32)
        out = seg3ddata.normalize(x, None)
        assert abs(float(out.mean())) < 1e-3 and float(out.std()) == pytest.approx(1.0, abs=1e-3)


class TestSlidingWindow:
    @pytest.mark.parametrize("shape", [(21, 40, 37), (32, 32, 32), (8, 70, 50)])
    def test_output_has_the_inputs_shape(self, shape: tuple[int, int, int]) -> None:
        args = volume_arch_args("segresnet3d", 1, image_size=32, spacing=(1, 1, 1), window=None)
        model = build_from_arch_args("segresnet3d", args)
        image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
        out = seg3ddata.sliding_window_logits(model, image, 32, torch.device("cpu"))
        assert tuple(out.shape) == (1, 1, *shape)


class TestPatches:
    def test_patches_are_seeded_cubes_and_half_hold_foreground(self, tmp_path: Path) -> None:
        vols = seg3ddata.load_volume_data(write_msd(tmp_path / "Task", 3))
        ds = seg3ddata.PatchDataset(vols.images, vols.masks, [0, 1, 2], 16, seed=3)
        items = [ds[i] for i in range(len(ds))]
        assert all(x.shape == (1, 16, 16, 16) and y.shape == x.shape for x, y, _ in items)
        with_fg = sum(bool(y.any()) for _, y, _ in items)
        assert with_fg >= len(items) // 2
        again = ds[5]
        assert torch.equal(again[0], items[5][0])
        ds.set_epoch(1)
        assert not torch.equal(ds[5][0], items[5][0])


class TestMetrics:
    def test_lesions_are_3d_components(self) -> None:
        truth = np.zeros((10, 10, 10), bool)
        truth[1:4, 1:4, 1:4] = True
        truth[6:9, 6:9, 6:9] = True
        pred = np.zeros_like(truth)
        pred[2, 2, 2] = True  # finds lesion 1 only
        pred[0, 8, 0] = True  # a false positive
        m = seg3ddata.volume_metrics(
            [pred], [truth], (1.0, 1.0, 2.0), n_boot=10, level=0.95, seed=0
        )
        assert m["lesions"] == 2 and m["cases"] == 1
        assert m["lesion_sensitivity"]["value"] == 0.5
        assert m["fp_per_image"]["value"] == 1.0
        assert m["hd95_mm"]["value"] > m["hd95_px"]["value"] > 0


class TestRefusal:
    def test_the_app_refuses_a_3d_model_in_one_line(self) -> None:
        with pytest.raises(ModelFileError) as info:
            refuse_volume_model("segresnet3d", Path("m.safetensors"))
        line = info.value.one_line()
        assert line == (
            "m.safetensors: a 3-D segmentation model (segresnet3d): this version of the app "
            "runs 2-D models; evaluate it with radassist-train evaluate"
        )
        refuse_volume_model("unet-lite0")  # a 2-D model passes


@pytest.mark.slow
class TestFit:
    def test_fit_reaches_dice_and_writes_the_run_folder(
        self, trained: tuple[Path, Path, dict[str, Any], str]
    ) -> None:
        _, folder, metrics, printed = trained
        test = metrics["final"]["test"]["ball"]
        assert test["dice"]["value"] > 0.5, test
        assert test["cases"] >= 2 and "hd95_mm" in test
        for name in ("metrics.json", "model.safetensors", "model_card.md", "config.yaml"):
            assert (folder / name).is_file()
        assert (folder / "checkpoints" / "last.pt").is_file()
        card = (folder / "model_card.md").read_text()
        assert "trained from scratch" in card and "sliding-window" in card
        assert metrics["volume"]["spacing_mm"] == [1.25, 1.25, 1.25]
        assert len(metrics["history"]) == 2 and metrics["history"][0]["images"] == 32
        assert "test ball: Dice" in printed and "volumes)" in printed

    def test_the_model_file_describes_the_volume_input(
        self, trained: tuple[Path, Path, dict[str, Any], str]
    ) -> None:
        from desktop_app.model.modeldata import read_manifest

        manifest = read_manifest(trained[1] / "model.safetensors")
        assert manifest.architecture == "segresnet3d" and manifest.task == "segmentation"
        assert manifest.arch_args["spacing"] == [1.25, 1.25, 1.25]
        assert manifest.arch_args["window"][0] < 40 < manifest.arch_args["window"][1]
        assert manifest.preprocessing.image_size == 32
        assert manifest.preprocessing.normalization == "window"
        assert manifest.intended_input.modalities == ("CT",)
        assert manifest.training_data["config"]["pretrained"] is False

    def test_engine_and_catalog_refuse_it_in_one_line(
        self, trained: tuple[Path, Path, dict[str, Any], str]
    ) -> None:
        from desktop_app.inference.engine import InferenceEngine
        from desktop_app.model.catalog import read_entry

        path = trained[1] / "model.safetensors"
        for backend in ("auto", "torch"):
            with pytest.raises(ModelFileError) as info:
                InferenceEngine(path, device="cpu", backend=backend)
            assert info.value.one_line() == (
                f"{path}: a 3-D segmentation model (segresnet3d): this version of the app runs "
                "2-D models; evaluate it with radassist-train evaluate"
            )
        entry = read_entry(path, "installed")
        assert not entry.usable and "runs 2-D models" in (entry.problem or "")

    def test_evaluate_scores_it_by_sliding_window(
        self, trained: tuple[Path, Path, dict[str, Any], str]
    ) -> None:
        from training.evaluate import evaluate_model_file

        data, folder, metrics, _ = trained
        result = evaluate_model_file(folder / "model.safetensors", data, device="cpu", n_boot=100)
        assert result["dims"] == 3 and result["data"]["split"] == "test"
        fit_dice = metrics["final"]["test"]["ball"]["dice"]["value"]
        assert result["labels"]["ball"]["dice"]["value"] == pytest.approx(fit_dice, abs=1e-6)


def test_the_2d_entry_point_points_to_the_3d_one(tmp_path: Path) -> None:
    from desktop_app.infra.errors import ConfigError
    from training.config import TrainConfig, config_from_dict
    from training.segmentation import run_segmentation_fit

    config = config_from_dict(
        {"data": {"task": "segmentation", "manifest": str(tmp_path)},
         "model": {"arch": "segresnet3d", "pretrained": False}},
        TrainConfig(),
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"call training\.seg3d\.run_volume_fit"):
        run_segmentation_fit(config, tmp_path / "out")
