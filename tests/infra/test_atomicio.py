"""Atomic writes: the target holds the old or the new content, and killed writers' temporary
files are recognised by name (and only theirs) for clean-up."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from desktop_app.infra.atomicio import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    remove_temp_files,
    temp_target_name,
)


class TestAtomicWrite:
    def test_replaces_and_leaves_nothing_behind(self, tmp_path: Path) -> None:
        target = tmp_path / "sub" / "a.json"
        atomic_write_json(target, {"v": 1})
        atomic_write_json(target, {"v": 2}, mode=0o600)
        assert target.read_text() == '{\n  "v": 2\n}\n'
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert os.listdir(target.parent) == ["a.json"]

    def test_a_failed_write_keeps_the_old_content(self, tmp_path: Path) -> None:
        target = atomic_write_bytes(tmp_path / "a.bin", b"old")
        with pytest.raises(RuntimeError, match="writer failed"), atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
        assert target.read_bytes() == b"old"
        assert os.listdir(tmp_path) == ["a.bin"]


class TestTempFiles:
    def test_the_temporary_name_is_recognised(self, tmp_path: Path) -> None:
        with atomic_path(tmp_path / "review.json") as tmp:
            assert temp_target_name(tmp.name) == "review.json"

    @pytest.mark.parametrize(
        ("name", "target"),
        [
            (".a.json.k3x_9a0q.tmp", "a.json"),
            (".x.y.z.00000000.tmp", "x.y.z"),
            (".a.json.k3x_9a0.tmp", None),  # 7 random characters
            (".a.json.K3X_9A0Q.tmp", None),  # mkstemp's alphabet is lower case
            ("a.json.k3x_9a0q.tmp", None),  # no leading dot
            (".a.json.k3x_9a0q.tmp.bak", None),
            ("notes.tmp", None),
        ],
    )
    def test_names(self, name: str, target: str | None) -> None:
        assert temp_target_name(name) == target

    def test_remove_only_owned_temporary_files(self, tmp_path: Path) -> None:
        for name in [".a.json.aaaaaaaa.tmp", ".b.json.bbbbbbbb.tmp", "a.json", "c.tmp"]:
            (tmp_path / name).write_text("x")
        (tmp_path / ".d.json.dddddddd.tmp").mkdir()
        (tmp_path / ".e.json.eeeeeeee.tmp").symlink_to(tmp_path / "a.json")
        removed = remove_temp_files(tmp_path, owned=lambda target: target != "b.json")
        assert [p.name for p in removed] == [".a.json.aaaaaaaa.tmp"]
        assert sorted(os.listdir(tmp_path)) == [
            ".b.json.bbbbbbbb.tmp",
            ".d.json.dddddddd.tmp",
            ".e.json.eeeeeeee.tmp",
            "a.json",
            "c.tmp",
        ]
