"""DICOM networking with a PACS node: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE (pynetdicom).

Every operation runs under :class:`Timeouts` (TCP connect, ACSE, DIMSE and network), so none
can hang: a refused connection, a host that does not answer, an AE that rejects us or a peer
that accepts the TCP connection but never answers the association request all end in a
:class:`~desktop_app.infra.errors.PacsError` with a one-line reason and a hint. Long operations
(retrieve, send) report ``(done, total)`` through ``progress`` and check ``stop`` (a
``threading.Event`` or a callable) between instances; stopping aborts the association.

Retrieved instances go into a :class:`~desktop_app.pacs.store.LocalStore`, laid out by
hashed UIDs. Services: Verification (PS3.4 A), Query/Retrieve FIND, GET and MOVE with the
Patient Root (patient level) and Study Root (study and series level) models (PS3.4 C.4.1-3,
C.6), Storage (PS3.4 B). Nothing here logs identifiers: pynetdicom's own dumps of query and
response identifiers (which would hold patient names) are switched off on import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, _config, build_role, evt
from pynetdicom.status import (
    QR_FIND_SERVICE_CLASS_STATUS,
    QR_GET_SERVICE_CLASS_STATUS,
    QR_MOVE_SERVICE_CLASS_STATUS,
    STORAGE_SERVICE_CLASS_STATUS,
)
from pynetdicom.transport import AssociationSocket

from desktop_app.dicom.dicomfile import quiet_pydicom
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import DicomReadError, PacsError
from desktop_app.pacs.nodes import LocalAE, PacsNode
from desktop_app.pacs.requests import (
    ALL_STORAGE_CLASSES,
    FIND_MODELS,
    RETRIEVE_TRANSFER_SYNTAXES,
    RETURN_KEYS,
    QueryLevel,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
    as_text,
    build_query,
    get_storage_contexts,
    retrieve_identifier,
    storable_files,
    store_contexts,
    valid_uid,
)
from desktop_app.pacs.store import LocalStore, StoreReceiver

log = logging.getLogger(__name__)

# pynetdicom logs whole query/response identifiers (patient names, IDs) at INFO: never.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_HANDLER_LEVEL = "none"


def _shutdown_and_close(self: AssociationSocket) -> None:
    """pynetdicom 3.0.4's ``_shutdown_socket`` skips ``close()`` when ``shutdown()`` raises,
    which it does for a socket that never connected: every refused connection leaked a file
    descriptor. Close it regardless (a long-running GUI retrying a PACS that is down)."""
    sock = self.socket
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


AssociationSocket._shutdown_socket = _shutdown_and_close  # type: ignore[method-assign]


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait: TCP connect, association (ACSE), each DIMSE reply, any network read."""

    connect: float = 5.0
    acse: float = 10.0
    dimse: float = 30.0
    network: float = 60.0

    def __post_init__(self) -> None:
        for name in ("connect", "acse", "dimse", "network"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"`{name}` timeout {value} should be more than 0 seconds.")


@dataclass(frozen=True)
class FindMatch:
    """One C-FIND match: the level and the returned attributes as text, by keyword."""

    level: str
    values: dict[str, str]

    def get(self, keyword: str, default: str = "") -> str:
        return self.values.get(keyword, default)


@dataclass(frozen=True)
class RetrieveResult:
    """What a C-GET or C-MOVE brought back into the store.

    ``refused`` counts, by reason (see :func:`~desktop_app.pacs.store.refusal_text`), the
    instances the peer sent that were not stored: of other studies or series, with invalid
    UIDs. ``problems`` says each of those in one line, then any other trouble.
    """

    stored: tuple[Path, ...]
    completed: int
    failed: int
    warning: int
    cancelled: bool = False
    status: int = 0x0000
    problems: tuple[str, ...] = ()
    refused: Mapping[str, int] = field(default_factory=dict)
    one_series: bool = False

    @property
    def folder(self) -> Path | None:
        """The folder that holds every stored instance: the study's (the series' when one
        series was asked for), as found from the stored files themselves; None when nothing
        was stored."""
        if not self.stored:
            return None
        levels = (p.parent if self.one_series else p.parent.parent for p in self.stored)
        return Path(os.path.commonpath(list(levels)))


@dataclass(frozen=True)
class SendResult:
    sent: tuple[Path, ...]
    failed: tuple[tuple[Path, str], ...]
    cancelled: bool = False


