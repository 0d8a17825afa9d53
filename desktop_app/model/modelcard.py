"""The model card: a human-readable Markdown page generated from a manifest alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from desktop_app.model.manifest import ModelManifest


def _fmt(value: Any) -> str:
    if isinstance(value, dict) and "value" in value:
        text = _fmt(value["value"])
        ci = value.get("ci95", value.get("ci"))
        if isinstance(ci, list | tuple) and len(ci) == 2:
            text += f" (95% CI {_fmt(ci[0])}–{_fmt(ci[1])})"
        return text
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None:
        return "n/a"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, dict) or "value" in value


def _render_block(title: str, data: Mapping[str, Any], level: int = 3) -> list[str]:
    lines: list[str] = []
    table_rows = {k: v for k, v in data.items() if isinstance(v, dict) and not _is_leaf(v)}
    if table_rows and all(all(_is_leaf(x) for x in v.values()) for v in table_rows.values()):
        columns: list[str] = []
        for row in table_rows.values():
            columns += [c for c in row if c not in columns]
        lines += [f"{'#' * level} {title}", "", "| | " + " | ".join(columns) + " |"]
        lines.append("|---" * (len(columns) + 1) + "|")
        for name, row in table_rows.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
        lines.append("")
        rest = {k: v for k, v in data.items() if k not in table_rows}
    else:
        lines += [f"{'#' * level} {title}", ""]
        rest = dict(data)
    for key, value in rest.items():
        if isinstance(value, dict) and not _is_leaf(value):
            lines += _render_block(key, value, level + 1)
        else:
            lines.append(f"- {key}: {_fmt(value)}")
    if rest:
        lines.append("")
    return lines


def _ece_change(row: Any) -> str:
    """ "0.081 → 0.032": a split's expected calibration error before and after scaling."""
    if not isinstance(row, Mapping):
        return "n/a"
    return f"{_fmt(row.get('ece_before_scaling'))} → {_fmt(row.get('ece'))}"


def _applicability_lines(m: ModelManifest) -> list[str]:
    """Intended input, out-of-distribution score and calibration, as the engine applies them."""
    ii = m.intended_input

    def codes(values: tuple[str, ...]) -> str:
        return ", ".join(values) if values else "any"

    lines = [
        "## Intended input (checked before every run)",
        "",
        f"- Modalities: {codes(ii.modalities)}",
        f"- Body parts: {codes(ii.body_parts)}",
        f"- View positions: {codes(ii.view_positions)}",
        f"- Image kind: {ii.image_kind}",
        f"- Smallest matrix side: {ii.min_matrix or 'any'} pixels",
        f"- Source: {ii.source}",
        "",
        "## Out-of-distribution score",
        "",
    ]
    if m.ood is None:
        lines.append("None: images unlike the training data are not flagged.")
    else:
        lines.append(
            f"- {m.ood.method} distance of the penultimate features ({m.ood.feature_dim}) to "
            f"the training split; flagged above {m.ood.threshold:.3f} ({m.ood.threshold_rule})"
        )
        lines += [f"- {k}: {_fmt(v)}" for k, v in m.ood.stats.items()]
    lines += ["", "## Calibration", ""]
    if m.temperatures is None:
        lines.append("None: probabilities are the network's raw sigmoid outputs.")
    else:
        splits = [
            s
            for s in ("val", "cross_validated", "test")
            if isinstance(m.metrics.get(s), Mapping)
            and any(
                isinstance(v, Mapping) and "ece_before_scaling" in v for v in m.metrics[s].values()
            )
        ]
        lines += [
            (
                "Temperature scaling per label (p = sigmoid(logit / T)), re-fitted on the site's "
                'cases (see "At this site"); the ECE columns are from training, at its '
                "temperatures."
                if m.site_calibration
                else "Temperature scaling per label, fitted on the validation split "
                "(p = sigmoid(logit / T)); thresholds apply to the calibrated probabilities."
            ),
            "",
            "| label | temperature | "
            + " | ".join(f"{s} ECE before → after" for s in splits)
            + " |",
            "|---|---|" + "---|" * len(splits),
        ]
        for label in m.labels:
            eces = [_ece_change(m.metrics[s].get(label)) for s in splits]
            lines.append(f"| {label} | {m.temperatures[label]:.3f} | " + " | ".join(eces) + " |")
    return [*lines, ""]


def _site_number(entry: Any) -> str:
    """ "0.82 (0.70–0.90)": a site measure and its 95 % CI."""
    if not isinstance(entry, Mapping):
        return _fmt(entry)
    text = _fmt(entry.get("value"))
    ci = entry.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2 and None not in ci:
        text += f" ({_fmt(ci[0])}–{_fmt(ci[1])})"
    return text


def _change(row: Mapping[str, Any], name: str) -> str:
    before, after = row.get(f"{name}_before"), row.get(f"{name}_after")
    return f"{_fmt(before)} → {_fmt(after)}"


