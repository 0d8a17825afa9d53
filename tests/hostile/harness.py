"""Runs `radassist inspect` / `radassist predict` in a child process under an address-space limit and
a wall bound, and judges what came back: decoded, refused (one line) or crashed.

The child is a fresh interpreter that sets RLIMIT_AS on itself and then runs the CLI's ``main`` (the
``radassist`` console script does nothing else); at exit it writes its own peak RSS and peak
address space (``/proc/self/status``) to a side file. The parent waits for it with ``os.wait4``,
whose rusage is that child's alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from desktop_app.infra.safetext import is_safe

GIB = 1 << 30
AS_LIMIT = 3 * GIB // 2  # the 1.5 GiB
WALL_BOUND_S = 120.0  # a bound against hangs, not a benchmark
GOAL_S = 10.0
GOAL_RSS = GIB
ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "resources" / "models" / "radassist-demo-lite0.safetensors"
BENIGN = ROOT / "resources" / "sample" / "chest_xr" / "chest_pa.dcm"  # the model's intended input

_CHILD = """
import atexit, resource, sys
limit = int(sys.argv[1])
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
report = sys.argv[2]
def _report():
    status = open("/proc/self/status").read()
    with open(report, "w") as fh:
        fh.write(status)
atexit.register(_report)
from desktop_app.cli import main
sys.argv = ["radassist", *sys.argv[3:]]
raise SystemExit(main(sys.argv[1:]))
"""

# A log record or a Python warning on the terminal (the app's own one-line messages look like
# "radassist inspect: ..." or "<path>: ...").
LOG_LINE = re.compile(
    r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)[: ]|^\S+\.py:\d+: \w*(Warning|Error)|warnings\.warn\("
)


@dataclass
class Run:
    """One child's outcome."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss: int  # bytes
    peak_as: int  # bytes (0 when the child could not report it)
    timed_out: bool
    problems: list[str] = field(default_factory=list)

    @property
    def crashed(self) -> bool:
        return bool(self.problems)


def run_cli(
    args: list[str], data_dir: Path, as_limit: int = AS_LIMIT, wall_bound: float = WALL_BOUND_S
) -> Run:
    """Run ``radassist ARGS`` limited to ``as_limit`` bytes of address space (0: no limit), with
    ``data_dir`` as its user data folder (its log file lands there)."""
    env = dict(os.environ, RADASSIST_DATA_DIR=str(data_dir))
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".status") as status,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(as_limit), status.name, *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        killed = threading.Event()
        killer = threading.Timer(wall_bound, _kill, (proc.pid, killed))
        killer.start()
        try:
            _, wait_status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        out.seek(0)
        err.seek(0)
        text_out = out.read().decode("utf-8", "replace")
        text_err = err.read().decode("utf-8", "replace")
        peak_as = _status_kb(Path(status.name), "VmPeak")
    run = Run(
        args=args,
        returncode=proc.returncode,
        stdout=text_out,
        stderr=text_err,
        wall_s=wall,
        peak_rss=usage.ru_maxrss * 1024,
        peak_as=peak_as,
        timed_out=killed.is_set(),
    )
    run.problems = judge(run)
    return run


def _kill(pid: int, killed: threading.Event) -> None:
    killed.set()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _status_kb(path: Path, key: str) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def judge(run: Run) -> list[str]:
    """What is wrong with a run's exit and output (empty: a clean decode or refusal)."""
    problems = []
    if run.timed_out:
        problems.append(f"still running after {WALL_BOUND_S:.0f} s (killed)")
    elif run.returncode < 0:
        problems.append(f"killed by signal {-run.returncode}")
    elif run.returncode not in (0, 1):
        problems.append(f"exit code {run.returncode}")
    for name, text in (("stdout", run.stdout), ("stderr", run.stderr)):
        for line in text.splitlines():
            if "Traceback" in line or "MemoryError" in line or "internal error" in line:
                problems.append(f"{name}: {line[:200]!r}")
            elif LOG_LINE.search(line):
                problems.append(f"{name}: a log line: {line[:200]!r}")
            elif not is_safe(line):
                problems.append(f"{name}: raw control characters: {line[:200]!r}")
    return problems


def refused(run: Run, path: Path) -> bool:
    """True when the run's stderr has a one-line refusal of ``path``."""
    prefix = f"{path}: "
    return any(line.startswith(prefix) for line in run.stderr.splitlines())


def inspect(paths: list[Path], data_dir: Path, as_limit: int = AS_LIMIT) -> Run:
    return run_cli(["inspect", *map(str, paths)], data_dir, as_limit)


def predict(paths: list[Path], out: Path, data_dir: Path, as_limit: int) -> Run:
    args = ["predict", *map(str, paths), "--out", str(out), "--model", str(MODEL), "--quiet"]
    return run_cli(args, data_dir, as_limit)


def predict_limit(benign: Run) -> int:
    """predict's address-space limit: 1.5 GiB above what it reserves on a benign image. Torch's
    CUDA build maps ~3 GB of libraries before reading a byte, so a flat 1.5 GiB can't even load
    it; the limit bounds what a file can add."""
    assert benign.peak_as > 0, "the benign predict run did not report its address space"
    return benign.peak_as + AS_LIMIT
