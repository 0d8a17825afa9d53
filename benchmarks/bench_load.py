"""Loading benchmark: time to first image, full load and peak memory for a 300-slice CT.

Writes a synthetic 300-slice 512x512 CT series (``synthetic.write_ct_series``, seed 0) into a
temporary folder. Then, in one run, it measures these against the baseline loop
``[pydicom.dcmread(f).pixel_array for f in files]`` over the whole series:

(a) time to first image:
    (a1) the first indexed file's image is rendered for display while the index is still
         running (``index_paths(on_instance=...)`` + ``volume.instance_frame`` + ``render``);
    (a2) the middle slice is rendered once the whole series is indexed and ordered
         (``index_paths`` + ``series.assemble`` + ``SeriesVolume.frame`` + ``display.render``);
(b) full load: index + assemble + every slice's stored values (``SeriesVolume.load_all``),
    the same product as the baseline loop;
(c) peak memory: the peak RSS growth of a fresh process doing (b), the baseline, or (a2),
    against the raw voxel bytes (slices x rows x columns x 2).

(a2) is also measured with the persisted index (``indexcache.IndexCache``): "cold" is the first
open of the series (no cache file for its folder yet: every header is read, and the cache file
is written, fsync included, before the slice is shown); "warm" is a reopen by a new process
(a fresh ``IndexCache`` object that loads the cache file; no header is read but one per series,
the spot check).

"index only, through pydicom" indexes with every header parsed by pydicom, as the index did
before the raw-bytes fast path (``index.read_record_with_pydicom``): the before/after figure.

The page cache is warmed first, so both sides read from memory. Each measure runs once per
round (the baseline before each full load), the rounds are interleaved, and medians are
reported. Each measure is given in wall
seconds and in CPU seconds (this process and its children, from getrusage). Other people's
work on a shared machine inflates wall time. CPU time shows the work itself. The script prints
ratios and
asserts nothing about time.

Goals: (a) <= 5 % of the baseline; (b) >= 2x faster than the baseline.

    python benchmarks/bench_load.py [--slices 300] [--size 512] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom

from desktop_app.dicom.display import render
from desktop_app.phantoms.studies import write_ct_series
from desktop_app.studies import index as index_module
from desktop_app.studies.index import InstanceInfo, index_paths
from desktop_app.studies.indexcache import RACY_SECONDS, IndexCache
from desktop_app.studies.series import assemble
from desktop_app.studies.volume import SeriesVolume, instance_frame


def _cpu() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@contextlib.contextmanager
def _through_pydicom() -> Iterator[None]:
    """Index as before the fast path: every header parsed by pydicom."""
    saved = index_module.read_record
    index_module.read_record = index_module.read_record_with_pydicom
    try:
        yield
    finally:
        index_module.read_record = saved


def index_with_pydicom(folder: Path) -> Any:
    with _through_pydicom():
        return index_paths([folder], executor="serial")


def baseline(files: list[Path]) -> list[Any]:
    return [pydicom.dcmread(f).pixel_array for f in files]


def first_image(folder: Path) -> float:
    """Seconds until the first indexed file's image is rendered (the index keeps running)."""
    t0 = time.perf_counter()
    seen: list[float] = []

    def on_instance(inst: InstanceInfo) -> None:
        if not seen:
            render(instance_frame(inst))
            seen.append(time.perf_counter() - t0)

    index_paths([folder], on_instance=on_instance, executor="serial")
    return seen[0]


def middle_slice(folder: Path, executor: str, cache: IndexCache | None = None) -> Any:
    index = index_paths([folder], executor=executor, cache=cache)  # type: ignore[arg-type]
    ((_, _, series),) = list(index.iter_series())
    stack = assemble(series).stacks[0]
    volume = SeriesVolume(stack)
    return render(volume.frame(volume.middle()))


def cold_cache(folder: Path) -> IndexCache:
    """A cache as on the first open of a series: the key exists, the folder's file doesn't."""
    folder.mkdir(exist_ok=True)
    for f in folder.glob("*.json"):
        f.unlink()
    return IndexCache(folder)


def full_load(folder: Path, executor: str, workers: int) -> Any:
    index = index_paths([folder], executor=executor)  # type: ignore[arg-type]
    ((_, _, series),) = list(index.iter_series())
    stack = assemble(series).stacks[0]
    return SeriesVolume(stack).load_all(workers=workers)


SCENARIOS: dict[str, Callable[[Path], Any]] = {
    "baseline": lambda folder: baseline(sorted(folder.iterdir())),
    "full load": lambda folder: full_load(folder, "serial", 2),
    "middle slice": lambda folder: middle_slice(folder, "serial"),
}


def _memory_child(name: str, folder: Path) -> None:
    """Run one scenario in this fresh process; print the peak RSS growth in bytes."""
    few = sorted(folder.iterdir())[:2]
    baseline(few)  # imports and lazy module state, at the cost of two slices
    SeriesVolume(assemble(next(index_paths(few).iter_series())[2]).stacks[0]).load_all()
    gc.collect()
    before = _peak_rss_self()
    kept = SCENARIOS[name](folder)
    after = _peak_rss_self()
    del kept
    print(after - before)


