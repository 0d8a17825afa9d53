"""`radassist-train calibrate`: site calibration: a model measured on a site's own cases, and a new
version of it with the site's thresholds and temperatures.

    radassist-train calibrate --model M (--reviews [DIR] | --data MANIFEST) --out M2
        [--rule youden | sensitivity:0.90 | specificity:0.95] [--min-positives N] [--json F]

The cases (``training.sitecases``): the reader verdicts of the site's saved reviews made by this
model (present 1, absent 0; uncertain and pending left out; no re-run: the probabilities the
model gave then), or every row of a labelled manifest run through the app's engine (a public
layout read as the model's training read it, or as the layout flags say). Per label
(``training.sitecal``): n, positives, prevalence, sensitivity, specificity, PPV and NPV (Wilson
95 % CIs) and the AUROC (bootstrap 95 % CI) at the model's threshold and at the one the rule
chooses on the site's cases, after refitting the label's temperature when the model has
temperatures (ECE before and after).

M2 has M's weights and OOD statistics, version ``<M's version>-site1`` (``-site2`` ... on a
calibrated model), the new thresholds, temperatures and threshold rule, and the manifest's
``site_calibration`` block (source and its SHA-256, date, rule, per-label numbers); its model
card (``M2`` with ``.md``) shows them under "At this site". ``--json F`` writes the whole
report. M2's tensors are M's, so reviews made with M2 are this model's reviews again (of the
new version).

Lesion reviews of a segmentation model (accept / reject per lesion, lesions drawn by the
reader) are counted at lesion level, not calibrated: an accepted lesion is a true positive, a
rejected one a false positive, a drawn one a false negative (the report's ``lesions`` and one
stdout line). A segmentation model's operating threshold is per pixel, which a lesion's verdict
does not measure.

A label with fewer than ``--min-positives`` (default 10) positive or negative cases is refused
in one line on stderr and keeps its threshold and temperature; the others are calibrated.
Exit status: 0 every label calibrated; 1 some label refused (M2 written when any label was
calibrated), or an error; 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from desktop_app.commands._common import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, positive_int
from desktop_app.infra.atomicio import atomic_write_text
from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.settings.schema import DEVICES
from training.commands.layoutflags import add_layout_arguments, layout_flags
from training.sitecal import DEFAULT_MIN_POSITIVES, RULE_HELP, SiteRule, parse_rule

PROG = "radassist-train calibrate"
DEFAULT_REVIEWS = ""  # --reviews without a folder: the app's reviews/ in the data folder


def _rule(text: str) -> SiteRule:
    try:
        return parse_rule(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(err.one_line()) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="the model file to calibrate")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--reviews",
        nargs="?",
        const=DEFAULT_REVIEWS,
        type=str,
        metavar="DIR",
        help="the site's saved reviews (default: the app's reviews/ folder)",
    )
    source.add_argument(
        "--data", type=Path, metavar="MANIFEST", help="a labelled manifest CSV (every row is run)"
    )
    parser.add_argument("--out", required=True, type=Path, help="the model file to write")
    parser.add_argument(
        "--rule",
        type=_rule,
        default=SiteRule("youden"),
        help=f"how thresholds are chosen: {RULE_HELP} (default youden)",
    )
    parser.add_argument(
        "--min-positives",
        type=positive_int,
        default=DEFAULT_MIN_POSITIVES,
        metavar="N",
        help=f"positive and negative cases a label needs (default {DEFAULT_MIN_POSITIVES})",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the whole report here")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, metavar="B", help="AUROC bootstrap resamples"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--device", choices=DEVICES, default="cpu", help="where --data images run (default cpu)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    add_layout_arguments(parser, "with --data, as the model file's training read it")


def _usage(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix.lower() != ".safetensors":
        return _usage(f"--out {out}: the output name must end in .safetensors")
    if out.resolve() == args.model.resolve():
        return _usage(f"--out {out} is the input model file: write the new version to a new file")
    if args.bootstrap < 0:
        return _usage(f"--bootstrap {args.bootstrap}: give 0 or more resamples")
    if out.exists() and not args.force:
        raise ModelFileError("exists already", out, "choose another --out, or add --force")
    report = calibrate_model_file(args)
    _print_report(report)
    for line in report["refused_lines"]:
        print(f"{PROG}: {line}", file=sys.stderr)
    if args.json is not None:
        public = {k: v for k, v in report.items() if k != "refused_lines"}
        atomic_write_text(args.json, json.dumps(public, indent=2, allow_nan=False) + "\n")
    return EXIT_SOME_FAILED if report["refused_lines"] else EXIT_OK


def _reviews_folder(value: str) -> Path:
    if value == DEFAULT_REVIEWS:
        from desktop_app.infra.userdirs import subdir

        return subdir("reviews", create=False)
    return Path(value)


def calibrate_model_file(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, calibrate and write ``args.out`` (unless every label was refused); the report."""
    from desktop_app.model.manifest import RADASSIST_VERSION, utc_now_iso
    from desktop_app.model.modelfile import (
        load_model_file,
        model_card_markdown,
        read_manifest,
        save_model_file,
    )
    from training.sitecal import calibrate_site, next_site_version
    from training.sitecases import (
        cases_from_manifest,
        cases_from_reviews,
        describe_cases,
        describe_counts,
        skipped_models_line,
    )

    start = time.perf_counter()
    loaded = load_model_file(args.model, map_location="cpu")
    m = loaded.manifest
    if args.data is not None:
        from desktop_app.inference.engine import InferenceEngine

        engine = InferenceEngine(loaded, device=args.device, heatmaps="none")
        from training.evaluate import layout_for_model

        options = layout_for_model(m.training_data, layout_flags(args))
        cases = cases_from_manifest(args.data, engine, m.labels, options)
    else:
        cases = cases_from_reviews(
            _reviews_folder(args.reviews),
            labels=m.labels,
            tensor_sha256=m.tensor_sha256,
            version=m.version,
        )
    lesions = None if args.data is not None else lesion_counts(_reviews_folder(args.reviews), m)
    version = next_site_version(m.version)
    site = calibrate_site(
        cases.arrays(),
        labels=m.labels,
        thresholds=m.thresholds,
        temperatures=m.temperatures,
        rule=args.rule,
        min_positives=args.min_positives,
        n_boot=args.bootstrap,
        seed=args.seed,
        provenance={
            "source": cases.source,
            "source_name": cases.path.name,
            "source_sha256": cases.source_sha256,
            "n_cases": cases.n_cases,
            "calibrated_from": {"version": m.version, "tensor_sha256": m.tensor_sha256},
        },
    )
    written = None
    if site.calibrated:
        rule_text = (
            f"site calibration ({site.block['date']}, {cases.n_cases} {cases.source} cases): "
            f"{args.rule.describe()}"
            + (" on re-fitted temperature-scaled probabilities" if m.temperatures else "")
            + f", for {', '.join(site.calibrated)}"
        )
        if site.refused:
            rule_text += f"; {', '.join(site.refused)} as before: {m.threshold_rule}"
        new = dataclasses.replace(
            m,
            version=version,
            thresholds=site.thresholds,
            threshold_rule=rule_text[:2000],
            temperatures=site.temperatures,
            site_calibration=site.block,
            tensor_sha256="",
            model_card=None,
            created=utc_now_iso(),
            radassist_version=RADASSIST_VERSION,
        )
        save_model_file(args.out, loaded.network, new, ood=loaded.ood)
        atomic_write_text(args.out.with_suffix(".md"), model_card_markdown(read_manifest(args.out)))
        written = str(args.out)
    return {
        "model": {"path": str(args.model), "name": m.name, "version": m.version},
        "out": written,
        "version": version if written else None,
        "cases": describe_counts(cases.counts),
        "summary": describe_cases(cases),
        "skipped_models": skipped_models_line(cases, m.tensor_sha256, m.version),
        "site_calibration": site.block,
        "thresholds": site.thresholds,
        "temperatures": site.temperatures,
        "refused_lines": list(site.refused.values()),
        "lesions": lesions,
        "seconds": round(time.perf_counter() - start, 2),
    }


