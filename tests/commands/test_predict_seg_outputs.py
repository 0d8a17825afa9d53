"""`radassist predict` with a segmentation model: lesion lines that name slices as the viewer
does (Instance Numbers, also for a subset of a series), the overlay PNG, a crowded run's summary
and warning, and what is said when no image is found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from desktop_app.cli import main
from desktop_app.commands.predict import _lesion_lines
from desktop_app.inference.engine import series_warnings
from desktop_app.inference.findings import ModelInfo, ResultSlice, SeriesResult
from desktop_app.inference.lesions import MaskGeometry, find_lesions
from desktop_app.inference.lesiontext import MANY_LESIONS
from desktop_app.inference.overlays import (
    LESION_COLOURS,
    LESION_FILL_ALPHA,
    LesionMark,
    lesion_colour,
    render_lesions,
)
from tests.helpers.modelchoice import ct_series, make_ct_segmenter


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("segmodels")
    return {
        "all": make_ct_segmenter(root / "all.safetensors", bias=6.0),  # every pixel a lesion
        "none": make_ct_segmenter(root / "none.safetensors", bias=-6.0),  # no lesion
    }


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Slices 3-5 of a 6-slice CT series (plus a note that is not DICOM), as a user copies a
    part of a series into a folder of its own."""
    whole = ct_series(tmp_path_factory.mktemp("whole"), slices=6)
    part = tmp_path_factory.mktemp("part")
    files = sorted(whole.glob("*.dcm"), key=lambda p: int(pydicom.dcmread(p).InstanceNumber))
    for path in files[2:5]:
        shutil.copy(path, part / path.name)
    (part / "notes.txt").write_text("not an image\n")
    return part


def _predict(paths: list[Path], out: Path, model: Path) -> int:
    return main(["predict", *map(str, paths), "--out", str(out), "--model", str(model), "--quiet"])