@dataclass
class _AssocWatch:
    """What the association attempt saw, for a precise error message."""

    opened: bool = False
    response: Any = None

    def on_open(self, event: Any) -> None:
        self.opened = True

    def on_acse(self, event: Any) -> None:
        self.response = getattr(event, "primitive", None)


class PacsClient:
    """Operations against one node. Each call opens (and releases) its own association."""

    def __init__(
        self, node: PacsNode, local: LocalAE | None = None, timeouts: Timeouts | None = None
    ) -> None:
        self.node = node
        self.local = local or LocalAE()
        self.timeouts = timeouts or Timeouts()

    # ------------------------------------------------------------------ services

    def echo(self) -> float:
        """C-ECHO (PS3.7 9.1.5); returns the round trip in seconds."""
        start = time.perf_counter()
        assoc = self._associate_for(Verification)
        try:
            status = assoc.send_c_echo()
            self._check_status(status, "C-ECHO", {})
        finally:
            _release(assoc)
        return time.perf_counter() - start

    def find(
        self,
        level: QueryLevel,
        filters: Mapping[str, str] | None = None,
        *,
        stop: StopFlag = None,
    ) -> list[FindMatch]:
        """C-FIND at ``level`` with matching keys ``filters`` (keyword -> value, wildcards and
        date ranges as PS3.4 C.2.2.2 allows). Series level needs a StudyInstanceUID."""
        level = level.upper()  # type: ignore[assignment]
        if level not in RETURN_KEYS:
            raise PacsError(
                f"query level {level!r} is not supported", hint="use PATIENT, STUDY or SERIES"
            )
        identifier = build_query(level, filters or {})
        model = FIND_MODELS[level]
        assoc = self._associate_for(model)
        matches: list[FindMatch] = []
        try:
            for status, found in assoc.send_c_find(identifier, model):
                if stop_requested(stop):
                    assoc.abort()
                    break
                code = self._check_status(status, "C-FIND", QR_FIND_SERVICE_CLASS_STATUS)
                if code in (0xFF00, 0xFF01) and found is not None:
                    with quiet_pydicom():  # its warnings would repeat the peer's values
                        values = as_text(found, RETURN_KEYS[level])
                    matches.append(FindMatch(level, values))
        finally:
            _release(assoc)
        log.info("C-FIND %s on %s: %d matches", level, self.node.name, len(matches))
        return matches

    def retrieve(
        self,
        study_uid: str,
        series_uid: str | None = None,
        *,
        store: LocalStore | None = None,
        progress: Progress | None = None,
        stop: StopFlag = None,
    ) -> RetrieveResult:
        """C-GET or C-MOVE, as the node is configured."""
        method = self.get if self.node.retrieve == "get" else self.move
        return method(study_uid, series_uid, store=store, progress=progress, stop=stop)

    def get(
        self,
        study_uid: str,
        series_uid: str | None = None,
        *,
        store: LocalStore | None = None,
        progress: Progress | None = None,
        stop: StopFlag = None,
    ) -> RetrieveResult:
        """C-GET a study (or one series) into ``store`` (PS3.4 C.4.3)."""
        store = store or LocalStore()
        identifier = retrieve_identifier(study_uid, series_uid)
        receiver = StoreReceiver(store, study_uid=study_uid, series_uid=series_uid)
        model = StudyRootQueryRetrieveInformationModelGet
        ae = self._ae()
        ae.add_requested_context(model)
        contexts = get_storage_contexts(self._sop_classes_in_study(study_uid))
        for uid, syntaxes in contexts:
            ae.add_requested_context(uid, syntaxes)
        roles = [build_role(uid, scp_role=True) for uid in dict.fromkeys(u for u, _ in contexts)]
        assoc = self._associate(ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, receiver)])
        try:
            responses = assoc.send_c_get(identifier, model)
            return self._collect(
                assoc, responses, receiver, "C-GET", QR_GET_SERVICE_CLASS_STATUS, progress, stop
            )
        finally:
            _release(assoc)

    def move(
        self,
        study_uid: str,
        series_uid: str | None = None,
        *,
        store: LocalStore | None = None,
        progress: Progress | None = None,
        stop: StopFlag = None,
    ) -> RetrieveResult:
        """C-MOVE a study (or series) to our temporary Storage SCP, into ``store`` (PS3.4 C.4.2).

        The node must know our AE title, host and port (``LocalAE``) as a move destination.
        """
        store = store or LocalStore()
        identifier = retrieve_identifier(study_uid, series_uid)
        receiver = StoreReceiver(store, study_uid=study_uid, series_uid=series_uid)
        scp = AE(ae_title=self.local.ae_title)
        self._apply_timeouts(scp)
        for uid in ALL_STORAGE_CLASSES:
            scp.add_supported_context(uid, RETRIEVE_TRANSFER_SYNTAXES)
        scp.require_calling_aet = [self.node.ae_title]
        try:
            server: Any = scp.start_server(
                (self.local.bind_address, self.local.port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, receiver)],
            )
        except OSError as err:
            raise PacsError(
                f"can't listen on port {self.local.port} for C-MOVE: {err.strerror or err}",
                hint="choose a free port with `radassist pacs node local --port N`, or use C-GET",
            ) from None
        try:
            model = StudyRootQueryRetrieveInformationModelMove
            assoc = self._associate_for(model)
            try:
                responses = assoc.send_c_move(identifier, self.local.ae_title, model)
                return self._collect(
                    assoc,
                    responses,
                    receiver,
                    "C-MOVE",
                    QR_MOVE_SERVICE_CLASS_STATUS,
                    progress,
                    stop,
                    hint=f"check that the PACS knows our AE title {self.local.ae_title!r} with "
                    f"this computer's address and port {self.local.port} as a move destination, "
                    "or retrieve with C-GET",
                )
            finally:
                _release(assoc)
        finally:
            server.shutdown()

    def send(
        self,
        paths: Iterable[str | Path],
        *,
        progress: Progress | None = None,
        stop: StopFlag = None,
    ) -> SendResult:
        """C-STORE each file (PS3.4 B); a file that can't be read or is refused is reported."""
        from desktop_app.dicom.dicomfile import read_dataset

        files = [Path(p) for p in paths]
        headers, failed = storable_files(files)
        contexts = store_contexts(headers)
        sent: list[Path] = []
        total = len(files)
        done = len(failed)
        if progress is not None and done:
            progress(done, total)
        if not headers:
            return SendResult((), tuple(failed))
        ae = self._ae()
        for sop_class, syntaxes in contexts:
            ae.add_requested_context(sop_class, list(syntaxes))
        assoc = self._associate(ae)
        cancelled = False
        try:
            for path, _, _ in headers:
                if stop_requested(stop):
                    cancelled = True
                    assoc.abort()
                    break
                if not assoc.is_established:
                    failed.append((path, "the association was lost before it was sent"))
                    continue
                try:
                    reason = self._store_one(assoc, read_dataset(path))
                except DicomReadError as err:
                    reason = err.reason
                if reason:
                    failed.append((path, reason))
                else:
                    sent.append(path)
                done += 1
                if progress is not None:
                    progress(done, total)
        finally:
            _release(assoc)
        log.info("C-STORE to %s: %d sent, %d failed", self.node.name, len(sent), len(failed))
        return SendResult(tuple(sent), tuple(failed), cancelled)

    # ------------------------------------------------------------------ internals

    def _sop_classes_in_study(self, study_uid: str) -> list[str]:
        """SOP Classes in Study (0008,0062) from a study-level C-FIND, or [] if not offered.

        Knowing them lets a C-GET offer each class once per transfer syntax, so the PACS can
        send every instance as stored instead of transcoding (which it may not be able to do,
        e.g. JPEG 2000 without a codec).
        """
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.StudyInstanceUID = valid_uid(study_uid)
        identifier.SOPClassesInStudy = ""
        model = StudyRootQueryRetrieveInformationModelFind
        try:
            assoc = self._associate_for(model)
        except PacsError:
            return []
        classes: list[str] = []
        try:
            for status, found in assoc.send_c_find(identifier, model):
                if status is None or "Status" not in status:
                    break
                if int(status.Status) in (0xFF00, 0xFF01) and found is not None:
                    with quiet_pydicom():
                        value = found.get("SOPClassesInStudy") or []
                    values = [value] if isinstance(value, str) else list(value)
                    # A peer's UIDs become presentation contexts: only valid ones.
                    classes.extend(u for u in map(valid_uid, values) if u)
        finally:
            _release(assoc)
        return list(dict.fromkeys(classes))

    def _ae(self) -> AE:
        ae = AE(ae_title=self.local.ae_title)
        self._apply_timeouts(ae)
        return ae

    def _apply_timeouts(self, ae: AE) -> None:
        ae.connection_timeout = self.timeouts.connect
        ae.acse_timeout = self.timeouts.acse
        ae.dimse_timeout = self.timeouts.dimse
        ae.network_timeout = self.timeouts.network

    def _associate_for(self, model: Any) -> Any:
        """Associate proposing one presentation context, for ``model``'s SOP class."""
        ae = self._ae()
        ae.add_requested_context(model)
        return self._associate(ae)

    def _where(self) -> str:
        return f"{self.node.ae_title}@{self.node.host}:{self.node.port}"

    def _associate(
        self,
        ae: AE,
        *,
        ext_neg: Sequence[Any] | None = None,
        evt_handlers: list[Any] | None = None,
    ) -> Any:
        """Associate, or raise a PacsError that says precisely what went wrong."""
        address = _resolve(self.node.host, self.node.port, self.timeouts.connect)
        watch = _AssocWatch()
        handlers = [(evt.EVT_CONN_OPEN, watch.on_open), (evt.EVT_ACSE_RECV, watch.on_acse)]
        start = time.monotonic()
        assoc = ae.associate(
            address,
            self.node.port,
            ae_title=self.node.ae_title,
            ext_neg=list(ext_neg) if ext_neg else None,
            evt_handlers=handlers + (evt_handlers or []),
        )
        if assoc.is_established:
            return assoc
        elapsed = time.monotonic() - start
        raise self._association_error(assoc, watch, address, elapsed)

    def _association_error(
        self, assoc: Any, watch: _AssocWatch, address: str, elapsed: float
    ) -> PacsError:
        where = self._where()
        rsp = watch.response
        if assoc.is_rejected and rsp is not None:
            reason = str(getattr(rsp, "reason_str", "") or "no reason given")
            hint = "check the node's AE title, host and port"
            if "called" in reason.lower():
                hint = f"check the node's AE title ({self.node.ae_title!r} is not known there)"
            elif "calling" in reason.lower():
                hint = f"ask the PACS administrator to allow our AE title {self.local.ae_title!r}"
            source = str(getattr(rsp, "source_str", "") or "")
            extra = f", {source}" if source else ""
            return PacsError(f"{where} rejected the association ({reason}{extra})", hint=hint)
        if rsp is not None and getattr(rsp, "result", None) == 0x00:
            return PacsError(
                f"{where} accepted none of the proposed presentation contexts",
                hint="the PACS does not support this service or these SOP classes",
            )
        if rsp is not None:
            return PacsError(
                f"{where} aborted the association request",
                hint="check that the PACS knows our AE title "
                f"{self.local.ae_title!r} and allows this service",
            )
        if watch.opened:
            return PacsError(
                f"{where} accepted the connection but did not answer the association request "
                f"within {self.timeouts.acse:g} s",
                hint="check that this port is a DICOM service; raise the ACSE timeout if the "
                "PACS is slow",
            )
        return PacsError(
            _connect_failure(address, self.node.port, self.timeouts.connect, elapsed),
            hint="check that the PACS is running, the host and port are right and no firewall "
            "blocks the port",
        )

    def _check_status(self, status: Dataset, what: str, table: Mapping[int, Any]) -> int:
        """Raise for a missing (timeout/abort) or failed status; return the status code."""
        if status is None or "Status" not in status:
            raise PacsError(
                f"no {what} response from {self._where()} within {self.timeouts.dimse:g} s "
                "(DIMSE timeout) or the association was aborted",
                hint="the PACS may be busy; try again or raise the DIMSE timeout",
            )
        code = int(status.Status)
        if code in (0x0000, 0xFF00, 0xFF01) or 0xB000 <= code <= 0xBFFF:
            return code
        raise PacsError(f"{what} failed on {self._where()}: {_status_text(code, table)}")

    def _collect(
        self,
        assoc: Any,
        responses: Iterable[tuple[Dataset, Dataset | None]],
        receiver: StoreReceiver,
        what: str,
        table: Mapping[int, Any],
        progress: Progress | None,
        stop: StopFlag,
        hint: str | None = None,
    ) -> RetrieveResult:
        completed = failed = warning = 0
        final = 0x0000
        for status, _identifier in responses:
            if stop_requested(stop):
                assoc.abort()
                return _retrieve_result(receiver, completed, failed, warning, True, 0xFE00)
            if status is None or "Status" not in status:
                if receiver.stored:
                    return _retrieve_result(
                        receiver,
                        completed,
                        failed,
                        warning,
                        False,
                        final,
                        f"the {what} stopped after {len(receiver.stored)} instances (timeout or "
                        "abort)",
                    )
                self._check_status(status, what, table)
            final = int(status.Status)
            completed = int(status.get("NumberOfCompletedSuboperations", completed) or 0)
            failed = int(status.get("NumberOfFailedSuboperations", failed) or 0)
            warning = int(status.get("NumberOfWarningSuboperations", warning) or 0)
            remaining = int(status.get("NumberOfRemainingSuboperations", 0) or 0)
            if progress is not None:
                done = completed + failed + warning
                progress(done, done + remaining)
            if final not in (0xFF00, 0xFF01):
                break
        if final == 0xFE00:
            return _retrieve_result(receiver, completed, failed, warning, True, final)
        ended_badly = not (final == 0x0000 or 0xB000 <= final <= 0xBFFF)
        if ended_badly and not receiver.stored and not receiver.refused:
            raise PacsError(
                f"{what} failed on {self._where()}: {_status_text(final, table)}", hint=hint
            )
        log.info(
            "%s from %s: %d stored, %d failed, %d warnings, %d refused",
            what,
            self.node.name,
            len(receiver.stored),
            failed,
            warning,
            sum(receiver.refused.values()),
        )
        return _retrieve_result(receiver, completed, failed, warning, False, final)

    def _store_one(self, assoc: Any, ds: Dataset) -> str:
        """Send one dataset; return '' on success or the reason it was not stored."""
        try:
            status = assoc.send_c_store(ds)
        except ValueError as err:
            # No accepted context for its transfer syntax: send it uncompressed if we can.
            if not ds.file_meta.TransferSyntaxUID.is_compressed:
                return f"the PACS accepted no context for it ({err})"
            try:
                # Lossless re-encoding of the same instance: it keeps its UID.
                ds.decompress(generate_instance_uid=False)
            except Exception as derr:  # decoder missing or data broken
                return f"the PACS does not accept its compression and it can't be decoded ({derr})"
            try:
                status = assoc.send_c_store(ds)
            except ValueError as err2:
                return f"the PACS accepted no context for it ({err2})"
        if status is None or "Status" not in status:
            return (
                f"no C-STORE response within {self.timeouts.dimse:g} s (DIMSE timeout) or the "
                "association was aborted"
            )
        code = int(status.Status)
        if code == 0x0000 or 0xB000 <= code <= 0xBFFF:
            return ""
        return f"refused: {_status_text(code, STORAGE_SERVICE_CLASS_STATUS)}"


