"""The audit trail: hash chain, head file, refused fields, concurrent appenders, CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from desktop_app.cli import main
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.privacy.audit import (
    GENESIS,
    AuditLog,
    AuditLogError,
    record_hash,
    record_inference,
    record_review,
    verify,
)

ROOT = Path(__file__).resolve().parents[2]
STUDY = "1.2.826.0.1.3680043.8.498.1"


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(5):
        record_review(log, study_uid=STUDY, label=f"finding{i}", verdict="accept", reviewer="Dr A")
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(lines), encoding="utf-8")


class TestAppend:
    def test_records_chain_from_genesis(self, audit: AuditLog) -> None:
        lines = _lines(audit)
        records = [json.loads(line) for line in lines]
        assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
        assert records[0]["prev"] == GENESIS
        for before, after in zip(lines, records[1:]):
            assert after["prev"] == record_hash(before)
        assert all(r["time"].endswith("Z") for r in records)

    def test_review_record_hashes_the_study_uid(self, audit: AuditLog) -> None:
        text = audit.path.read_text(encoding="utf-8")
        assert STUDY not in text
        assert json.loads(_lines(audit)[0])["study_hash"] == uid_hash(STUDY)

    def test_inference_record(self, tmp_path: Path) -> None:
        log = AuditLog(tmp_path / "a.jsonl")
        rec = record_inference(
            log,
            study_uid=STUDY,
            series_uid=STUDY + ".2",
            model_sha256="ab" * 32,
            device="cpu",
            timings_ms={"preprocess": 1.23456, "network": 10},
        )
        assert rec["kind"] == "inference"
        assert rec["series_hash"] == uid_hash(STUDY + ".2")
        assert rec["timings_ms"] == {"preprocess": 1.235, "network": 10.0}
        assert verify(log.path).ok

    def test_empty_log_verifies(self, tmp_path: Path) -> None:
        result = verify(tmp_path / "none.jsonl")
        assert (result.ok, result.n_records) == (True, 0)

    @pytest.mark.parametrize(
        ("fields", "match"),
        [
            ({"patient_name": "Doe^J"}, "looks like a patient identifier"),
            ({"PatientID": "123"}, "is not allowed"),
            ({"patient_id": "123"}, "looks like a patient identifier"),
            ({"birth_date": "19700101"}, "looks like a patient identifier"),
            ({"patient_birth_date": "19700101"}, "looks like a patient identifier"),
            ({"mrn": "123"}, "looks like a patient identifier"),
            ({"accession_number": "A1"}, "looks like a patient identifier"),
            ({"extra": {"patient_name": "x"}}, "holds a key 'patient_name'"),
            ({"study_uid": STUDY}, "holds a raw UID"),
            ({"seq": 3}, "is reserved"),
            ({"value": float("nan")}, "is not plain JSON data"),
            ({"value": object()}, "is not plain JSON data"),
        ],
    )
    def test_refused_fields(self, tmp_path: Path, fields: dict[str, object], match: str) -> None:
        log = AuditLog(tmp_path / "a.jsonl")
        with pytest.raises(AuditLogError, match=match):
            log.append("review", **fields)
        assert not log.path.exists()

    def test_bad_kind_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(AuditLogError, match="record kind 'Bad Kind' is not allowed"):
            AuditLog(tmp_path / "a.jsonl").append("Bad Kind")

    def test_append_refuses_a_truncated_log(self, audit: AuditLog) -> None:
        _write(audit, _lines(audit)[:3])
        with pytest.raises(AuditLogError, match="ends at record 3 but its head says 5"):
            audit.append("review", label="x")

    def test_append_refuses_an_incomplete_last_line(self, audit: AuditLog) -> None:
        lines = _lines(audit)
        _write(audit, [*lines[:-1], lines[-1][:20]])
        with pytest.raises(AuditLogError, match="last line is incomplete"):
            audit.append("review", label="x")


def _edit_middle(lines: list[str]) -> list[str]:
    lines[2] = lines[2].replace('"accept"', '"reject"')
    return lines


def _edit_first(lines: list[str]) -> list[str]:
    lines[0] = lines[0].replace("Dr A", "Dr B")
    return lines


def _edit_last(lines: list[str]) -> list[str]:
    lines[4] = lines[4].replace("finding4", "finding9")
    return lines


def _reserialise_last(lines: list[str]) -> list[str]:
    lines[4] = json.dumps(json.loads(lines[4]), indent=1).replace("\n", " ") + "\n"
    return lines


def _remove_middle(lines: list[str]) -> list[str]:
    del lines[2]
    return lines


def _remove_first(lines: list[str]) -> list[str]:
    del lines[0]
    return lines


def _remove_last(lines: list[str]) -> list[str]:
    return lines[:-1]


def _remove_last_two(lines: list[str]) -> list[str]:
    return lines[:-2]


def _truncate_mid_line(lines: list[str]) -> list[str]:
    return [*lines[:-1], lines[-1][:30]]


def _swap(lines: list[str]) -> list[str]:
    lines[1], lines[2] = lines[2], lines[1]
    return lines


def _duplicate(lines: list[str]) -> list[str]:
    lines.insert(3, lines[2])
    return lines


def _forge_inserted(lines: list[str]) -> list[str]:
    # A forged record that claims the right number and chains correctly to its predecessor:
    # the record after it no longer chains.
    forged = json.loads(lines[1])
    forged.update(seq=3, prev=record_hash(lines[1]), verdict="reject")
    text = json.dumps(forged, sort_keys=True, separators=(",", ":")) + "\n"
    renumbered = []
    for line in lines[2:]:
        rec = json.loads(line)
        rec["seq"] += 1
        renumbered.append(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
    return [*lines[:2], text, *renumbered]


def _garbage_line(lines: list[str]) -> list[str]:
    lines[3] = "not json at all\n"
    return lines


@pytest.mark.parametrize(
    ("tamper", "bad_line", "reason"),
    [
        (_edit_middle, 3, r"^edited: line 4 no longer chains to it"),
        (_edit_first, 1, r"^edited: line 2 no longer chains"),
        (_edit_last, 5, r"does not match the head \(edited\)"),
        (_reserialise_last, 5, r"does not match the head \(edited\)"),
        (_remove_middle, 3, r"record 4 follows record 2 \(records removed\)"),
        (_remove_first, 1, r"record 2 follows record 0 \(records removed\)"),
        (_remove_last, 5, r"ends at record 4 but its head says 5 \(records removed\)"),
        (_remove_last_two, 4, r"ends at record 3 but its head says 5"),
        (_truncate_mid_line, 5, r"last line is incomplete \(truncated\)"),
        (_swap, 2, r"record 3 comes before record 2 \(reordered\)"),
        (_duplicate, 4, r"record 3 appears again at line 4 \(a record was inserted or dup"),
        (_forge_inserted, 3, r"^edited: line 4 no longer chains"),
        (_garbage_line, 4, r"not a valid audit record"),
    ],
)
def test_verify_detects_tampering(
    audit: AuditLog, tamper: Callable[[list[str]], list[str]], bad_line: int, reason: str
) -> None:
    assert verify(audit.path).ok
    _write(audit, tamper(_lines(audit)))
    result = verify(audit.path)
    assert not result.ok
    assert result.first_bad_line == bad_line
    assert re.search(reason, result.reason), result.reason


def test_missing_head_is_reported(audit: AuditLog) -> None:
    audit.head_path.unlink()
    result = verify(audit.path)
    assert not result.ok
    assert "head file is missing" in result.reason


def test_removed_log_with_head_is_reported(audit: AuditLog) -> None:
    audit.path.unlink()
    result = verify(audit.path)
    assert (result.ok, result.first_bad_line) == (False, 1)
    assert "log is missing but its head says 5 records" in result.reason


def test_head_lagging_by_one_record_is_accepted(audit: AuditLog) -> None:
    # A crash between appending a line and rewriting the head leaves the head one behind.
    lines = _lines(audit)
    audit.head_path.write_text(json.dumps({"seq": 4, "hash": record_hash(lines[3])}))
    assert verify(audit.path).ok


def test_concurrent_appenders_do_not_interleave(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    script = textwrap.dedent(
        f"""
        import sys
        from desktop_app.privacy.audit import AuditLog
        log = AuditLog({str(path)!r})
        for i in range(60):
            log.append("review", label=sys.argv[1] + str(i), verdict="accept", reviewer="x" * 300)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, name], cwd=ROOT) for name in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    result = verify(path)
    assert (result.ok, result.n_records) == (True, 120), result.reason
    labels = [r["label"] for r in AuditLog(path).records()]
    assert sorted(labels) == sorted([f"{n}{i}" for n in "ab" for i in range(60)])


