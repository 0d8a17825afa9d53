"""Helpers for the export tests: studies copied from the bundled synthetic samples with a
recognisable (made-up) patient, engine-like results built without running a network, and
review states with verdicts. Imported by tests/exports/test_export_*.py, test_study_export.py,
tests/e2e/test_export_cli.py and tests/training/test_manifest_from_reviews.py."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pydicom

from desktop_app.inference.findings import Finding, ModelInfo, ResultSlice, SeriesResult, Timings
from desktop_app.review.state import ReviewState, findings_from_result, model_ref

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "resources" / "sample"
CHEST = SAMPLES / "chest_xr" / "chest_pa.dcm"
CT_DIR = SAMPLES / "ct_phantom"
NODULE_BOX = (263.0, 507.0, 61.0, 52.0)  # resources/sample/README.md

# A made-up patient whose every identifier is easy to find in bytes.
PATIENT_NAME = "Testperson^Jolene"
PATIENT_ID = "MRN-77123"
BIRTH_DATE = "19700314"
LABELS = ("nodule", "effusion", "cardiomegaly")
MODEL = ModelInfo(
    name="export test model",
    version="3",
    architecture="efficientnet-lite0",
    tensor_sha256="ab" * 32,
    labels=LABELS,
    file_name="export-test.safetensors",
)


def make_manifest(**overrides: Any) -> SimpleNamespace:
    """A model manifest, duck-typed like desktop_app.model.modelfile.ModelManifest (no torch)."""
    fields: dict[str, Any] = {
        "name": MODEL.name,
        "version": MODEL.version,
        "architecture": MODEL.architecture,
        "tensor_sha256": MODEL.tensor_sha256,
        "labels": LABELS,
        "intended_use": "Research only: flags candidate nodules on synthetic radiographs.",
        "threshold_rule": "Youden index on the validation split",
        "thresholds": {"nodule": 0.41, "effusion": 0.5, "cardiomegaly": 0.6},
        "metrics": {
            "test": {
                "nodule": {"auroc": {"value": 0.93, "ci95": [0.9, 0.96]}, "sensitivity": 0.88},
            }
        },
        "training_data": {"images": 800, "synthetic": True},
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


def copy_study(source: Path, folder: Path, **changes: Any) -> list[Path]:
    """Copies of ``source`` (a file or a folder of .dcm files) with the made-up patient."""
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(source.glob("*.dcm")) if source.is_dir() else [source]
    out = []
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientName = PATIENT_NAME
        ds.PatientID = PATIENT_ID
        ds.PatientBirthDate = BIRTH_DATE
        for key, value in changes.items():
            setattr(ds, key, value)
        target = folder / path.name
        ds.save_as(target, enforce_file_format=True)
        out.append(target)
    return out


def blob(rows: int, cols: int, box: Sequence[float]) -> np.ndarray:
    """A heatmap peaking at the box's centre, falling to ~0 outside it."""
    x, y, w, h = box
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cx, cy = x + w / 2, y + h / 2
    heat = np.exp(-(((xx + 0.5 - cx) / (w / 2)) ** 2 + ((yy + 0.5 - cy) / (h / 2)) ** 2))
    return (heat / heat.max()).astype(np.float32)


def rectangle(box: Sequence[float]) -> tuple[tuple[float, float], ...]:
    x, y, w, h = (float(v) for v in box)
    return ((x, y), (x + w, y), (x + w, y + h), (x, y + h))


def make_result(
    files: Sequence[Path],
    specs: dict[str, tuple[float, int, Sequence[float] | None]],
    *,
    thresholds: dict[str, float] | None = None,
    device: str = "cpu",
    frame: int | None = None,
) -> SeriesResult:
    """An engine-like result over ``files`` (one series, ordered as given): per label
    ``(probability, slice index, box or None)``. Located findings get a heatmap blob, the box
    and a rectangular outline."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    if frame is not None:
        slices = [
            ResultSlice(
                i, str(headers[0].SOPInstanceUID), i, int(headers[0].Rows), int(headers[0].Columns)
            )
            for i in range(int(headers[0].get("NumberOfFrames", 1)))
        ]
    else:
        slices = [
            ResultSlice(i, str(h.SOPInstanceUID), 0, int(h.Rows), int(h.Columns))
            for i, h in enumerate(headers)
        ]
    thresholds = thresholds or {"nodule": 0.41, "effusion": 0.5, "cardiomegaly": 0.6}
    probabilities = np.full((len(slices), len(LABELS)), 0.05, dtype=np.float32)
    findings = []
    for k, label in enumerate(LABELS):
        probability, index, box = specs.get(label, (0.05, 0, None))
        probabilities[index, k] = probability
        ref = slices[index]
        heat = blob(ref.rows, ref.columns, box) if box is not None else None
        findings.append(
            Finding(
                label=label,
                probability=probability,
                threshold=thresholds[label],
                positive=probability >= thresholds[label],
                slice_index=index,
                sop_instance_uid=ref.sop_instance_uid,
                frame=ref.frame,
                box=tuple(float(v) for v in box) if box is not None else None,  # type: ignore[arg-type]
                outline=rectangle(box) if box is not None else None,
                peak=(box[0] + box[2] / 2, box[1] + box[3] / 2) if box is not None else None,
                heatmap=heat,
                model=MODEL,
                device=device,
            )
        )
    return SeriesResult(
        findings=findings,
        model=MODEL,
        device=device,
        backend="onnxruntime",
        slices=slices,
        probabilities=probabilities,
        timings=Timings(total=0.1),
        study_instance_uid=str(headers[0].StudyInstanceUID),
        series_instance_uid=str(headers[0].SeriesInstanceUID),
        modality=str(headers[0].Modality),
    )


def make_review(result: SeriesResult, reviewer: str = "Dr Reader") -> ReviewState:
    """The review state the GUI would make from ``result`` (all findings pending)."""
    state = ReviewState(study_uid=result.study_instance_uid, reviewer=reviewer)
    key = f"{result.series_instance_uid}#{result.part}"
    reviews, _ = findings_from_result(result, key)
    state.merge_findings(reviews, model_ref(result))
    return state


def fid(result: SeriesResult, label: str) -> str:
    return f"{result.series_instance_uid}#{result.part}:{label}"


def chest_study(tmp_path: Path) -> tuple[list[Path], SeriesResult, ReviewState]:
    """The chest radiograph with the made-up patient; nodule positive (accepted, with a
    note), effusion positive (rejected as artefact), cardiomegaly negative (pending)."""
    files = copy_study(CHEST, tmp_path / "study")
    result = make_result(
        files,
        {
            "nodule": (0.93, 0, NODULE_BOX),
            "effusion": (0.71, 0, (600.0, 700.0, 120.0, 90.0)),
            "cardiomegaly": (0.2, 0, None),
        },
    )
    review = make_review(result)
    review.accept(fid(result, "nodule"))
    review.set_note(fid(result, "nodule"), "Round opacity, right lower zone <check> & compare")
    review.reject(fid(result, "effusion"), "fp_artefact")
    return files, result, review


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
