"""`radassist predict PATH ... --out DIR`: headless inference with the GUI's engine.

For every image stack found in the inputs (files, folders, DICOMDIRs; PNG/JPEG files named
explicitly), writes ``DIR/<h>/`` where ``<h>`` is the first 16 hex digits of the SHA-256 of the
Series Instance UID (of the file's resolved path for PNG/JPEG), with ``-pN`` appended when a
series had to be split into N parts; never a tag value:

- ``findings.json``: the versioned document of docs/findings-json-schema.md;
- ``heatmap_<k>_<label>.png``: each computed Grad-CAM heatmap on the original pixel grid,
  8-bit grey (value / 255 = relative level), ``k`` the label's index in the model;
- ``overlay.png``: the key image (the most probable positive finding's slice, else the most
  probable finding's) with the heatmaps, outlines, boxes and label text of the positive
  findings on it; ``overlay_<k>_<label>.png`` for positive findings on other slices.

A segmentation model (manifest ``task: "segmentation"``) writes no heatmaps: findings.json
gains the lesion table (``lesions``), ``segmentation.dcm`` is a DICOM SEG of the lesions (one
AUTOMATIC segment each, referencing every source image; none when nothing was found or the
stack is not DICOM), ``overlay.png`` is the slice where a lesion's cross-section is largest
(the middle slice, "no lesion found", without one) with every lesion on it filled and outlined
in the viewer's colours, and the summary prints one line per lesion as the viewer's findings
rows say it (slices by Instance Number: "Im 17–20"), the largest ``lesiontext.MANY_LESIONS``
(20) of a crowded run, then "... and N more" (and one warning: more than a reader expects).

Which model: ``--model FILE`` runs that model on every stack. Without it, each series runs the
first model of the catalog (``model.catalog``: the bundled models, then the installed ones in
``$RADASSIST_MODELS_DIR`` or the data folder's ``models``) whose intended input fits its headers
(``inference.modelchoice``: a CT series gets the CT model, a chest CR/DX the chest classifier);
stderr names it per stack (``<h>: model <file> (<name> <version>, <task>), for <input>``), and
findings.json's ``model`` block says which ran. A series that no model fits is not run and is
named on one line; ``--force`` runs the bundled default model on it, every output marked.

Before running, each stack is checked against the model file's intended input
(``inference.inputcheck``): one outside it (a CT series for a chest-radiograph model) is not
run, and is named on one line with the reason; ``--force`` runs it anyway and marks every
output (findings.json ``input_check.forced``, each finding ``out_of_scope``/``unreliable``, the
overlay's title, the audit record). A stack whose images are out of distribution (the model
file's OOD statistics) is written with its findings marked unreliable and one warning line.

stdout: a summary table (series, label, probability, threshold, positive; a sixth column,
"note", says "unreliable" when a finding is). stderr: a progress bar per stack, one line per
unreadable or refused input, the engine's warnings (e.g. the CPU fallback), one warning per
out-of-scope, out-of-distribution or unchecked stack.
Exit status: 0 all inputs read and run; 1 some input could not be read or was outside the
model's intended input (each named on one line) or the model was refused; 2 usage error (bad
--threshold, unknown label, bad device); 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from desktop_app import RESEARCH_USE_NOTICE
from desktop_app.commands._common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    ProgressBar,
    device_arg,
    int_between,
)
from desktop_app.infra.errors import ConfigError, RadAssistError
from desktop_app.infra.safetext import escape_control

if TYPE_CHECKING:
    from desktop_app.inference.inputcheck import InputNotApplicable

log = logging.getLogger(__name__)

KEEP_DECODED_BYTES = 256 * 1024 * 1024
_THRESHOLD = re.compile(r"^\s*(?P<label>[^=]+?)\s*=\s*(?P<value>[^=]+?)\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="DICOM files, folders (recursive) or DICOMDIRs; PNG/JPEG files named explicitly",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    parser.add_argument(
        "--model",
        metavar="FILE",
        help="model file (.safetensors) for every input (default: per series, the first "
        "bundled or installed model whose intended input fits it)",
    )
    parser.add_argument(
        "--device", default="auto", type=device_arg, metavar="{auto,cpu,cuda,mps}",
        help="where to run the network (default: auto = CUDA, then MPS, then CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        type=_threshold,
        metavar="LABEL=VALUE",
        help="override a label's operating threshold (0..1); repeat for several labels",
    )
    parser.add_argument(
        "--batch-size",
        type=int_between(1, 256),
        default=8,
        metavar="N",
        help="slices per forward pass",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="int8-quantized CPU inference (faster; outputs change slightly)",
    )
    parser.add_argument(
        "--all-heatmaps",
        action="store_true",
        help="compute Grad-CAM heatmaps for every label, not only the positive ones",
    )
    parser.add_argument(
        "--heatmap-method",
        choices=("layercam", "cam"),
        default="layercam",
        help="layercam: fine heatmaps (stride 8; default); cam: the last feature map's, coarse",
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "onnxruntime", "torch"),
        default="auto",
        help="CPU forward path (default: the fastest that matches PyTorch)",
    )
    parser.add_argument(
        "--threads",
        type=int_between(1, 256),
        default=None,
        metavar="N",
        help="CPU threads for the network (default: the physical cores)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="run inputs outside the model's intended input anyway (every output is marked)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _threshold(text: str) -> tuple[str, float]:
    match = _THRESHOLD.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=VALUE (e.g. nodule=0.4)")
    label, raw = match.group("label"), match.group("value")
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {raw!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: the threshold must be between 0 and 1")
    return label, value


def _safe_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("._") or "label"


def run(args: argparse.Namespace) -> int:
    thresholds: dict[str, float] = {}
    for label, value in args.threshold:
        if label in thresholds:
            print(f"radassist predict: error: --threshold names {label!r} twice", file=sys.stderr)
            return EXIT_USAGE
        thresholds[label] = value

    from desktop_app.inference.inputcheck import InputNotApplicable

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"radassist predict: error: {out}: is not a folder", file=sys.stderr)
        return EXIT_USAGE
    # the inputs first: a file the index refuses is refused as fast as `inspect` does it,
    # before the model (seconds, hundreds of MB) is loaded
    jobs, problems, skipped = _collect(args.paths)
    if not jobs:
        for line in problems:
            print(escape_control(line, limit=1000), file=sys.stderr)
        print(f"radassist predict: error: {_nothing_found(args.paths, problems, skipped)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_SOME_FAILED
    if skipped:  # as `inspect` says it
        print(f"radassist predict: {skipped} non-DICOM file(s) skipped", file=sys.stderr)
    picker = _ModelPicker(args, thresholds)
    if not picker.ready():
        return EXIT_USAGE
    results: list[Any] = []
    audit_problem: str | None = None
    refused = 0
    for name, source, study_uid, render_source in jobs:
        picked = picker.pick(name, source)
        if isinstance(picked, _Skipped):  # no model fits the series, or its model can't load
            refused += picked.refused
            problems.append(picked.line)
            continue
        engine, check, force = picked
        bar = ProgressBar(f"predict {name}", enabled=not args.quiet)
        try:
            result = engine.run(
                source, progress=bar, study_instance_uid=study_uid, force=force, input_check=check
            )
        except InputNotApplicable as err:
            refused += 1
            problems.append(_refusal_line(source, err))
            continue
        except RadAssistError as err:
            problems.append(err.one_line())
            continue
        _warn_applicability(name, result)
        picker.say_warnings(result.warnings)  # e.g. only some images of a huge stack were run
        for path, reason in result.unreadable:
            problems.append(reason if reason.startswith(path) else f"{path}: {reason}")
        try:
            _write_outputs(out / name, result, engine.labels, render_source)
        except OSError as err:
            print(
                f"radassist predict: error: {out / name}: can't be written: {err.strerror or err}",
                file=sys.stderr,
            )
            return EXIT_SOME_FAILED
        results.append((name, result, _slice_namer(result, render_source)))
        audit_problem = _audit(result, study_uid, audit_problem)
    picker.say_engine_warnings()  # e.g. a CUDA failure during a run: said once
    _print_table(results, sys.stdout)
    sys.stdout.flush()
    for line in problems:
        print(escape_control(line, limit=1000), file=sys.stderr)
    if problems:
        unread = len(problems) - refused
        parts = [f"{unread} input(s) could not be read"] if unread else []
        parts += [f"{refused} outside {picker.whose_input}"] if refused else []
        print(
            f"radassist predict: {'; '.join(parts)}; {len(results)} stack(s) written to {out}",
            file=sys.stderr,
        )
        return EXIT_SOME_FAILED
    # where to look: one folder per stack, named by its hashed series UID
    print(
        f"radassist predict: {len(results)} stack(s) written to {out} "
        "(<hashed series UID>/findings.json)",
        file=sys.stderr,
    )
    return EXIT_OK


def _engine(args: argparse.Namespace, thresholds: Mapping[str, float], model: Any) -> Any:
    """The inference engine of ``model`` (a path, or None for the bundled default) with the
    command's options; None (said in one line) on a bad option."""
    from desktop_app.inference.engine import InferenceEngine

    try:
        return InferenceEngine(
            model,
            device=args.device,
            batch_size=args.batch_size,
            backend=args.backend,
            int8=args.int8,
            thresholds=thresholds,
            heatmaps="all" if args.all_heatmaps else "positive",
            threads=args.threads,
            heatmap_method=args.heatmap_method,
        )
    except ConfigError as err:
        print(f"radassist predict: error: {escape_control(err.one_line())}", file=sys.stderr)
        return None