# ---------------------------------------------------------------------- helpers


def _retrieve_result(
    receiver: StoreReceiver,
    completed: int,
    failed: int,
    warning: int,
    cancelled: bool,
    status: int,
    *problems: str,
) -> RetrieveResult:
    return RetrieveResult(
        stored=tuple(receiver.stored),
        completed=completed,
        failed=failed,
        warning=warning,
        cancelled=cancelled,
        status=status,
        problems=tuple(receiver.failures) + problems,
        refused=dict(receiver.refused),
        one_series=receiver.series_uid is not None,
    )


def _status_text(code: int, table: Mapping[int, Any]) -> str:
    entry = table.get(code)
    meaning = entry[1] if entry else "unknown status"
    return f"status 0x{code:04X} ({meaning})"


def _resolve(host: str, port: int, timeout: float) -> str:
    """The host's address, looked up in a thread so that a slow DNS can't hang us."""
    result: list[Any] = []

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as err:
            result.append(err)

    worker = threading.Thread(target=lookup, name="pacs-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        raise PacsError(
            f"looking up host {host!r} took more than {timeout:g} s",
            hint="check the host name and DNS, or use an IP address",
        )
    found = result[0]
    if isinstance(found, BaseException):
        why = getattr(found, "strerror", None) or str(found)
        raise PacsError(
            f"can't resolve host {host!r}: {why}", hint="check the host name, or use an IP address"
        )
    ipv4 = [info[4][0] for info in found if info[0] == socket.AF_INET]
    return str(ipv4[0] if ipv4 else found[0][4][0])


def _connect_failure(address: str, port: int, timeout: float, elapsed: float) -> str:
    """Say why the TCP connection failed, probing once more when it failed fast."""
    if elapsed >= timeout * 0.9:
        return f"no TCP connection to {address}:{port} within {timeout:g} s"
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return f"the connection to {address}:{port} failed and then succeeded; try again"
    except ConnectionRefusedError:
        return f"connection refused by {address}:{port}"
    except TimeoutError:
        return f"no TCP connection to {address}:{port} within {timeout:g} s"
    except OSError as err:
        return f"can't connect to {address}:{port}: {err.strerror or err}"


def _release(assoc: Any) -> None:
    if assoc.is_established:
        assoc.release()
