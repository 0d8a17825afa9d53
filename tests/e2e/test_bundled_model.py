"""The bundled demo model end to end: `radassist predict resources/sample/chest_xr --out DIR`
with no --model (so the bundled default) finds the sample's known nodule, where it is, and
agrees with the sample's ground truth (resources/sample/chest_xr/truth.json) on every label."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from desktop_app.cli import main
from desktop_app.model.modelfile import read_manifest
from desktop_app.model.paths import resources_dir
from tests.helpers.engine import bundled_model_or_skip

SAMPLE = resources_dir() / "sample" / "chest_xr"
TRUTH = json.loads((SAMPLE / "truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bundled() -> Path:
    return bundled_model_or_skip()


@pytest.fixture(scope="module")
def predicted(bundled: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `radassist predict` of the sample folder; its exit code, findings.json and stdout."""
    import contextlib
    import io

    out_dir = tmp_path_factory.mktemp("predict")
    threads = torch.get_num_threads()
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["predict", str(SAMPLE), "--out", str(out_dir), "--quiet"])
    finally:
        torch.set_num_threads(threads)  # predict sets the process-wide thread count
    folders = [p for p in out_dir.iterdir() if p.is_dir()]
    doc = json.loads((folders[0] / "findings.json").read_text()) if len(folders) == 1 else {}
    return {
        "code": code,
        "stderr": stderr.getvalue(),
        "stdout": stdout.getvalue(),
        "folders": folders,
        "doc": doc,
    }


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def finding(predicted: dict[str, Any], label: str) -> dict[str, Any]:
    (found,) = [f for f in predicted["doc"]["findings"] if f["label"] == label]
    return dict(found)


@pytest.mark.slow
class TestPredictSampleWithBundledModel:
    def test_runs_with_the_bundled_model(self, predicted: dict[str, Any], bundled: Path) -> None:
        assert predicted["code"] == 0, predicted["stderr"]
        assert len(predicted["folders"]) == 1
        model = predicted["doc"]["model"]
        manifest = read_manifest(bundled)
        assert model["file_name"] == bundled.name
        assert model["tensor_sha256"] == manifest.tensor_sha256
        assert [f["label"] for f in predicted["doc"]["findings"]] == list(manifest.labels)
        assert (predicted["folders"][0] / "overlay.png").is_file()

    @pytest.mark.parametrize("label", sorted(TRUTH["findings"]))
    def test_agrees_with_the_ground_truth(self, predicted: dict[str, Any], label: str) -> None:
        f = finding(predicted, label)
        expected = bool(TRUTH["findings"][label])
        assert f["positive"] is expected, (
            f"{label}: probability {f['probability']:.3f}, threshold {f['threshold']:.3f}, "
            f"truth {'present' if expected else 'absent'}"
        )
        assert f["threshold_source"] == "model"

    def test_the_nodule_is_found_where_it_is(self, predicted: dict[str, Any]) -> None:
        f = finding(predicted, "nodule")
        truth = TRUTH["boxes"]["nodule"]
        assert f["heatmap"] is not None and f["heatmap"]["file"] == "heatmap_0_nodule.png"
        assert (predicted["folders"][0] / f["heatmap"]["file"]).is_file()
        # LayerCAM's grid cell (the default heatmap) is 8 input pixels (~26 px of this 1024²
        # image at 320²): the peak lands within half a box of the truth, and the region around
        # it overlaps it and hugs it (each side at most twice the truth's larger side; CAM's
        # 10 x 10 grid gives a 392 x 408 px box, most of a lung)
        margin = 0.5 * max(truth["width"], truth["height"])
        assert truth["x"] - margin <= f["peak"]["x"] <= truth["x"] + truth["width"] + margin
        assert truth["y"] - margin <= f["peak"]["y"] <= truth["y"] + truth["height"] + margin
        box = f["box"]
        overlap_x = min(box["x"] + box["width"], truth["x"] + truth["width"]) - max(
            box["x"], truth["x"]
        )
        overlap_y = min(box["y"] + box["height"], truth["y"] + truth["height"]) - max(
            box["y"], truth["y"]
        )
        assert overlap_x > 0 and overlap_y > 0, f"box {box} misses the nodule {truth}"
        side = 2 * max(truth["width"], truth["height"])
        assert box["width"] <= side and box["height"] <= side, f"box {box} is loose"
        assert f["heatmap_method"] == "layercam"

    def test_the_summary_table_names_every_label(self, predicted: dict[str, Any]) -> None:
        lines = predicted["stdout"].splitlines()
        assert lines[0].split() == ["series", "label", "probability", "threshold", "positive"]
        rows = {line.split()[1]: line.split()[4] for line in lines[1:4]}
        assert rows == {
            label: "yes" if present else "no" for label, present in TRUTH["findings"].items()
        }
