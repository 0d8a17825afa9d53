"""The query/retrieve dialog against a real Orthanc, inside a private network namespace.

Like ``tests/e2e/orthanc.py`` (whose helpers it reuses): the test starts ONE subprocess under
``unshare -n`` running this file; inside, it brings ``lo`` up, starts Orthanc, stores the
e2e study (``tests/e2e/pacs_scenario.make_study``) with RadAssist's client, then drives the
real GUI offscreen: MainWindow ▸ Query/Retrieve, Echo, Search, Retrieve, and waits until the
main window has opened the retrieved study from the local store. It also checks a refused
port and an unknown AE title, and writes ``results.json``.

``--screenshot FILE`` (run under ``xvfb-run``, outside pytest) also stores a few more
synthetic studies and saves the dialog with its results, for docs/screenshots/pacs.png.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_in_namespace(
    workdir: Path, timeout_s: float = 300.0, extra: list[str] | None = None
) -> dict[str, Any]:
    """Run Orthanc and the GUI scenario in one namespaced subprocess; return its results."""
    from tests.e2e.orthanc import namespace_prefix

    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["RADASSIST_DATA_DIR"] = str(workdir / "radassist-data")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    cmd = [*namespace_prefix(), sys.executable, str(Path(__file__).resolve()), str(workdir)]
    with open(workdir / "driver.log", "wb") as log:
        proc = subprocess.run(
            [*cmd, *(extra or [])],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
        )
    path = workdir / "results.json"
    if not path.exists():
        tail = (workdir / "driver.log").read_text("utf-8", "replace")[-3000:]
        raise RuntimeError(f"the GUI scenario wrote no results (rc {proc.returncode}):\n{tail}")
    results: dict[str, Any] = json.loads(path.read_text("utf-8"))
    results["driver_returncode"] = proc.returncode
    return results


# ---------------------------------------------------------------------- inside the namespace


def _wait(signal: Any, timeout_s: float, action: Any = None) -> list[Any]:
    """Run the event loop until ``signal`` fires (its arguments) or raise on timeout."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    got: list[Any] = []

    def on_signal(*args: Any) -> None:
        got.append(args)
        loop.quit()

    signal.connect(on_signal)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    if action is not None:
        action()
    if not got:
        loop.exec()
    signal.disconnect(on_signal)
    if not got:
        raise TimeoutError(f"no signal within {timeout_s:g} s")
    return list(got[0])


