"""A hostile PACS on 127.0.0.1 (pynetdicom SCPs in-process): it answers C-FIND with control
characters, bidi overrides and overlong values in every text it returns, and answers a C-GET
or C-MOVE of one study with instances of other studies, of another series and with invalid
UIDs beside the ones asked for. Used by the PACS, CLI and dialog tests of issue 12.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
from pydicom import config
from pydicom.dataset import Dataset
from pynetdicom import AE, evt

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
AET = "EVILPACS"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

STUDY = "1.2.826.0.1.3680043.8.498.12.1"
SERIES = STUDY + ".1"
OTHER_SERIES = STUDY + ".2"
# What a terminal must never receive raw: ESC/CSI colour, an OSC title change ended by BEL,
# a forged second line, a carriage return, NUL, a C1 CSI and a right-to-left override.
EVIL_TEXT = "Doe^\x1b[31mRed\x1b]0;pwned\x07\nforged line\r\x00\x9b2J\u202eevil"
CONTROL_BYTES = ("\x1b", "\x07", "\x00", "\x9b", "\u202e", "\r")
LONG_TEXT = "A" * 6000

# What the C-GET / C-MOVE sends besides the study's own instances.
N_OWN = 3  # of STUDY, series SERIES
N_OTHER_STUDIES = 6  # one instance of each of 6 other studies
N_OTHER_SERIES = 1  # of STUDY, series OTHER_SERIES
INVALID_UIDS = ("1.2.3\x00../../etc", "1.02.3", "9" * 65)  # each in StudyInstanceUID


def ct_instance(study: str, series: str, sop: str) -> Dataset:
    """pydicom's CT_small.dcm with these UIDs, set without pydicom's value validation (which
    would warn about the invalid ones: a hostile peer does not validate)."""
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    with config.disable_value_validation():
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = EVIL_TEXT
    return ds


def retrieve_answer(study: str) -> list[Dataset]:
    """Everything the peer sends for a retrieve of ``study``: the study's own instances first."""
    own = [ct_instance(study, SERIES, f"{SERIES}.{i}") for i in range(N_OWN)]
    others = [
        ct_instance(f"1.2.826.0.1.3680043.8.498.66.{i}", f"1.2.826.0.1.3680043.8.498.66.{i}.1",
                    f"1.2.826.0.1.3680043.8.498.66.{i}.1.1")
        for i in range(N_OTHER_STUDIES)
    ]  # fmt: skip
    series = [
        ct_instance(study, OTHER_SERIES, f"{OTHER_SERIES}.{i}") for i in range(N_OTHER_SERIES)
    ]
    invalid = [ct_instance(bad, SERIES, f"{SERIES}.9{i}") for i, bad in enumerate(INVALID_UIDS)]
    return own + others + series + invalid


def find_match(i: int) -> Dataset:
    """A study-level match whose every text value is hostile (the UID is valid)."""
    out = Dataset()
    with config.disable_value_validation():
        out.SpecificCharacterSet = "ISO_IR 192"
        out.QueryRetrieveLevel = "STUDY"
        out.StudyInstanceUID = f"{STUDY}.{i}" if i else STUDY
        out.PatientName = EVIL_TEXT
        out.PatientID = "ID\x1b[2J\n42"
        out.StudyDate = "2024\x1b[0m0101"
        out.StudyDescription = f"\u202e{LONG_TEXT}\n{EVIL_TEXT}"
        out.AccessionNumber = "\x00ACC\r"
        out.ModalitiesInStudy = ["CT", "\x1b]8;;http://evil\x07MR"]
        out.NumberOfStudyRelatedSeries = "1"
        out.NumberOfStudyRelatedInstances = str(N_OWN)
    return out


class HostilePacs:
    """Verification, Study Root FIND, GET and MOVE SCPs on 127.0.0.1 (an ephemeral port).

    ``matches``: how many C-FIND matches a study query gets. A C-MOVE sends to
    ``move_destination`` (host, port), whatever AE title is asked for.
    """

    def __init__(self, matches: int = 3, move_destination: tuple[str, int] | None = None):
        self.matches = matches
        self.move_destination = move_destination
        ae = AE(ae_title=AET)
        for uid in (VERIFICATION, STUDY_ROOT_FIND, STUDY_ROOT_GET, STUDY_ROOT_MOVE):
            ae.add_supported_context(uid)
        ae.add_supported_context(CT_IMAGE_STORAGE, scu_role=True, scp_role=True)
        ae.add_requested_context(CT_IMAGE_STORAGE)
        handlers = [
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_C_MOVE, self._on_move),
        ]
        self.server: Any = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        self.port = int(self.server.server_address[1])

    def _on_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        if "SOPClassesInStudy" in event.identifier:
            out = Dataset()
            with config.disable_value_validation():
                out.QueryRetrieveLevel = "STUDY"
                out.SOPClassesInStudy = [CT_IMAGE_STORAGE, "1.2.3\x00evil", "../../x"]
            yield 0xFF00, out
            return
        for i in range(self.matches):
            yield 0xFF00, find_match(i)

    def _on_get(self, event: Any) -> Iterator[Any]:
        answer = retrieve_answer(str(event.identifier.StudyInstanceUID))
        yield len(answer)
        for ds in answer:
            yield 0xFF00, ds

    def _on_move(self, event: Any) -> Iterator[Any]:
        assert self.move_destination is not None
        yield self.move_destination
        answer = retrieve_answer(str(event.identifier.StudyInstanceUID))
        yield len(answer)
        for ds in answer:
            yield 0xFF00, ds

    def close(self) -> None:
        self.server.shutdown()
