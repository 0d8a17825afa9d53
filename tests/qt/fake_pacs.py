"""A small in-process PACS for the dialog's fast tests: pynetdicom SCPs on 127.0.0.1.

``FakePacs`` answers C-ECHO, study-level C-FIND and C-GET from a few datasets built from
pydicom's test files (a real DICOM exchange over loopback, with RadAssist's real client), and
rejects a wrong called AE title. ``SilentPeer`` accepts TCP connections and never answers,
like a port that is not a DICOM service. The real-PACS round trip is against Orthanc
(``tests/qt/pacs_orthanc_scenario.py``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
AET = "FAKEPACS"


def _uid(*parts: str) -> str:
    return generate_uid(prefix=None, entropy_srcs=["radassist-qt-pacs", *parts])


def make_studies() -> list[dict[str, Any]]:
    """Two CT studies: one of 2 instances (one series), one of 3 (one series)."""
    studies = []
    plan = [
        ("A", "QT^Alpha", "QT-0001", "20240105", "CT chest", 2),
        ("B", "QT^Beta", "QT-0002", "20240320", "CT abdomen", 3),
    ]
    for tag, name, pid, date, desc, count in plan:
        study, series = _uid("study", tag), _uid("series", tag)
        instances = []
        for i in range(count):
            ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
            sop = _uid("sop", tag, str(i))
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.PatientName, ds.PatientID = name, pid
            ds.StudyDate, ds.StudyDescription = date, desc
            ds.AccessionNumber = f"ACC{tag}"
            ds.InstanceNumber = i + 1
            instances.append(ds)
        studies.append({"uid": study, "name": name, "id": pid, "instances": instances})
    return studies


def _matches(study: dict[str, Any], query: Dataset) -> bool:
    wanted_id = str(query.get("PatientID", "") or "")
    if wanted_id and wanted_id != study["id"]:
        return False
    wanted_name = str(query.get("PatientName", "") or "")
    return not wanted_name or study["name"].startswith(wanted_name.rstrip("*"))


class FakePacs:
    """Verification, Study Root FIND and GET SCPs on 127.0.0.1 (an ephemeral port)."""

    def __init__(self) -> None:
        self.studies = make_studies()
        self.find_requests = 0
        ae = AE(ae_title=AET)
        ae.require_called_aet = True
        ae.add_supported_context(Verification)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
        ae.add_supported_context(CTImageStorage, scu_role=True, scp_role=True)
        handlers = [(evt.EVT_C_FIND, self._on_find), (evt.EVT_C_GET, self._on_get)]
        self.server: Any = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        self.port = int(self.server.server_address[1])

    def _on_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        self.find_requests += 1
        query = event.identifier
        for study in self.studies:
            if not _matches(study, query):
                continue
            first = study["instances"][0]
            out = Dataset()
            out.QueryRetrieveLevel = "STUDY"
            out.StudyInstanceUID = study["uid"]
            out.PatientName = study["name"]
            out.PatientID = study["id"]
            out.StudyDate = first.StudyDate
            out.StudyDescription = first.StudyDescription
            out.AccessionNumber = first.AccessionNumber
            out.ModalitiesInStudy = "CT"
            out.SOPClassesInStudy = CTImageStorage
            out.NumberOfStudyRelatedSeries = "1"
            out.NumberOfStudyRelatedInstances = str(len(study["instances"]))
            yield 0xFF00, out

    def _on_get(self, event: Any) -> Iterator[int | tuple[int, Dataset | None]]:
        uid = str(event.identifier.StudyInstanceUID)
        instances = [ds for s in self.studies if s["uid"] == uid for ds in s["instances"]]
        yield len(instances)
        for ds in instances:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds

    def close(self) -> None:
        self.server.shutdown()


class SilentPeer:
    """Accepts TCP connections on 127.0.0.1 and never says a word until closed."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.conns.append(conn)
        self.accepted.set()

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()
        self._thread.join(5)


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
