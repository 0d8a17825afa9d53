"""desktop_app.infra.cpus: logical CPUs and physical cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_app.infra import cpus


def _cpuinfo(tmp_path: Path, cores: int, threads_per_core: int) -> Path:
    blocks = []
    n = 0
    for core in range(cores):
        for _ in range(threads_per_core):
            blocks.append(f"processor\t: {n}\nphysical id\t: 0\ncore id\t\t: {core}\n")
            n += 1
    path = tmp_path / "cpuinfo"
    path.write_text("\n".join(blocks) + "\n")
    return path


class TestPhysicalCores:
    @pytest.mark.parametrize(
        ("logical", "cores", "tpc", "expected"),
        [(8, 4, 2, 4), (2, 2, 1, 2), (4, 8, 2, 2), (1, 4, 2, 1)],
    )
    def test_physical_cores(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        logical: int,
        cores: int,
        tpc: int,
        expected: int,
    ) -> None:
        monkeypatch.setattr(cpus, "available_cpus", lambda: logical)
        assert cpus.physical_cores(_cpuinfo(tmp_path, cores, tpc)) == expected

    def test_without_cpuinfo_the_logical_count(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cpus, "available_cpus", lambda: 3)
        assert cpus.physical_cores(tmp_path / "missing") == 3


def test_available_cpus_is_at_least_one() -> None:
    assert cpus.available_cpus() >= 1
