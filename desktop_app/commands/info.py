"""`radassist info [--json]`: what this installation is and how fast it runs here.

Reports the version (and, in an installed bundle, its flavour and folder), the device that
``auto`` (or ``--device``) chose and why, the estimated time per image on this computer
(``inference.firststart``: measured once, in a second or two, then cached in the data folder), the
model file, the bundled and installed models (the catalog), the CPU and the data folder. IT staff
run it right after installing; support asks for its ``--json``.

stdout: the report (text, or with --json the document below). stderr: one line if the model
can't be loaded (the rest is still printed). Exit status: 0 ok; 1 the model could not be
loaded or measured; 2 usage error.

JSON (``schema`` "radassist-info", ``schema_version`` "1.0"): ``version``, ``bundle`` (null
outside a bundle, else ``{path, flavour}``), ``device`` (``{requested, chosen, warnings}``),
``estimate`` (null if the model could not be loaded, else ``{ms_per_image, device, backend,
threads, passes, measured_at, from_cache, text}``), ``model`` (null, or ``{path, name, version,
tensor_sha256}``), ``cpu`` (``{model, count, threads}``), ``data_dir``, ``python``, ``torch``,
``error`` (null or the one-line reason), ``models`` (the model catalog, ``model.catalog``:
``{bundled_dir, installed_dir, models: [{path, origin, file_name, name, version, task, labels,
intended_input, tensor_sha256, usable, problem}]}``; without ``--model`` each series runs the
first usable one whose intended input fits it).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from desktop_app import __version__
from desktop_app.commands._common import EXIT_OK, EXIT_SOME_FAILED
from desktop_app.infra.errors import RadAssistError
from desktop_app.infra.safetext import escape_control
from desktop_app.settings.schema import DEVICES

SCHEMA_NAME = "radassist-info"
SCHEMA_VERSION = "1.0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--model", metavar="FILE", help="model file (.safetensors; default: the bundled model)"
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="device to report on (default: auto = CUDA, then MPS, then CPU)",
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="measure the time per image again instead of using the cached first-start figure",
    )


def bundle_info() -> dict[str, Any] | None:
    """The PyInstaller bundle's folder and flavour (bundle-info.json), or None from source."""
    root = getattr(sys, "_MEIPASS", None)
    if not root:
        return None
    info: dict[str, Any] = {"path": str(Path(sys.executable).resolve().parent)}
    try:
        data = json.loads((Path(root) / "bundle-info.json").read_text(encoding="utf-8"))
        info["flavour"] = str(data.get("flavour", "unknown"))
    except (OSError, ValueError, AttributeError):
        info["flavour"] = "unknown"
    return info


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Everything the report shows, as the JSON document."""
    from desktop_app.inference import firststart
    from desktop_app.inference.accel import decide_without_torch
    from desktop_app.inference.onnxcache import version_of
    from desktop_app.infra.cpus import available_cpus, physical_cores
    from desktop_app.infra.userdirs import data_dir

    decision = decide_without_torch(args.device)  # no torch import when the CPU is certain
    if decision.cpu:
        chosen, warning = "cpu", decision.warning
    else:
        from desktop_app.inference.devices import choose_device

        choice = choose_device(args.device)
        chosen, warning = choice.name, choice.warning
    report: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "version": __version__,
        "bundle": bundle_info(),
        "device": {
            "requested": args.device,
            "chosen": chosen,
            "warnings": [warning] if warning else [],
        },
        "estimate": None,
        "model": None,
        "cpu": {
            "model": firststart.cpu_model(),
            "count": available_cpus(),
            "threads": physical_cores(),  # what the engine uses on the CPU
        },
        "data_dir": str(data_dir()),
        "python": platform.python_version(),
        "torch": version_of("torch") or "not installed",
        "error": None,
        "models": _catalog(),
    }
    try:
        estimate = None if args.refresh else _cached(args.model, chosen, physical_cores())
        if estimate is None:
            estimate, engine = firststart.first_start(args.model, args.device, refresh=args.refresh)
            manifest, model_path = engine.manifest, engine.model_path
            report["device"]["chosen"] = engine.device
            report["device"]["warnings"] = list(engine.warnings)
        else:  # measured before: read the manifest only, build no engine
            from desktop_app.model.modeldata import read_manifest

            model_path = _model_path(args.model)
            manifest = read_manifest(model_path)
    except RadAssistError as err:
        report["error"] = err.one_line()
        return report
    report["model"] = {
        "path": str(model_path),
        "name": manifest.name,
        "version": manifest.version,
        "tensor_sha256": manifest.tensor_sha256,
    }
    report["estimate"] = {
        "ms_per_image": round(estimate.ms_per_image, 3),
        "device": estimate.device,
        "backend": estimate.backend,
        "threads": estimate.threads,
        "passes": estimate.passes,
        "measured_at": estimate.measured_at,
        "from_cache": estimate.from_cache,
        "text": estimate.describe(),
    }
    return report


def _catalog() -> dict[str, Any]:
    """The bundled and installed models (manifests only: no weights are loaded)."""
    from desktop_app.model.catalog import load_catalog

    return load_catalog().to_json()


def _catalog_lines(catalog: dict[str, Any] | None) -> list[str]:
    """``models: 2 usable of 3 (bundled: DIR; installed: DIR)`` and one line per file."""
    if catalog is None:
        return []
    models = catalog["models"]
    usable = sum(1 for m in models if m["usable"])
    lines = [
        f"models:      {usable} usable of {len(models)} (bundled: {catalog['bundled_dir']}; "
        f"installed: {catalog['installed_dir']})"
    ]
    for m in models:
        if m["usable"]:
            text = (
                f"{m['file_name']} — {m['name']} {m['version']}, {m['task']}, for "
                f"{m['intended_input']} ({m['origin']})"
            )
        else:
            text = f"{m['file_name']} — unusable: {m['problem']} ({m['origin']})"
        lines.append(f"             {escape_control(text, limit=300)}")
    return lines


def _model_path(model: str | None) -> Path:
    from desktop_app.model.paths import default_model_path

    return default_model_path() if model is None else Path(model)


def _cached(model: str | None, device: str, threads: int) -> Any:
    from desktop_app.inference import firststart

    try:
        return firststart.cached_estimate(_model_path(model), device, threads=threads)
    except RadAssistError:
        return None  # first_start reports it


def render_text(report: dict[str, Any]) -> str:
    """The report for people, one fact per line."""
    bundle = report["bundle"]
    where = (
        f"installed bundle ({bundle['flavour']}) in {bundle['path']}"
        if bundle
        else "running from source"
    )
    device = report["device"]
    chosen = device["chosen"].upper()
    if device["requested"] != "auto":
        why = f"--device {device['requested']}"
    elif chosen != "CPU":
        why = "auto"
    elif bundle and bundle["flavour"] == "cpu-only":
        why = "auto: this is a CPU-only bundle"
    else:
        why = "auto: no CUDA or MPS device found"
    lines = [
        f"RadAssist {report['version']} — {where}",
        f"device:      {chosen} ({why})",
    ]
    lines += [f"             ⚠ {w}" for w in device["warnings"]]
    estimate = report["estimate"]
    lines.append(f"per image:   {estimate['text'] if estimate else 'unknown (no model loaded)'}")
    model = report["model"]
    lines.append(
        f"model:       {model['path']} ({model['name']} {model['version']}, "
        f"sha256 {model['tensor_sha256'][:12]})"
        if model
        else "model:       none"
    )
    cpu = report["cpu"]
    lines.append(f"cpu:         {cpu['model']} ({cpu['count']} CPUs, {cpu['threads']} threads)")
    lines += _catalog_lines(report.get("models"))
    lines.append(f"data folder: {report['data_dir']}")
    lines.append(f"python:      {report['python']}, torch {report['torch']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    report = collect(args)
    if args.json:
        # ASCII only: a model file's C1 controls and bidi overrides come out as \u escapes.
        print(json.dumps(report, indent=2, ensure_ascii=True))
    else:
        print(render_text(report))
    if report["error"]:
        print(f"radassist info: error: {escape_control(report['error'])}", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK
