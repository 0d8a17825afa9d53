"""Out-of-distribution detection (issue 13): how well the model file's Mahalanobis score tells
images unlike the training phantoms from like ones, against k-NN distance as the alternative.

In-distribution: a fresh make-demo-data set (another seed than ``make model``'s, the same
generator and size): its train rows are the k-NN memory, its val rows set the k-NN threshold
(95th percentile, as fit does for Mahalanobis), its test rows are the in-distribution test set.
The Mahalanobis score uses the model file's own mean, precision and threshold, as the app does.

Out-of-distribution sets, all offline:
- ``pydicom CR chest`` / ``pydicom CR other``: pydicom-data's real computed radiographs (RG1 is a
  chest, RG3 an extremity) — the stand-in for the held-out real radiographs;
- ``pydicom MR``, ``US``, ``CT``, ``NM``, ``OT`` (secondary captures): every readable 2-D
  first frame of pydicom's and pydicom-data's files, by Modality;
- ``CT phantom slices``: desktop_app.phantoms' CT series;
- ``photographs``: scikit-image's bundled sample images;
- ``phantom: field 0.6x / 1.6x``, ``gamma 0.4 / 2.5``, ``noise 8 %``: chest phantoms with a
  changed field of view (central crop, or padded into a wider dark field), contrast or noise.

Reported per set: AUROC (OOD set against the in-distribution test set; 1.0 = perfectly apart)
and the fraction flagged at the threshold, for both scores; the in-distribution false-flag rate
(goal <= 5 %); ECE before/after temperature scaling per label on the fresh phantoms.

    python benchmarks/bench_ood_detection.py [--model FILE] [--n 360] [--k 5] [--json OUT]

Writes only under build/bench_ood/ (the phantoms; --json where asked).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop_app.model.modelfile import LoadedModel, load_model_file  # noqa: E402
from desktop_app.model.networks import PenultimateFeatures  # noqa: E402
from desktop_app.model.paths import default_model_path  # noqa: E402
from desktop_app.model.preprocessing import preprocess_file, preprocess_gray  # noqa: E402
from training.calibration import calibrated_probs  # noqa: E402
from training.metrics import auroc, expected_calibration_error  # noqa: E402

OUT = ROOT / "build" / "bench_ood"
PHOTOS = (
    "astronaut", "brick", "camera", "cell", "chelsea", "checkerboard", "clock", "coffee",
    "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field",
    "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina", "rocket",
    "shepp_logan_phantom", "text",
)  # fmt: skip


class Scorer:
    """Logits and penultimate features of preprocessed inputs, in batches (float32, CPU)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.spec = loaded.manifest.preprocessing
        self.net = loaded.network.eval()

    @torch.inference_mode()
    def run(self, inputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        logits, feats = [], []
        for start in range(0, len(inputs), 16):
            x = torch.from_numpy(np.stack(inputs[start : start + 16]))
            with PenultimateFeatures(self.net) as captured:
                logits.append(self.net(x).float().numpy())
            assert captured.value is not None
            feats.append(captured.value.float().numpy())
        return np.concatenate(logits), np.concatenate(feats)


def _files_inputs(scorer: Scorer, paths: Iterable[Path]) -> list[np.ndarray]:
    out = []
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append(preprocess_file(path, scorer.spec)[0])
        except Exception:
            continue
    return out


def _pydicom_sets() -> dict[str, list[Path]]:
    import pydicom

    from tests.helpers.dicomfiles import pydicom_data_files, pydicom_test_files

    sets: dict[str, list[Path]] = {}
    for path in pydicom_test_files() + pydicom_data_files():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "Rows" not in ds or int(ds.get("Rows") or 0) < 32 or int(ds.get("Columns") or 0) < 32:
            continue
        modality = str(ds.get("Modality", "") or "?")
        if modality in ("SEG", "RTDOSE", "?"):
            continue
        if modality == "CR":
            chest = str(ds.get("BodyPartExamined", "")).upper() == "CHEST"
            modality = "CR chest" if chest else "CR other"
        sets.setdefault(f"pydicom {modality}", []).append(path)
    return sets


def _photos(scorer: Scorer) -> list[np.ndarray]:
    import skimage.data

    out = []
    for name in PHOTOS:
        try:
            img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
        except Exception:
            continue
        if img.ndim == 3:
            img = img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)[: img.shape[-1]]
        out.append(preprocess_gray(img, scorer.spec)[0])
    return out


