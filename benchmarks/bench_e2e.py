"""Whole-process benchmark: `radassist predict`, the GUI screenshot, `info` and the engine import.

Every contender is a fresh process (``subprocess``), timed from start to exit with
``time.perf_counter``; its peak RSS comes from ``/usr/bin/time -f %M`` (else from ``wait4``'s
rusage) and its CPU seconds from ``wait4``. Each contender runs in a block: one untimed warm-up
run (reported as "first"), then ``--repeat`` timed runs; a pair to compare runs back to back.
Median and range (min-max) per contender, and the load average before and after each block,
because the machine is shared.

(a) ``radassist predict resources/sample/chest_xr --out DIR`` against benchmarks/minimal_predict.py
    doing the same core job (pydicom, the model's preprocessing in numpy, one ONNX Runtime
    session on the same graph, JSON out). Its graph is written once, untimed, by
    ``radassist-train export-onnx``. Goal: predict <= 1.5x the script.
(b) ``radassist resources/sample/chest_xr --screenshot F --size 1600x1000`` with and without
    ``--run-inference`` (QT_QPA_PLATFORM=offscreen). Goal: <= 2x.
(c) ``radassist info``; ``python -c "import desktop_app.inference.engine"`` against
    ``python -c pass`` (the interpreter's own start).

``--pythonpath DIR`` measures another checkout of the code (its desktop_app, training and
resources) with this venv: the children get PYTHONPATH=DIR and run in a temporary folder, so
that neither the current folder nor the venv's editable install shadows it. The children share
a RADASSIST_DATA_DIR and a RADASSIST_CACHE_DIR in a temporary folder, so the user's data folder
and graph cache are left alone: the first run of a block (the warm-up) may find the ONNX graph
cache cold and fill it; the timed runs find it warm.

    python benchmarks/bench_e2e.py [--pythonpath DIR] [--repeat 5 | --quick] [--interleave] [--only a,b,c]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = Path(__file__).resolve().parent / "minimal_predict.py"
GNU_TIME = Path("/usr/bin/time")
MODEL_NAME = "radassist-demo-lite0.safetensors"
CHILD_TIMEOUT_S = 900
GOALS = {"predict_vs_minimal": 1.5, "gui_inference_vs_plain": 2.0}


def load_average() -> list[float]:
    with open("/proc/loadavg") as fh:
        return [float(v) for v in fh.read().split()[:3]]


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    code: int


@dataclass
class Block:
    name: str
    first: Run
    runs: list[Run] = field(default_factory=list)
    load_before: list[float] = field(default_factory=list)
    load_after: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        walls = [r.wall for r in self.runs]
        return {
            "wall_median": statistics.median(walls),
            "wall_min": min(walls),
            "wall_max": max(walls),
            "cpu_median": statistics.median(r.cpu for r in self.runs),
            "rss_mib_median": statistics.median(r.rss_mib for r in self.runs),
            "rss_mib_max": max(r.rss_mib for r in self.runs),
            "first_wall": self.first.wall,
            "first_rss_mib": self.first.rss_mib,
            "runs": len(self.runs),
            "load_before": self.load_before,
            "load_after": self.load_after,
        }


class Runner:
    """Starts the children: the same environment, folder and output handling for all."""

    def __init__(self, code: Path, work: Path) -> None:
        self.code, self.work = code, work
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = str(code)
        self.env["RADASSIST_DATA_DIR"] = str(work / "data")
        self.env["RADASSIST_CACHE_DIR"] = str(work / "cache")  # the ONNX graph cache: cold at first
        self.env["QT_QPA_PLATFORM"] = "offscreen"
        self.env.pop("PYTHONSTARTUP", None)
        self.count = 0
        self.interleave = False

    def run(self, argv: list[str]) -> Run:
        """One child, start to exit. Its output goes to files under ``work/logs``."""
        self.count += 1
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        rss_file = logs / f"{self.count}.rss"
        timed = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv]
        with (
            open(logs / f"{self.count}.out", "wb") as out,
            open(logs / f"{self.count}.err", "wb") as err,
        ):
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                timed if GNU_TIME.is_file() else argv,
                stdout=out,
                stderr=err,
                env=self.env,
                cwd=self.work,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        rss_kib = float(usage.ru_maxrss)  # the whole tree's largest; exact with /usr/bin/time
        if GNU_TIME.is_file() and rss_file.is_file():
            lines = rss_file.read_text().split()
            rss_kib = float(lines[-1]) if lines and lines[-1].isdigit() else rss_kib
        if code != 0:
            tail = (logs / f"{self.count}.err").read_text(errors="replace").strip()[-400:]
            raise RuntimeError(f"exit {code}: {' '.join(argv)}\n{tail}")
        return Run(wall, usage.ru_utime + usage.ru_stime, rss_kib / 1024, code)

    def block(self, name: str, make_argv: Any, repeat: int) -> Block:
        """One warm-up run, then ``repeat`` timed ones; ``make_argv(i)`` gives run i's argv."""
        load_before = load_average()
        block = Block(name, self.run(make_argv(0)), load_before=load_before)
        for i in range(1, repeat + 1):
            block.runs.append(self.run(make_argv(i)))
        block.load_after = load_average()
        _print_block(block)
        return block

    def pair(
        self, a: tuple[str, Any], b: tuple[str, Any], repeat: int, interleave: bool
    ) -> tuple[Block, Block]:
        """Two contenders to compare: a block each, back to back; or, with ``interleave``, one
        warm-up each and then their runs alternated (a, b, a, b, ...). Alternating is sound for
        whole processes (nothing of one run outlives its process) and cancels a load that
        changes between two blocks."""
        if not interleave:
            return self.block(a[0], a[1], repeat), self.block(b[0], b[1], repeat)
        load_before = load_average()
        blocks = [Block(name, self.run(make(0)), load_before=load_before) for name, make in (a, b)]
        for i in range(1, repeat + 1):
            for block, (_, make) in zip(blocks, (a, b), strict=True):
                block.runs.append(self.run(make(i)))
        for block in blocks:
            block.load_after = load_average()
            _print_block(block)
        return blocks[0], blocks[1]


