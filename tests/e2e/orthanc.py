"""A real Orthanc for the PACS tests, run inside a private network namespace.

Orthanc 1.10 cannot bind to loopback only, so it must not run in the host's network
namespace. The test (outside) calls :func:`run_in_namespace`, which starts ONE subprocess
``unshare -n`` (``unshare -rn`` when not root) running this file's :func:`main`; inside, that
process brings ``lo`` up (the namespace holds nothing else), starts Orthanc on a temporary
configuration (storage, index and log all under the work folder), waits until it answers
C-ECHO, runs the client scenario (:mod:`tests.e2e.pacs_scenario`, which uses RadAssist's real
PACS API) and writes ``results.json``. Orthanc is killed when the scenario ends, and dies with
its parent (``PR_SET_PDEATHSIG``) if the whole process is killed.

Usage inside the namespace (done for you): ``python tests/e2e/orthanc.py WORKDIR``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ORTHANC_AET = "ORTHANC"
ORTHANC_DICOM_PORT = 4242
ORTHANC_HTTP_PORT = 8042
CLIENT_AET = "RADASSIST"
CLIENT_SCP_PORT = 11112
READY_TIMEOUT_S = 60.0


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or shutil.which("orthanc")


def namespace_prefix() -> list[str]:
    """``unshare`` arguments for a private network namespace (with a user namespace if needed)."""
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "-n"] if os.geteuid() == 0 else [unshare, "-rn"]


def unavailable_reason() -> str | None:
    """Why the Orthanc tests can't run here, or None when they can."""
    if orthanc_binary() is None:
        return "Orthanc is not installed (apt-get install orthanc; .ci/run does)"
    if shutil.which("unshare") is None:
        return "unshare is not installed (util-linux)"
    try:
        probe = subprocess.run(
            [*namespace_prefix(), sys.executable, "-c", "pass"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unshare can't run: {err}"
    if probe.returncode != 0:
        return (
            "unshare can't create a network namespace here: "
            + probe.stderr.decode("utf-8", "replace").strip()[:200]
        )
    return None


def run_in_namespace(workdir: Path, timeout_s: float = 300.0) -> dict[str, Any]:
    """Run Orthanc + the scenario in one namespaced subprocess; return its results."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["RADASSIST_DATA_DIR"] = str(workdir / "radassist-data")
    cmd = [*namespace_prefix(), sys.executable, str(Path(__file__).resolve()), str(workdir)]
    with open(workdir / "driver.log", "wb") as log:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s
        )
    results_path = workdir / "results.json"
    if not results_path.exists():
        tail = (workdir / "driver.log").read_text("utf-8", "replace")[-3000:]
        raise RuntimeError(
            f"the namespaced scenario wrote no results (rc {proc.returncode}):\n{tail}"
        )
    results: dict[str, Any] = json.loads(results_path.read_text("utf-8"))
    results["driver_returncode"] = proc.returncode
    return results


# ---------------------------------------------------------------------- inside the namespace


def bring_loopback_up() -> None:
    """``ip link set lo up`` without iproute2: SIOCGIFFLAGS / SIOCSIFFLAGS on ``lo``."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def only_loopback() -> list[str]:
    """The interfaces this namespace has (a guard: Orthanc must see nothing but lo)."""
    return sorted(name for _, name in socket.if_nameindex())


def write_config(workdir: Path) -> Path:
    """An Orthanc configuration whose every file lives under ``workdir``."""
    storage = workdir / "orthanc-storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "RadAssistTest",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "StorageCompression": False,
        "Plugins": [],
        "HttpServerEnabled": True,
        "HttpPort": ORTHANC_HTTP_PORT,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": ORTHANC_AET,
        "DicomPort": ORTHANC_DICOM_PORT,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True,
        "DicomModalities": {"radassist": [CLIENT_AET, "127.0.0.1", CLIENT_SCP_PORT]},
        "DicomScuTimeout": 10,
        "DicomScpTimeout": 30,
        "DicomAssociationCloseDelay": 0,
        "SaveJobs": False,
        "LimitFindResults": 0,
        "ConcurrentJobs": 1,
    }
    path = workdir / "orthanc.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def _die_with_parent() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def running_orthanc(workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start Orthanc on :func:`write_config`'s file; kill it on exit."""
    binary = orthanc_binary()
    if binary is None:
        raise RuntimeError("Orthanc is not installed")
    config = write_config(workdir)
    log = open(workdir / "orthanc.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [binary, str(config)],
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def wait_until_ready(proc: subprocess.Popen[bytes], timeout_s: float = READY_TIMEOUT_S) -> float:
    """Poll C-ECHO (with RadAssist's client) until Orthanc answers; return seconds waited."""
    from desktop_app.infra.errors import PacsError
    from desktop_app.pacs.dimse import PacsClient, Timeouts
    from desktop_app.pacs.nodes import PacsNode

    client = PacsClient(
        PacsNode("orthanc", ORTHANC_AET, "127.0.0.1", ORTHANC_DICOM_PORT),
        timeouts=Timeouts(connect=2, acse=5, dimse=10, network=10),
    )
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with code {proc.returncode} while starting")
        try:
            client.echo()
            return time.monotonic() - start
        except PacsError as err:
            last = err.one_line()
        time.sleep(0.2)  # readiness polling, not a test assertion
    raise RuntimeError(f"Orthanc did not answer C-ECHO within {timeout_s:g} s: {last}")


def main(argv: list[str]) -> int:
    from tests.e2e.pacs_scenario import run_scenario

    return serve_scenario(argv, run_scenario)


def serve_scenario(argv: list[str], scenario: Callable[[Path], dict[str, Any]]) -> int:
    """In the private network namespace: loopback up, Orthanc started, ``scenario(workdir)``
    run; its steps (or the fatal error) written to ``workdir/results.json`` for the test."""
    workdir = Path(argv[0]).resolve()
    results: dict[str, Any] = {"steps": {}}
    started = time.monotonic()
    try:
        bring_loopback_up()
        results["interfaces"] = only_loopback()
        if results["interfaces"] != ["lo"]:
            raise RuntimeError(f"not a private namespace: interfaces {results['interfaces']}")
        with running_orthanc(workdir) as proc:
            results["orthanc_ready_s"] = round(wait_until_ready(proc), 3)
            results["steps"] = scenario(workdir)
    except Exception as err:  # reported to the test, which fails with it
        results["fatal"] = f"{type(err).__name__}: {err}"
    results["wall_s"] = round(time.monotonic() - started, 3)
    (workdir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if "fatal" not in results else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
