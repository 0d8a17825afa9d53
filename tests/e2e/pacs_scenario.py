"""The client side of the Orthanc round trip, run inside the private network namespace.

Uses RadAssist's real PACS API (``desktop_app.pacs.dimse``) against the Orthanc that
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

from desktop_app.infra.errors import PacsError
from desktop_app.infra.hashedpaths import instance_relpath
from desktop_app.pacs.dimse import PacsClient, Timeouts
from desktop_app.pacs.nodes import LocalAE, PacsNode
from desktop_app.pacs.store import LocalStore
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
        # Orthanc answers with a rejection: SHORT's 2 s ACSE bound could read a loaded
        # machine's slow answer as silence ("did not answer") instead.
        return _failure(PacsClient(unknown, local, TIMEOUTS), limit)

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
    export_round_trip(client, workdir, results)
    results["storage_files"] = sum(
        1 for p in (workdir / "orthanc-storage").rglob("*") if p.is_file()
    )
    return results


# ---------------------------------------------------------------------- predict, export, send


SAMPLE_XR = (
    Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_xr" / "chest_pa.dcm"
)
XR_PATIENT_ID = "PH002024"  # the bundled synthetic phantom's made-up ID
XR_LABELS = ("nodule", "effusion", "cardiomegaly")


def _tiny_model(path: Path) -> Path:
    """A seeded random-init model file (64 px): the round trip tests plumbing, not accuracy.
    Its nodule threshold is 0 so that a positive finding (and a key image) always exists."""
    import torch

    from desktop_app.model import modelfile
    from desktop_app.model.networks import build_network

    torch.manual_seed(0)
    network = build_network("efficientnet-lite0", 3, pretrained=False, image_size=64).eval()
    manifest = modelfile.default_manifest(
        name="round trip model",
        architecture="efficientnet-lite0",
        labels=XR_LABELS,
        image_size=64,
        thresholds={"nodule": 0.0, "effusion": 1.0, "cardiomegaly": 1.0},
    )
    modelfile.save_model_file(path, network, manifest)
    return path


def export_round_trip(client: PacsClient, workdir: Path, results: dict[str, Any]) -> None:
    """Store the bundled sample study, find it, get it back, run the model on the retrieved
    file, export the SR and the secondary captures, C-STORE them, and find their series in
    the study (shared state between steps in ``state``)."""
    state: dict[str, Any] = {}

    def store() -> dict[str, Any]:
        sent = client.send([SAMPLE_XR])
        return {"sent": len(sent.sent), "failed": [why for _, why in sent.failed]}

    _step(results, "xr_store", store)

    def find() -> dict[str, Any]:
        [match] = client.find("STUDY", {"PatientID": XR_PATIENT_ID})
        state["study"] = match.get("StudyInstanceUID")
        source = pydicom.dcmread(SAMPLE_XR, stop_before_pixels=True)
        return {"found": state["study"], "expected": str(source.StudyInstanceUID)}

    _step(results, "xr_find", find)

    def get() -> dict[str, Any]:
        got = client.get(state["study"], store=LocalStore(workdir / "store-xr"))
        state["files"] = list(got.stored)
        return {"stored": len(got.stored), "status": got.status}

    _step(results, "xr_get", get)

    def predict() -> dict[str, Any]:
        from desktop_app.inference.engine import InferenceEngine

        started = time.monotonic()
        model = _tiny_model(workdir / "round-trip.safetensors")
        engine = InferenceEngine(model, device="cpu", backend="torch")
        [path] = state["files"]
        result = engine.run(path)
        state["result"] = result
        return {
            "positives": [f.label for f in result.positives],
            "located": [f.label for f in result.positives if f.box is not None],
            "sop": result.findings[0].sop_instance_uid,
            "expected_sop": str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID),
            "device": result.device,
            "model_and_run_s": round(time.monotonic() - started, 3),
        }

    _step(results, "xr_predict", predict)

    def export() -> dict[str, Any]:
        from desktop_app.exports import ExportRequest, export_study

        out = export_study(
            ExportRequest(
                study_paths=state["files"],
                out_dir=workdir / "exports",
                results=[state["result"]],
                formats=["sr", "sc"],
            )
        )
        state["exported"] = [out.sr, *out.sc]
        sr = pydicom.dcmread(out.sr)
        scs = [pydicom.dcmread(p) for p in out.sc]
        state["sr_series"] = str(sr.SeriesInstanceUID)
        state["sc_series"] = sorted({str(sc.SeriesInstanceUID) for sc in scs})
        return {
            "sr": 1 if out.sr else 0,
            "sc": len(out.sc),
            "study_uids": sorted({str(ds.StudyInstanceUID) for ds in [sr, *scs]}),
            "sr_evidence": str(
                sr.CurrentRequestedProcedureEvidenceSequence[0]
                .ReferencedSeriesSequence[0]
                .ReferencedSOPSequence[0]
                .ReferencedSOPInstanceUID
            ),
            "sc_sources": [str(sc.SourceImageSequence[0].ReferencedSOPInstanceUID) for sc in scs],
        }

    _step(results, "xr_export", export)

    def send_exports() -> dict[str, Any]:
        sent = client.send(state["exported"])
        return {"sent": len(sent.sent), "failed": [why for _, why in sent.failed]}

    _step(results, "xr_send_exports", send_exports)

    def find_series() -> dict[str, Any]:
        matches = client.find("SERIES", {"StudyInstanceUID": state["study"]})
        return {
            "series": sorted(
                (
                    m.get("Modality"),
                    m.get("SeriesInstanceUID"),
                    m.get("NumberOfSeriesRelatedInstances"),
                    m.get("SeriesDescription"),
                )
                for m in matches
            ),
            "sr_series": state["sr_series"],
            "sc_series": state["sc_series"],
        }

    _step(results, "xr_find_series", find_series)