@dataclass(frozen=True)
class _Skipped:
    """A stack that is not run: its one problem line, and whether it is outside the intended
    input of every model (``refused``) rather than failing to load one."""

    line: str
    refused: bool


class _ModelPicker:
    """The engine for each stack. With ``--model``: that model on every stack (today's
    behaviour: one engine, made before the first stack; a stack outside its intended input is
    refused by the engine unless ``--force``). Without: per series, the first catalog model
    whose intended input fits the series' headers (``inference.modelchoice``), each engine
    loaded once, when a series first needs it; one stderr line per stack names the model. A
    series that no model fits is not run, said in one line; with ``--force`` it runs the
    bundled default model, every output marked.

    ``--threshold LABEL=VALUE`` applies to every chosen model that has the label; a label that
    no usable model has is a usage error."""

    def __init__(self, args: argparse.Namespace, thresholds: dict[str, float]) -> None:
        self.args = args
        self.thresholds = thresholds
        self.forced_model = args.model is not None
        self.catalog: Any = None
        self._engines: dict[str, Any] = {}
        self._printed: set[str] = set()

    @property
    def whose_input(self) -> str:
        return "the model's intended input" if self.forced_model else "every model's intended input"

    def ready(self) -> bool:
        """Load ``--model`` now, or list the catalog and check the thresholds' labels; False
        (said in one line) on a usage error."""
        if self.forced_model:
            engine = _engine(self.args, self.thresholds, self.args.model)
            if engine is None:
                return False
            self._engines[""] = engine
            self.say_warnings(engine.warnings)
            return True
        from desktop_app.model.catalog import load_catalog

        self.catalog = load_catalog()
        known = {label for e in self.catalog.usable for label in e.labels}
        unknown = sorted(set(self.thresholds) - known)
        if unknown:
            print(
                f"radassist predict: error: --threshold names {unknown[0]!r}, a label of no "
                f"model here (labels: {', '.join(sorted(known)) or 'none'}; or pass --model FILE)",
                file=sys.stderr,
            )
            return False
        return True

    def pick(self, name: str, source: Any) -> tuple[Any, Any, bool] | _Skipped:
        """(engine, input check or None, force) for ``source``, or why it is skipped."""
        if self.forced_model:
            return self._engines[""], None, bool(self.args.force)
        from desktop_app.inference.inputcheck import headers_of
        from desktop_app.inference.modelchoice import choose_model
        from desktop_app.model.paths import default_model_path

        choice = choose_model(headers_of(source), self.catalog)
        if choice.entry is None:
            if not self.args.force:
                return _Skipped(
                    f"{_where(source)}: not run: {choice.reason} (choose one with --model FILE, "
                    "or run the default model anyway with --force)",
                    refused=True,
                )
            try:
                path = default_model_path(self.catalog.bundled_dir)
            except RadAssistError as err:
                return _Skipped(f"{_where(source)}: not run: {err.one_line()}", refused=True)
            return self._load(name, source, path, f"{path.name} (forced)", None, True)
        text = choice.describe()
        return self._load(name, source, choice.entry.path, text, choice.check, False)

    def _load(
        self, name: str, source: Any, path: Path, text: str, check: Any, force: bool
    ) -> tuple[Any, Any, bool] | _Skipped:
        key = str(path)
        if key not in self._engines:
            try:
                from desktop_app.model.modeldata import read_manifest

                labels = set(read_manifest(path).labels)
                own = {k: v for k, v in self.thresholds.items() if k in labels}
                engine = _engine(self.args, own, path)
            except RadAssistError as err:
                return _Skipped(f"{_where(source)}: not run: {err.one_line()}", refused=False)
            if engine is None:
                return _Skipped(f"{_where(source)}: not run: its model was refused", refused=False)
            self._engines[key] = engine
            self.say_warnings(engine.warnings)
        print(f"radassist predict: {name}: model {escape_control(text)}", file=sys.stderr)
        return self._engines[key], check, force

    def say_warnings(self, messages: Sequence[str]) -> None:
        """Each warning once on stderr, whichever engine or stack said it."""
        for message in messages:
            if message not in self._printed:
                self._printed.add(message)
                print(f"radassist predict: warning: {escape_control(message)}", file=sys.stderr)

    def say_engine_warnings(self) -> None:
        for engine in self._engines.values():
            self.say_warnings(engine.warnings)


