"""`radassist audit verify|show`: check or print the hash-chained audit trail."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from desktop_app.commands._common import EXIT_OK, EXIT_SOME_FAILED, non_negative_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{verify,show}")
    verify = sub.add_parser(
        "verify", help="check that no record was edited, removed, inserted or reordered"
    )
    verify.add_argument("--path", type=Path, help="audit log (default: the user data folder's)")
    show = sub.add_parser("show", help="print the records as JSON lines")
    show.add_argument("--path", type=Path, help="audit log (default: the user data folder's)")
    show.add_argument(
        "--tail", type=non_negative_int, default=0, metavar="N", help="only the last N records"
    )


def run(args: argparse.Namespace) -> int:
    from desktop_app.privacy.audit import AuditLog, verify

    audit = AuditLog(args.path)
    if args.action == "verify":
        result = verify(audit.path)
        if result.ok:
            print(f"OK: {result.n_records} records, head {result.head_hash}")
            return EXIT_OK
        where = f"line {result.first_bad_line}" if result.first_bad_line else "head"
        print(f"{audit.path}: {where}: {result.reason}")
        return EXIT_SOME_FAILED
    for record in audit.tail(args.tail):
        print(json.dumps(record, sort_keys=True, ensure_ascii=True))
    return EXIT_OK
