"""The client side of the Orthanc round trip, run inside the private network namespace.

Uses RadAssist's real PACS API (``desktop_app.core.pacs``) against the Orthanc that
``tests/e2e/orthanc.py`` started, and returns plain JSON data for the test to assert on. Each
step records what it saw (and any error as one line) rather than asserting, so that one
failing step does not hide the others.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

from desktop_app.core.errors import PacsError
from desktop_app.core.hashedpaths import instance_relpath
from desktop_app.core.pacs import PacsClient, Timeouts
from desktop_app.core.pacs_nodes import LocalAE, PacsNode
from desktop_app.core.pacs_store import LocalStore
from tests.e2e.orthanc import (
    CLIENT_AET,
    CLIENT_SCP_PORT,
    ORTHANC_AET,
    ORTHANC_DICOM_PORT,
    ORTHANC_HTTP_PORT,
)

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PATIENT_ID = "RA-E2E-0001"
PATIENT_NAME = "E2E^Round^Trip"
TIMEOUTS = Timeouts(connect=3, acse=5, dimse=20, network=30)
SHORT = Timeouts(connect=2, acse=2, dimse=5, network=5)


def _uid(*parts: str) -> str:
    return generate_uid(prefix=None, entropy_srcs=["radassist-e2e", *parts])


def make_study(folder: Path) -> dict[str, Any]:
    """Five instances in three series of one synthetic study, from pydicom's test files:
    3 CT (explicit little endian), 1 MR, 1 MR in JPEG 2000 lossless."""
    folder.mkdir(parents=True, exist_ok=True)
    study = _uid("study")
    plan = [
        ("CT_small.dcm", "ct", 3),
        ("MR_small.dcm", "mr", 1),
        ("MR_small_jp2klossless.dcm", "mrj2k", 1),
    ]
    files: dict[str, str] = {}
    series_uids: dict[str, str] = {}
    for number, (name, tag, count) in enumerate(plan, start=1):
        series = _uid("series", tag)
        series_uids[tag] = series
        for i in range(count):
            ds = pydicom.dcmread(TEST_FILES / name)
            sop = _uid("sop", tag, str(i))
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = series
            ds.SOPInstanceUID = sop
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.PatientID = PATIENT_ID
            ds.PatientName = PATIENT_NAME
            ds.SeriesNumber = number
            ds.InstanceNumber = i + 1
            ds.AccessionNumber = "E2E1"
            path = folder / f"{tag}{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files[sop] = str(path)
    return {"study": study, "series": series_uids, "files": files}


def _step(results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    start = time.monotonic()
    try:
        out = fn()
        out["ok"] = True
    except PacsError as err:
        out = {"ok": False, "error": err.one_line()}
    except Exception as err:
        out = {"ok": False, "error": f"{type(err).__name__}: {err}", "tb": traceback.format_exc()}
    out["elapsed_s"] = round(time.monotonic() - start, 3)
    results[name] = out


def _orthanc_statistics() -> dict[str, Any]:
    url = f"http://127.0.0.1:{ORTHANC_HTTP_PORT}/statistics"
    with urllib.request.urlopen(url, timeout=10) as rsp:
        data: dict[str, Any] = json.loads(rsp.read())
    return data


def _layout(store: LocalStore, paths: tuple[Path, ...]) -> dict[str, Any]:
    """Check every stored file sits where the hashed-UID layout says, and read it back."""
    placed = []
    sops = []
    for path in paths:
        ds = pydicom.dcmread(path)
        rel = instance_relpath(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        placed.append(path == store.root.joinpath(*rel.parts))
        sops.append(str(ds.SOPInstanceUID))
    return {"all_placed_by_hash": all(placed), "sops": sorted(sops)}


def _pixels_equal(study: dict[str, Any], paths: tuple[Path, ...]) -> bool:
    for path in paths:
        got = pydicom.dcmread(path)
        original = pydicom.dcmread(study["files"][str(got.SOPInstanceUID)])
        if got.PixelData != original.PixelData:
            return False
    return True


def _failure(client: PacsClient, limit_s: float) -> dict[str, Any]:
    """Run one failing C-ECHO in a thread; report its message and whether it returned."""
    box: dict[str, Any] = {}

    def attempt() -> None:
        start = time.monotonic()
        try:
            client.echo()
            box["error"] = None
        except PacsError as err:
            box["error"] = err.one_line()
        except Exception as err:
            box["error"] = f"UNEXPECTED {type(err).__name__}: {err}"
        box["seconds"] = round(time.monotonic() - start, 3)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(limit_s)
    return {"returned": not worker.is_alive(), **box}


def run_scenario(workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    study = make_study(workdir / "study")
    results["study"] = {"n_files": len(study["files"])}
    node = PacsNode("orthanc", ORTHANC_AET, "127.0.0.1", ORTHANC_DICOM_PORT)
    local = LocalAE(CLIENT_AET, CLIENT_SCP_PORT, "127.0.0.1")
    client = PacsClient(node, local, TIMEOUTS)

    _step(results, "echo", lambda: {"seconds": round(client.echo(), 4)})

    def send_study() -> dict[str, Any]:
        seen: list[tuple[int, int]] = []
        sent = client.send(
            sorted(study["files"].values()), progress=lambda d, t: seen.append((d, t))
        )
        return {
            "sent": len(sent.sent),
            "failed": [f"{p}: {why}" for p, why in sent.failed],
            "progress": seen,
            "orthanc_instances": _orthanc_statistics()["CountInstances"],
        }

    _step(results, "store", send_study)

    def find_patient() -> dict[str, Any]:
        matches = client.find("PATIENT", {"PatientID": PATIENT_ID})
        return {"matches": [m.values for m in matches]}

    _step(results, "find_patient", find_patient)

    def find_patient_wildcard() -> dict[str, Any]:
        matches = client.find("PATIENT", {"PatientName": "E2E*"})
        return {"ids": [m.get("PatientID") for m in matches]}

    _step(results, "find_patient_wildcard", find_patient_wildcard)

    def find_study() -> dict[str, Any]:
        matches = client.find("STUDY", {"PatientID": PATIENT_ID})
        return {"matches": [m.values for m in matches], "expected_study": study["study"]}

    _step(results, "find_study", find_study)

    def find_series() -> dict[str, Any]:
        matches = client.find("SERIES", {"StudyInstanceUID": study["study"]})
        return {
            "series": sorted(m.get("SeriesInstanceUID") for m in matches),
            "expected": sorted(study["series"].values()),
            "counts": sorted(m.get("NumberOfSeriesRelatedInstances") for m in matches),
        }

    _step(results, "find_series", find_series)

    def get_study() -> dict[str, Any]:
        store = LocalStore(workdir / "store-get")
        seen: list[tuple[int, int]] = []
        got = client.get(study["study"], store=store, progress=lambda d, t: seen.append((d, t)))
        return {
            "stored": len(got.stored),
            "completed": got.completed,
            "failed": got.failed,
            "status": got.status,
            "problems": list(got.problems),
            "progress": seen,
            "expected_sops": sorted(study["files"]),
            "pixels_equal": _pixels_equal(study, got.stored),
            "files_in_store": len(store.instances()),
            **_layout(store, got.stored),
        }

    _step(results, "get", get_study)

    def get_series() -> dict[str, Any]:
        store = LocalStore(workdir / "store-get-series")
        got = client.get(study["study"], study["series"]["ct"], store=store)
        return {"stored": len(got.stored), **_layout(store, got.stored)}

    _step(results, "get_series", get_series)

    def move_study() -> dict[str, Any]:
        store = LocalStore(workdir / "store-move")
        moved = PacsClient(
            PacsNode("orthanc-move", ORTHANC_AET, "127.0.0.1", ORTHANC_DICOM_PORT, "move"),
            local,
            TIMEOUTS,
        ).retrieve(study["study"], store=store)
        return {
            "stored": len(moved.stored),
            "completed": moved.completed,
            "status": moved.status,
            "problems": list(moved.problems),
            "expected_sops": sorted(study["files"]),
            "pixels_equal": _pixels_equal(study, moved.stored),
            **_layout(store, moved.stored),
        }

    _step(results, "move", move_study)

    def move_to_unknown_destination() -> dict[str, Any]:
        stranger = LocalAE("STRANGER", CLIENT_SCP_PORT + 1, "127.0.0.1")
        node = PacsNode("orthanc-move", ORTHANC_AET, "127.0.0.1", ORTHANC_DICOM_PORT, "move")
        moved = PacsClient(node, stranger, TIMEOUTS).move(
            study["study"], store=LocalStore(workdir / "store-stranger")
        )
        return {"stored": len(moved.stored), "status": moved.status}

    _step(results, "move_unknown_destination", move_to_unknown_destination)

    def get_with_stop() -> dict[str, Any]:
        store = LocalStore(workdir / "store-stop")
        stop = threading.Event()

        def progress(done: int, total: int) -> None:
            if done >= 1:
                stop.set()

        got = client.get(study["study"], store=store, progress=progress, stop=stop)
        return {"cancelled": got.cancelled, "stored": len(got.stored), "total": len(study["files"])}

    _step(results, "get_stop", get_with_stop)

    def send_back() -> dict[str, Any]:
        # A derived instance in a new series of the same study, as exports will send.
        source = pydicom.dcmread(sorted(study["files"].values())[0])
        source.SeriesInstanceUID = _uid("series", "returned")
        source.SOPInstanceUID = _uid("sop", "returned")
        source.file_meta.MediaStorageSOPInstanceUID = source.SOPInstanceUID
        source.SeriesDescription = "RadAssist returned"
        source.SeriesNumber = 99
        path = workdir / "returned.dcm"
        source.save_as(path, enforce_file_format=True)
        sent = client.send([path])
        series = client.find("SERIES", {"StudyInstanceUID": study["study"]})
        return {
            "sent": len(sent.sent),
            "failed": [why for _, why in sent.failed],
            "n_series": len(series),
            "found_returned": any(
                m.get("SeriesInstanceUID") == source.SeriesInstanceUID for m in series
            ),
            "orthanc_instances": _orthanc_statistics()["CountInstances"],
        }

    _step(results, "send_back", send_back)

    def send_unreadable() -> dict[str, Any]:
        bad = workdir / "not-dicom.dcm"
        bad.write_bytes(b"definitely not DICOM")
        sent = client.send([bad])
        return {"sent": len(sent.sent), "failed": [why for _, why in sent.failed]}

    _step(results, "send_unreadable", send_unreadable)

    # ----------------------------------------------------------------- failures
    limit = (SHORT.connect + SHORT.acse) * 3 + 5

    def refused() -> dict[str, Any]:
        wrong_port = PacsNode("closed", ORTHANC_AET, "127.0.0.1", ORTHANC_DICOM_PORT + 1)
        return _failure(PacsClient(wrong_port, local, SHORT), limit)

    _step(results, "fail_refused", refused)

    def rejected() -> dict[str, Any]:
        unknown = PacsNode("wrong-aet", "NOT_ORTHANC", "127.0.0.1", ORTHANC_DICOM_PORT)
        return _failure(PacsClient(unknown, local, SHORT), limit)

    _step(results, "fail_rejected", rejected)

    def silent() -> dict[str, Any]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)  # accepts TCP connections in the kernel, never answers
            port = listener.getsockname()[1]
            node = PacsNode("silent", "SILENT", "127.0.0.1", port)
            return _failure(PacsClient(node, local, SHORT), limit) | {"acse_timeout": SHORT.acse}

    _step(results, "fail_silent", silent)

    def unknown_study() -> dict[str, Any]:
        got = client.get("1.2.3.4.5.6.7.8.9", store=LocalStore(workdir / "store-none"))
        return {"stored": len(got.stored), "status": got.status}

    _step(results, "get_unknown_study", unknown_study)
    results["storage_files"] = sum(
        1 for p in (workdir / "orthanc-storage").rglob("*") if p.is_file()
    )
    return results
