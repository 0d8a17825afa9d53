"""`radassist predict` leaves one ``inference`` record per series in the audit trail: hashed
UIDs, the model's tensor hash, the device and timings, and nothing that names the patient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from desktop_app.cli import main
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.infra.userdirs import audit_log_path
from desktop_app.model.modelfile import read_manifest
from desktop_app.model.paths import resources_dir
from desktop_app.privacy.audit import AuditLog, verify
from desktop_app.studies.index import index_paths
from tests.helpers.engine import make_model_file

SAMPLE = resources_dir() / "sample" / "chest_xr" / "chest_pa.dcm"


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_each_run_is_recorded_without_patient_data(tmp_path: Path) -> None:
    model = make_model_file(tmp_path / "m.safetensors")
    args = ["predict", str(SAMPLE), "--model", str(model), "--backend", "torch", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a"), "--threads", "1"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--threads", "1"]) == 0

    records = [r for r in AuditLog().records() if r["kind"] == "inference"]
    assert len(records) == 2
    ((patient, study, series),) = list(index_paths([SAMPLE]).iter_series())
    for record in records:
        assert record["source"] == "predict"
        assert record["study_hash"] == uid_hash(study.study_instance_uid)
        assert record["series_hash"] == uid_hash(series.series_instance_uid)
        assert record["model_sha256"] == read_manifest(model).tensor_sha256
        assert record["device"] == "cpu"
        assert record["timings_ms"] and all(v >= 0 for v in record["timings_ms"].values())
    text = audit_log_path().read_text(encoding="utf-8")
    for secret in (study.study_instance_uid, series.series_instance_uid, patient.patient_id):
        assert secret and secret not in text
    assert verify().ok


def test_an_unwritable_trail_is_a_warning_and_the_findings_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the data folder should be")
    monkeypatch.setenv("RADASSIST_DATA_DIR", str(blocked / "data"))
    model = make_model_file(tmp_path / "m.safetensors")
    out = tmp_path / "out"
    code = main(
        ["predict", str(SAMPLE), "--model", str(model), "--backend", "torch", "--quiet",
         "--threads", "1", "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("no audit record written") == 1, err
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert json.loads((folder / "findings.json").read_text())["series"]