def _site_lines(block: Mapping[str, Any] | None, order: tuple[str, ...]) -> list[str]:
    """The manifest's ``site_calibration`` (``radassist-train calibrate``) as "At this site"."""
    if not isinstance(block, Mapping):
        return []
    name = block.get("source_name")
    sha = str(block.get("source_sha256") or "")[:16]
    if block.get("source") == "reviews":
        where = "reviewed cases" + (f" (review folder {name}, SHA-256 `{sha}…`)" if name else "")
    else:
        where = "labelled images" + (f" of {name} (SHA-256 `{sha}…`)" if name else "")
    lines = [
        "## At this site",
        "",
        f"Measured on {_fmt(block.get('n_cases'))} {where}"
        + f" on {_fmt(block.get('date'))}; thresholds chosen by rule `{_fmt(block.get('rule'))}`"
        + ("; temperatures re-fitted" if block.get("temperatures_refitted") else "")
        + ". Sensitivity, specificity, PPV and NPV are at the threshold now in use, with Wilson "
        "95 % CIs; AUROC with a bootstrap 95 % CI. They were measured on the cases the "
        "thresholds were chosen on: expect slightly lower values on new cases.",
        "",
    ]
    labels = block.get("labels")
    if isinstance(labels, Mapping) and labels:
        lines += [
            "| label | n (positive) | sensitivity | specificity | PPV | NPV | AUROC "
            "| threshold | temperature | ECE |",
            "|---" * 10 + "|",
        ]
        for label in sorted(labels, key=lambda x: order.index(x) if x in order else len(order)):
            row = labels[label]
            if not isinstance(row, Mapping):
                continue
            cells = [
                f"{_fmt(row.get('n'))} ({_fmt(row.get('positives'))})",
                *(_site_number(row.get(k)) for k in ("sensitivity", "specificity", "ppv", "npv")),
                _site_number(row.get("auroc")),
                _change(row, "threshold"),
                _change(row, "temperature"),
                _change(row, "ece"),
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Threshold, temperature and ECE: the model's before → the site's after.",
            "",
        ]
    refused = block.get("refused")
    if isinstance(refused, Mapping) and refused:
        lines += [
            f"- Not calibrated here (too few cases; at least {_fmt(row.get('needed'))} positive "
            f"and negative needed): {label} with {_fmt(row.get('positives'))} positive and "
            f"{_fmt(row.get('negatives'))} negative; its threshold is the model's."
            for label, row in refused.items()
            if isinstance(row, Mapping)
        ]
        lines.append("")
    return lines


def model_card_markdown(manifest: ModelManifest) -> str:
    """A human model card, generated from the manifest alone."""
    m = manifest
    spec = m.preprocessing
    lines = [f"# Model card: {m.name} (version {m.version})", ""]
    if m.synthetic:
        lines += [
            "> **Trained on synthetic phantoms, for demonstration only — not for diagnosis.** "
            "Its outputs say nothing about real patients.",
            "",
        ]
    lines += ["> Research use only — not for diagnosis.", "", "## Intended use", "", m.intended_use]
    lines += [
        "",
        "## Model",
        "",
        f"- Architecture: {m.architecture} ({', '.join(f'{k}={v}' for k, v in m.arch_args.items())})",
        f"- Input: {m.input_size}×{m.input_size}, {m.input_channels} channel(s)",
        f"- Created: {m.created} with RadAssist {m.radassist_version} "
        f"(model file format {m.format_version})",
        f"- Tensor SHA-256: `{m.tensor_sha256 or 'not yet written'}`",
        "",
        "## Labels and operating thresholds",
        "",
        "| label | threshold |",
        "|---|---|",
    ]
    lines += [f"| {label} | {float(m.thresholds[label]):.3f} |" for label in m.labels]
    lines += ["", f"Threshold rule: {m.threshold_rule}", ""]
    lines += _site_lines(m.site_calibration, m.labels)
    lines += _applicability_lines(m)
    lines += ["## Metrics", ""]
    if m.site_calibration and m.metrics:
        lines += [
            "Measured at training time, with the thresholds and temperatures of then; the "
            'site\'s own measurement at the current thresholds is under "At this site".',
            "",
        ]
    if m.metrics:
        for key, value in m.metrics.items():
            if isinstance(value, dict) and not _is_leaf(value):
                lines += _render_block(key, value)
            else:
                lines.append(f"- {key}: {_fmt(value)}")
        lines.append("")
    else:
        lines += ["No metrics recorded: performance is unknown.", ""]
    lines += ["## Training data", ""]
    if m.training_data:
        lines += [f"- {k}: {_fmt(v)}" for k, v in m.training_data.items()]
    else:
        lines.append("Not recorded.")
    low, high = spec.percentiles
    norm = {
        "percentile": f"percentiles {low}–{high} mapped to 0–1",
        "window": f"the file's first VOI window (percentiles {low}–{high} when none)",
        "minmax": "minimum–maximum mapped to 0–1",
    }[spec.normalization]
    lines += [
        "",
        "## Preprocessing",
        "",
        "- DICOM: Modality LUT, then " + norm + "; MONOCHROME1 inverted so that air is dark",
        f"- Longest side resized to {spec.image_size} ({spec.interpolation}, antialiased), "
        f"centred and padded to a square with {spec.pad_value}",
        f"- {spec.channels} channel(s); output scaling: {spec.output_scaling}",
        "",
        "## Limitations",
        "",
        "- Not a medical device; not validated for clinical use.",
        "- Sees one 2-D image at a time at the input size above; small findings may be lost.",
        "- Thresholds and metrics hold only for data like the training data; expect different "
        "results on other scanners, populations and protocols.",
        "- Grad-CAM heatmaps show where the network looked, not proof of a finding.",
    ]
    if m.synthetic:
        lines.append(
            "- Trained and evaluated on synthetic phantoms only: the metrics above are about the "
            "phantoms, not about real radiographs."
        )
    return "\n".join(lines) + "\n"
