"""Control characters from files never reach the terminal: `inspect`'s tree and problem lines
escape every value from a file, and every command's stdout/stderr pass through the escaping
guard (infra.safetext.EscapingStream) while it runs (issue 12, "Safe text")."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom import config

from desktop_app.cli import main
from desktop_app.infra.safetext import EscapingStream, escaping_std_streams, is_safe

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
EVIL = "Doe^\x1b[31mRed\x1b]0;pwned\x07\nforged\r\x00\x9b2J\u202eevil"


def _evil_file(folder: Path) -> Path:
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    with config.disable_value_validation():
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = EVIL
        ds.PatientID = "ID\x1b[2J\n42"
        ds.StudyDescription = "\u202e" + "S" * 500
        ds.SeriesDescription = "series\x1b]8;;http://evil\x07link"
        ds.Modality = "C\x1bT"
    path = folder / "evil.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _printable(text: str) -> bool:
    return all(is_safe(line.replace("\t", " ")) for line in text.split("\n"))


class TestEscapingStream:
    @pytest.mark.parametrize(
        ("written", "shown"),
        [
            ("plain\n", "plain\n"),
            ("a\tb\r\n", "a\tb\r\n"),  # ours: TSV tabs, a progress bar's carriage return
            ("\x1b[31mred", "\\e[31mred"),
            ("\x1b]0;title\x07", "\\e]0;title\\x07"),
            ("nul\x00", "nul\\x00"),
            ("\x9b2J", "\\x9b2J"),
            ("\u202eevil", "\\u202eevil"),
        ],
    )
    def test_write(self, written: str, shown: str) -> None:
        out = io.StringIO()
        stream = EscapingStream(out)
        assert stream.write(written) == len(written)
        assert out.getvalue() == shown

    def test_streams_are_put_back(self) -> None:
        before = sys.stdout, sys.stderr
        with escaping_std_streams():
            assert isinstance(sys.stdout, EscapingStream)
            assert isinstance(sys.stderr, EscapingStream)
        assert (sys.stdout, sys.stderr) == before


class TestInspect:
    def test_tree_escapes_every_value(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = _evil_file(tmp_path)
        assert main(["inspect", str(path), "--workers", "1"]) == 0
        out, err = capsys.readouterr()
        assert _printable(out) and _printable(err)
        lines = out.splitlines()
        # (the index itself turns line breaks in names into spaces)
        assert lines[0] == (
            "Patient Doe^\\e[31mRed\\e]0;pwned\\x07 forged \\x00\\x9b2J\\u202eevil [ID ID\\e[2J 42]"
        )
        assert len(lines) == 4  # patient, study, series, stack: no forged line
        assert "\\u202eSSS" in lines[1] and "…" in lines[1]  # cut
        assert "series\\e]8;;http://evil\\x07link" in lines[2]

    def test_json_escapes_as_json(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = _evil_file(tmp_path)
        assert main(["inspect", str(path), "--json", "--workers", "1"]) == 0
        out = capsys.readouterr().out
        assert out.isascii()
        report = json.loads(out)
        assert report["patients"][0]["name"].startswith("Doe^\x1b[31mRed")  # the data, intact

    def test_problem_line_escapes_the_path(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        bad = tmp_path / "bad\x1b[31m\nname.dcm"
        bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
        assert main(["inspect", str(bad), "--workers", "1"]) == 1
        out, err = capsys.readouterr()
        assert _printable(out) and _printable(err)
        problems = [line for line in err.splitlines() if not line.startswith("inspect:")]
        assert len(problems) == 1
        assert problems[0].startswith(f"{tmp_path}/bad\\e[31m\\nname.dcm: ")
