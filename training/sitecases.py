"""A site's cases for ``radassist-train calibrate``: per label, reader truths (0/1) and the model's
probabilities, from saved reviews or from a labelled manifest run through the app's engine.

Reviews (``review.state``, the app's ``reviews/`` folder, current and kept-aside files alike):
a case is one label of one reviewed series whose reader verdict is present (1) or absent (0),
with the probability the model gave at run time (no re-run). A finding the reader added (missed
by the model) is present, with the model's probability for that label on that series. Left out
and counted: uncertain and pending verdicts; reviews made by another model (another tensor
SHA-256) or by another version of these weights (other temperatures, so other probabilities);
runs forced on a series outside the model's intended input; unreadable files. When a study was
reviewed more than once with this model (a file kept aside), the latest review counts.

Manifest (``training.data``, every row, its splits ignored): each image is run by
``desktop_app.inference.engine.InferenceEngine`` exactly as ``radassist predict`` runs it (the
input check, the file's temperatures, heatmaps off); an image outside the intended input or
unreadable is left out and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from desktop_app.infra.errors import DataError, DicomReadError

if TYPE_CHECKING:
    from desktop_app.inference.engine import InferenceEngine
    from desktop_app.review.state import ReviewState
    from training.layouts.common import LayoutOptions

log = logging.getLogger(__name__)

MAX_REVIEW_BYTES = 32 * 1024 * 1024  # as review.store reads them


@dataclass
class SiteCases:
    """Per label the truths and probabilities of the site's cases, and what was left out."""

    source: str  # "reviews" or "manifest"
    path: Path
    source_sha256: str
    y: dict[str, list[float]] = field(default_factory=dict)
    p: dict[str, list[float]] = field(default_factory=dict)
    n_cases: int = 0  # series (reviews) or images (manifest) that gave at least one case
    counts: Counter[str] = field(default_factory=Counter)  # what was read, used and left out

    def add(self, label: str, truth: int, probability: float) -> None:
        self.y.setdefault(label, []).append(float(truth))
        self.p.setdefault(label, []).append(float(probability))

    def arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {
            label: (np.asarray(self.y[label], np.float64), np.asarray(self.p[label], np.float64))
            for label in self.y
        }


def _hash_files(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _read_state(path: Path) -> ReviewState | None:
    from desktop_app.review.state import ReviewState

    try:
        if path.stat().st_size > MAX_REVIEW_BYTES:
            return None
        return ReviewState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _forced_out_of_scope(state: ReviewState, series_key: str) -> bool:
    check = state.input_checks.get(series_key) or {}
    return bool(check.get("forced")) and check.get("applicable") is False


def cases_from_reviews(
    folder: Path, *, labels: tuple[str, ...], tensor_sha256: str, version: str
) -> SiteCases:
    """The site's cases in the review files of ``folder`` made by this model (its tensor
    SHA-256 and version); see the module docstring. Raises DataError when ``folder`` is not a
    folder of review files."""
    from desktop_app.review.state import ABSENT, PENDING, PRESENT, UNCERTAIN

    if not folder.is_dir():
        raise DataError("is not a folder", folder, "give the folder of saved reviews (reviews/)")
    files = sorted(p for p in folder.glob("*.json") if p.is_file())
    if not files:
        raise DataError("holds no review files (*.json)", folder, "give the reviews/ folder")
    counts: Counter[str] = Counter(files=len(files))
    latest: dict[str, tuple[str, Path, ReviewState]] = {}
    for path in files:
        state = _read_state(path)
        if state is None:
            counts["unreadable"] += 1
        elif state.model is None:
            counts["no_model"] += 1
        elif state.model.sha256 != tensor_sha256:
            counts["other_model"] += 1
        elif state.model.version != version:
            counts["other_version"] += 1
        else:
            previous = latest.get(state.study_uid)
            if previous is not None:
                counts["older_duplicates"] += 1
                if previous[0] >= state.updated:
                    continue
            latest[state.study_uid] = (state.updated, path, state)
    used = sorted(path for _, path, _ in latest.values())
    cases = SiteCases("reviews", folder, _hash_files(used), counts=counts)
    counts["reviews"] = len(used)
    for _, _, state in sorted(latest.values(), key=lambda item: str(item[1])):
        series_used: set[str] = set()
        for f in state.findings:
            if f.truth in (PENDING, UNCERTAIN):
                counts[f.truth] += 1
                continue
            if f.truth not in (PRESENT, ABSENT):
                counts["unknown_verdict"] += 1
            elif f.label not in labels:
                counts["unknown_label"] += 1
            elif not math.isfinite(f.probability) or not 0.0 <= f.probability <= 1.0:
                counts["no_probability"] += 1
            elif _forced_out_of_scope(state, f.series_key):
                counts["out_of_scope"] += 1
            else:
                cases.add(f.label, 1 if f.truth == PRESENT else 0, f.probability)
                counts["verdicts"] += 1
                counts["added"] += int(f.added and f.truth == PRESENT)
                series_used.add(f.series_key)
        cases.n_cases += len(series_used)
    return cases


def cases_from_manifest(
    manifest_path: Path,
    engine: InferenceEngine,
    labels: tuple[str, ...],
    options: LayoutOptions | None = None,
) -> SiteCases:
    """Every image of a labelled manifest run through ``engine``; see the module docstring.
    ``options``: how a public layout is read; an unknown (NaN) label is no case of it."""
    from desktop_app.inference.inputcheck import InputNotApplicable
    from training.evaluate import _read_model_labels

    data = _read_model_labels(manifest_path, list(labels), options)
    if not data.records:
        raise DataError("has no rows", data.source, "give a manifest with labelled images")
    cases = SiteCases("manifest", data.source, data.sha256)
    counts = cases.counts
    counts["images"] = len(data.records)
    for record in data.records:
        try:
            result = engine.run(record.path, heatmaps="none")
        except InputNotApplicable:
            counts["out_of_scope"] += 1
            continue
        except (DicomReadError, DataError) as err:
            counts["unreadable"] += 1
            log.info("row %d unreadable: %s", record.row, type(err).__name__)
            continue
        probs = {f.label: f.probability for f in result.findings}
        for label, truth in zip(data.labels, record.labels, strict=True):
            if not math.isnan(truth):
                cases.add(label, int(truth), probs[label])
        counts["run"] += 1
        counts["ood_flagged"] += int(result.input_check.in_distribution is False)
        cases.n_cases += 1
    return cases


def describe_cases(cases: SiteCases) -> list[str]:
    """What was read and left out, one line each (stdout's summary)."""
    c = cases.counts
    if cases.source == "manifest":
        lines = [
            f"manifest {cases.path}: {c['images']} images, {c['run']} run"
            + (
                f", {c['ood_flagged']} of them flagged out of distribution"
                if c["ood_flagged"]
                else ""
            )
        ]
        left = [
            (
                c["out_of_scope"],
                "image outside the model's intended input",
                "images outside the model's intended input",
            ),
            (c["unreadable"], "unreadable image", "unreadable images"),
        ]
    else:
        lines = [
            f"reviews {cases.path}: {c['files']} files, {c['reviews']} reviews of this model: "
            f"{cases.n_cases} series, {c['verdicts']} verdicts used"
            + (f" ({c['added']} missed findings added by readers)" if c["added"] else "")
        ]
        left = [
            (c["uncertain"], "uncertain verdict", "uncertain verdicts"),
            (c["pending"], "label without a verdict", "labels without a verdict"),
            (
                c["out_of_scope"],
                "verdict on a run forced out of scope",
                "verdicts on runs forced out of scope",
            ),
            (
                c["no_probability"],
                "verdict without a probability",
                "verdicts without a probability",
            ),
            (c["unknown_label"], "verdict on another label", "verdicts on other labels"),
            (c["older_duplicates"], "older review of a study", "older reviews of studies"),
            (c["no_model"], "review that names no model", "reviews that name no model"),
            (c["unreadable"], "unreadable file", "unreadable files"),
        ]
    shown = [f"{n} {one if n == 1 else many}" for n, one, many in left if n]
    if shown:
        lines.append("left out: " + ", ".join(shown))
    return lines


def skipped_models_line(cases: SiteCases, tensor_sha256: str, version: str) -> str | None:
    """The one line saying how many reviews another model (or version) made, or None."""
    other, version_only = cases.counts["other_model"], cases.counts["other_version"]
    if not other and not version_only:
        return None
    parts = []
    if other:
        parts.append(
            f"{other} review{'s' if other != 1 else ''} made by another model "
            f"(not tensor SHA-256 {tensor_sha256[:12]}…)"
        )
    if version_only:
        parts.append(
            f"{version_only} review{'s' if version_only != 1 else ''} made by another version "
            f"of these weights (not {version}: other temperatures)"
        )
    return f"skipped {' and '.join(parts)}: their probabilities are not this model's"


def describe_counts(counts: Counter[str]) -> dict[str, Any]:
    """The counts as JSON (the report's ``cases``)."""
    return {k: int(v) for k, v in sorted(counts.items())}
