"""The index's fast path (``headerinfo.RawFields`` over ``dicomfile.scan_header``, no pydicom
dataset) gives what pydicom's parse gives (``index.read_record_with_pydicom``): the same
InstanceInfo and tree fields, or the same refusal. No field is documented to differ.

Checked on every file of pydicom's test files and pydicom-data, on the synthetic studies, on
hand-made odd headers, and on seeded random headers that mix odd values, wrong VRs,
character sets and sequences.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from desktop_app.dicom import headerinfo
from desktop_app.phantoms.studies import write_chest_xr, write_ct_series
from desktop_app.studies import index
from tests.helpers.dicomfiles import (
    UNDEFINED,
    explicit,
    implicit,
    item,
    meta_header,
    pydicom_data_files,
    pydicom_test_files,
    sequence_delimiter,
)

CORPUS = pydicom_test_files() + pydicom_data_files()


@pytest.fixture
def fast_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """The files that ``read_record`` read without pydicom during the test."""
    used: list[Path] = []
    record = index._record

    def counting(instance: headerinfo.InstanceInfo, f: object) -> object:
        result = record(instance, f)  # type: ignore[arg-type]
        if isinstance(f, headerinfo.RawFields):
            used.append(instance.path)
        return result

    monkeypatch.setattr(index, "_record", counting)
    yield used


def same_as_pydicom(path: Path) -> object:
    fast = index.read_record(path)
    assert fast == index.read_record_with_pydicom(path)
    return fast


# --------------------------------------------------------------------------- corpora


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_file(path: Path) -> None:
    same_as_pydicom(path)


def test_most_corpus_files_take_the_fast_path(fast_path: list[Path]) -> None:
    for path in CORPUS:
        index.read_record(path)
    # 114 of 147 today; the rest are big endian, deflated, without meta, enhanced
    # multi-frame, DICOMDIRs, or have values pydicom must decode.
    assert len(fast_path) >= (100 if len(CORPUS) > 100 else len(CORPUS) // 2)


def test_synthetic_studies(tmp_path: Path, fast_path: list[Path]) -> None:
    ct = write_ct_series(tmp_path / "ct", 3, slices=3, rows=16, shuffle_names=True).paths
    xr, _ = write_chest_xr(tmp_path / "xr.dcm", 4, rows=64, photometric="MONOCHROME1")
    paths = [*ct, xr]
    for path in paths:
        record = same_as_pydicom(path)
        assert isinstance(record, index._Record)
    assert sorted(fast_path) == sorted(paths)


# --------------------------------------------------------------------------- odd headers


def header_file(
    path: Path,
    elements: dict[int, tuple[str, bytes]],
    *,
    implicit_vr: bool = False,
    raw: dict[int, bytes] | None = None,
) -> Path:
    """A file of these elements (VR, value bytes, written as they are) plus 2x2 pixels;
    ``raw`` adds elements already encoded (sequences)."""
    elements = {0x00280010: ("US", struct.pack("<H", 2)), 0x00280011: ("US", b"\x02\x00")} | (
        elements
    )
    raw = raw or {}
    body = b""
    for tag in sorted({*elements, *raw}):
        if tag in raw:
            body += raw[tag]
            continue
        vr, value = elements[tag]
        body += implicit(tag, value) if implicit_vr else explicit(tag, vr, value)
    pixels = b"\x00" * 8
    body += implicit(0x7FE00010, pixels) if implicit_vr else explicit(0x7FE00010, "OW", pixels)
    syntax = ImplicitVRLittleEndian if implicit_vr else ExplicitVRLittleEndian
    path.write_bytes(meta_header(syntax) + body)
    return path


PN, LO, CS, UI = 0x00100010, 0x0008103E, 0x00080060, 0x0020000E
DS, IS, US, CHARSET = 0x00200032, 0x00200013, 0x00280100, 0x00080005

ODD_HEADERS: dict[str, dict[int, tuple[str, bytes]]] = {
    "plain": {PN: ("PN", b"Doe^Jane"), LO: ("LO", b"AXIAL 5mm"), CS: ("CS", b"CT")},
    "empty values": {PN: ("PN", b""), LO: ("LO", b""), CS: ("CS", b""), UI: ("UI", b"")}
    | {DS: ("DS", b""), IS: ("IS", b""), US: ("US", b"")},
    "padding": {PN: ("PN", b"Doe^Jane\x00"), LO: ("LO", b"  two  words  "), UI: ("UI", b"1.2\x00")},
    "two NULs": {LO: ("LO", b"AB\x00\x00"), CHARSET: ("CS", b"ISO_IR 100")},
    "NUL inside": {LO: ("LO", b"A\x00B "), CHARSET: ("CS", b"ISO_IR 100")},
    "multi-valued": {PN: ("PN", b"A^B\\C^D"), LO: ("LO", b"one\\two"), CS: ("CS", b"ct\\mr")},
    "latin-1, no charset": {PN: ("PN", "Müller^Jörg".encode("latin-1"))},
    "latin-1 under ISO_IR 100": {
        CHARSET: ("CS", b"ISO_IR 100"),
        PN: ("PN", "Müller^Jörg".encode("latin-1")),
        LO: ("LO", "Jörg".encode("latin-1")),
    },
    "UTF-8 under ISO_IR 192": {
        CHARSET: ("CS", b"ISO_IR 192"),
        PN: ("PN", "Wang^Xi=王^茜".encode()),
    },
    "bad UTF-8": {CHARSET: ("CS", b"ISO_IR 192"), PN: ("PN", b"\xff\xfe^x")},
    "ISO 2022 escapes": {
        CHARSET: ("CS", b"\\ISO 2022 IR 87"),
        PN: ("PN", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"),
    },
    "ISO 2022 JIS, plain": {CHARSET: ("CS", b"ISO 2022 IR 87"), PN: ("PN", b"Ab^Cd^^")},
    "Cyrillic": {CHARSET: ("CS", b"ISO_IR 144"), PN: ("PN", "Люкceмбypг".encode("iso8859_5"))},
    "unknown charset": {CHARSET: ("CS", b"ISO_IR 999"), PN: ("PN", b"A^B\xe9")},
    "misspelt charset": {CHARSET: ("CS", b"ISO-IR 192"), PN: ("PN", "é^ü".encode())},
    "charset with wrong VR": {CHARSET: ("LO", b"ISO_IR 100"), PN: ("PN", b"A^B")},
    "control characters": {PN: ("PN", b"A\tB"), LO: ("LO", b"x\ry"), CHARSET: ("CS", b"ISO_IR 6")},
    "wrong VRs": {CS: ("LO", b"CT"), US: ("UL", b"\x10\x00\x00\x00"), IS: ("LO", b"3")},
    "UN values": {CS: ("UN", b"CT"), PN: ("UN", b"A^B ")},
    "two-value US": {US: ("US", b"\x10\x00\x08\x00")},
    "odd numbers": {IS: ("IS", b"1e3"), DS: ("DS", b"nan\\inf\\1e400"), 0x00180050: ("DS", b"abc")},
    "huge integer": {IS: ("IS", b"99999999999999999999"), 0x00200011: ("IS", b" +7 ")},
    "non-ASCII UID": {UI: ("UI", b"1.2.\xe9"), 0x00080018: ("UI", b"1.2 3")},
    "DICOMDIR class": {0x00080016: ("UI", b"1.2.840.10008.1.3.10")},
    "text in long VRs": {LO: ("UT", b"long text"), PN: ("UC", b"A^B")},
}


@pytest.mark.parametrize("implicit_vr", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("elements", ODD_HEADERS.values(), ids=ODD_HEADERS.keys())
def test_odd_header(
    tmp_path: Path, elements: dict[int, tuple[str, bytes]], implicit_vr: bool
) -> None:
    same_as_pydicom(header_file(tmp_path / "odd.dcm", elements, implicit_vr=implicit_vr))


@pytest.mark.parametrize(
    ("name", "fast"),
    [
        ("plain", True),
        ("empty values", True),
        ("latin-1 under ISO_IR 100", True),
        ("UTF-8 under ISO_IR 192", True),
        ("ISO 2022 escapes", False),
        ("ISO 2022 JIS, plain", False),
        ("wrong VRs", False),
        ("bad UTF-8", False),
    ],
)
def test_which_headers_take_the_fast_path(
    tmp_path: Path, fast_path: list[Path], name: str, fast: bool
) -> None:
    path = header_file(tmp_path / "odd.dcm", ODD_HEADERS[name])
    same_as_pydicom(path)
    assert (path in fast_path) == fast


def test_enhanced_multiframe_goes_through_pydicom(tmp_path: Path, fast_path: list[Path]) -> None:
    shared = explicit(0x52009229, "SQ", item(explicit(0x00289110, "SQ", b"")))
    elements = {0x00280008: ("IS", b"2")}
    path = header_file(tmp_path / "mf.dcm", elements, raw={0x52009229: shared})
    same_as_pydicom(path)
    assert fast_path == []


def test_rt_dose_grid_frame_offsets(tmp_path: Path, fast_path: list[Path]) -> None:
    elements = {
        0x00280008: ("IS", b"3"),
        0x00200032: ("DS", b"10\\20\\30"),
        0x00200037: ("DS", b"1\\0\\0\\0\\1\\0"),
        0x3004000C: ("DS", b"0\\2.5\\5"),
    }
    path = header_file(tmp_path / "dose.dcm", elements)
    record = same_as_pydicom(path)
    assert isinstance(record, index._Record) and fast_path == [path]
    assert record.instance.frame_positions == ((10, 20, 30), (10, 20, 32.5), (10, 20, 35))


# --------------------------------------------------------------------------- seeded mixtures

_TEXT = [b"", b"PLAIN", b" lead  trail ", b"AB\x00", b"A\\B", b"M\xfcller", "Mü".encode()]
_TEXT += [b"\x1b$B", b"A\tB", b"A\x00B", b"Ab^Cd^^", b"X=Y"]
_UID = [b"", b"1.2.3", b"1.2.3\x00", b" 1.2.3 ", b"1.2\\3.4", b"1.2.\xe93"]
_CS = [b"", b"ct", b"CT ", b"MONOCHROME2", b"CT\\MR", b"C\x00T"]
_DA = [b"", b"20200101", b"junk\x00"]
_US = [b"", struct.pack("<H", 4), struct.pack("<HH", 4, 5), b"\x01"]
_IS = [b"", b"1", b" 12 ", b"abc", b"1.5", b"1e3", b"1\\2", b"-3", b"3\x00"]
_DS = [b"", b"1", b"nan", b"abc", b"0.5\\0.5", b"1\\0\\0\\0\\1\\0", b"-1.5\\2\\3", b"1\\2\\3\x00"]
_DS += [b"0\\0\\0\\0\\0\\0", b"1 \\ 2 \\ 3 "]
_CHARSETS = [b"ISO_IR 100", b"ISO_IR 192", b"ISO 2022 IR 87", b"\\ISO 2022 IR 100", b""]
_CHARSETS += [b"ISO_IR 144", b"GB18030", b"bogus", b"ISO-IR 192", b"ISO 2022 IR 13"]
_FIELDS: dict[int, tuple[str, list[bytes]]] = {
    0x00080016: ("UI", _UID),
    0x00080018: ("UI", _UID),
    0x00080060: ("CS", _CS),
    0x00080020: ("DA", _DA),
    0x00080030: ("TM", _DA),
    0x00081030: ("LO", _TEXT),
    0x0008103E: ("LO", _TEXT),
    0x00100010: ("PN", _TEXT),
    0x00100020: ("LO", _TEXT),
    0x00180015: ("CS", _CS),
    0x00180050: ("DS", _DS),
    0x0020000D: ("UI", _UID),
    0x0020000E: ("UI", _UID),
    0x00200011: ("IS", _IS),
    0x00200013: ("IS", _IS),
    0x00200032: ("DS", _DS),
    0x00200037: ("DS", _DS),
    0x00280002: ("US", _US),
    0x00280004: ("CS", _CS),
    0x00280008: ("IS", _IS),
    0x00280030: ("DS", _DS),
    0x00280100: ("US", _US),
    0x00280103: ("US", _US),
    0x3004000C: ("DS", _DS),
}
_SEQUENCES = (0x00081140, 0x00082112, 0x00091010, 0x52009229)


def _sequence(rng: random.Random, tag: int, implicit_vr: bool) -> bytes:
    def element(t: int, vr: str, value: bytes) -> bytes:
        return implicit(t, value) if implicit_vr else explicit(t, vr, value)

    inner = element(0x00081150, "UI", b"1.2.3")
    if rng.random() < 0.3:
        inner += element(0x00081140, "SQ", item(inner))
    kind = rng.choice(["defined", "undefined", "empty"])
    value = {
        "defined": item(inner) + item(inner, undefined=True),
        "undefined": item(inner, undefined=True) + sequence_delimiter(),
        "empty": b"",
    }[kind]
    length = UNDEFINED if kind == "undefined" else None
    if implicit_vr:
        return implicit(tag, value, length=length)
    return explicit(tag, "UN" if tag == 0x00091010 else "SQ", value, length=length)


@pytest.mark.parametrize("seed", range(4))
def test_random_headers(tmp_path: Path, fast_path: list[Path], seed: int) -> None:
    """Each field plain, odd or absent, now and then with a wrong VR; a character set or
    none; sequences (nested, defined and undefined length) between them."""
    rng = random.Random(seed)
    path = tmp_path / "r.dcm"
    for _ in range(60):
        implicit_vr = rng.random() < 0.4
        elements: dict[int, tuple[str, bytes]] = {}
        if rng.random() < 0.6:
            elements[CHARSET] = ("CS", rng.choice(_CHARSETS))
        for tag, (vr, choices) in _FIELDS.items():
            roll = rng.random()
            if roll < 0.1:
                continue
            value = choices[1] if roll < 0.7 else rng.choice(choices)
            if rng.random() < 0.03:
                vr = rng.choice(["LO", "UN", "OB", "UL", "SS", "UT"])
            elements[tag] = (vr, value)
        raw = {t: _sequence(rng, t, implicit_vr) for t in _SEQUENCES if rng.random() < 0.2}
        same_as_pydicom(header_file(path, elements, implicit_vr=implicit_vr, raw=raw))
    assert len(fast_path) >= 10  # the mixture reaches the fast path, not only pydicom


@pytest.mark.parametrize("sop_class", [b"1.2.840.10008.5.1.4.1.1.7", b"1.2.\xe9.7", b"1.2\x00.7"])
def test_sop_class_from_a_meta_group_without_group_length(tmp_path: Path, sop_class: bytes) -> None:
    """pydicom converts the first meta element while reading; here that is (0002,0002),
    the SOP Class when the dataset has no (0008,0016)."""
    meta = (
        explicit(0x00020002, "UI", sop_class)
        + explicit(0x00020003, "UI", b"1.2.3")
        + explicit(0x00020010, "UI", ExplicitVRLittleEndian.encode())
    )
    body = explicit(0x00080060, "CS", b"OT") + explicit(0x7FE00010, "OW", b"\x00" * 8)
    path = tmp_path / "nolength.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + meta + body)
    record = same_as_pydicom(path)
    assert isinstance(record, index._Record)
