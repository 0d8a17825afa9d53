"""What every command shares: exit codes, one-line errors, the subcommand dispatcher (for
``radassist`` and ``radassist-train``), argparse types, a progress bar on stderr."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TextIO, cast

from desktop_app.infra import logsetup
from desktop_app.infra.errors import RadAssistError
from desktop_app.infra.safetext import escape_control, escaping_std_streams
from desktop_app.settings.schema import DEVICES

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- dispatching


class Command(Protocol):
    """A subcommand module: ``add_arguments(parser)`` and ``run(args) -> exit code``."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class OneLineParser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (never the whole usage dump) on a usage error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def top_parser(
    prog: str, description: str, commands: Mapping[str, tuple[str, str]], heading: str, width: int
) -> OneLineParser:
    """A program's top-level parser, listing ``commands`` (name -> (module, one-line help)) under
    ``heading`` in its help, names padded to ``width``."""
    listing = "\n".join(f"  {n:{width}s} {h}" for n, (_, h) in commands.items())
    return OneLineParser(
        prog=prog,
        description=description,
        epilog=f"{heading}:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def load_command(parser: argparse.ArgumentParser, module_name: str) -> Command:
    """Import a subcommand's module (only now: some import torch, which takes seconds) and
    add its arguments, and ``-v``, to ``parser``."""
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    module = cast(Command, importlib.import_module(module_name))
    module.add_arguments(parser)
    return module


def run_command(command: Command, args: argparse.Namespace, prog: str) -> int:
    """Configure logging from ``-v`` and run the command behind :func:`guarded`."""
    configure_logging(args.verbose, prog)
    # The last guard of the terminal: no control character from a file or peer gets through.
    with escaping_std_streams():
        return guarded(lambda: command.run(args), prog)


# --------------------------------------------------------------------------- argparse types


def add_date_options(parser: argparse.ArgumentParser, group: argparse._ActionsContainer) -> None:
    """``--shift-dates`` (the default), ``--remove-dates`` or ``--keep-dates`` into
    ``args.dates``: how de-identification treats dates (PS3.15 E.3.6, Retain Longitudinal
    Temporal Information with Modified Dates / Full Dates Options)."""
    dates = group.add_mutually_exclusive_group()
    for flag, const, text in (
        (
            "--shift-dates",
            "shift",
            "shift every date by a per-patient number of days (default; keeps intervals)",
        ),
        ("--remove-dates", "remove", "remove or blank dates and times as the basic profile says"),
        ("--keep-dates", "keep", "keep the real dates (Full Dates Option; only where allowed)"),
    ):
        dates.add_argument(flag, dest="dates", action="store_const", const=const, help=text)
    parser.set_defaults(dates="shift")


def whole_number(text: str) -> int:
    """An argparse type: any whole number (the base of the ranged ones below)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} should be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of 0 or more."""
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} should be 0 or more")
    return value


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        value = whole_number(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} should be between {low} and {high}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} should be above 0")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} should be between 0 and 1")
    return value


def device_arg(text: str) -> str:
    """An argparse type: one of :data:`DEVICES` or ``cuda:N``, lower-cased."""
    value = text.strip().lower()
    if value in DEVICES or re.fullmatch(r"cuda:\d+", value):
        return value
    raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(DEVICES)} (or cuda:N)")


def label_list(text: str) -> list[str]:
    """An argparse type: comma-separated label names, at least one, none empty."""
    labels = [part.strip() for part in text.split(",")]
    if not any(labels) or not all(labels):
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated label names")
    return labels


def configure_logging(verbose: int = 0, prog: str = "radassist") -> None:
    """Entry points (and only they) configure handlers; a library never does. The log file
    gets everything; the terminal only the app's own one-line records (infra.logsetup)."""
    logsetup.configure_logging(verbose, prog)


def guarded(run: Callable[[], int], prog: str) -> int:
    """Run a command; turn any error into one line on stderr and an exit code.

    User errors (RadAssistError) print their one-line reason. An unexpected exception is a
    bug: it still prints one line, and the traceback goes to the log file only.
    """
    try:
        return run()
    except RadAssistError as err:
        print(f"{prog}: error: {err.one_line()}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. piped into `head`): not an error worth reporting.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return EXIT_OK
    except Exception as err:
        log.debug("unexpected error", exc_info=True)
        print(
            f"{prog}: internal error: {type(err).__name__}: "
            f"{escape_control(' '.join(str(err).split()))} "
            f"(please report this with the log: {logsetup.log_file_path(create=False)})",
            file=sys.stderr,
        )
        return EXIT_SOME_FAILED


class ProgressBar:
    """A text progress bar on stderr, fed with ``(done, total)``.

    Redraws in place on a terminal; on a pipe it prints at most a line per 10%.
    """

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_decile = -1
        self._last_draw = 0.0
        self._start = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        frac = min(max(done / total, 0.0), 1.0)
        if self.tty:
            now = time.perf_counter()
            if done < total and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            width = 30
            filled = int(frac * width)
            elapsed = now - self._start
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {elapsed:5.1f}s")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(f"{self.label}: {done}/{total}\n")
                self.stream.flush()
