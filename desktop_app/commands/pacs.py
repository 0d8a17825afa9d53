"""`radassist pacs echo|find|get|send|node`: talk to a PACS and manage the configured nodes.

Errors (refused, timed out, rejected, unknown node) print one line and exit 1; usage errors
exit 2. Nodes live in ``pacs.json`` in the user data folder.

Everything a peer sends is an attacker's text: `find` prints exactly one line per match, each
value with its control characters escaped and cut to :data:`CELL_CHARS` (--json escapes them
as JSON does); `get` says in one line each how many instances it refused, and names the folder
that really holds what it stored.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from desktop_app.commands._common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    ProgressBar,
    int_between,
    positive_float,
)
from desktop_app.infra.safetext import escape_control, escape_field

# A value wider than this is cut in `find`'s table (a UID is at most 64 characters).
CELL_CHARS = 120

_FIND_COLUMNS = {
    "PATIENT": ("PatientID", "PatientName", "PatientBirthDate", "NumberOfPatientRelatedStudies"),
    "STUDY": (
        "StudyDate",
        "PatientID",
        "PatientName",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
        "StudyInstanceUID",
        "StudyDescription",
    ),
    "SERIES": (
        "SeriesNumber",
        "Modality",
        "NumberOfSeriesRelatedInstances",
        "SeriesInstanceUID",
        "SeriesDescription",
    ),
}


_port = int_between(1, 65535)


def _add_timeouts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="S",
        help="seconds to wait for the connection and the association (default 10)",
    )
    parser.add_argument(
        "--dimse-timeout",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="seconds to wait for each reply once associated (default 60)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="PACS node file (default: the data folder's)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="{echo,find,get,send,node}")

    echo = sub.add_parser("echo", help="C-ECHO: check that a node answers")
    echo.add_argument("node", metavar="NODE")
    _add_timeouts(echo)

    find = sub.add_parser("find", help="C-FIND: query patients, studies or series")
    find.add_argument("node", metavar="NODE")
    find.add_argument(
        "--level", choices=("patient", "study", "series"), default="study", help="default: study"
    )
    find.add_argument("--patient-id", help="Patient ID (wildcards * and ? allowed)")
    find.add_argument("--patient-name", help="Patient's Name, e.g. 'DOE^J*'")
    find.add_argument("--study-uid", help="Study Instance UID (needed for --level series)")
    find.add_argument("--date", help="Study Date or range, e.g. 20240101-20240131")
    find.add_argument("--accession", help="Accession Number")
    find.add_argument("--modality", help="a modality in the study (study level) or series")
    find.add_argument("--json", action="store_true", help="print the matches as JSON")
    _add_timeouts(find)

    get = sub.add_parser("get", help="retrieve a study or series (C-GET or C-MOVE)")
    get.add_argument("node", metavar="NODE")
    get.add_argument("--study", required=True, metavar="UID", help="Study Instance UID")
    get.add_argument("--series", metavar="UID", help="only this Series Instance UID")
    how = get.add_mutually_exclusive_group()
    how.add_argument("--move", dest="method", action="store_const", const="move", help="C-MOVE")
    how.add_argument("--get", dest="method", action="store_const", const="get", help="C-GET")
    get.add_argument("--store", type=Path, metavar="DIR", help="store folder (default: data's)")
    _add_timeouts(get)

    send = sub.add_parser("send", help="C-STORE files to a node")
    send.add_argument("node", metavar="NODE")
    send.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders")
    _add_timeouts(send)

    node = sub.add_parser("node", help="add, list or remove PACS nodes; set our AE")
    nodes = node.add_subparsers(
        dest="node_action", required=True, metavar="{add,list,remove,local}"
    )
    add = nodes.add_parser("add", help="add a node")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--aet", required=True, help="the node's (called) AE title")
    add.add_argument("--host", required=True, help="host name or IP address")
    add.add_argument("--port", required=True, type=_port, help="DICOM port")
    add.add_argument(
        "--move", action="store_true", help="retrieve with C-MOVE (the node must know our AE)"
    )
    add.add_argument("--replace", action="store_true", help="replace a node of that name")
    lst = nodes.add_parser("list", help="list the nodes")
    lst.add_argument("--json", action="store_true")
    rm = nodes.add_parser("remove", help="remove a node")
    rm.add_argument("name", metavar="NAME")
    local = nodes.add_parser("local", help="show or set our AE title and C-MOVE port")
    local.add_argument("--aet", help="our (calling) AE title")
    local.add_argument("--port", type=_port, help="port of our Storage SCP during C-MOVE")
    local.add_argument("--bind", help="address our Storage SCP listens on (default 0.0.0.0)")


def run(args: argparse.Namespace) -> int:
    if args.verbose < 2:
        # pynetdicom reports failures at ERROR level itself; we print one line instead.
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    from desktop_app.pacs.nodes import NodeConfig

    config = NodeConfig.load(args.config)
    if args.action == "node":
        return _node(args, config)
    from desktop_app.pacs.dimse import PacsClient, Timeouts

    node = config.get(args.node)
    timeouts = Timeouts(
        connect=args.timeout,
        acse=args.timeout,
        dimse=args.dimse_timeout,
        network=max(args.dimse_timeout, args.timeout),
    )
    client = PacsClient(node, config.local, timeouts)
    if args.action == "echo":
        seconds = client.echo()
        print(f"{node.describe()}: C-ECHO OK in {seconds * 1000:.0f} ms")
        return EXIT_OK
    if args.action == "find":
        return _find(args, client)
    if args.action == "get":
        return _get(args, client)
    return _send(args, client)


def _find(args: argparse.Namespace, client: Any) -> int:
    level = args.level.upper()
    filters: dict[str, str] = {}
    mapping = {
        "patient_id": "PatientID",
        "patient_name": "PatientName",
        "study_uid": "StudyInstanceUID",
        "date": "StudyDate",
        "accession": "AccessionNumber",
        "modality": "ModalitiesInStudy" if level == "STUDY" else "Modality",
    }
    for attr, keyword in mapping.items():
        value = getattr(args, attr)
        if value is not None:
            filters[keyword] = value
    matches = client.find(level, filters)
    if args.json:
        # ASCII only: a peer's C1 controls and bidi overrides come out as \u escapes too.
        print(json.dumps([m.values for m in matches], indent=1, ensure_ascii=True))
        return EXIT_OK
    columns = _FIND_COLUMNS[level]
    print("\t".join(columns))
    for match in matches:
        print("\t".join(escape_field(match.get(c), limit=CELL_CHARS) for c in columns))
    print(f"{len(matches)} {level.lower()} match(es)", file=sys.stderr)
    return EXIT_OK


def _get(args: argparse.Namespace, client: Any) -> int:
    from desktop_app.pacs.store import LocalStore

    store = LocalStore(args.store)
    method = args.method or client.node.retrieve
    bar = ProgressBar("retrieving", enabled=sys.stderr.isatty())
    fetch = client.move if method == "move" else client.get
    result = fetch(args.study, args.series, store=store, progress=bar)
    for problem in result.problems:
        print(f"radassist pacs get: {escape_control(problem, limit=300)}", file=sys.stderr)
    print(_retrieved_line(result, method))
    return EXIT_SOME_FAILED if (result.failed or result.problems) else EXIT_OK


def _retrieved_line(result: Any, method: str) -> str:
    """``retrieved N instances with C-GET into FOLDER``: the folder that holds them."""
    n = len(result.stored)
    where = f"into {result.folder}" if result.folder is not None else "(nothing was stored)"
    # The peer counts the instances we refused among its failed sub-operations.
    n_failed = max(0, result.failed - sum(result.refused.values()))
    failed = f" ({n_failed} failed on the PACS)" if n_failed else ""
    return escape_control(
        f"retrieved {n} instance{'' if n == 1 else 's'} with C-{method.upper()} {where}{failed}"
    )


def _send(args: argparse.Namespace, client: Any) -> int:
    from desktop_app.privacy.deid import iter_files

    files = list(iter_files(args.paths))
    if not files:
        print("radassist pacs send: no files found in the given paths", file=sys.stderr)
        return EXIT_SOME_FAILED
    bar = ProgressBar("sending", enabled=sys.stderr.isatty())
    result = client.send(files, progress=bar)
    for path, reason in result.failed:
        print(escape_control(f"{path}: {reason}", limit=1000), file=sys.stderr)
    print(f"sent {len(result.sent)} of {len(files)} files to {client.node.describe()}")
    return EXIT_SOME_FAILED if result.failed else EXIT_OK


def _node(args: argparse.Namespace, config: Any) -> int:
    from desktop_app.pacs.nodes import PacsNode

    if args.node_action == "add":
        node = PacsNode(args.name, args.aet, args.host, args.port, "move" if args.move else "get")
        config.add(node, replace_existing=args.replace)
        config.save()
        print(f"added {node.describe()}")
    elif args.node_action == "remove":
        node = config.remove(args.name)
        config.save()
        print(f"removed {node.describe()}")
    elif args.node_action == "local":
        changes = {
            k: v
            for k, v in (("ae_title", args.aet), ("port", args.port), ("bind_address", args.bind))
            if v is not None
        }
        if changes:
            config.set_local(**changes)
            config.save()
        local = config.local
        print(f"our AE: {local.ae_title}, C-MOVE Storage SCP on {local.bind_address}:{local.port}")
    else:
        if args.json:
            print(json.dumps({n: asdict(v) for n, v in sorted(config.nodes.items())}, indent=1))
        elif not config.nodes:
            print("no PACS nodes configured (add one with `radassist pacs node add`)")
        for node in sorted(config.nodes.values(), key=lambda n: n.name):
            if not args.json:
                print(node.describe())
    return EXIT_OK