def lesion_counts(folder: Path, manifest: Any) -> dict[str, int] | None:
    """Lesion-level TP / FP / FN / pending over this model's reviews in ``folder`` (the
    ``lesions`` entries of the review files; their masks are not read); None without any."""
    from desktop_app.review.lesionreview import LesionReview

    counts = dict.fromkeys(("TP", "FP", "FN", "pending"), 0)
    seen = False
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if (data.get("model") or {}).get("sha256") != manifest.tensor_sha256:
                continue
            entries = (data.get("lesions") or {}).items()
            for key, entry in entries:
                for item in entry.get("lesions", []):
                    lesion = LesionReview.from_dict(item, str(key))
                    seen = True
                    counts[lesion.agreement or lesion.verdict] += 1
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue  # sitecases counts unreadable files
    return counts if seen else None


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(entry: Any) -> str:
    lo, hi = entry.get("ci95") or (None, None)
    ci = f" ({_num(lo)}-{_num(hi)})" if lo is not None and hi is not None else ""
    return f"{_num(entry.get('value'))}{ci}"


def label_table(label: str, entry: dict[str, Any]) -> list[str]:
    """One label's lines of the summary: its counts, then before and after."""
    head = (
        f"{label}: {entry['n']} cases, {entry['positives']} positive "
        f"(prevalence {_num(entry['prevalence'])}), AUROC {_ci(entry['auroc'])}"
    )
    columns = ("sensitivity", "specificity", "ppv", "npv")
    lines = [
        head,
        f"  {'':7}{'threshold':>10}{'T':>8}  "
        + "".join(f"{name.upper() if len(name) == 3 else name:<22}" for name in columns)
        + "ECE",
    ]
    rows = (
        (
            "before",
            "threshold_before",
            "temperature_before",
            entry["at_threshold_before"],
            "ece_before",
        ),
        ("after", "threshold_after", "temperature_after", entry, "ece_after"),
    )
    for name, threshold, temperature, at, ece in rows:
        lines.append(
            f"  {name:7}{_num(entry[threshold]):>10}{_num(entry[temperature]):>8}  "
            + "".join(f"{_ci(at[c]):<22}" for c in columns)
            + _num(entry[ece])
        )
    return lines