def _phantoms(
    scorer: Scorer, n: int, change: Callable[[np.ndarray, np.random.Generator], np.ndarray]
) -> list[np.ndarray]:
    from desktop_app.model.imageio import read_image
    from desktop_app.phantoms.studies import write_chest_xr

    folder = OUT / "changed"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        path, _ = write_chest_xr(folder / f"p{i}.dcm", 9000 + i)
        image = read_image(path)
        values = change(image.values.astype(np.float32), rng)
        out.append(preprocess_gray(values, scorer.spec, photometric=image.photometric)[0])
    return out


def _zoom_in(v: np.ndarray, _: np.random.Generator) -> np.ndarray:
    """The central 60 % of the field: a smaller field of view (a detector collimated tight)."""
    r, c = v.shape
    return v[int(r * 0.2) : int(r * 0.8), int(c * 0.2) : int(c * 0.8)]


def _zoom_out(v: np.ndarray, _: np.random.Generator) -> np.ndarray:
    """The image inside a 1.6x field of the darkest value: a wider field of view."""
    r, c = v.shape
    out = np.full((int(r * 1.6), int(c * 1.6)), float(v.min()), np.float32)
    top, left = (out.shape[0] - r) // 2, (out.shape[1] - c) // 2
    out[top : top + r, left : left + c] = v
    return out


def _ct_slices(scorer: Scorer) -> list[np.ndarray]:
    from desktop_app.phantoms.studies import write_ct_series

    series = write_ct_series(OUT / "ct", 3, slices=40, lesions=2)
    return _files_inputs(scorer, series.paths[::2])


def _demo(n: int) -> tuple[Any, Any]:
    from training.data import read_dataset, split_dataset
    from training.demo_data import DemoDataOptions, make_demo_dataset

    folder = OUT / f"demo_n{n}"
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        make_demo_dataset(folder, DemoDataOptions(n=n, seed=12345, size=512), overwrite=True)
    data = read_dataset(manifest)
    return data, split_dataset(data)