def _peak_rss_self() -> int:
    """This process's peak RSS in bytes: VmHWM, which (unlike ru_maxrss) does not carry the
    parent's peak over a fork + exec; ru_maxrss where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _peak_rss(name: str, folder: Path) -> int:
    proc = subprocess.run(
        [sys.executable, __file__, "--memory-child", name, str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-child", nargs=2, metavar=("SCENARIO", "FOLDER"))
    args = parser.parse_args(argv)
    if args.memory_child:
        _memory_child(args.memory_child[0], Path(args.memory_child[1]))
        return 0

    with tempfile.TemporaryDirectory(prefix="radassist-bench-") as tmp:
        folder = Path(tmp) / "ct"
        t0 = time.perf_counter()
        series = write_ct_series(folder, 0, slices=args.slices, rows=args.size)
        files = sorted(series.paths)
        written = time.perf_counter() - t0
        written_at = time.time()
        for f in files:  # warm the page cache for both sides
            f.read_bytes()
        raw = args.slices * args.size * args.size * 2
        # Files changed in the last RACY_SECONDS are not cached (see indexcache): wait that out,
        # or the "warm" cache would hold nothing.
        time.sleep(max(0.0, RACY_SECONDS + 0.2 - (time.time() - written_at)))
        cache_dir = Path(tmp) / "index-cache"
        index_paths([folder], cache=cold_cache(cache_dir))  # the warm cases' cache file
        print(
            f"series: {len(files)} slices of {args.size}x{args.size} 16-bit, "
            f"{sum(f.stat().st_size for f in files) / 2**20:.0f} MiB on disk "
            f"(written in {written:.1f} s); cpus={os.cpu_count()}; python {sys.version.split()[0]}"
        )

        measures: dict[str, Callable[[], Any]] = {
            "baseline": lambda: baseline(files),
            "a2 serial": lambda: middle_slice(folder, "serial"),
            "a2 processes": lambda: middle_slice(folder, "processes"),
            "a2 cold cache": lambda: middle_slice(folder, "serial", cold_cache(cache_dir)),
            "a2 warm cache": lambda: middle_slice(folder, "serial", IndexCache(cache_dir)),
            "b serial 1": lambda: full_load(folder, "serial", 1),
            "b serial 2": lambda: full_load(folder, "serial", 2),
            "b processes 2": lambda: full_load(folder, "processes", 2),
            "index serial": lambda: index_paths([folder], executor="serial"),
            "index threads": lambda: index_paths([folder], executor="threads", workers=2),
            "index processes": lambda: index_paths([folder], executor="processes", workers=2),
            "index pydicom": lambda: index_with_pydicom(folder),
            "index warm cache": lambda: index_paths([folder], cache=IndexCache(cache_dir)),
        }
        wall: dict[str, list[float]] = {name: [] for name in [*measures, "a1"]}
        cpu: dict[str, list[float]] = {name: [] for name in measures}
        load_before = os.getloadavg()[0]
        # Each full load runs right after a baseline loop, and the full loads take turns at
        # going first: a fresh 150 MiB array sometimes costs ~0.1-0.3 s more CPU in the kernel
        # (transparent huge pages; see benchmarks/README.md), depending on what ran before.
        loads = ["b serial 1", "b serial 2", "b processes 2"]
        others = [m for m in measures if m not in loads and m != "baseline"]
        for round_ in range(args.repeat):
            wall["a1"].append(first_image(folder))
            turn = loads[round_ % 3 :] + loads[: round_ % 3]
            schedule = [step for load in turn for step in ("baseline", load)] + others
            for name in schedule:
                run = measures[name]
                gc.collect()
                w0, c0 = time.perf_counter(), _cpu()
                result = run()
                wall[name].append(time.perf_counter() - w0)
                cpu[name].append(_cpu() - c0)
                del result
        w = {name: statistics.median(v) for name, v in wall.items()}
        c = {name: statistics.median(v) for name, v in cpu.items()}
        print(
            f"1-min load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
            f"(other work on these cores inflates wall time); {args.repeat} rounds, medians"
        )
        print()
        rows = [
            ("baseline: [dcmread(f).pixel_array for f in files]", "baseline", "ref"),
            ("(a1) first image while the index runs", "a1", "frac"),
            ("(a2) middle slice, index serial", "a2 serial", "frac"),
            ("(a2) middle slice, index in 2 processes", "a2 processes", "frac"),
            ("(a2) middle slice, cache cold (first open)", "a2 cold cache", "frac"),
            ("(a2) middle slice, cache warm (reopen)", "a2 warm cache", "frac"),
            ("(b) full load, index serial, 1 read thread", "b serial 1", "speed"),
            ("(b) full load, index serial, 2 read threads", "b serial 2", "speed"),
            ("(b) full load, index 2 processes, 2 threads", "b processes 2", "speed"),
            ("    index only, serial", "index serial", "frac"),
            ("    index only, 2 threads", "index threads", "frac"),
            ("    index only, 2 processes", "index processes", "frac"),
            ("    index only, serial, every header via pydicom", "index pydicom", "frac"),
            ("    index only, warm cache", "index warm cache", "frac"),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"{'measure':<{width}}  {'wall s':>7}  {'cpu s':>6}  wall vs baseline (cpu vs)")
        for label, key, kind in rows:
            cpu_text = f"{c[key]:6.3f}" if key in c else f"{'-':>6}"
            if kind == "ref":
                ratio = "1 (reference)"
            elif kind == "speed":
                ratio = (
                    f"{w['baseline'] / w[key]:.2f}x faster ({c['baseline'] / c[key]:.2f}x)"
                    "  [goal >= 2x]"
                )
            else:
                cpu_ratio = f" ({c[key] / c['baseline']:.3f})" if key in c else ""
                goal = "  [goal <= 0.05]" if label.startswith("(a") else ""
                ratio = f"{w[key] / w['baseline']:.3f}{cpu_ratio}{goal}"
            print(f"{label:<{width}}  {w[key]:7.3f}  {cpu_text}  {ratio}")

        print()
        print(f"raw voxel bytes: {raw / 2**20:.1f} MiB; peak RSS growth of a fresh process:")
        for name in SCENARIOS:
            peak = _peak_rss(name, folder)
            print(f"(c) {name:<13} {peak / 2**20:7.1f} MiB = {peak / raw:.2f}x raw voxels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