class TestCli:
    def test_verify_ok(self, audit: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["audit", "verify", "--path", str(audit.path)]) == 0
        assert capsys.readouterr().out.startswith("OK: 5 records, head ")

    def test_verify_bad(self, audit: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
        _write(audit, _edit_middle(_lines(audit)))
        assert main(["audit", "verify", "--path", str(audit.path)]) == 1
        out = capsys.readouterr().out
        assert out == (
            f"{audit.path}: line 3: edited: line 4 no longer chains to it (or a "
            "record was removed, inserted or replaced between lines 3 and 4)\n"
        )

    def test_verify_uses_the_data_dir(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("RADASSIST_DATA_DIR", str(tmp_path / "data"))
        AuditLog().append("review", label="x")
        assert (tmp_path / "data" / "audit.jsonl").exists()
        assert main(["audit", "verify"]) == 0
        assert "OK: 1 records" in capsys.readouterr().out

    def test_show_tail(self, audit: AuditLog, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["audit", "show", "--path", str(audit.path), "--tail", "2"]) == 0
        shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["seq"] for r in shown] == [4, 5]

    def test_show_corrupt_log_is_one_line(
        self, audit: AuditLog, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _write(audit, _garbage_line(_lines(audit)))
        assert main(["audit", "show", "--path", str(audit.path)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "line 4 is not a valid audit record" in err

    def test_usage_error_exits_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exc:
            main(["audit", "show", "--tail", "-3"])
        assert exc.value.code == 2
        assert "-3 should be 0 or more" in capsys.readouterr().err
