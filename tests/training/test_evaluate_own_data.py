"""`radassist-train evaluate` on the model's own training data scores its test split, as fit
made it, and says so in one line; other data without a split column is an external set."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop_app.model.modelfile import load_model_file
from tests.helpers.engine import make_model_file
from tests.helpers.tinydata import demo_dataset
from training import cli
from training.data import read_dataset, split_dataset
from training.evaluate import is_training_data, legacy_folder_hashes, own_data_line
from training.segdata import read_segmentation_data
from training.segmasks import LabelImage, SegDataset

OWN = "the model's own training data: scoring its test split"
SIZE = 40


def write_folder(root: Path, n: int, seed: int) -> Path:
    """Kvasir-like ``images/`` + ``masks/`` JPEG pairs (one bright disc each), no split
    folders."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(n):
        cy, cx = rng.uniform(10, SIZE - 10, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 36
        image = rng.normal(60, 12, (SIZE, SIZE))
        image[disc] += 110
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / f"images/c{i:03d}.jpg")
        Image.fromarray((disc * 255).astype(np.uint8)).save(root / f"masks/c{i:03d}.jpg")
    return root


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = cli.main(["evaluate", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the folder, the model file) of a one-epoch fit on a 20-pair folder given as a path
    relative to the working directory, as a user types ``--data kv``."""
    base = tmp_path_factory.mktemp("own")
    write_folder(base / "kv", 20, seed=0)
    before = Path.cwd()
    os.chdir(base)
    try:
        code = cli.main(
            ["fit", "--task", "segmentation", "--data", "kv", "--out", "run", "--epochs", "1",
             "--image-size", "64", "--batch-size", "8", "--device", "cpu", "--quiet",
             "--no-pretrained", "--set", "evaluation.bootstrap=0",
             "--set", "output.tensorboard=false", "--set", "output.plots=false",
             "--set", "augment.enabled=false"]
        )  # fmt: skip
    finally:
        os.chdir(before)
    assert code == 0
    return base / "kv", base / "run" / "model.safetensors"


@pytest.mark.slow
class TestSegmentationOwnData:
    def test_the_training_folder_under_another_path_gives_its_test_split(
        self, seg_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        folder, model = seg_run
        trained = load_model_file(model).manifest.training_data
        code, out, _ = _run(
            capsys, "--model", model, "--data", folder.resolve(), "--device", "cpu",
            "--bootstrap", "0", "--quiet",
        )  # fmt: skip
        assert code == 0
        n = trained["splits"]["test"]["images"]
        assert out.splitlines()[0] == f"{OWN} ({n} images); --split all scores every image"
        assert "external evaluation" not in out
        assert f"on the test split: {n} images of {n} patients" in out

    def test_split_all_scores_every_image(
        self, seg_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        folder, model = seg_run
        code, out, _ = _run(
            capsys, "--model", model, "--data", folder, "--split", "all", "--json", "-",
            "--device", "cpu", "--bootstrap", "0", "--quiet",
        )  # fmt: skip
        assert code == 0
        data = json.loads(out)["data"]
        assert (data["split"], data["images"], data["external"]) == ("all", 20, False)

    def test_json_on_stdout_puts_the_line_on_stderr(
        self, seg_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        folder, model = seg_run
        code, out, err = _run(
            capsys, "--model", model, "--data", folder, "--json", "-", "--device", "cpu",
            "--bootstrap", "0", "--quiet",
        )  # fmt: skip
        assert code == 0
        data = json.loads(out)["data"]
        assert (data["split"], data["external"]) == ("test", False)
        assert err == own_data_line(data["images"]) + "\n"

    def test_another_folder_is_external(
        self, seg_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, model = seg_run
        other = write_folder(tmp_path / "kv", 12, seed=5)  # same folder name, other images
        code, out, _ = _run(
            capsys, "--model", model, "--data", other, "--device", "cpu", "--bootstrap", "0",
            "--quiet",
        )  # fmt: skip
        assert code == 0
        assert out.splitlines()[0] == "external evaluation: all 12 images"
        assert OWN not in out


def _old_folder_hash(seg: SegDataset) -> str:
    """The hash image + mask folders had when it was taken of the paths as typed."""
    return hashlib.sha256(
        "\n".join(
            f"{r.path},{','.join(str(p) for p in (m.path, *m.more))}"
            for r, m in zip(seg.data.records, seg.masks, strict=True)
            if isinstance(m, LabelImage)
        ).encode("utf-8")
    ).hexdigest()


class TestIsTrainingData:
    def test_the_hash_is_the_same_under_any_path(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        folder = write_folder(tmp_path / "kv", 6, seed=1)
        monkeypatch.chdir(tmp_path)
        relative = read_segmentation_data(Path("kv")).data.sha256
        assert read_segmentation_data(folder.resolve()).data.sha256 == relative

    @pytest.mark.parametrize("typed", ["kv", "data/kv", "ABSOLUTE", "."])
    def test_a_model_file_with_the_old_path_hash_knows_its_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, typed: str
    ) -> None:
        """Model files trained before the hash was of paths below the folder recorded it of
        the path as typed at fit time; evaluate under another path still finds it."""
        folder = write_folder(tmp_path / "data" / "kv", 8, seed=1)
        if typed == "ABSOLUTE":
            typed = str(folder.resolve())
        monkeypatch.chdir({"kv": folder.parent, ".": folder}.get(typed, tmp_path))
        recorded = {"manifest_sha256": _old_folder_hash(read_segmentation_data(Path(typed)))}
        monkeypatch.chdir(tmp_path.parent)
        seg = read_segmentation_data(folder.resolve())
        assert is_training_data(seg.data, recorded) == (typed == ".")  # "." is below-folder
        assert is_training_data(seg.data, recorded, legacy_folder_hashes(seg))

    def test_another_folder_of_the_same_name_and_size_is_not(self, tmp_path: Path) -> None:
        ours = write_folder(tmp_path / "a" / "kv", 8, seed=1)
        other = write_folder(tmp_path / "b" / "kv", 8, seed=2)
        for path in other.glob("*/*.jpg"):  # other stems: other images
            path.rename(path.with_name("x" + path.name))
        recorded = {"manifest_sha256": _old_folder_hash(read_segmentation_data(ours))}
        seg = read_segmentation_data(other)
        assert not is_training_data(seg.data, recorded, legacy_folder_hashes(seg))


def test_a_classifier_on_its_own_manifest_says_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Classification models get the same line; a different manifest stays external."""
    demo = demo_dataset(tmp_path / "demo", n=24, size=64)
    with demo.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    own, external = tmp_path / "own.csv", tmp_path / "external.csv"
    for path, kept in ((own, rows), (external, rows[1:])):  # no split column: fit split it
        with path.open("w", newline="") as fh:
            columns = [c for c in rows[0] if c != "split"]
            writer = csv.DictWriter(fh, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({**r, "path": str((demo.parent / r["path"]).resolve())} for r in kept)
    data = read_dataset(own)
    model = make_model_file(
        tmp_path / "m.safetensors", labels=data.labels, size=48,
        training_data={"manifest_sha256": data.sha256, "split_seed": 0},
    )  # fmt: skip
    code, out, _ = _run(
        capsys, "--model", model, "--data", own, "--device", "cpu", "--bootstrap", "0", "--quiet"
    )
    assert code == 0
    assert out.splitlines()[0] == own_data_line(len(split_dataset(data).test))
    code, out, _ = _run(
        capsys, "--model", model, "--data", external, "--device", "cpu", "--bootstrap", "0",
        "--quiet",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines()[0] == f"external evaluation: all {len(rows) - 1} images"
