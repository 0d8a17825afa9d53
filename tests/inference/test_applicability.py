"""desktop_app.inference.inputcheck and the engine's applicability paths: the check before
running (applicable, not applicable, missing tags), forced runs, the out-of-distribution score
from the same forward pass (every image flagged, none flagged), temperatures, legacy files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from desktop_app.inference.engine import InferenceEngine
from desktop_app.inference.findings import SeriesResult
from desktop_app.inference.inputcheck import (
    InputCheck,
    InputNotApplicable,
    SeriesHeaders,
    check_input,
    headers_of,
    headers_of_stack,
)
from desktop_app.model.applicability import IntendedInput
from desktop_app.model.networks import gradcam_target_layer
from desktop_app.model.paths import resources_dir
from desktop_app.studies.index import index_paths
from desktop_app.studies.series import assemble
from desktop_app.studies.volume import SeriesVolume
from tests.helpers.applicability import (
    CHEST_RADIOGRAPHS,
    FLAG_ALL,
    FLAG_NONE,
    make_applicability_model,
    make_legacy_model,
)
from tests.helpers.engine import ARCH, LABELS, bundled_model_or_skip

SAMPLE = resources_dir() / "sample"
CHEST = SAMPLE / "chest_xr" / "chest_pa.dcm"
CT = SAMPLE / "ct_phantom"
CT_REASON = "This model is for chest CR/DX radiographs; this series is CT"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _engine(path: Path, backend: str = "torch", **kw: object) -> InferenceEngine:
    return InferenceEngine(path, device="cpu", backend=backend, threads=1, **kw)  # type: ignore[arg-type]


def _ct_volume() -> SeriesVolume:
    ((_, _, series),) = list(index_paths([CT]).iter_series())
    return SeriesVolume(assemble(series).stacks[0], keep=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "plain": make_applicability_model(folder / "plain.safetensors"),
        "flag_all": make_applicability_model(folder / "all.safetensors", ood_threshold=FLAG_ALL),
        "flag_none": make_applicability_model(folder / "none.safetensors", ood_threshold=FLAG_NONE),
        "legacy": make_legacy_model(folder / "legacy.safetensors"),
    }


def _dx(**kw: object) -> SeriesHeaders:
    base: dict[str, object] = {
        "modality": "DX",
        "body_part": "CHEST",
        "view_position": "PA",
        "rows": 1024,
        "columns": 1024,
    }
    base.update(kw)
    return SeriesHeaders(**base)  # type: ignore[arg-type]


class TestCheckInput:
    @pytest.mark.parametrize(
        ("headers", "intended", "reason"),
        [
            (_dx(modality="CT"), CHEST_RADIOGRAPHS, CT_REASON),
            (
                _dx(body_part="HAND"),
                CHEST_RADIOGRAPHS,
                "This model is for chest CR/DX radiographs; this series is of the hand "
                "(Body Part Examined)",
            ),
            (
                _dx(view_position="LL"),
                IntendedInput(["DX"], [], ["PA", "AP"], "projection", 0, "t"),
                "This model is for PA/AP views; this image is LL (View Position)",
            ),
            (
                _dx(rows=200),
                IntendedInput(["DX"], [], [], "projection", 256, "t"),
                "This model needs images of at least 256 pixels a side; this one is 200x1024",
            ),
            (
                _dx(modality="OT", images=30, volume=True),
                IntendedInput([], [], [], "projection", 0, "t"),
                "This model is for any-modality radiographs (projection radiographs); this "
                "series is cross-sectional slices (30 cross-sectional OT slices)",
            ),
            (
                _dx(modality="DX"),
                IntendedInput(["DX", "CT"], [], [], "slice", 0, "t"),
                "This model is for DX/CT slices (cross-sectional slices); this series is "
                "projection radiographs (DX)",
            ),
        ],
    )
    def test_a_mismatch_is_not_applicable_with_one_reason(
        self, headers: SeriesHeaders, intended: IntendedInput, reason: str
    ) -> None:
        check = check_input(headers, intended)
        assert not check.applicable
        assert check.refusal == reason == check.reasons[0]

    @pytest.mark.parametrize("part", ["CHEST", "THORAX", "chest "])
    def test_a_match_is_applicable_without_reasons(self, part: str) -> None:
        check = check_input(_dx(body_part=part.strip().upper()), CHEST_RADIOGRAPHS)
        assert check == InputCheck(applicable=True, reasons=())

    def test_a_missing_body_part_is_a_warning(self) -> None:
        check = check_input(_dx(body_part=None), CHEST_RADIOGRAPHS)
        assert check.applicable and check.refusal == ""
        assert check.reasons == (
            "Body Part Examined is missing: can't check that this series is chest",
        )

    @pytest.mark.parametrize("kind", ["png", "jpeg", "image"])
    def test_no_headers_is_a_warning(self, kind: str) -> None:
        check = check_input(SeriesHeaders(file_kind=kind), CHEST_RADIOGRAPHS)
        assert check.applicable
        assert len(check.reasons) == 1 and "without DICOM headers" in check.reasons[0]
        assert "chest CR/DX radiographs" in check.reasons[0]

    def test_a_ct_localizer_is_a_projection(self) -> None:
        scout = _dx(modality="CT", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
        assert scout.image_kind == "projection"
        assert _dx(modality="CT").image_kind == "slice"

    def test_headers_come_from_the_index_and_one_header(self) -> None:
        ct = headers_of_stack(_ct_volume().stack)
        assert (ct.modality, ct.body_part, ct.image_kind, ct.rows) == ("CT", "CHEST", "slice", 256)
        assert ct.images > 1 and ct.volume
        chest = headers_of(CHEST)
        assert (chest.modality, chest.body_part, chest.view_position) == ("DX", "CHEST", "PA")
        assert chest.image_kind == "projection"

    def test_the_legacy_default_refuses_ct_and_takes_radiographs(self) -> None:
        legacy = IntendedInput.legacy()
        assert check_input(headers_of_stack(_ct_volume().stack), legacy).refusal == (
            "This model is for CR/DX radiographs; this series is CT"
        )
        assert check_input(headers_of(CHEST), legacy).applicable


class TestEngineRefusesAndForces:
    def test_ct_against_a_radiograph_model_is_not_run(self, models: dict[str, Path]) -> None:
        engine = _engine(models["plain"])
        with pytest.raises(InputNotApplicable, match=f"not run: {CT_REASON}") as caught:
            engine.run(_ct_volume())
        assert caught.value.check.refusal == CT_REASON
        assert "\n" not in caught.value.one_line()
        assert engine.check(_ct_volume()) == caught.value.check

    def test_forced_marks_every_output(self, models: dict[str, Path]) -> None:
        result = _engine(models["plain"]).run(_ct_volume(), force=True, heatmaps="none")
        check = result.input_check
        assert check.forced and not check.applicable and check.out_of_scope
        assert check.refusal == CT_REASON and check.in_distribution is None
        assert all(f.out_of_scope and f.unreliable for f in result.findings)
        doc = json.loads(json.dumps(result.to_json()))
        assert doc["series"]["input_check"]["forced"] is True
        assert all(f["out_of_scope"] and f["unreliable"] for f in doc["findings"])
        assert SeriesResult.from_json(doc).input_check == check

    def test_an_applicable_series_is_not_marked(self, models: dict[str, Path]) -> None:
        result = _engine(models["plain"]).run(CHEST, force=True, heatmaps="none")
        assert result.input_check == InputCheck(applicable=True)
        assert not any(f.unreliable or f.out_of_scope for f in result.findings)

    def test_a_png_runs_with_a_warning(self, models: dict[str, Path], tmp_path: Path) -> None:
        path = tmp_path / "x.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 64), np.uint8)).save(path)
        result = _engine(models["plain"]).run(path, heatmaps="none")
        assert result.input_check.applicable and not result.input_check.forced
        assert "PNG image without DICOM headers" in result.input_check.reasons[0]

    def test_a_legacy_model_refuses_ct(self, models: dict[str, Path]) -> None:
        engine = _engine(models["legacy"])
        assert engine.manifest.legacy
        with pytest.raises(InputNotApplicable, match="for CR/DX radiographs; this series is CT"):
            engine.run(_ct_volume())
        assert engine.run(CHEST, heatmaps="none").input_check.applicable

    def test_the_bundled_model_refuses_the_ct_sample(self) -> None:
        engine = _engine(bundled_model_or_skip())
        with pytest.raises(InputNotApplicable, match="this series is CT"):
            engine.run(_ct_volume())


class TestOutOfDistribution:
    def test_every_image_flagged(self, models: dict[str, Path]) -> None:
        result = _engine(models["flag_all"]).run(CHEST, heatmaps="none")
        check = result.input_check
        assert check.applicable and check.in_distribution is False
        assert check.ood_threshold == FLAG_ALL and check.ood_score is not None
        assert check.ood_score > FLAG_ALL
        assert all(f.out_of_distribution and f.unreliable for f in result.findings)
        assert result.findings[0].ood_score == pytest.approx(check.ood_score)
        assert "Out of distribution" in check.warnings()[0]

    def test_no_image_flagged(self, models: dict[str, Path]) -> None:
        result = _engine(models["flag_none"]).run(CHEST, heatmaps="none")
        assert result.input_check.in_distribution is True
        assert result.input_check.ood_threshold == FLAG_NONE
        assert not any(f.unreliable or f.out_of_distribution for f in result.findings)
        assert result.ood_scores is not None and np.isfinite(result.ood_scores).all()

    def test_no_statistics_no_verdict(self, models: dict[str, Path]) -> None:
        result = _engine(models["plain"]).run(CHEST, heatmaps="none")
        assert result.input_check.in_distribution is None and result.ood_scores is None
        doc = result.to_json()
        assert doc["series"]["input_check"]["ood_score"] is None
        assert doc["slice_ood_scores"] is None

    @pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
    def test_the_score_is_of_the_pooled_grad_cam_layer_in_the_same_pass(
        self, models: dict[str, Path], backend: str
    ) -> None:
        """The head's input is the global average pool of the Grad-CAM layer's map for these
        networks; with identity statistics around ones the score is its distance to them."""
        engine = _engine(models["flag_none"], backend)
        assert engine.backend == backend
        ct = _ct_volume()
        result = engine.run(ct, force=True, heatmaps="none")
        x, _ = engine.preprocess(ct, [0, 5])
        captured: list[torch.Tensor] = []
        layer = dict(engine.network.named_modules())[gradcam_target_layer(ARCH)]
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
        with torch.no_grad():
            engine.network(torch.from_numpy(x))
        handle.remove()
        pooled = captured[0].mean(dim=(2, 3)).numpy()
        expected = np.linalg.norm(pooled.astype(np.float64) - 1.0, axis=1)
        assert result.ood_scores is not None
        np.testing.assert_allclose(result.ood_scores[[0, 5]], expected, rtol=1e-3)

    def test_a_multi_slice_run_is_flagged_by_any_slice(self, models: dict[str, Path]) -> None:
        result = _engine(models["flag_all"]).run(_ct_volume(), force=True, heatmaps="none")
        assert result.input_check.in_distribution is False and result.input_check.flagged
        assert result.ood_scores is not None
        assert result.input_check.ood_score == pytest.approx(float(np.max(result.ood_scores)))


class TestTemperatures:
    def test_logits_are_divided_before_the_sigmoid(self, tmp_path: Path) -> None:
        temps = {"nodule": 2.0, "effusion": 0.5, "cardiomegaly": 1.0}
        plain = make_applicability_model(tmp_path / "a.safetensors")
        scaled = make_applicability_model(tmp_path / "b.safetensors", temperatures=temps)
        p1 = _engine(plain).run(CHEST, heatmaps="none").probabilities[0].astype(np.float64)
        p2 = _engine(scaled).run(CHEST, heatmaps="none").probabilities[0].astype(np.float64)

        def logit(p: np.ndarray) -> np.ndarray:
            return np.log(p / (1 - p))

        t = np.array([temps[label] for label in LABELS])
        np.testing.assert_allclose(logit(p2) * t, logit(p1), rtol=1e-3, atol=1e-4)
