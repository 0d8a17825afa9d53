"""The reviewed lesions' Orthanc round trip, run inside the private network namespace.

``python tests/e2e/lesion_orthanc_scenario.py WORKDIR`` (done by ``test_lesion_orthanc``, in
``unshare -n``): starts Orthanc like ``tests/e2e/orthanc.py``, sends a small synthetic CT series,
exports its reviewed lesions (``export_study``: the SEG of the kept lesions and the SR of their
measurements), C-STOREs the export's DICOM objects, finds them back at series level by modality
(SEG, SR), and C-GETs the SEG series to read it with highdicom. Writes ``results.json``; each
step records what it saw (or its error as one line), the test asserts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SLICES, ROWS = 8, 64


def _lesions(series_key: str) -> Any:
    import numpy as np

    from desktop_app.exports.lesion_sr import LesionRecord, ReviewedLesions

    labels = np.zeros((SLICES, ROWS, ROWS), dtype=np.uint16)
    labels[2:5, 20:30, 20:30] = 1
    labels[5, 40:46, 40:46] = 2
    labels[6, 10:14, 44:48] = 3
    records = (
        LesionRecord(1, verdict="accepted", volume_mm3=500.0, longest_diameter_mm=11.0,
                     mean_value=30.0, max_value=110.0, slices=(2, 4), confidence=0.9),
        LesionRecord(2, verdict="rejected", reason="fp_artefact", slices=(5, 5)),
        LesionRecord(3, source="reader", verdict="accepted", volume_mm3=40.0,
                     longest_diameter_mm=4.5, slices=(6, 6)),
    )  # fmt: skip
    return ReviewedLesions(series_key, labels, records)


def run_scenario(workdir: Path) -> dict[str, Any]:
    import highdicom as hd
    import pydicom

    from desktop_app.exports import ExportRequest, export_study
    from desktop_app.exports.sources import StudySources
    from desktop_app.pacs.dimse import PacsClient, Timeouts
    from desktop_app.pacs.nodes import LocalAE, PacsNode
    from desktop_app.pacs.store import LocalStore
    from desktop_app.phantoms.studies import write_ct_series
    from tests.e2e.orthanc import CLIENT_AET, CLIENT_SCP_PORT, ORTHANC_AET, ORTHANC_DICOM_PORT
    from tests.e2e.pacs_scenario import _step
    from tests.helpers.exports import make_result, make_review

    results: dict[str, Any] = {}
    state: dict[str, Any] = {}
    node = PacsNode("orthanc", ORTHANC_AET, "127.0.0.1", ORTHANC_DICOM_PORT)
    local = LocalAE(CLIENT_AET, CLIENT_SCP_PORT, "127.0.0.1")
    client = PacsClient(node, local, Timeouts(connect=3, acse=5, dimse=20, network=30))

    def export() -> dict[str, Any]:
        series = write_ct_series(workdir / "ct", 11, slices=SLICES, rows=ROWS)
        sources = StudySources(list(series.paths))
        uid = sources.study.series[0].series_instance_uid
        order = [sources.slice_image(uid, 1, k) for k in range(SLICES)]
        by_sop = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p
                  for p in series.paths}  # fmt: skip
        files = [by_sop[o[0]] for o in order if o is not None]
        result = make_result(files, {"nodule": (0.9, 3, (20.0, 20.0, 10.0, 10.0))})
        out = export_study(
            ExportRequest(
                study_paths=files,
                out_dir=workdir / "export",
                results=[result],
                review=make_review(result),
                formats=["sr"],
                lesions=[_lesions(f"{uid}#1")],
            )
        )
        state.update(files=files, study=out.study_uid, dicom=out.dicom)
        seg = pydicom.dcmread(out.seg[0], stop_before_pixels=True)
        sr = pydicom.dcmread(out.lesion_sr[0], stop_before_pixels=True)
        state.update(seg=seg, sr=sr)
        return {"dicom": len(out.dicom), "lesions": out.lesions, "segs": len(out.seg)}

    _step(results, "export", export)
    if not results["export"]["ok"]:
        return results

    def send() -> dict[str, Any]:
        sent = client.send([*state["files"], *state["dicom"]])
        return {"sent": len(sent.sent), "failed": [why for _, why in sent.failed]}

    _step(results, "send", send)

    def find(modality: str) -> dict[str, Any]:
        matches = client.find("SERIES", {"StudyInstanceUID": state["study"], "Modality": modality})
        return {
            "series": sorted(m.get("SeriesInstanceUID") for m in matches),
            "modalities": sorted(m.get("Modality") for m in matches),
        }

    _step(results, "find_seg", lambda: find("SEG"))
    _step(results, "find_sr", lambda: find("SR"))
    results["expected"] = {
        "seg_series": str(state["seg"].SeriesInstanceUID),
        "lesion_sr_series": str(state["sr"].SeriesInstanceUID),
        "seg_sop": str(state["seg"].SOPInstanceUID),
        "source_sops": sorted(
            str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in state["files"]
        ),
    }

    def get_seg() -> dict[str, Any]:
        store = LocalStore(workdir / "store-get")
        got = client.get(state["study"], str(state["seg"].SeriesInstanceUID), store=store)
        back = hd.seg.segread(got.stored[0])
        refs = back.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        return {
            "stored": len(got.stored),
            "sop": str(back.SOPInstanceUID),
            "segments": [d.segment_label for d in back.SegmentSequence],
            "referenced": sorted(str(r.ReferencedSOPInstanceUID) for r in refs),
        }

    _step(results, "get_seg", get_seg)
    return results


def main(argv: list[str]) -> int:
    from tests.e2e.orthanc import serve_scenario

    return serve_scenario(argv, run_scenario)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