def _print_block(block: Block) -> None:
    s = block.summary()
    print(
        f"  {block.name:<24} {s['wall_median']:7.3f} s [{s['wall_min']:.3f}-{s['wall_max']:.3f}]"
        f"  CPU {s['cpu_median']:6.2f} s  peak RSS {s['rss_mib_median']:6.0f} MiB"
        f"  (first run {s['first_wall']:.2f} s; load {block.load_before[0]:.2f} -> "
        f"{block.load_after[0]:.2f})",
        flush=True,
    )


def console_script(name: str, fallback: list[str]) -> list[str]:
    """The venv's console script (what a user types), else ``python`` with ``fallback``."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.is_file() else [sys.executable, *fallback]


def max_probability_difference(predict_out: Path, minimal_out: Path) -> float:
    """Largest |p_predict - p_script| over the sample's labels: both did the same job."""
    (findings,) = predict_out.rglob("findings.json")
    app = {f["label"]: f["probability"] for f in json.loads(findings.read_text())["findings"]}
    doc = json.loads((minimal_out / "findings.json").read_text())
    (image,) = doc["images"]
    return max(abs(app[f["label"]] - f["probability"]) for f in image["findings"])


def checkout_info(code: Path, runner: Runner) -> dict[str, Any]:
    probe = [sys.executable, "-c", "import desktop_app, training; print(desktop_app.__file__)"]
    imported = subprocess.run(
        probe, env=runner.env, cwd=runner.work, capture_output=True, text=True, check=True
    ).stdout.strip()
    if not Path(imported).resolve().is_relative_to(code.resolve()):
        raise SystemExit(f"bench_e2e: the children import {imported}, not the code in {code}")
    git = ["git", "-C", str(code)]
    head = subprocess.run([*git, "log", "-1", "--format=%h %cI %s"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return {
        "code": str(code),
        "imported": imported,
        "commit": head.stdout.strip()[:120],
        "modified_files": len(dirty.stdout.splitlines()),
    }


def section_predict(runner: Runner, code: Path, repeat: int) -> dict[str, Any]:
    sample = code / "resources" / "sample" / "chest_xr"
    model = code / "resources" / "models" / MODEL_NAME
    work = runner.work
    onnx = work / "model.onnx"
    train_main = "import sys; from training.cli import main; sys.exit(main())"
    train = console_script("radassist-train", ["-c", train_main])
    t0 = time.perf_counter()
    runner.run([*train, "export-onnx", "--model", str(model), "--out", str(onnx)])
    print(f"  (setup: export-onnx {time.perf_counter() - t0:.1f} s, untimed)")
    radassist = console_script("radassist", ["-m", "desktop_app"])
    script = [sys.executable, str(MINIMAL), str(sample), "--model", str(model), "--onnx", str(onnx)]
    minimal, predict = runner.pair(
        ("minimal_predict.py", lambda i: [*script, "--out", str(work / f"minimal{i}")]),
        (
            "radassist predict",
            lambda i: [*radassist, "predict", str(sample), "--out", str(work / f"predict{i}")],
        ),
        repeat,
        runner.interleave,
    )
    diff = max_probability_difference(work / "predict0", work / "minimal0")
    print(f"  largest probability difference, predict vs script: {diff:.2e}")
    return {"minimal": minimal, "predict": predict, "max_probability_difference": diff}


def section_gui(runner: Runner, code: Path, repeat: int) -> dict[str, Any]:
    sample = code / "resources" / "sample" / "chest_xr"
    radassist = console_script("radassist", ["-m", "desktop_app"])

    def shot(extra: list[str], stem: str) -> Any:
        out = runner.work / stem
        size = ["--size", "1600x1000"]
        return lambda i: [*radassist, str(sample), "--screenshot", f"{out}{i}.png", *size, *extra]

    plain, inference = runner.pair(
        ("gui screenshot", shot([], "plain")),
        ("gui --run-inference", shot(["--run-inference"], "inference")),
        repeat,
        runner.interleave,
    )
    return {"gui_plain": plain, "gui_inference": inference}


def section_startup(runner: Runner, repeat: int) -> dict[str, Any]:
    radassist = console_script("radassist", ["-m", "desktop_app"])
    return {
        "info": runner.block("radassist info", lambda i: [*radassist, "info"], repeat),
        "python_pass": runner.block(
            "python -c pass", lambda i: [sys.executable, "-c", "pass"], repeat
        ),
        "import_engine": runner.block(
            "import inference.engine",
            lambda i: [sys.executable, "-c", "import desktop_app.inference.engine"],
            repeat,
        ),
    }


def ratios(blocks: dict[str, Block]) -> dict[str, dict[str, float]]:
    """Each goal's ratio of the medians, and of the minima (the least disturbed runs)."""
    pairs = {
        "predict_vs_minimal": ("predict", "minimal"),
        "gui_inference_vs_plain": ("gui_inference", "gui_plain"),
    }
    out = {}
    for name, (a, b) in pairs.items():
        if a in blocks and b in blocks:
            sa, sb = blocks[a].summary(), blocks[b].summary()
            out[name] = {
                "median": sa["wall_median"] / sb["wall_median"],
                "of_minima": sa["wall_min"] / sb["wall_min"],
                "cpu": sa["cpu_median"] / sb["cpu_median"],
                "goal": GOALS[name],
            }
    return out


def print_table(blocks: dict[str, Block], rat: dict[str, dict[str, float]]) -> None:
    print("\n| contender | wall s, median [min-max] | CPU s | peak RSS MiB | first run s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for b in blocks.values():
        s = b.summary()
        print(
            f"| {b.name} | {s['wall_median']:.3f} [{s['wall_min']:.3f}-{s['wall_max']:.3f}] | "
            f"{s['cpu_median']:.2f} | {s['rss_mib_median']:.0f} | {s['first_wall']:.2f} |"
        )
    for name, r in rat.items():
        met = "met" if r["median"] <= r["goal"] else "missed"
        print(
            f"{name}: {r['median']:.2f}x (of the minima {r['of_minima']:.2f}x, CPU "
            f"{r['cpu']:.2f}x); goal <= {r['goal']}: {met}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pythonpath",
        type=Path,
        default=ROOT,
        metavar="DIR",
        help="the checkout to measure (default: this one)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per contender")
    parser.add_argument("--quick", action="store_true", help="2 timed runs per contender")
    parser.add_argument(
        "--only",
        default="a,b,c",
        help="sections to run: a (predict), b (GUI), c (info and import); default a,b,c",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="(a) and (b): alternate the two contenders' runs instead of a block each",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (outputs, logs)")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else max(1, args.repeat)
    code = args.pythonpath.resolve()
    only = {s.strip() for s in args.only.split(",")}
    work = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    runner = Runner(code, work)
    runner.interleave = args.interleave
    report: dict[str, Any] = {
        "checkout": checkout_info(code, runner),
        "repeat": repeat,
        "order": "interleaved" if args.interleave else "blocks",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rss_source": "/usr/bin/time %M" if GNU_TIME.is_file() else "wait4 ru_maxrss",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_start": load_average(),
    }
    c = report["checkout"]
    print(
        f"measuring {c['imported']} ({c['commit']}; {c['modified_files']} modified files); "
        f"{repeat} timed runs each after 1 warm-up; {os.cpu_count()} CPUs; load "
        f"{report['load_start']}",
        flush=True,
    )
    blocks: dict[str, Block] = {}
    extra: dict[str, Any] = {}
    try:
        if "a" in only:
            print("(a) predict of the chest sample against the minimal script")
            res = section_predict(runner, code, repeat)
            extra["max_probability_difference"] = res.pop("max_probability_difference")
            blocks.update(res)
        if "b" in only:
            print("(b) GUI screenshot, without and with --run-inference")
            blocks.update(section_gui(runner, code, repeat))
        if "c" in only:
            print("(c) start-up: info, the interpreter, the engine's import")
            blocks.update(section_startup(runner, repeat))
    except RuntimeError as err:
        print(f"bench_e2e: a child failed: {err}")
        return 1
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    rat = ratios(blocks)
    report.update(extra)
    report["load_end"] = load_average()
    report["contenders"] = {k: b.summary() for k, b in blocks.items()}
    report["ratios"] = rat
    print_table(blocks, rat)
    print(f"load average: start {report['load_start']}, end {report['load_end']}")
    line = json.dumps(report, default=float)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
