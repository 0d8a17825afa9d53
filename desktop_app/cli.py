"""`radassist`: the GUI launcher and the headless subcommands.

``radassist [PATH ...]`` opens the GUI. ``radassist <command> ...`` runs a headless command;
each lives in ``desktop_app.commands.<name>`` with ``add_arguments(parser)`` and
``run(args) -> int``, imported only when used so that `inspect` starts without torch or Qt.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from desktop_app import __version__
from desktop_app.commands._common import (
    Command,
    OneLineParser,
    configure_logging,
    guarded,
    load_command,
    run_command,
    top_parser,
)

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": (
        "desktop_app.commands.inspect",
        "index studies, decode every image, report problems",
    ),
    "deidentify": (
        "desktop_app.commands.deidentify",
        "export a de-identified copy of studies for sharing (PS3.15 Annex E)",
    ),
    "pacs": (
        "desktop_app.commands.pacs",
        "echo, query, retrieve from and send to a PACS; manage PACS nodes",
    ),
    "audit": (
        "desktop_app.commands.audit",
        "verify or show the hash-chained audit trail",
    ),
    "predict": (
        "desktop_app.commands.predict",
        "run the model headlessly: findings JSON, heatmaps and overlays per series",
    ),
    "export": (
        "desktop_app.commands.export",
        "export a reviewed study: DICOM SR, secondary captures, PDF report, JSON",
    ),
    "info": (
        "desktop_app.commands.info",
        "version, chosen device, estimated time per image here, model file, data folder",
    ),
}


def _command_parser(name: str) -> tuple[argparse.ArgumentParser, Command]:
    module_name, help_text = COMMANDS[name]
    parser = OneLineParser(prog=f"radassist {name}", description=help_text)
    return parser, load_command(parser, module_name)


def _gui_parser() -> argparse.ArgumentParser:
    parser = top_parser(
        "radassist",
        "RadAssist: review CNN findings over DICOM studies (research use only).",
        COMMANDS,
        "headless commands (radassist <command> --help)",
        10,
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="DICOM files, folders or DICOMDIRs"
    )
    parser.add_argument("--version", action="version", version=f"radassist {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    try:
        gui = importlib.import_module("desktop_app.qt.launch")
    except ImportError:  # the GUI is optional for headless installs
        gui = None
    if gui is not None:
        gui.add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in COMMANDS:
        parser, command = _command_parser(args_list[0])
        args = parser.parse_args(args_list[1:])
        return run_command(command, args, f"radassist {args_list[0]}")
    parser = _gui_parser()
    args = parser.parse_args(args_list)
    configure_logging(args.verbose)
    from desktop_app.qt import launch

    return guarded(lambda: launch.run(args), "radassist")


if __name__ == "__main__":
    sys.exit(main())
