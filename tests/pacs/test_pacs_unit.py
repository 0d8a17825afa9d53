"""PACS client without Orthanc: node config, hashed store, queries, and association failures.

Network tests use only loopback: a pynetdicom SCP started in-process on 127.0.0.1, a port
nobody listens on, and a socket that accepts connections but never answers.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt

from desktop_app.cli import main
from desktop_app.infra.errors import ConfigError, PacsError
from desktop_app.infra.hashedpaths import instance_relpath, uid_hash
from desktop_app.pacs.dimse import PacsClient, Timeouts
from desktop_app.pacs.nodes import LocalAE, NodeConfig, PacsNode
from desktop_app.pacs.requests import (
    GET_STORAGE_CLASSES,
    RETRIEVE_TRANSFER_SYNTAXES,
    build_query,
    get_storage_contexts,
)
from desktop_app.pacs.store import LocalStore, StoreReceiver

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
# For a peer that answers: bounds against a hang, not a speed demand (the in-process SCP's
# threads may wait seconds for a core on a loaded 2-core machine). Tests of the timeouts
# themselves set their own short ones.
GENEROUS = Timeouts(connect=10, acse=10, dimse=30, network=30)
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node(port: int, aet: str = "TESTSCP", name: str = "test") -> PacsNode:
    return PacsNode(name, aet, "127.0.0.1", port)


# ---------------------------------------------------------------------- configuration


class TestNodes:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"ae_title": ""}, "called AE title is empty"),
            ({"ae_title": "A" * 17}, "is 17 characters long"),
            ({"ae_title": "BAD\\AE"}, "has characters DICOM does not allow"),
            ({"ae_title": "TAB\tAE"}, "has characters DICOM does not allow"),
            ({"port": 0}, "port 0 is out of range"),
            ({"port": 65536}, "port 65536 is out of range"),
            ({"port": "x"}, "port 'x' is not a number"),
            ({"host": "two words"}, "is not a host name or IP address"),
            ({"name": "../evil"}, "node name '../evil' is not allowed"),
            ({"retrieve": "push"}, "retrieve method 'push' is not known"),
        ],
    )
    def test_validation(self, kwargs: dict[str, Any], match: str) -> None:
        values: dict[str, Any] = {
            "name": "pacs",
            "ae_title": "ORTHANC",
            "host": "pacs.example.org",
            "port": 4242,
        }
        values.update(kwargs)
        with pytest.raises(ConfigError, match=match):
            PacsNode(**values)

    def test_ae_title_spaces_are_not_significant(self) -> None:
        assert PacsNode("p", "  ORTHANC ", "h", 1).ae_title == "ORTHANC"

    def test_round_trip(self, tmp_path: Path) -> None:
        config = NodeConfig.load(tmp_path / "pacs.json")
        assert config.nodes == {}
        config.add(PacsNode("main", "ORTHANC", "10.0.0.5", 4242, "move"))
        config.set_local(ae_title="ME", port=11113)
        config.save()
        again = NodeConfig.load(tmp_path / "pacs.json")
        assert again.get("main") == PacsNode("main", "ORTHANC", "10.0.0.5", 4242, "move")
        assert again.local == LocalAE("ME", 11113)
        assert again.remove("main").port == 4242
        with pytest.raises(ConfigError, match=r"no PACS node named 'main' \(configured: none\)"):
            again.get("main")

    def test_duplicate_refused(self, tmp_path: Path) -> None:
        config = NodeConfig(tmp_path / "p.json")
        config.add(_node(1, name="a"))
        with pytest.raises(ConfigError, match="a PACS node named 'a' exists already"):
            config.add(_node(2, name="a"))
        config.add(_node(2, name="a"), replace_existing=True)
        assert config.get("a").port == 2

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("{not json", "the PACS configuration can't be read"),
            ('{"nodes": []}', "unexpected layout"),
            ('{"nodes": {"x": {"ae_title": "A", "host": "h", "port": 99999}}}', "out of range"),
        ],
    )
    def test_bad_file(self, tmp_path: Path, text: str, match: str) -> None:
        path = tmp_path / "pacs.json"
        path.write_text(text)
        with pytest.raises(ConfigError, match=match) as err:
            NodeConfig.load(path)
        assert err.value.path == path
        assert "\n" not in str(err.value)


# ---------------------------------------------------------------------- the store


class TestStore:
    def test_layout_is_hashed(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "store")
        path = store.path_for("1.2.3", "1.2.3.4", "1.2.3.4.5")
        assert path == tmp_path / "store" / uid_hash("1.2.3") / uid_hash("1.2.3.4") / (
            uid_hash("1.2.3.4.5") + ".dcm"
        )
        assert uid_hash("1.2.3\x00") == uid_hash("1.2.3 ") == uid_hash("1.2.3")
        assert len(uid_hash("1.2.3")) == 16

    @pytest.mark.parametrize(
        "evil", ["../../../etc/passwd", "/abs/path", "C:\\windows", "a" * 5000, "..", ""]
    )
    def test_tag_values_never_reach_the_path(self, tmp_path: Path, evil: str) -> None:
        store = LocalStore(tmp_path / "store")
        path = store.put_bytes(evil, evil, evil, b"DICM")
        assert path.resolve().parent.parent.parent == (tmp_path / "store").resolve()
        assert all(len(part) <= 20 for part in path.relative_to(store.root).parts)
        assert path.read_bytes() == b"DICM"

    def test_receiver(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "store")
        stored: list[Path] = []
        receiver = StoreReceiver(store, stored.append)
        ds = Dataset()
        ds.StudyInstanceUID = "1.2.3"
        ds.SeriesInstanceUID = "1.2.3.4"
        ds.SOPInstanceUID = "1.2.3.4.5"
        event = SimpleNamespace(
            request=SimpleNamespace(AffectedSOPInstanceUID="1.2.3.4.5"),
            dataset=ds,
            encoded_dataset=lambda include_meta=True: b"encoded",
        )
        assert receiver(event) == 0x0000
        assert stored == [store.path_for("1.2.3", "1.2.3.4", "1.2.3.4.5")]
        assert stored[0].read_bytes() == b"encoded"
        del ds.SeriesInstanceUID
        assert receiver(event) == 0x0117
        assert receiver.failures == [
            "1 instance without its study, series or SOP instance UID was refused"
        ]


# ---------------------------------------------------------------------- queries


class TestQuery:
    def test_return_keys_and_filters(self) -> None:
        ds = build_query("STUDY", {"PatientID": "P*", "StudyDate": "20240101-20240131"})
        assert ds.QueryRetrieveLevel == "STUDY"
        assert ds.PatientID == "P*"
        assert ds.StudyInstanceUID == ""
        assert "NumberOfStudyRelatedInstances" in ds

    @pytest.mark.parametrize(
        ("level", "filters", "match"),
        [
            ("STUDY", {"SeriesInstanceUID": "1"}, "'SeriesInstanceUID' is not a matching key"),
            ("SERIES", {}, "a series-level query needs the study's StudyInstanceUID"),
            ("PATIENT", {"PatientID": "a\nb"}, "not a valid query value"),
        ],
    )
    def test_refused(self, level: str, filters: dict[str, str], match: str) -> None:
        with pytest.raises(PacsError, match=match):
            build_query(level, filters)

    def test_get_contexts(self) -> None:
        few = get_storage_contexts([CT_IMAGE_STORAGE, "1.2.840.10008.5.1.4.1.1.4"])
        assert len(few) == 2 * len(RETRIEVE_TRANSFER_SYNTAXES)
        assert all(len(syntaxes) == 1 for _, syntaxes in few)
        many = get_storage_contexts([f"1.2.3.{i}" for i in range(20)])
        assert len(many) == 20 and len(many[0][1]) == len(RETRIEVE_TRANSFER_SYNTAXES)
        generic = get_storage_contexts([])
        assert len(generic) == len(GET_STORAGE_CLASSES) <= 127


# ---------------------------------------------------------------------- a loopback SCP


def _ct(i: int) -> Dataset:
    ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.99.{i}"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


class _Scp:
    """A pynetdicom SCP on 127.0.0.1 with Verification, Study Root FIND/GET and CT storage."""

    def __init__(self, store_status: int = 0x0000) -> None:
        self.received: list[str] = []
        self.store_status = store_status
        ae = AE(ae_title="TESTSCP")
        ae.require_called_aet = True
        ae.add_supported_context("1.2.840.10008.1.1")
        ae.add_supported_context(STUDY_ROOT_FIND)
        ae.add_supported_context(STUDY_ROOT_GET)
        ae.add_supported_context(CT_IMAGE_STORAGE, scu_role=True, scp_role=True)
        handlers = [
            (evt.EVT_C_FIND, self._find),
            (evt.EVT_C_GET, self._get),
            (evt.EVT_C_STORE, self._store),
        ]
        self.server: Any = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        self.port = int(self.server.server_address[1])

    def _find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        if event.identifier.QueryRetrieveLevel == "STUDY" and "SOPClassesInStudy" in (
            event.identifier
        ):
            match = Dataset()
            match.QueryRetrieveLevel = "STUDY"
            match.SOPClassesInStudy = CT_IMAGE_STORAGE
            yield 0xFF00, match
            return
        for i in range(2):
            match = Dataset()
            match.QueryRetrieveLevel = "STUDY"
            match.PatientName = f"Doe^Jane{i}"
            match.PatientID = f"P{i}"
            match.StudyInstanceUID = f"1.2.3.{i}"
            match.ModalitiesInStudy = ["CT", "MR"]
            yield 0xFF00, match

    def _get(self, event: Any) -> Iterator[Any]:
        yield 3
        for i in range(3):
            ds = _ct(i)
            ds.StudyInstanceUID = event.identifier.StudyInstanceUID  # the study asked for
            yield 0xFF00, ds

    def _store(self, event: Any) -> int:
        self.received.append(str(event.request.AffectedSOPInstanceUID))
        return self.store_status

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def scp() -> Iterator[_Scp]:
    server = _Scp()
    yield server
    server.close()


class TestAgainstLoopbackScp:
    def test_echo(self, scp: _Scp) -> None:
        assert PacsClient(_node(scp.port), timeouts=GENEROUS).echo() >= 0

    def test_find(self, scp: _Scp) -> None:
        matches = PacsClient(_node(scp.port), timeouts=GENEROUS).find("study", {"PatientID": "P*"})
        assert [m.get("PatientName") for m in matches] == ["Doe^Jane0", "Doe^Jane1"]
        assert matches[0].get("ModalitiesInStudy") == "CT\\MR"
        assert matches[0].level == "STUDY"

    def test_get_into_hashed_store(self, scp: _Scp, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "store")
        seen: list[tuple[int, int]] = []
        result = PacsClient(_node(scp.port), timeouts=GENEROUS).get(
            "1.2.3.0", store=store, progress=lambda d, t: seen.append((d, t))
        )
        assert (len(result.stored), result.completed, result.failed) == (3, 3, 0)
        assert seen[-1] == (3, 3)
        for path in result.stored:
            ds = pydicom.dcmread(path)
            rel = instance_relpath(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            assert path == store.root.joinpath(*rel.parts)
            assert ds.PixelData == _ct(0).PixelData

    def test_get_stops(self, scp: _Scp, tmp_path: Path) -> None:
        stop = threading.Event()
        stop.set()
        result = PacsClient(_node(scp.port), timeouts=GENEROUS).get(
            "1.2.3.0", store=LocalStore(tmp_path / "s"), stop=stop
        )
        assert result.cancelled

    def test_send(self, scp: _Scp, tmp_path: Path) -> None:
        paths = []
        for i in range(2):
            path = tmp_path / f"ct{i}.dcm"
            _ct(i).save_as(path, enforce_file_format=True)
            paths.append(path)
        junk = tmp_path / "junk.dcm"
        junk.write_bytes(b"nope")
        seen: list[tuple[int, int]] = []
        result = PacsClient(_node(scp.port), timeouts=GENEROUS).send(
            [*paths, junk], progress=lambda d, t: seen.append((d, t))
        )
        assert result.sent == tuple(paths)
        assert [p for p, _ in result.failed] == [junk]
        assert scp.received == [_ct(0).SOPInstanceUID, _ct(1).SOPInstanceUID]
        assert seen[-1] == (3, 3)

    def test_send_refused_by_scp(self, tmp_path: Path) -> None:
        server = _Scp(store_status=0xA700)
        try:
            path = tmp_path / "ct.dcm"
            _ct(0).save_as(path, enforce_file_format=True)
            result = PacsClient(_node(server.port), timeouts=GENEROUS).send([path])
        finally:
            server.close()
        assert result.failed == ((path, "refused: status 0xA700 (Refused: Out of Resources)"),)

    def test_unknown_called_ae_is_rejected(self, scp: _Scp) -> None:
        client = PacsClient(_node(scp.port, aet="WHO"), timeouts=GENEROUS)
        with pytest.raises(PacsError) as err:
            client.echo()
        assert err.value.one_line() == (
            f"WHO@127.0.0.1:{scp.port} rejected the association (Called AE title not "
            "recognised, Service User) (check the node's AE title ('WHO' is not known there))"
        )


class TestAssociationFailures:
    def test_connection_refused(self) -> None:
        port = _free_port()
        with pytest.raises(PacsError, match=rf"^connection refused by 127\.0\.0\.1:{port} "):
            PacsClient(_node(port), timeouts=GENEROUS).echo()

    def test_peer_that_never_answers(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            port = listener.getsockname()[1]
            client = PacsClient(_node(port), timeouts=Timeouts(connect=2, acse=0.5))
            with pytest.raises(
                PacsError,
                match=r"accepted the connection but did not answer the association request "
                r"within 0\.5 s",
            ):
                client.echo()

    def test_unknown_host(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def no_such_host(*args: object, **kwargs: object) -> None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
        node = PacsNode("x", "AE", "pacs.invalid", 104)
        with pytest.raises(
            PacsError, match=r"^can't resolve host 'pacs.invalid': Name or service not known"
        ):
            PacsClient(node, timeouts=GENEROUS).echo()

    def test_dns_that_hangs(self, monkeypatch: pytest.MonkeyPatch) -> None:
        release = threading.Event()

        def hang(*args: object, **kwargs: object) -> None:
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "late")

        monkeypatch.setattr(socket, "getaddrinfo", hang)
        node = PacsNode("x", "AE", "slow.example", 104)
        try:
            with pytest.raises(PacsError, match=r"looking up host 'slow.example' took more than"):
                PacsClient(node, timeouts=Timeouts(connect=0.2)).echo()
        finally:
            release.set()

    def test_move_port_in_use(self, tmp_path: Path) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            client = PacsClient(
                _node(_free_port()), LocalAE("ME", port, "127.0.0.1"), timeouts=GENEROUS
            )
            with pytest.raises(PacsError, match=rf"can't listen on port {port} for C-MOVE"):
                client.move("1.2.3", store=LocalStore(tmp_path / "s"))


# ---------------------------------------------------------------------- CLI


class TestCli:
    def test_node_commands(self, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        argv = ["pacs", "node", "add", "main", "--aet", "ORTHANC", "--host", "10.1.2.3"]
        assert main([*argv, "--port", "4242", "--move"]) == 0
        assert main(["pacs", "node", "list"]) == 0
        assert main(["pacs", "node", "local", "--aet", "RA1", "--port", "11113"]) == 0
        out = capsys.readouterr().out
        assert "main (ORTHANC@10.1.2.3:4242, move)" in out
        assert "our AE: RA1, C-MOVE Storage SCP on 0.0.0.0:11113" in out
        saved = json.loads((data_dir / "pacs.json").read_text())
        assert saved["nodes"]["main"] == {
            "ae_title": "ORTHANC",
            "host": "10.1.2.3",
            "port": 4242,
            "retrieve": "move",
        }
        assert main(["pacs", "node", "remove", "main"]) == 0
        assert main(["pacs", "node", "remove", "main"]) == 1
        assert "no PACS node named 'main'" in capsys.readouterr().err

    def test_echo_and_find(self, scp: _Scp, capsys: pytest.CaptureFixture[str]) -> None:
        argv = ["pacs", "node", "add", "t", "--aet", "TESTSCP", "--host", "127.0.0.1"]
        assert main([*argv, "--port", str(scp.port)]) == 0
        assert main(["pacs", "echo", "t"]) == 0
        assert "C-ECHO OK" in capsys.readouterr().out
        assert main(["pacs", "find", "t", "--patient-id", "P*", "--json"]) == 0
        found = json.loads(capsys.readouterr().out)
        assert [m["PatientID"] for m in found] == ["P0", "P1"]

    def test_refused_is_one_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        port = _free_port()
        argv = ["pacs", "node", "add", "gone", "--aet", "X", "--host", "127.0.0.1"]
        assert main([*argv, "--port", str(port)]) == 0
        capsys.readouterr()
        assert main(["pacs", "echo", "gone", "--timeout", "2"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith(f"radassist pacs: error: connection refused by 127.0.0.1:{port}")

    @pytest.mark.parametrize(
        "argv",
        [
            ["pacs"],
            ["pacs", "echo"],
            ["pacs", "find", "n", "--level", "image"],
            ["pacs", "get", "n"],
            ["pacs", "node", "add", "n", "--aet", "A", "--host", "h", "--port", "0"],
            ["pacs", "echo", "n", "--timeout", "-1"],
        ],
    )
    def test_usage_errors_exit_2(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1