def _extra_studies(folder: Path) -> list[Path]:
    """A few more synthetic studies, only so that the screenshot shows a realistic list."""
    import pydicom
    from pydicom.uid import generate_uid

    from tests.e2e.pacs_scenario import TEST_FILES

    plan = [
        ("SYNTH^Ada", "SYN-1042", "20240212", "CT_small.dcm", "CT chest low dose", 4),
        ("SYNTH^Brook", "SYN-2087", "20240318", "MR_small.dcm", "MR brain w/o contrast", 2),
        ("SYNTH^Cole", "SYN-3311", "20240402", "CT_small.dcm", "CT abdomen pelvis", 3),
        ("SYNTH^Dara", "SYN-4470", "20240415", "MR_small.dcm", "MR knee left", 2),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, pid, date, source, desc, count in plan:
        study = generate_uid(entropy_srcs=["shot", pid])
        series = generate_uid(entropy_srcs=["shot", pid, "s"])
        for i in range(count):
            ds = pydicom.dcmread(TEST_FILES / source)
            sop = generate_uid(entropy_srcs=["shot", pid, str(i)])
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, sop
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.PatientName, ds.PatientID = name, pid
            ds.StudyDate, ds.StudyDescription = date, desc
            ds.AccessionNumber = f"A{pid[-4:]}"
            path = folder / f"{pid}-{i}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def run_gui(workdir: Path, screenshot: Path | None) -> dict[str, Any]:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from desktop_app.pacs.dimse import PacsClient
    from desktop_app.pacs.nodes import NodeConfig, PacsNode
    from desktop_app.pacs.store import LocalStore
    from desktop_app.qt.main_window import MainWindow
    from desktop_app.qt.pacs_dialog import UID_ROLE
    from desktop_app.qt.theme import apply_dark_theme
    from tests.e2e.orthanc import ORTHANC_AET, ORTHANC_DICOM_PORT
    from tests.e2e.pacs_scenario import TIMEOUTS, make_study

    steps: dict[str, Any] = {}
    study = make_study(workdir / "study")
    files = list(study["files"].values())
    if screenshot is not None:
        files += _extra_studies(workdir / "extra")
    node = PacsNode("orthanc", ORTHANC_AET, "127.0.0.1", ORTHANC_DICOM_PORT)
    sent = PacsClient(node, timeouts=TIMEOUTS).send(files)
    if sent.failed:
        raise RuntimeError(f"storing the study failed: {sent.failed[0][1]}")
    config = NodeConfig.load()  # the data folder's pacs.json, as the CLI keeps it
    config.add(node)
    config.add(PacsNode("nowhere", "NOBODY", "127.0.0.1", 4243))
    config.add(PacsNode("wrong-ae", "NOT_ORTHANC", "127.0.0.1", ORTHANC_DICOM_PORT))
    config.save()

    app = QApplication.instance() or QApplication([])
    apply_dark_theme(app)  # type: ignore[arg-type]
    settings = QSettings(str(workdir / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, warm_up_ms=-1)
    window.resize(1500, 950)
    window.show()
    dialog = window.exports.open_pacs_dialog()
    dialog.timeout_spin.setValue(5)
    dialog.node_combo.setCurrentIndex(dialog.node_combo.findData("orthanc"))
    steps["echo"] = _wait(dialog.echoFinished, 30, dialog.echo)[0]

    if screenshot is None:
        dialog.patient_name.setText("E2E")
    [count] = _wait(dialog.searchFinished, 60, dialog.search)
    steps["search_count"] = count
    rows = [r for r in dialog.rows if r.study_uid == study["study"]]
    steps["row"] = {
        k: getattr(rows[0], k)
        for k in ("patient", "patient_id", "n_series", "n_instances", "modality")
    }
    if screenshot is not None:
        dialog.resize(1180, 640)
        dialog.table.selectRow(0)
        app.processEvents()
        dialog.grab().save(str(screenshot))
        steps["screenshot"] = str(screenshot)
        proxy = dialog.proxy
        for r in range(proxy.rowCount()):
            if proxy.mapToSource(proxy.index(r, 0)).data(UID_ROLE) == study["study"]:
                dialog.table.selectRow(r)
    opened: list[Any] = []
    window.studies.indexReady.connect(opened.append)
    [summary] = _wait(dialog.retrieveFinished, 120, dialog.retrieve)
    steps["retrieved"] = summary.stored
    steps["folders"] = [str(f) for f in summary.folders]
    steps["expected_folder"] = str(LocalStore().study_folder(study["study"]))
    if not opened:
        _wait(window.studies.indexReady, 60)
    index = window.studies.index
    steps["opened_studies"] = sorted(
        {s.study_instance_uid for _, s, _ in index.iter_series()} if index else []
    )
    steps["opened_instances"] = len(list(index.iter_instances())) if index else 0
    deadline = time.monotonic() + 30
    while window.viewer.frame is None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)  # waiting for the first image, not a test assertion
    steps["shown_series"] = window.viewer.frame is not None
    steps["study_uid"] = study["study"]

    for name, node_name in (("refused", "nowhere"), ("unknown_ae", "wrong-ae")):
        dialog.node_combo.setCurrentIndex(dialog.node_combo.findData(node_name))
        steps[name] = _wait(dialog.errorShown, 30, dialog.echo)[0]
    dialog.shutdown(timeout_ms=10_000)
    window.close()
    app.processEvents()
    return steps


def main(argv: list[str]) -> int:
    from tests.e2e.orthanc import (
        bring_loopback_up,
        only_loopback,
        running_orthanc,
        wait_until_ready,
    )

    workdir = Path(argv[0]).resolve()
    screenshot = Path(argv[2]).resolve() if len(argv) > 2 and argv[1] == "--screenshot" else None
    results: dict[str, Any] = {"steps": {}}
    try:
        bring_loopback_up()
        results["interfaces"] = only_loopback()
        if results["interfaces"] != ["lo"]:
            raise RuntimeError(f"not a private namespace: interfaces {results['interfaces']}")
        with running_orthanc(workdir) as proc:
            wait_until_ready(proc)
            results["steps"] = run_gui(workdir, screenshot)
    except Exception as err:  # reported to the test, which fails with it
        import traceback

        results["fatal"] = f"{type(err).__name__}: {err}"
        results["tb"] = traceback.format_exc()
    (workdir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if "fatal" not in results else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