def _where(source: Any) -> str:
    """The input path, or the first file of a series (with its image count)."""
    from desktop_app.studies.volume import SeriesVolume

    if not isinstance(source, SeriesVolume):
        return str(source)
    stack = source.stack
    where = f"{stack.slices[0].instance.path}"
    if len(stack) > 1:
        where += f" (and {len(stack) - 1} more image(s) of its series)"
    return where


def _refusal_line(source: Any, err: InputNotApplicable) -> str:
    """``<file>: not run: <reason> (run it anyway with --force; ...)``: the file is the input
    path, or the first file of a series (with its image count)."""
    return (
        f"{_where(source)}: not run: {err.check.refusal} (run it anyway with --force; every "
        "output is then marked as outside the model's intended input)"
    )


def _warn_applicability(name: str, result: Any) -> None:
    """One stderr line per stack that is out of scope (forced), out of distribution, or whose
    headers could not be fully checked."""
    check = result.input_check
    # what made it unreliable, then every tag that could not be checked
    lines = check.warnings() + [r for r in check.reasons if r != check.refusal]
    for line in lines:
        text = escape_control(f"{name}: {line}", limit=1000)
        print(f"radassist predict: warning: {text}", file=sys.stderr)


def _audit(result: Any, study_uid: str, problem: str | None) -> str | None:
    """Append the run's ``inference`` record to the audit trail (hashed UIDs, model hash,
    device, timings: no patient data). A trail that can't be written is said once, as a
    warning: the findings are already on disk."""
    from desktop_app.privacy.audit import AuditLog, record_inference

    if problem is not None:
        return problem
    try:
        record_inference(
            AuditLog(),
            study_uid=result.study_instance_uid or study_uid,
            series_uid=result.series_instance_uid,
            model_sha256=result.model.tensor_sha256,
            device=result.device,
            timings_ms={k: v * 1000.0 for k, v in result.timings.to_json().items()},
            forced=result.input_check.forced,
            in_distribution=result.input_check.in_distribution,
            source="predict",
        )
    except (RadAssistError, OSError) as err:
        problem = err.one_line() if isinstance(err, RadAssistError) else str(err)
        print(f"radassist predict: warning: no audit record written: {problem}", file=sys.stderr)
    return problem