def _print_report(report: dict[str, Any]) -> None:
    block = report["site_calibration"]
    model = report["model"]
    print(
        f"site calibration of {model['name']} version {model['version']} "
        f"({block['source']} {block['source_name']}, SHA-256 {block['source_sha256'][:12]}…)"
    )
    for line in report["summary"]:
        print(line)
    if report["skipped_models"]:
        print(report["skipped_models"])
    lesions = report.get("lesions")
    if lesions:
        print(
            f"lesion reviews, counted at lesion level (not calibrated): {lesions['TP']} TP "
            f"(accepted), {lesions['FP']} FP (rejected), {lesions['FN']} FN (drawn by readers), "
            f"{lesions['pending']} pending"
        )
    refit = "; temperatures re-fitted" if block["temperatures_refitted"] else ""
    print(f"rule: {block['rule']}{refit}; {block['n_cases']} cases")
    for label, entry in block["labels"].items():
        print()
        for line in label_table(label, entry):
            print(line)
    print()
    if report["out"]:
        out = Path(report["out"])
        kept = len(report["refused_lines"])
        note = (
            f"; {kept} label(s) not calibrated kept their thresholds (stderr says why; exit 1)"
            if kept
            else ""
        )
        print(f"wrote {out} and {out.with_suffix('.md').name} (version {report['version']}){note}")
    else:
        print("nothing written: no label had enough cases to calibrate")
