"""What the inference engine returns: plain dataclasses + numpy, and their versioned JSON.

A :class:`SeriesResult` is one run over one image stack (a radiograph, or a series' slices):
one :class:`Finding` per model label, in the model's label order, with the per-slice
probabilities, the series and instance UIDs that the findings refer to, the device and model
that made them, timings and warnings (e.g. the CPU fallback). Nothing here imports torch or Qt:
the GUI, the CLI and the exports read these objects from any thread.

Coordinates are pixel coordinates ``(x, y)`` = (column, row) on the *original* image (the
stored frame, before any display transform), with pixel ``(row r, col c)`` covering
``[c, c+1) x [r, r+1)``: the convention of ``desktop_app.model.preprocessing.Geometry`` and of the
training manifest's boxes. A box is ``(x, y, width, height)``.

The JSON form (:meth:`SeriesResult.to_json` / :meth:`SeriesResult.from_json`) is documented in
docs/findings-json-schema.md; ``SCHEMA_VERSION`` follows its rules (a new field raises the minor
version, a removed or changed one the major). Heatmap arrays are not inlined: the writer names
a file per heatmap (the CLI writes them as PNG) and a reader loads them if it needs them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from desktop_app import RESEARCH_USE_NOTICE
from desktop_app import __version__ as RADASSIST_VERSION
from desktop_app.inference.inputcheck import InputCheck
from desktop_app.infra.errors import RadAssistError
from desktop_app.infra.hashedpaths import uid_hash

SCHEMA_NAME = "radassist-findings"
SCHEMA_VERSION = "1.3"
SCHEMA_MAJOR = 1

Box = tuple[float, float, float, float]
Point = tuple[float, float]


class FindingsFormatError(RadAssistError):
    """A findings JSON document can't be read (not ours, newer major version, bad field)."""


@dataclass(frozen=True)
class ModelInfo:
    """Which model made a result: enough to find the exact file again (the tensor hash)."""

    name: str
    version: str
    architecture: str
    tensor_sha256: str
    labels: tuple[str, ...]
    file_name: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "labels": list(self.labels)}

    @classmethod
    def from_json(cls, data: Any) -> ModelInfo:
        d = _mapping(data, "model")
        return cls(
            name=_str(d, "name", "model"),
            version=_str(d, "version", "model"),
            architecture=_str(d, "architecture", "model"),
            tensor_sha256=_str(d, "tensor_sha256", "model"),
            labels=tuple(_str_list(d, "labels", "model")),
            file_name=str(d.get("file_name", "")),
        )


