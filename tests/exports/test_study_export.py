"""export_study: all four formats into OUT/<h(study)>/, atomically; progress and stop;
de-identification shared by every output; one-line errors."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pypdf import PdfReader

from desktop_app.exports import FORMATS, ExportRequest, export_study
from desktop_app.exports.sources import StudySources
from desktop_app.infra.errors import Cancelled, ExportError
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.infra.userdirs import data_dir
from desktop_app.privacy.deid import Deidentifier, DeidOptions, deidentify_paths
from tests.helpers.exports import (
    BIRTH_DATE,
    CHEST,
    CT_DIR,
    PATIENT_ID,
    chest_study,
    copy_study,
    fid,
    make_manifest,
    make_result,
)

# A UID: digits and at least two dots. The de-identified outputs hold new UIDs (2.25.<HMAC of a
# random secret>, and pydicom's random ones) whose ~40 random digits contain an 8-digit needle
# about once in 100,000 exports: a digits-only needle is looked for outside them.
_UID = re.compile(rb"[0-9]+(?:\.[0-9]+){2,}")


def _outside_uids(data: bytes) -> bytes:
    return _UID.sub(b"<uid>", data)


def _listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def chest(tmp_path: Path) -> tuple[list[Path], Any, Any]:
    return chest_study(tmp_path)


def test_all_four_formats_by_default(tmp_path: Path, chest: tuple[list[Path], Any, Any]) -> None:
    files, result, review = chest
    seen: list[tuple[int, int]] = []
    out = export_study(
        ExportRequest(
            study_paths=files,
            out_dir=tmp_path / "out",
            results=[result],
            review=review,
            model_manifest=make_manifest(),
        ),
        progress=lambda d, t: seen.append((d, t)),
    )
    study = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    assert out.folder == tmp_path / "out" / uid_hash(study)
    assert out.study_uid == study and not out.deidentified
    assert out.sr is not None and out.pdf is not None and out.json is not None
    assert len(out.sc) == out.key_images == 1
    assert (out.findings, out.problems) == (3, [])
    assert sorted(p.relative_to(out.folder).as_posix() for p in out.files) == _listing(out.folder)
    names = _listing(out.folder)
    assert names[:2] == ["findings.json", "report.pdf"]
    assert all(n.startswith(("sr/", "sc/")) and len(Path(n).stem) == 16 for n in names[2:])
    assert _listing(tmp_path / "out") == [f"{out.folder.name}/{n}" for n in names]  # no leftovers
    total = seen[-1][1]
    assert seen == [(i, total) for i in range(1, total + 1)]


def test_reexport_replaces_the_earlier_one(
    tmp_path: Path, chest: tuple[list[Path], Any, Any]
) -> None:
    files, _result, review = chest
    request = ExportRequest(
        study_paths=files, out_dir=tmp_path / "out", review=review, formats=["sr", "json"]
    )
    first = export_study(request)
    second = export_study(request)
    assert first.folder == second.folder
    assert first.sr != second.sr  # a new SR instance each time
    assert _listing(second.folder) == sorted(
        p.relative_to(second.folder).as_posix() for p in second.files
    )
    assert _listing(tmp_path / "out") == [
        f"{second.folder.name}/{n}" for n in _listing(second.folder)
    ]


def test_a_failure_leaves_nothing_half_written(
    tmp_path: Path, chest: tuple[list[Path], Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    files, _result, review = chest
    request = ExportRequest(study_paths=files, out_dir=tmp_path / "out", review=review)
    earlier = export_study(request)
    before = {n: (earlier.folder / n).read_bytes() for n in _listing(earlier.folder)}

    def broken(content: Any) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("desktop_app.exports.report_pdf.render_pdf", broken)
    with pytest.raises(ExportError, match=r"can't be written: No space left on device"):
        export_study(request)
    after = {n: (earlier.folder / n).read_bytes() for n in _listing(earlier.folder)}
    assert after == before  # the earlier export is untouched
    assert [p.name for p in (tmp_path / "out").iterdir()] == [earlier.folder.name]


def test_stop_cancels_between_steps_and_writes_nothing(
    tmp_path: Path, chest: tuple[list[Path], Any, Any]
) -> None:
    files, _result, review = chest
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 2:
            stop.set()

    with pytest.raises(Cancelled):
        export_study(
            ExportRequest(study_paths=files, out_dir=tmp_path / "out", review=review),
            progress=progress,
            stop=stop,
        )
    assert list((tmp_path / "out").iterdir()) == []


class TestDeidentified:
    @pytest.fixture
    def exported(
        self, tmp_path: Path, chest: tuple[list[Path], Any, Any]
    ) -> tuple[Any, list[Path], Any, Any]:
        files, result, review = chest
        out = export_study(
            ExportRequest(
                study_paths=files,
                out_dir=tmp_path / "out",
                results=[result],
                review=review,
                deidentify=True,
                model_manifest=make_manifest(),
            )
        )
        return out, files, result, review

    def test_no_identifier_is_left_in_any_output(
        self, exported: tuple[Any, list[Path], Any, Any]
    ) -> None:
        out, files, _result, _review = exported
        source = pydicom.dcmread(files[0], stop_before_pixels=True)
        forbidden = [
            "Testperson",
            "Jolene",
            PATIENT_ID,
            BIRTH_DATE,
            "Dr Reader",
            "Round opacity",
            str(source.StudyInstanceUID),
            str(source.SeriesInstanceUID),
            str(source.SOPInstanceUID),
            str(source.AccessionNumber),
        ]
        assert len(out.files) == 4  # SR, one SC, PDF, JSON
        for path in out.files:
            data = path.read_bytes()
            for text in forbidden:
                haystack = _outside_uids(data) if text.isdigit() else data
                assert text.encode() not in haystack, f"{text!r} in {path.name}"
        assert out.pdf is not None
        pdf_text = " ".join(page.extract_text() for page in PdfReader(out.pdf).pages)
        for text in forbidden:
            haystack = _outside_uids(pdf_text.encode()) if text.isdigit() else pdf_text.encode()
            assert text.encode() not in haystack
        pseudonym = str(pydicom.dcmread(out.sr).PatientName)
        assert pseudonym.startswith("RA-") and pseudonym in pdf_text  # the positive control
        assert "withheld" in pdf_text

    def test_every_output_shares_the_uids_of_the_deidentified_study(
        self, tmp_path: Path, exported: tuple[Any, list[Path], Any, Any]
    ) -> None:
        out, files, _, _ = exported
        # `radassist deidentify` of the same files (same secret) gives the same new UIDs
        report = deidentify_paths(files, tmp_path / "shared", DeidOptions(allow_burned_in=True))
        [copy] = [pydicom.dcmread(r.output) for r in report.written]
        sr = pydicom.dcmread(out.sr)
        [sc] = [pydicom.dcmread(p) for p in out.sc]
        assert out.study_uid == copy.StudyInstanceUID == sr.StudyInstanceUID == sc.StudyInstanceUID
        assert out.folder.name == uid_hash(copy.StudyInstanceUID)
        [evidence] = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
        assert evidence.SeriesInstanceUID == copy.SeriesInstanceUID
        assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == copy.SOPInstanceUID
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == copy.SOPInstanceUID
        for ds in (sr, sc):
            assert (ds.PatientName, ds.PatientID) == (copy.PatientName, copy.PatientID)
            assert ds.StudyDate == copy.StudyDate != "20230505"  # shifted the same way
            assert ds.PatientIdentityRemoved == "YES"
        import json

        doc = json.loads(out.json.read_text("utf-8"))
        assert doc["deidentified"] is True
        assert doc["study"]["study_instance_uid"] == copy.StudyInstanceUID
        assert doc["series"][0]["findings"][0]["sop_instance_uid"] == copy.SOPInstanceUID


def test_burned_in_text_risk_is_refused_unless_allowed(tmp_path: Path) -> None:
    files = copy_study(CHEST, tmp_path / "study", BurnedInAnnotation="YES")
    result = make_result(files, {"nodule": (0.9, 0, (263.0, 507.0, 61.0, 52.0))})
    request = ExportRequest(
        study_paths=files, out_dir=tmp_path / "out", results=[result], deidentify=True
    )
    with pytest.raises(ExportError, match=r"may carry burned-in identifying text \(Burned In "):
        export_study(request)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    request.deid_options = DeidOptions(allow_burned_in=True)
    out = export_study(request)
    assert any("burned-in text risk accepted" in w for w in out.warnings)
    request.formats, request.deid_options = ["sr", "json"], None  # no key images: no risk
    assert export_study(request).sr is not None


def test_a_deidentified_export_never_goes_into_the_data_folder(
    chest: tuple[list[Path], Any, Any],
) -> None:
    files, _, review = chest
    with pytest.raises(ExportError, match="inside RadAssist's data folder"):
        export_study(
            ExportRequest(
                study_paths=files, out_dir=data_dir() / "x", review=review, deidentify=True
            )
        )


def test_deidentified_uids_match_the_deidentifier(
    tmp_path: Path, chest: tuple[list[Path], Any, Any]
) -> None:
    files, result, review = chest
    out = export_study(
        ExportRequest(
            study_paths=files,
            out_dir=tmp_path / "o",
            review=review,
            formats=["json"],
            deidentify=True,
        )
    )
    assert out.study_uid == Deidentifier().uid(result.study_instance_uid)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"formats": ["gif"]}, r"unknown export format 'gif' \(choose from: sr, sc, pdf, json\)"),
        ({"formats": []}, r"no export format chosen"),
        ({"review": None}, r"there are no findings to export \(run the model"),
        ({"other_study": True}, r"the review belongs to another study than the files given"),
        (
            {"missing_image": True},
            r"refers to image [0-9a-f]{16} \(hashed SOP Instance UID\), "
            r"which is not in the inputs",
        ),
        ({"out_is_file": True}, r"out: is not a folder"),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path, chest: tuple[list[Path], Any, Any], change: dict[str, Any], message: str
) -> None:
    files, _result, review = chest
    request = ExportRequest(study_paths=files, out_dir=tmp_path / "out", review=review)
    if "formats" in change:
        request.formats = change["formats"]
    if "review" in change:
        request.review = None
    if change.get("other_study"):
        request.review.study_uid = "1.2.3.4"
        request.study_uid = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    if change.get("missing_image"):
        ct = copy_study(CT_DIR, tmp_path / "ct")
        request.study_paths = ct[:10]
        request.review = None
        request.results = [make_result(ct, {"nodule": (0.9, 17, (70.0, 110.0, 15.0, 16.0))})]
    if change.get("out_is_file"):
        (tmp_path / "out").write_text("x")
    with pytest.raises(ExportError, match=message) as info:
        export_study(request)
    assert "\n" not in str(info.value)


def test_sources_refuse_several_studies(tmp_path: Path) -> None:
    a = copy_study(CHEST, tmp_path / "a")
    b = copy_study(CT_DIR, tmp_path / "b")[:2]
    with pytest.raises(ExportError, match="the inputs hold 2 studies; an export covers one"):
        StudySources([*a, *b])
    assert StudySources([*a, *b], study_uid=str(pydicom.dcmread(b[0]).StudyInstanceUID))


def test_only_the_formats_asked_for(tmp_path: Path, chest: tuple[list[Path], Any, Any]) -> None:
    files, _, review = chest
    for formats in (["sc"], ["pdf", "json"]):
        out = export_study(
            ExportRequest(
                study_paths=files,
                out_dir=tmp_path / "-".join(formats),
                review=review,
                formats=formats,
            )
        )
        kinds = {
            "sr" if out.sr else "",
            "sc" if out.sc else "",
            "pdf" if out.pdf else "",
            "json" if out.json else "",
        } - {""}
        assert kinds == set(formats)
    assert set(FORMATS) == {"sr", "sc", "pdf", "json"}


def test_review_verdicts_decide_the_key_images(
    tmp_path: Path, chest: tuple[list[Path], Any, Any]
) -> None:
    files, result, review = chest
    review.clear_verdict(fid(result, "effusion"))  # back to pending: shown again
    out = export_study(
        ExportRequest(study_paths=files, out_dir=tmp_path / "out", review=review, formats=["sc"])
    )
    assert out.key_images == 1  # nodule and effusion share the one radiograph


def test_a_finding_without_sop_uid_is_placed_by_its_slice(tmp_path: Path) -> None:
    from dataclasses import replace

    files = copy_study(CT_DIR, tmp_path / "ct")
    result = make_result(files, {"nodule": (0.9, 17, (70.0, 110.0, 15.0, 16.0))})
    result.findings = [replace(f, sop_instance_uid="") for f in result.findings]
    out = export_study(
        ExportRequest(
            study_paths=[tmp_path / "ct"],
            out_dir=tmp_path / "out",
            results=[result],
            formats=["sc"],
        )
    )
    [sc] = [pydicom.dcmread(p) for p in out.sc]
    from desktop_app.studies.index import index_paths
    from desktop_app.studies.series import assemble

    [(_, _, series)] = list(index_paths([tmp_path / "ct"]).iter_series())
    expected = assemble(series).stacks[0].slices[17].instance.sop_instance_uid  # viewer order
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == expected