def _one_folder(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder


class TestSliceNames:
    def test_lines_and_findings_name_instance_numbers_not_stack_positions(
        self,
        models: dict[str, Path],
        subset: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        assert _predict([subset], tmp_path, models["all"]) == 0
        out, err = capsys.readouterr()
        assert "lesion 1: " in out and "· Im 3–5 ·" in out  # as the viewer's row says it
        assert "slices 0-2" not in out
        assert "radassist predict: 1 non-DICOM file(s) skipped" in err  # as inspect says it
        doc = json.loads((_one_folder(tmp_path) / "findings.json").read_text())
        lesion = doc["lesions"]["lesions"][0]
        assert (lesion["first_slice"], lesion["last_slice"]) == (0, 2)  # kept: stack positions
        assert (lesion["first_instance_number"], lesion["last_instance_number"]) == (3, 5)
        assert doc["lesions"]["min_diameter_mm"] == 3.0

    def test_the_seg_segment_says_the_same_span(
        self, models: dict[str, Path], subset: Path, tmp_path: Path
    ) -> None:
        assert _predict([subset], tmp_path, models["all"]) == 0
        seg = pydicom.dcmread(_one_folder(tmp_path) / "segmentation.dcm")
        assert "Im 3-5" in seg.SegmentSequence[0].SegmentDescription


class TestOverlay:
    def test_a_lesion_is_drawn_in_its_viewer_colour_on_the_image_grid(
        self, models: dict[str, Path], subset: Path, tmp_path: Path
    ) -> None:
        assert _predict([subset], tmp_path, models["all"]) == 0
        folder = _one_folder(tmp_path)
        rgb = np.asarray(Image.open(folder / "overlay.png").convert("RGB"))
        first = pydicom.dcmread(next(subset.glob("*.dcm")))
        assert rgb.shape == (first.Rows, first.Columns, 3)
        outline = np.all(rgb == LESION_COLOURS[0], axis=2)
        assert outline.any()  # lesion 1's outline, opaque in its colour
        assert (folder / "findings.json").is_file() and (folder / "segmentation.dcm").is_file()

    def test_without_a_lesion_the_middle_slice_and_no_lesion_colour(
        self, models: dict[str, Path], subset: Path, tmp_path: Path
    ) -> None:
        assert _predict([subset], tmp_path, models["none"]) == 0
        folder = _one_folder(tmp_path)
        rgb = np.asarray(Image.open(folder / "overlay.png").convert("RGB"))
        assert not any(np.all(rgb == colour, axis=2).any() for colour in LESION_COLOURS)
        assert not (folder / "segmentation.dcm").exists()
        doc = json.loads((folder / "findings.json").read_text())
        assert doc["lesions"]["lesions"] == []


def _crowded(count: int) -> SeriesResult:
    """A real result whose lesion table has ``count`` separate 4 x 4 mm squares."""
    side = int(np.ceil(np.sqrt(count)))
    mask = np.zeros((1, side * 6, side * 6), dtype=bool)
    for k in range(count):
        r, c = 6 * (k // side), 6 * (k % side)
        mask[0, r : r + 4, c : c + 4] = True
    geometry = MaskGeometry(pixel_spacing=(1.0, 1.0), slice_spacing=1.0, instance_numbers=(7,))
    table = find_lesions(mask, geometry, min_diameter_mm=3.0)
    return SeriesResult(
        findings=[],
        model=ModelInfo("m", "1", "unet-lite0", "0" * 64, ("nodule",)),
        device="cpu",
        backend="onnxruntime",
        slices=[ResultSlice(0)],
        probabilities=np.ones((1, 1), dtype=np.float32),
        lesions=table,
    )


class TestCrowdedRun:
    def test_the_largest_are_listed_then_how_many_more(self) -> None:
        result = _crowded(MANY_LESIONS + 137)
        lines = _lesion_lines("abc", result, None)
        assert len(lines) == MANY_LESIONS + 1
        assert lines[0].startswith("abc  lesion 1: 16 mm³ · 5 mm · Im 7")
        assert lines[-1] == "abc  ... and 137 more (findings.json lists all)"

    def test_the_run_warns_once_in_its_warnings(self) -> None:
        """The engine's warnings (the GUI's banner, predict's stderr and findings.json)."""
        line = "157 lesions: far more than a reader expects; is this model made for this input?"
        assert series_warnings(["note"], 0, 40, 157) == ["note", line]
        assert series_warnings([], 2, 40, None) == [
            "2 of 40 image(s) could not be read and were skipped"
        ]

    def test_a_few_lesions_are_all_listed_without_a_warning(self) -> None:
        result = _crowded(3)
        assert len(_lesion_lines("abc", result, None)) == 3
        assert series_warnings([], 0, 1, len(result.lesions)) == []


class TestNothingFound:
    def test_an_empty_folder_is_named(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        empty = tmp_path / "empty\nfolder"
        empty.mkdir()
        assert main(["predict", str(empty), "--out", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert err == f"radassist predict: error: no images found in {tmp_path}/empty\\nfolder\n"

    def test_a_folder_of_a_png_says_what_was_skipped(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        folder = tmp_path / "pictures"
        folder.mkdir()
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(folder / "a.png")
        assert main(["predict", str(folder), "--out", str(tmp_path / "out")]) == 1
        err = capsys.readouterr().err
        assert err == (
            f"radassist predict: error: no images found in {folder}: 1 non-DICOM file(s) "
            "skipped (PNG/JPEG files run only when named one by one)\n"
        )


class TestRenderLesions:
    def test_fill_is_translucent_and_the_outline_opaque(self) -> None:
        image = np.full((60, 60), 100, dtype=np.uint8)
        mask = np.zeros((60, 60), dtype=bool)
        mask[20:40, 20:40] = True
        rgb = render_lesions(image, [LesionMark(mask, lesion_colour(2), "L2 20 mm")])
        assert tuple(rgb[20, 30]) == LESION_COLOURS[1]  # on the edge
        inside = tuple(int(v) for v in rgb[30, 30])
        assert inside != LESION_COLOURS[1] and inside != (100, 100, 100)  # the image shows under
        assert tuple(rgb[50, 50]) == (100, 100, 100)  # outside: untouched

    def test_a_mask_of_another_grid_is_refused(self) -> None:
        with pytest.raises(ValueError, match="differ in size"):
            render_lesions(
                np.zeros((8, 8), np.uint8), [LesionMark(np.ones((4, 4), bool), (1, 2, 3))]
            )

    def test_the_colours_are_the_viewers(self) -> None:
        overlay = pytest.importorskip("desktop_app.qt.lesion_overlay")
        hexes = tuple("#{:02x}{:02x}{:02x}".format(*c) for c in LESION_COLOURS)
        assert hexes == overlay.PALETTE
        assert overlay.LESION_ALPHA == LESION_FILL_ALPHA