@dataclass(frozen=True)
class Timings:
    """Seconds spent per stage of one run (wall clock, in the calling thread).

    ``preprocess``: decoding the pixels and the model's preprocessing; ``network``: the forward
    passes over every slice; ``gradcam``: Grad-CAM forward and backward passes; ``postprocess``:
    mapping heatmaps back to the original grid, peak regions and outlines; ``total``: the whole
    run, including what the others leave out (progress callbacks, bookkeeping).
    """

    preprocess: float = 0.0
    network: float = 0.0
    gradcam: float = 0.0
    postprocess: float = 0.0
    total: float = 0.0

    def to_json(self) -> dict[str, float]:
        return {name: round(seconds, 6) for name, seconds in asdict(self).items()}

    @classmethod
    def from_json(cls, data: Any) -> Timings:
        d = _mapping(data, "timings_s")
        return cls(**{k: _float(d, k, "timings_s") for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ResultSlice:
    """One image of a run (``SeriesResult.slices``): its position in the stack and the instance
    it came from."""

    index: int
    sop_instance_uid: str = ""
    frame: int = 0
    rows: int = 0
    columns: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ResultSlice:
        d = _mapping(data, "slices[]")
        return cls(
            index=_int(d, "index", "slices[]"),
            sop_instance_uid=_str(d, "sop_instance_uid", "slices[]"),
            frame=_int(d, "frame", "slices[]"),
            rows=_int(d, "rows", "slices[]"),
            columns=_int(d, "columns", "slices[]"),
        )


@dataclass(frozen=True)
class Finding:
    """One label's outcome over the stack.

    ``probability`` is the maximum over the slices, found on ``slice_index`` (0-based position
    in the ordered stack; ``sop_instance_uid`` and ``frame`` name that image). ``positive`` is
    ``probability >= threshold``. ``threshold_source`` says whether the threshold is the model
    file's operating point ("model") or was set by the user ("user").

    Location (only where a heatmap was computed, by default for positive findings):
    ``heatmap`` is float32 (rows, cols) in [0, 1] on the original pixel grid (made by
    ``heatmap_method``: "layercam", see ``gradcam.fine_cam``, or "cam", the last feature map's
    Grad-CAM; normalised by its maximum); ``peak`` its maximum; ``box`` and ``outline`` (a closed
    polygon, last point not repeated) the connected region around the peak at or above
    ``region_level`` of the peak. All in original pixel coordinates (see the module docstring).
    A heatmap shows where the network looked, not proof of a finding.

    ``model``, ``device`` and ``timings`` are the run's (the same objects on every finding of a
    :class:`SeriesResult`); ``gradcam_seconds`` is this label's own Grad-CAM cost.

    Applicability (``inputcheck``): ``ood_score`` is the out-of-distribution score of this
    finding's image (None without OOD statistics); ``out_of_distribution`` says whether that
    image is over the model's threshold; ``out_of_scope``: the run was forced on a series
    outside the model's intended input; ``unreliable``: out of scope, or any image of the run
    out of distribution (show it greyed, with the reason).
    """

    label: str
    probability: float
    threshold: float
    positive: bool
    slice_index: int
    sop_instance_uid: str = ""
    frame: int = 0
    box: Box | None = None
    outline: tuple[Point, ...] | None = None
    peak: Point | None = None
    heatmap: np.ndarray | None = field(default=None, compare=False, repr=False)
    region_level: float = 0.5
    threshold_source: str = "model"
    model: ModelInfo | None = field(default=None, compare=False, repr=False)
    device: str = ""
    timings: Timings | None = field(default=None, compare=False, repr=False)
    gradcam_seconds: float = field(default=0.0, compare=False)
    heatmap_method: str | None = None
    ood_score: float | None = None
    out_of_distribution: bool = False
    out_of_scope: bool = False
    unreliable: bool = False

    @property
    def located(self) -> bool:
        """Whether a heatmap (and so a box and an outline) was computed for this finding."""
        return self.box is not None

    def with_threshold(self, threshold: float, source: str = "user") -> Finding:
        """The same finding re-decided at ``threshold`` (the GUI's live slider): no re-run."""
        t = _check_threshold(self.label, threshold)
        return replace(self, threshold=t, positive=self.probability >= t, threshold_source=source)

    def summary(self) -> str:
        """``"nodule 0.93 (threshold 0.41): positive on slice 3"``: for logs and status bars."""
        verdict = "positive" if self.positive else "negative"
        return (
            f"{self.label} {self.probability:.2f} (threshold {self.threshold:.2f}): {verdict}"
            f" on slice {self.slice_index}" + (" (unreliable)" if self.unreliable else "")
        )

    def to_json(self, heatmap_file: str | None = None) -> dict[str, Any]:
        heatmap: dict[str, Any] | None = None
        if self.heatmap is not None or heatmap_file is not None:
            rows, cols = (
                (int(self.heatmap.shape[0]), int(self.heatmap.shape[1]))
                if self.heatmap is not None
                else (0, 0)
            )
            heatmap = {"file": heatmap_file, "rows": rows, "columns": cols}
        return {
            "label": self.label,
            "probability": float(self.probability),
            "threshold": float(self.threshold),
            "threshold_source": self.threshold_source,
            "positive": bool(self.positive),
            "slice_index": self.slice_index,
            "sop_instance_uid": self.sop_instance_uid,
            "frame": self.frame,
            "box": None
            if self.box is None
            else dict(zip(("x", "y", "width", "height"), (float(v) for v in self.box))),
            "outline": None
            if self.outline is None
            else [[float(x), float(y)] for x, y in self.outline],
            "peak": None
            if self.peak is None
            else {"x": float(self.peak[0]), "y": float(self.peak[1])},
            "region_level": self.region_level,
            "heatmap": heatmap,
            "heatmap_method": self.heatmap_method,
            "gradcam_seconds": round(self.gradcam_seconds, 6),
            "ood_score": None if self.ood_score is None else round(float(self.ood_score), 6),
            "out_of_distribution": self.out_of_distribution,
            "out_of_scope": self.out_of_scope,
            "unreliable": self.unreliable,
        }

    @classmethod
    def from_json(
        cls,
        data: Any,
        *,
        model: ModelInfo | None = None,
        device: str = "",
        timings: Timings | None = None,
    ) -> Finding:
        d = _mapping(data, "findings[]")
        where = "findings[]"
        box = d.get("box")
        peak = d.get("peak")
        outline = d.get("outline")
        label = _str(d, "label", where)
        return cls(
            label=label,
            probability=_float(d, "probability", where),
            threshold=_check_threshold(label, _float(d, "threshold", where)),
            positive=_bool(d, "positive", where),
            slice_index=_int(d, "slice_index", where),
            sop_instance_uid=_str(d, "sop_instance_uid", where),
            frame=_int(d, "frame", where),
            box=None
            if box is None
            else tuple(  # type: ignore[arg-type]
                _float(_mapping(box, "box"), k, "box") for k in ("x", "y", "width", "height")
            ),
            outline=None if outline is None else _points(outline),
            peak=None
            if peak is None
            else (_float(_mapping(peak, "peak"), "x", "peak"), _float(peak, "y", "peak")),
            region_level=_float(d, "region_level", where),
            threshold_source=_str(d, "threshold_source", where),
            model=model,
            device=device,
            timings=timings,
            gradcam_seconds=float(d.get("gradcam_seconds", 0.0) or 0.0),
            heatmap_method=_heatmap_method(d),
            ood_score=None if d.get("ood_score") is None else _float(d, "ood_score", where),
            out_of_distribution=bool(d.get("out_of_distribution", False) is True),
            out_of_scope=bool(d.get("out_of_scope", False) is True),
            unreliable=bool(d.get("unreliable", False) is True),
        )


def _heatmap_method(d: Mapping[str, Any]) -> str | None:
    """Schema 1.1's ``heatmap_method``; a 1.0 document's heatmaps were all "cam"."""
    method = d.get("heatmap_method")
    if method is None:
        return "cam" if d.get("heatmap") is not None else None
    return _str(d, "heatmap_method", "findings[]")


@dataclass
class SeriesResult:
    """One inference run over one image stack (a radiograph or a series' slices).

    ``findings``: one per model label, in the model's label order. ``probabilities``: float32
    (slices, labels), NaN for a slice that could not be read (see ``unreadable``).
    ``series_instance_uid`` and ``study_instance_uid`` are the DICOM UIDs (empty for images
    without them); logs use ``series_uid_hash`` instead. ``part``/``parts``: which part of a
    series that had to be split into several stacks (``series.assemble``). ``warnings``: what
    the user should know (e.g. "CUDA ran out of memory; finished on the CPU"), each once.
    ``unreadable``: ``(path, reason)`` of slices that could not be decoded; the run used the
    others. ``input_check``: the input check and the run's out-of-distribution verdict
    (``inputcheck.InputCheck``); ``ood_scores``: float (slices,), each image's OOD score (NaN
    where not read), or None when the model has no OOD statistics. A segmentation model's run
    also has ``lesions`` (``lesions.LesionTable``, written to findings.json as ``lesions``) and
    ``mask``: the lesion ids (slices, rows, cols) on the original grid, 0 outside, in slice order.
    """

    findings: list[Finding]
    model: ModelInfo
    device: str
    backend: str
    slices: list[ResultSlice]
    probabilities: np.ndarray = field(repr=False)
    timings: Timings = field(default_factory=Timings)
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    modality: str = ""
    part: int = 1
    parts: int = 1
    warnings: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    input_check: InputCheck = field(default_factory=InputCheck)
    ood_scores: np.ndarray | None = field(default=None, repr=False)
    lesions: Any = None  # a segmentation run's lesions.LesionTable (lesions imports this module)
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)
    created: str = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0).isoformat()
    )
    radassist_version: str = RADASSIST_VERSION

    @property
    def series_uid_hash(self) -> str:
        """16 hex digits of the Series Instance UID's SHA-256: safe to log and to name files."""
        return uid_hash(self.series_instance_uid) if self.series_instance_uid else ""

    @property
    def slice_count(self) -> int:
        return len(self.slices)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(f.label for f in self.findings)

    @property
    def positives(self) -> list[Finding]:
        return [f for f in self.findings if f.positive]

    def finding(self, label: str) -> Finding:
        """The finding for ``label``; KeyError naming the labels there are."""
        for f in self.findings:
            if f.label == label:
                return f
        raise KeyError(f"no finding for label {label!r}; labels: {', '.join(self.labels)}")

    def key_finding(self) -> Finding:
        """The finding whose image is the key image: the most probable positive one, else the
        most probable one."""
        pool = self.positives or self.findings
        return max(pool, key=lambda f: (f.probability, -self.findings.index(f)))

    def with_thresholds(self, thresholds: Mapping[str, float]) -> SeriesResult:
        """A copy with some labels re-decided at new thresholds (no re-run)."""
        unknown = sorted(set(thresholds) - set(self.labels))
        if unknown:
            raise KeyError(f"no finding for label {unknown[0]!r}; labels: {', '.join(self.labels)}")
        findings = [
            f.with_threshold(thresholds[f.label]) if f.label in thresholds else f
            for f in self.findings
        ]
        return replace(self, findings=findings)

    # ------------------------------------------------------------------ JSON
    def to_json(self, heatmap_files: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The versioned JSON document (docs/findings-json-schema.md). ``heatmap_files`` maps a
        label to the file name its heatmap was written to (relative to the JSON file)."""
        files = dict(heatmap_files or {})
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "radassist_version": self.radassist_version,
            "notice": RESEARCH_USE_NOTICE,
            "created": self.created,
            "model": self.model.to_json(),
            "device": self.device,
            "backend": self.backend,
            "series": {
                "study_instance_uid": self.study_instance_uid,
                "series_instance_uid": self.series_instance_uid,
                "series_uid_hash": self.series_uid_hash,
                "modality": self.modality,
                "part": self.part,
                "parts": self.parts,
                "slice_count": self.slice_count,
                "input_check": self.input_check.to_json(),
            },
            "slice_ood_scores": None
            if self.ood_scores is None
            else [_json_number(v) for v in self.ood_scores],
            "slices": [s.to_json() for s in self.slices],
            "findings": [
                {
                    **f.to_json(files.get(f.label)),
                    "slice_probabilities": [
                        None if not math.isfinite(float(p)) else float(p)
                        for p in self.probabilities[:, i]
                    ],
                }
                for i, f in enumerate(self.findings)
            ],
            "timings_s": self.timings.to_json(),
            "warnings": list(self.warnings),
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
            **({} if self.lesions is None else {"lesions": self.lesions.to_json()}),
        }

    @classmethod
    def from_json(cls, data: Any) -> SeriesResult:
        """Read a document written by :meth:`to_json` (any 1.x version; unknown fields are
        ignored). Heatmaps are not loaded: ``Finding.heatmap`` is None."""
        d = _mapping(data, "document")
        if d.get("schema") != SCHEMA_NAME:
            raise FindingsFormatError(
                f"not a RadAssist findings document (schema {d.get('schema')!r})"
            )
        version = str(d.get("schema_version", ""))
        try:
            major = int(version.split(".")[0])
        except ValueError:
            raise FindingsFormatError(f"schema_version {version!r} is not MAJOR.MINOR") from None
        if major > SCHEMA_MAJOR:
            raise FindingsFormatError(
                f"findings schema version {version} is newer than this RadAssist reads "
                f"({SCHEMA_VERSION})",
                hint="upgrade RadAssist",
            )
        if major < 1:
            raise FindingsFormatError(f"schema_version {version!r} is not supported")
        model = ModelInfo.from_json(d.get("model"))
        timings = Timings.from_json(d.get("timings_s"))
        device = _str(d, "device", "document")
        series = _mapping(d.get("series"), "series")
        raw_findings = d.get("findings")
        if not isinstance(raw_findings, list):
            raise FindingsFormatError("findings must be a list")
        slices = [ResultSlice.from_json(s) for s in _list(d.get("slices"), "slices")]
        findings = [
            Finding.from_json(f, model=model, device=device, timings=timings) for f in raw_findings
        ]
        probs = np.full((len(slices), len(findings)), np.nan, dtype=np.float32)
        ood_scores = _ood_scores(d.get("slice_ood_scores"), len(slices))
        try:
            check = InputCheck.from_json(
                series.get("input_check", {"applicable": True, "forced": False})
            )
        except ValueError as err:
            raise FindingsFormatError(str(err)) from None
        for i, f in enumerate(raw_findings):
            values = _list(
                _mapping(f, "findings[]").get("slice_probabilities"), "slice_probabilities"
            )
            if len(values) != len(slices):
                raise FindingsFormatError(
                    f"finding {i} has {len(values)} slice probabilities for {len(slices)} slices"
                )
            probs[:, i] = [np.nan if v is None else float(v) for v in values]
        return cls(
            findings=findings,
            model=model,
            device=device,
            backend=_str(d, "backend", "document"),
            slices=slices,
            probabilities=probs,
            timings=timings,
            study_instance_uid=_str(series, "study_instance_uid", "series"),
            series_instance_uid=_str(series, "series_instance_uid", "series"),
            modality=_str(series, "modality", "series"),
            part=_int(series, "part", "series"),
            parts=_int(series, "parts", "series"),
            warnings=[str(w) for w in _list(d.get("warnings", []), "warnings")],
            unreadable=[
                (_str(u, "path", "unreadable"), _str(u, "reason", "unreadable"))
                for u in _list(d.get("unreadable", []), "unreadable")
            ],
            created=_str(d, "created", "document"),
            radassist_version=_str(d, "radassist_version", "document"),
            input_check=check,
            ood_scores=ood_scores,
        )


# --------------------------------------------------------------------------- helpers


def _json_number(value: Any) -> float | None:
    v = float(value)
    return round(v, 6) if math.isfinite(v) else None


def _ood_scores(value: Any, slices: int) -> np.ndarray | None:
    """Schema 1.2's ``slice_ood_scores`` (null: no OOD statistics; absent before 1.2)."""
    if value is None:
        return None
    values = _list(value, "slice_ood_scores")
    if len(values) != slices or not all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
    ):
        raise FindingsFormatError(f"slice_ood_scores must be {slices} numbers or nulls")
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _check_threshold(label: str, value: float) -> float:
    t = float(value)
    if not (math.isfinite(t) and 0.0 <= t <= 1.0):
        raise ValueError(f"threshold for {label!r} is {value!r}, not a number in [0, 1]")
    return t


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FindingsFormatError(f"{where} must be an object, not {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise FindingsFormatError(f"{where} must be a list, not {type(value).__name__}")
    return value


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise FindingsFormatError(f"{where}.{key} is missing")
    return d[key]


def _str(d: Any, key: str, where: str) -> str:
    value = _get(_mapping(d, where), key, where)
    if not isinstance(value, str):
        raise FindingsFormatError(f"{where}.{key} must be text, not {type(value).__name__}")
    return value


def _str_list(d: Mapping[str, Any], key: str, where: str) -> list[str]:
    values = _list(_get(d, key, where), f"{where}.{key}")
    if not all(isinstance(v, str) for v in values):
        raise FindingsFormatError(f"{where}.{key} must be a list of text")
    return values


def _int(d: Mapping[str, Any], key: str, where: str) -> int:
    value = _get(d, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FindingsFormatError(f"{where}.{key} must be an integer, not {value!r}")
    return value


def _float(d: Mapping[str, Any], key: str, where: str) -> float:
    value = _get(d, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FindingsFormatError(f"{where}.{key} must be a number, not {value!r}")
    return float(value)


def _bool(d: Mapping[str, Any], key: str, where: str) -> bool:
    value = _get(d, key, where)
    if not isinstance(value, bool):
        raise FindingsFormatError(f"{where}.{key} must be true or false, not {value!r}")
    return value


def _points(value: Any) -> tuple[Point, ...]:
    out: list[Point] = []
    for p in _list(value, "outline"):
        if (
            not isinstance(p, list)
            or len(p) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
        ):
            raise FindingsFormatError(f"outline point {p!r} is not [x, y]")
        out.append((float(p[0]), float(p[1])))
    return tuple(out)


def model_info_from_manifest(manifest: Any, file_name: str = "") -> ModelInfo:
    """A :class:`ModelInfo` from a ``desktop_app.model.modelfile.ModelManifest`` (duck-typed, so that
    this module needs no torch)."""
    return ModelInfo(
        name=str(manifest.name),
        version=str(manifest.version),
        architecture=str(manifest.architecture),
        tensor_sha256=str(manifest.tensor_sha256),
        labels=tuple(manifest.labels),
        file_name=file_name,
    )