def _nothing_found(paths: Sequence[str], problems: Sequence[str], skipped: int) -> str:
    """Why nothing runs, naming the inputs (escaped) and what was skipped."""
    named = ", ".join(escape_control(p, limit=200) for p in paths[:3])
    named += f" (and {len(paths) - 3} more)" if len(paths) > 3 else ""
    why = [f"{len(problems)} input(s) could not be read"] if problems else []
    if skipped:
        why.append(
            f"{skipped} non-DICOM file(s) skipped (PNG/JPEG files run only when named one by one)"
        )
    return f"no images found in {named}" + (f": {'; '.join(why)}" if why else "")


def _collect(paths: Sequence[str]) -> tuple[list[tuple[str, Any, str, Any]], list[str], int]:
    """(output name, engine source, study UID, source for rendering) per stack, problem lines,
    and how many non-DICOM files the folders held (skipped). PNG/JPEG files named on the
    command line are runs of their own."""
    from desktop_app.infra.hashedpaths import uid_hash
    from desktop_app.model.imageio import image_kind
    from desktop_app.studies.index import index_paths
    from desktop_app.studies.series import assemble
    from desktop_app.studies.volume import SeriesVolume

    jobs: list[tuple[str, Any, str, Any]] = []
    dicom_inputs: list[str] = []
    for text in paths:
        p = Path(text)
        if p.is_file():
            try:
                kind = image_kind(p)
            except RadAssistError:
                kind = "dicom"  # let the index name the problem
            if kind in ("png", "jpeg"):
                jobs.append((uid_hash(str(p.resolve())), p, "", p))
                continue
        dicom_inputs.append(text)
    problems: list[str] = []
    skipped = 0
    if dicom_inputs:
        index = index_paths(dicom_inputs)
        skipped = index.skipped_non_dicom
        problems.extend(problem.one_line() for problem in index.problems)
        for _patient, study, series in index.iter_series():
            assembly = assemble(series)
            for stack in assembly.stacks:
                name = uid_hash(series.series_instance_uid)
                if stack.parts > 1:
                    name += f"-p{stack.part}"
                # keep decoded slices (so the overlay's key image is not decoded twice) unless
                # the stack is large; the volume is dropped after its run either way
                first = stack.slices[0].instance
                raw = len(stack) * stack.rows * stack.columns * stack.samples_per_pixel
                raw *= max(1, first.bits_allocated // 8)
                volume = SeriesVolume(stack, keep=raw <= KEEP_DECODED_BYTES)
                jobs.append((name, volume, study.study_instance_uid, volume))
    return jobs, problems, skipped


def _key_image(render_source: Any, index: int) -> np.ndarray:
    """The slice as the viewer shows it by default (file window, else automatic), uint8."""
    from desktop_app.dicom.display import render
    from desktop_app.studies.volume import SeriesVolume

    if isinstance(render_source, SeriesVolume):
        return render(render_source.frame(index))
    from desktop_app.model.imageio import read_image

    values = read_image(render_source).values
    lo, hi = np.percentile(values, [0.5, 99.5])
    unit = np.clip((values - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)
    return np.rint(unit * 255.0).astype(np.uint8)


def _png_bytes(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    # level 1: a 1024² overlay takes a few times less to write than at zlib's default, and is
    # about 10 % larger
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _write_outputs(folder: Path, result: Any, labels: Sequence[str], render_source: Any) -> None:
    """findings.json, the heatmap PNGs and the overlay PNG(s) of one result, each atomic;
    findings.json last, once every PNG it names is in place.

    One thread, one file after another: encoding the overlay PNG in a worker while this thread
    wrote findings.json measured slower (130 against 108 ms for the 1024² sample; Pillow's
    encoder re-takes the GIL per 64 KiB chunk, and the two fsyncs queue on one journal).
    """
    from desktop_app.infra.atomicio import atomic_write_bytes, atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    if result.lesions is not None:  # a segmentation model: the SEG and the overlay, no heatmaps
        _write_segmentation(folder, result, render_source)
        overlay = _lesion_overlay(result, render_source)
        atomic_write_bytes(folder / "overlay.png", _png_bytes(overlay))
        atomic_write_json(folder / "findings.json", result.to_json())
        return
    files, overlays = _render_outputs(folder, result, labels, render_source)
    for path, overlay in overlays:
        atomic_write_bytes(path, _png_bytes(overlay))
    atomic_write_json(folder / "findings.json", result.to_json(files))


SEG_FILE = "segmentation.dcm"


def _write_segmentation(folder: Path, result: Any, render_source: Any) -> None:
    """``segmentation.dcm``: the lesions as a DICOM SEG (one AUTOMATIC segment per lesion,
    the model as the algorithm) over the series' instances; none for an empty mask or a
    stack that is not a DICOM series (said on stderr)."""
    from desktop_app.exports.content import ModelSummary
    from desktop_app.exports.seg import SegmentSpec, SegRequest, series_segmentation
    from desktop_app.exports.seg import write_segmentation as write_seg
    from desktop_app.exports.sources import StudySources
    from desktop_app.inference.lesiontext import lesion_line
    from desktop_app.studies.volume import SeriesVolume

    table, mask = result.lesions, result.mask
    if len(table) == 0 or mask is None or not isinstance(render_source, SeriesVolume):
        return
    paths = [str(s.instance.path) for s in render_source.stack.slices]
    model = result.model
    summary = ModelSummary(
        name=model.name, version=model.version, tensor_sha256=model.tensor_sha256,
        architecture=model.architecture, labels=result.labels,
        device=result.device, backend=result.backend,
    )  # fmt: skip
    try:
        sources = StudySources(paths, study_uid=result.study_instance_uid or None)
        masks = {
            ref.sop_instance_uid: mask[k].astype(np.uint16)
            for k, ref in enumerate(result.slices)
            if ref.sop_instance_uid and mask[k].any()
        }
        namer = _slice_namer(result, render_source)
        segments = [  # Latin-1 text: the SEG's character set may be the default repertoire
            SegmentSpec(label=f"Lesion {lesion.id}",
                        description=lesion_line(lesion, table.value_unit, namer).replace("–", "-"))
            for lesion in table.lesions
        ]  # fmt: skip
        request = SegRequest(labels=np.zeros((0, 1, 1), np.uint16), segments=segments,
                             model=summary)  # fmt: skip
        seg = series_segmentation(sources, result.series_instance_uid, masks, request)
        write_seg(seg, folder / SEG_FILE)
    except RadAssistError as err:
        text = escape_control(err.one_line(), limit=1000)
        print(f"radassist predict: warning: no DICOM SEG written: {text}", file=sys.stderr)


def _slice_namer(result: Any, render_source: Any) -> Callable[[int], str] | None:
    """How the viewer names the run's slice ``i`` ("Im 17", "Fr 5"): its stack's short label;
    None for a stack that is not a DICOM series (the lesions' Instance Numbers then)."""
    from desktop_app.studies.volume import SeriesVolume

    if not isinstance(render_source, SeriesVolume):
        return None
    stack, slices = render_source.stack, result.slices
    return lambda i: stack.short_label(slices[i].index)


def _lesion_overlay(result: Any, render_source: Any) -> np.ndarray:
    """The overlay of a segmentation run: the slice where a lesion's cross-section is largest
    (the middle one without a lesion), as the viewer shows it, with every lesion on it."""
    from desktop_app.inference.overlays import LesionMark, lesion_colour, render_lesions

    table, mask = result.lesions, result.mask
    lesions = list(table.lesions)
    if lesions and mask is not None:
        key = max(lesions, key=lambda lesion: lesion.area_mm2).diameter_slice
    else:
        key = len(result.slices) // 2
    index = result.slices[key].index if result.slices else 0
    image = _key_image(render_source, index)
    namer = _slice_namer(result, render_source)
    where = namer(key) if namer is not None else f"slice {key + 1} of {len(result.slices)}"
    marks = []
    on_slice = mask[key] if mask is not None and lesions else None
    for lesion in lesions:
        if on_slice is None or not lesion.first_slice <= key <= lesion.last_slice:
            continue
        pixels = on_slice == lesion.id
        if pixels.any():
            marks.append(LesionMark(
                pixels, lesion_colour(lesion.id), f"L{lesion.id} {lesion.longest_diameter_mm:.0f} mm",
                lesion.diameter_line if lesion.diameter_slice == key else None,
            ))  # fmt: skip
    count = (
        f"{len(lesions)} lesion(s), {len(marks)} on this slice" if lesions else "no lesion found"
    )
    # a line each: a 256² slice has room for about 40 characters a line
    marks_line = _applicability_title(result.input_check).replace(" · ", "\n")
    title = f"{RESEARCH_USE_NOTICE}\n{where} · {count}{marks_line}"
    return render_lesions(image, marks, title=title)


def _render_outputs(
    folder: Path, result: Any, labels: Sequence[str], render_source: Any
) -> tuple[dict[str, str], list[tuple[Path, np.ndarray]]]:
    """Write the heatmap PNGs and render the overlay images; return the heatmap file names by
    label and the overlays to write (path, RGB image)."""
    from desktop_app.inference.overlays import marks_from_findings, render_overlay
    from desktop_app.infra.atomicio import atomic_write_bytes

    files: dict[str, str] = {}
    for k, finding in enumerate(result.findings):
        if finding.heatmap is None:
            continue
        name = f"heatmap_{k}_{_safe_label(finding.label)}.png"
        grey = np.rint(np.clip(finding.heatmap, 0.0, 1.0) * 255.0).astype(np.uint8)
        atomic_write_bytes(folder / name, _png_bytes(grey))
        files[finding.label] = name
    key = result.key_finding()
    by_slice: dict[int, list[Any]] = {}
    for finding in result.positives:
        by_slice.setdefault(finding.slice_index, []).append(finding)
    slices = [key.slice_index, *sorted(i for i in by_slice if i != key.slice_index)]
    overlays: list[tuple[Path, np.ndarray]] = []
    for n, index in enumerate(slices):
        # the run's image ``index`` is the stack's slices[index].index (a long stack is sampled)
        image = _key_image(render_source, result.slices[index].index if result.slices else index)
        on_slice = by_slice.get(index, [])
        marks = marks_from_findings(on_slice, labels)
        title = f"{RESEARCH_USE_NOTICE} · slice {index}"
        if not on_slice:
            title += f" · no positive finding (highest: {key.label} {key.probability:.2f})"
        title += _applicability_title(result.input_check)
        overlay = render_overlay(image, marks, title=title)
        if n == 0:
            name = "overlay.png"
        else:
            first = on_slice[0]
            name = f"overlay_{labels.index(first.label)}_{_safe_label(first.label)}.png"
        overlays.append((folder / name, overlay))
    return files, overlays


def _applicability_title(check: Any) -> str:
    """What the overlay's title says about the input check: nothing for an applicable,
    in-distribution run."""
    marks = []
    if check.out_of_scope:
        marks.append("OUTSIDE THE MODEL'S INTENDED INPUT (run anyway)")
    if check.in_distribution is False:
        marks.append(
            f"OUT OF DISTRIBUTION (score {check.ood_score:.2f} > {check.ood_threshold:.2f}): "
            "findings unreliable"
        )
    return "".join(f" · {m}" for m in marks)


def _lesion_lines(name: str, result: Any, namer: Callable[[int], str] | None) -> list[str]:
    """One line per lesion as the viewer's rows say it; past ``MANY_LESIONS``, the largest
    of them and "... and N more"."""
    from desktop_app.inference.lesiontext import MANY_LESIONS, lesion_line

    if result.lesions is None:
        return []
    table, shown = result.lesions, escape_control(name, limit=60)
    lines = [
        f"{shown}  lesion {lesion.id}: {lesion_line(lesion, table.value_unit, namer)}"
        for lesion in table.lesions[:MANY_LESIONS]
    ]
    if len(table) > MANY_LESIONS:
        lines.append(f"{shown}  ... and {len(table) - MANY_LESIONS} more (findings.json lists all)")
    return lines


def _print_table(results: Sequence[tuple[str, Any, Any]], stream: TextIO) -> None:
    if not results:
        return  # nothing ran: the problem lines say why
    rows = [("series", "label", "probability", "threshold", "positive", "note")]
    for name, result, _namer in results:
        for f in result.findings:
            rows.append(
                (escape_control(name, limit=60), escape_control(f.label, limit=40),
                 f"{f.probability:.3f}", f"{f.threshold:.3f}",
                 "yes" if f.positive else "no", "unreliable" if f.unreliable else "")
            )  # fmt: skip
    lesion_lines = [line for r in results for line in _lesion_lines(*r)]
    noted = any(r[5] for r in rows[1:])  # the note column only when some finding has one
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [r[i].rjust(widths[i]) for i in (2, 3)]
        cells += [r[4].ljust(widths[4]), r[5]] if noted else [r[4]]
        stream.write("  ".join(cells).rstrip() + "\n")
    for line in lesion_lines:
        stream.write(line + "\n")