def _knn(memory: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Distance to the k-th nearest memory feature, after L2 normalisation (Sun et al. 2022)."""
    m = memory / np.linalg.norm(memory, axis=1, keepdims=True).clip(1e-12)
    q = query / np.linalg.norm(query, axis=1, keepdims=True).clip(1e-12)
    d = 2.0 - 2.0 * q @ m.T
    return np.sqrt(np.sort(np.maximum(d, 0.0), axis=1)[:, k - 1])


def _ood_auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    return auroc(y, np.r_[in_scores, out_scores])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--n", type=int, default=360, help="fresh phantoms (train/val/test)")
    parser.add_argument("--k", type=int, default=5, help="k of the k-NN distance")
    parser.add_argument("--changed", type=int, default=24, help="phantoms per changed generator")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("pydicom", "desktop_app"):  # unreadable test files are skipped, not news
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore", UserWarning)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    loaded = load_model_file(args.model or default_model_path())
    if loaded.ood is None:
        print(f"{loaded.path.name} has no OOD statistics: rebuild it (make model)")
        return 1
    ood = loaded.ood
    scorer = Scorer(loaded)
    labels = loaded.manifest.labels
    data, splits = _demo(args.n)

    def split_outputs(indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return scorer.run(_files_inputs(scorer, [data.records[i].path for i in indices]))

    _, f_train = split_outputs(splits.train)
    _, f_val = split_outputs(splits.val)
    z_test, f_test = split_outputs(splits.test)
    y_test = data.label_matrix(splits.test)
    knn_threshold = float(np.percentile(_knn(f_train, f_val, args.k), 95))
    in_maha, in_knn = ood.score(f_test), _knn(f_train, f_test, args.k)

    sets: dict[str, list[np.ndarray]] = {}
    for name, paths in sorted(_pydicom_sets().items()):
        sets[name] = _files_inputs(scorer, paths)
    sets["CT phantom slices"] = _ct_slices(scorer)
    sets["photographs"] = _photos(scorer)
    sets["phantom: field 0.6x (crop)"] = _phantoms(scorer, args.changed, _zoom_in)
    sets["phantom: field 1.6x (pad)"] = _phantoms(scorer, args.changed, _zoom_out)
    sets["phantom: gamma 0.4"] = _phantoms(scorer, args.changed, lambda v, _: v**0.4)
    sets["phantom: gamma 2.5"] = _phantoms(scorer, args.changed, lambda v, _: v**2.5)
    sets["phantom: noise 8 %"] = _phantoms(
        scorer, args.changed, lambda v, r: v + r.normal(0, 0.08 * float(np.ptp(v)), v.shape)
    )

    rows: list[dict[str, Any]] = [
        {
            "set": "in-distribution test (fresh phantoms)",
            "n": len(in_maha),
            "maha_auroc": None,
            "maha_flagged": float(ood.flags(in_maha).mean()),
            "knn_auroc": None,
            "knn_flagged": float((in_knn > knn_threshold).mean()),
        }
    ]
    for name, inputs in sets.items():
        if not inputs:
            continue
        _, feats = scorer.run(inputs)
        maha, knn = ood.score(feats), _knn(f_train, feats, args.k)
        rows.append(
            {
                "set": name,
                "n": len(inputs),
                "maha_auroc": _ood_auroc(in_maha, maha),
                "maha_flagged": float(ood.flags(maha).mean()),
                "knn_auroc": _ood_auroc(in_knn, knn),
                "knn_flagged": float((knn > knn_threshold).mean()),
            }
        )
    temps = loaded.manifest.temperatures
    ece = {
        label: {
            "temperature": (temps or {}).get(label, 1.0),
            "ece_before": expected_calibration_error(
                y_test[:, j], calibrated_probs(z_test, labels, None)[:, j]
            ),
            "ece_after": expected_calibration_error(
                y_test[:, j], calibrated_probs(z_test, labels, temps)[:, j]
            ),
        }
        for j, label in enumerate(labels)
    }
    _print(loaded, ood.threshold, knn_threshold, args.k, rows, ece, len(splits.test))
    print(f"{time.perf_counter() - start:.0f} s")
    if args.json:
        payload = {"model": loaded.path.name, "ood_threshold": ood.threshold, "rows": rows}
        args.json.write_text(json.dumps({**payload, "ece": ece}, indent=2))
    return 0


def _print(
    loaded: LoadedModel,
    threshold: float,
    knn_threshold: float,
    k: int,
    rows: list[dict[str, Any]],
    ece: dict[str, dict[str, float]],
    n_test: int,
) -> None:
    def num(v: float | None, pct: bool = False) -> str:
        if v is None or not np.isfinite(v):
            return "-"
        return f"{100 * v:5.1f} %" if pct else f"{v:.3f}"

    print(
        f"model {loaded.path.name}: Mahalanobis threshold {threshold:.3f} (model file); "
        f"{k}-NN threshold {knn_threshold:.4f} (95th pct of fresh val phantoms)"
    )
    head = (
        f"{'set':40} {'n':>4}  {'Maha AUROC':>10} {'flagged':>8}  {'kNN AUROC':>9} {'flagged':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['set']:40} {r['n']:>4}  {num(r['maha_auroc']):>10} "
            f"{num(r['maha_flagged'], True):>8}  {num(r['knn_auroc']):>9} "
            f"{num(r['knn_flagged'], True):>8}"
        )
    print(f"\nECE on {n_test} fresh test phantoms (10 bins), before -> after temperature scaling:")
    for label, row in ece.items():
        print(
            f"  {label:14} T {row['temperature']:.3f}  "
            f"{row['ece_before']:.4f} -> {row['ece_after']:.4f}"
        )


if __name__ == "__main__":
    sys.exit(main())
