"""A hostile PACS (tests/helpers/hostile_pacs.py) against the real client, store and CLI:
instances of other studies, other series and with invalid UIDs are refused and counted; the
success message names the folder that holds the files; `pacs find` prints one line per match
with every control character escaped; nothing of pydicom's reaches the terminal (issue 12).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_app.infra.errors import PacsError
from desktop_app.infra.safetext import is_safe
from desktop_app.pacs.dimse import PacsClient, Timeouts
from desktop_app.pacs.nodes import LocalAE, NodeConfig, PacsNode
from desktop_app.pacs.requests import (
    MAX_VALUE_CHARS,
    as_text,
    retrieve_identifier,
    valid_uid,
)
from desktop_app.pacs.store import LocalStore, refusal_text
from tests.helpers.hostile_pacs import (
    AET,
    CONTROL_BYTES,
    INVALID_UIDS,
    N_OTHER_SERIES,
    N_OTHER_STUDIES,
    N_OWN,
    SERIES,
    STUDY,
    HostilePacs,
    find_match,
)

FAST = Timeouts(connect=5, acse=5, dimse=20, network=20)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def peer() -> Iterator[HostilePacs]:
    server = HostilePacs()
    yield server
    server.close()


def _client(peer: HostilePacs, local: LocalAE | None = None) -> PacsClient:
    return PacsClient(PacsNode("evil", AET, "127.0.0.1", peer.port), local, timeouts=FAST)


class TestValidUid:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("1.2.840.10008.1.2", "1.2.840.10008.1.2"),
            ("1.2.3\x00", "1.2.3"),  # NUL padding (PS3.5 6.2) is not part of the UID
            ("0.1.0", "0.1.0"),
            ("1.02.3", ""),  # a leading zero
            ("1.2.", ""),
            ("../../etc", ""),
            ("1.2.3\x00../x", ""),
            ("1" * 65, ""),
            ("1.2.a", ""),
            ("", ""),
        ],
    )
    def test_valid_uid(self, value: str, expected: str) -> None:
        assert valid_uid(value) == expected

    def test_invalid_request_is_refused_in_one_escaped_line(self) -> None:
        with pytest.raises(PacsError, match=r"StudyInstanceUID '1\.2\\e\[31m' is not a valid UID"):
            retrieve_identifier("1.2\x1b[31m", None)
        with pytest.raises(PacsError, match=r"SeriesInstanceUID '1\.02' is not a valid UID"):
            retrieve_identifier("1.2", "1.02")


class TestFindValues:
    def test_values_are_cut(self) -> None:
        values = as_text(find_match(0), ["StudyDescription", "PatientName"])
        assert len(values["StudyDescription"]) == MAX_VALUE_CHARS
        assert values["StudyDescription"].endswith("…")
        assert "\x1b" in values["PatientName"]  # kept: escaped where shown, not here


class TestRetrieveFromHostilePeer:
    def test_get_refuses_other_studies(self, peer: HostilePacs, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "store")
        result = _client(peer).get(STUDY, store=store)
        assert len(result.stored) == N_OWN + N_OTHER_SERIES
        assert result.refused == {"other_study": N_OTHER_STUDIES, "invalid_uid": len(INVALID_UIDS)}
        assert result.problems == (
            "6 instances of other studies were refused",
            "3 instances with an invalid UID (PS3.5 9.1) were refused",
        )
        # Nothing of another study reached the disk; the folder named is the one with the files.
        assert [p.name for p in store.root.iterdir()] == [store.study_folder(STUDY).name]
        assert result.folder == store.study_folder(STUDY)
        assert sorted(store.instances(STUDY)) == sorted(result.stored)

    def test_series_request_refuses_other_series(self, peer: HostilePacs, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "store")
        result = _client(peer).get(STUDY, SERIES, store=store)
        assert len(result.stored) == N_OWN
        assert result.refused["other_series"] == N_OTHER_SERIES
        assert "1 instance of another series was refused" in result.problems
        assert result.folder == store.series_folder(STUDY, SERIES)
        assert all(p.parent == result.folder for p in result.stored)

    def test_move_refuses_other_studies(self, tmp_path: Path) -> None:
        from tests.qt.fake_pacs import free_port

        port = free_port()
        server = HostilePacs(move_destination=("127.0.0.1", port))
        try:
            local = LocalAE("RADASSIST", port, "127.0.0.1")
            store = LocalStore(tmp_path / "store")
            result = _client(server, local).move(STUDY, store=store)
        finally:
            server.close()
        assert len(result.stored) == N_OWN + N_OTHER_SERIES
        assert result.refused["other_study"] == N_OTHER_STUDIES
        assert [p.name for p in store.root.iterdir()] == [store.study_folder(STUDY).name]

    @pytest.mark.parametrize(
        ("reason", "count", "text"),
        [
            ("other_study", 1, "1 instance of another study was refused"),
            ("other_study", 6, "6 instances of other studies were refused"),
            ("other_series", 2, "2 instances of other series were refused"),
        ],
    )
    def test_refusal_text(self, reason: str, count: int, text: str) -> None:
        assert refusal_text(reason, count) == text


# ---------------------------------------------------------------------- the CLI, as a user runs it


def _radassist(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`radassist --config CONFIG pacs ...` in a child process: its real stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "desktop_app", "pacs", "--config", str(config), *argv],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="backslashreplace",
        timeout=240,  # a bound against a hang, not a benchmark
        cwd=ROOT,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Iterator[tuple[Path, HostilePacs]]:
    server = HostilePacs(matches=300)
    path = tmp_path / "pacs.json"
    nodes = NodeConfig(path)
    nodes.add(PacsNode("evil", AET, "127.0.0.1", server.port))
    nodes.save()
    yield path, server
    server.close()


def _assert_clean(text: str) -> None:
    for line in text.splitlines():
        assert is_safe(line.replace("\t", " ")), repr(line)
    assert "Traceback" not in text
    assert "pydicom" not in text and "Warning" not in text and "WARNING" not in text


class TestCli:
    def test_find_prints_one_escaped_line_per_match(self, config: tuple[Path, HostilePacs]) -> None:
        path, _ = config
        done = _radassist(path, "find", "evil")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.split("\n")
        assert lines[-1] == ""
        assert len(lines[:-1]) == 1 + 300  # the header, then exactly one line per match
        _assert_clean(done.stdout + done.stderr)
        assert done.stderr == "300 study match(es)\n"
        cells = lines[1].split("\t")
        assert len(cells) == 7
        assert cells[2].startswith("Doe^\\e[31mRed\\e]0;pwned\\x07\\nforged line\\r\\x00")
        assert max(len(c) for c in cells) <= 120
        for ch in CONTROL_BYTES:
            assert ch not in done.stdout

    def test_find_json_is_ascii(self, config: tuple[Path, HostilePacs]) -> None:
        path, _ = config
        done = _radassist(path, "find", "evil", "--json")
        assert done.returncode == 0, done.stderr
        assert done.stdout.isascii()
        found = json.loads(done.stdout)
        assert len(found) == 300
        assert found[0]["PatientName"].startswith("Doe^\x1b[31m")  # the data, as JSON escapes

    def test_get_refuses_and_names_the_real_folder(
        self, config: tuple[Path, HostilePacs], tmp_path: Path
    ) -> None:
        path, _ = config
        store = LocalStore(tmp_path / "store")
        done = _radassist(path, "get", "evil", "--study", STUDY, "--store", str(store.root))
        assert done.returncode == 1  # something was refused
        _assert_clean(done.stdout + done.stderr)
        folder = store.study_folder(STUDY)
        assert (
            done.stdout
            == f"retrieved {N_OWN + N_OTHER_SERIES} instances with C-GET into {folder}\n"
        )
        assert len(store.instances(STUDY)) == N_OWN + N_OTHER_SERIES
        assert done.stderr.splitlines() == [
            "radassist pacs get: 6 instances of other studies were refused",
            "radassist pacs get: 3 instances with an invalid UID (PS3.5 9.1) were refused",
        ]

    def test_get_with_an_invalid_uid_is_one_line(
        self, config: tuple[Path, HostilePacs], tmp_path: Path
    ) -> None:
        path, _ = config
        done = _radassist(path, "get", "evil", "--study", "1.2.3\x1b]0;x\x07")
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1
        assert "StudyInstanceUID '1.2.3\\e]0;x\\x07' is not a valid UID" in done.stderr
