"""How many CPUs this process may use: logical (affinity mask) and physical cores, without torch."""

from __future__ import annotations

import os
from pathlib import Path


def available_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def physical_cores(cpuinfo: str | Path = "/proc/cpuinfo") -> int:
    """Physical cores available to this process: logical CPUs divided by the hyper-threads per
    core that ``/proc/cpuinfo`` reports (Linux), else the logical count."""
    logical = available_cpus()
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return logical
    cores: set[tuple[str, str]] = set()
    physical = core = None
    processors = 0
    for line in [*text.splitlines(), ""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            processors += 1
        elif key == "physical id":
            physical = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():
            if physical is not None and core is not None:
                cores.add((physical, core))
            physical = core = None
    if not cores or processors == 0:
        return logical
    threads_per_core = max(1, round(processors / len(cores)))
    return max(1, logical // threads_per_core)
