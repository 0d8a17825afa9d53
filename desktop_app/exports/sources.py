"""The source study of an export: its files indexed, the headers as exported (de-identified
with consistent UIDs when asked), and key images rendered for display.

Every DICOM object an export writes (SR, secondary capture) copies the patient and study
modules from these headers and references the source instances by their SOP Instance UIDs.
When de-identifying, the headers pass through the same :class:`~desktop_app.privacy.deid.
Deidentifier` (PS3.15 Annex E Basic Profile) as ``radassist deidentify``: the same secret gives
the same new UIDs, so a de-identified SR references the de-identified copy of the study, and
the patient's pseudonym and shifted dates agree everywhere. Files are never located by tag
values: the index reads the given paths, and instances are matched by SOP Instance UID.

UIDs from the source are validated before they are written into new objects (PS3.5 9.1): an
invalid one (``../../..``, a 6 KB string, letters) is replaced by a valid UID derived from it
(``dicom.uids``), the same in every output of the export, and recorded in :attr:`StudySources.
uid_repairs` so that the export can say what was replaced.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from desktop_app.dicom.uids import UidRepairs
from desktop_app.infra.cancel import StopFlag, stop_requested
from desktop_app.infra.errors import ExportError
from desktop_app.infra.hashedpaths import clean_uid, uid_hash
from desktop_app.privacy.deid import Deidentifier, burned_in_risk
from desktop_app.studies.index import InstanceInfo, StudyIndex, StudyNode, index_paths

log = logging.getLogger(__name__)


# Patient and study attributes that SR and SC constructors read from their reference dataset
# (PS3.3 C.7.1.1 Patient, C.7.2.1 General Study): Type 2, so present even when empty.
_TYPE2_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


@dataclass(frozen=True)
class StudyHeader:
    """Patient and study attributes as exported (pseudonymised when de-identified), as text."""

    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_date: str
    study_time: str
    study_description: str
    accession_number: str
    modalities: tuple[str, ...]
    study_instance_uid: str


class StudySources:
    """One study out of the given files: instances by SOP Instance UID, headers, key images.

    ``study_uid`` picks the study when the inputs hold several (ExportError otherwise).
    ``deidentifier``: when given, :meth:`header` returns de-identified copies and :meth:`uid`
    maps UIDs through it. ``index`` reuses an index the caller already has.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        study_uid: str | None = None,
        deidentifier: Deidentifier | None = None,
        index: StudyIndex | None = None,
        stop: StopFlag = None,
    ) -> None:
        if index is None:
            if not paths:
                raise ExportError("no study files given", hint="pass the study's files or folder")
            index = index_paths(list(paths), stop=stop)
        self.index = index
        self.problems = [p.one_line() for p in index.problems]
        studies = [(patient, study) for patient in index.patients for study in patient.studies]
        wanted = clean_uid(study_uid) if study_uid else ""
        if wanted:
            studies = [s for s in studies if s[1].study_instance_uid == wanted]
        if not studies:
            where = Path(paths[0]) if paths else None
            what = f"study {uid_hash(wanted)}" if wanted else "a DICOM study"
            raise ExportError(
                f"the inputs hold no {what}" if wanted else "the inputs hold no DICOM study",
                where,
                "pass the folder or files of the study that was reviewed",
            )
        if len(studies) > 1:
            raise ExportError(
                f"the inputs hold {len(studies)} studies; an export covers one",
                Path(paths[0]) if paths else None,
                "pass one study's files (or choose the study)",
            )
        self.study: StudyNode = studies[0][1]
        self.study_uid = self.study.study_instance_uid
        self.deidentifier = deidentifier
        self.instances: dict[str, InstanceInfo] = {}
        self.series_of: dict[str, str] = {}
        for series in self.study.series:
            for inst in series.instances:
                self.instances.setdefault(inst.sop_instance_uid, inst)
                self.series_of.setdefault(inst.sop_instance_uid, series.series_instance_uid)
        self.uid_repairs = UidRepairs()
        self._original: dict[str, Dataset] = {}
        self._exported: dict[str, Dataset] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ identities
    @property
    def deidentified(self) -> bool:
        return self.deidentifier is not None

    def uid(self, original: str) -> str:
        """The UID as exported: the de-identified one (consistent across the study and with
        ``radassist deidentify``), else the original when it is valid, else a derived one."""
        if not original:
            return ""
        if self.deidentifier is not None:
            return self.deidentifier.uid(original)
        with self._lock:
            return self.uid_repairs.fix(original)

    @property
    def exported_study_uid(self) -> str:
        return self.uid(self.study_uid)

    def instance(self, sop_uid: str, what: str = "a finding") -> InstanceInfo:
        inst = self.instances.get(clean_uid(sop_uid))
        if inst is None:
            raise ExportError(
                f"{what} refers to image {uid_hash(sop_uid)} (hashed SOP Instance UID), which is "
                "not in the inputs",
                hint="pass every file of the reviewed study",
            )
        return inst

    def slice_image(self, series_uid: str, part: int, slice_index: int) -> tuple[str, int] | None:
        """(SOP Instance UID, frame) of slice ``slice_index`` of part ``part`` (1-based) of a
        series as ``series.assemble`` orders it (the viewer's and the engine's order), or None
        when there is no such slice."""
        from desktop_app.studies.series import assemble

        node = self.study.find_series(series_uid)
        if node is None:
            return None
        stacks = assemble(node).stacks
        if not 1 <= part <= len(stacks) or not 0 <= slice_index < len(stacks[part - 1].slices):
            return None
        ref = stacks[part - 1].slices[slice_index]
        return ref.instance.sop_instance_uid, ref.frame

    def series_modality(self, series_uid: str) -> str:
        node = self.study.find_series(series_uid)
        return node.modality if node is not None else ""

    def series_instances(self, series_uid: str) -> list[InstanceInfo]:
        """The series' instances that hold pixels (what the model could have seen)."""
        node = self.study.find_series(series_uid)
        return [i for i in (node.instances if node else []) if i.has_pixels]

    # ------------------------------------------------------------------ headers
    def original_header(self, sop_uid: str) -> Dataset:
        """The instance's header as stored (no pixel data), cached."""
        with self._lock:
            ds = self._original.get(sop_uid)
        if ds is None:
            from desktop_app.dicom.dicomfile import read_header

            ds = read_header(self.instance(sop_uid).path)
            with self._lock:
                self._original[sop_uid] = ds
        return ds

    def header(self, sop_uid: str) -> Dataset:
        """The instance's header as exported: a de-identified copy when de-identifying, with
        the Type 2 patient/study attributes present (empty when the source lacks them)."""
        with self._lock:
            ds = self._exported.get(sop_uid)
        if ds is not None:
            return ds
        ds = copy.deepcopy(self.original_header(sop_uid))
        if self.deidentifier is not None:
            self.deidentifier.deidentify(ds)
        with self._lock:
            self.uid_repairs.repair_dataset(ds)
        for keyword in _TYPE2_KEYWORDS:
            if keyword not in ds or ds[keyword].value is None:
                setattr(ds, keyword, "")
        with self._lock:
            self._exported[sop_uid] = ds
        return ds

    def headers(self, sop_uids: Iterable[str], stop: StopFlag = None) -> list[Dataset]:
        out = []
        for sop in sop_uids:
            if stop_requested(stop):
                from desktop_app.infra.errors import Cancelled

                raise Cancelled()
            out.append(self.header(sop))
        return out

    def first_sop(self) -> str:
        """The study's first image instance (lowest series, then instance number)."""
        best: tuple[int, int, str] | None = None
        for series in self.study.series:
            for inst in series.instances:
                key = (series.series_number or 0, inst.instance_number or 0, inst.sop_instance_uid)
                if inst.has_pixels and (best is None or key < best):
                    best = key
        if best is None:
            raise ExportError("the study holds no image", hint="pass the study's image files")
        return best[2]

    def study_header(self, sop_uid: str | None = None) -> StudyHeader:
        """Patient and study attributes as exported, from ``sop_uid``'s header (default: the
        study's first image)."""
        from desktop_app.dicom import dsvalues

        ds = self.header(sop_uid or self.first_sop())
        modalities = tuple(dict.fromkeys(s.modality for s in self.study.series if s.modality) or ())
        return StudyHeader(
            patient_name=dsvalues.text(ds, "PatientName", ""),
            patient_id=dsvalues.text(ds, "PatientID", ""),
            birth_date=dsvalues.text(ds, "PatientBirthDate", ""),
            sex=dsvalues.text(ds, "PatientSex", ""),
            study_date=dsvalues.text(ds, "StudyDate", ""),
            study_time=dsvalues.text(ds, "StudyTime", ""),
            study_description=dsvalues.text(ds, "StudyDescription", ""),
            accession_number=dsvalues.text(ds, "AccessionNumber", ""),
            modalities=modalities,
            study_instance_uid=self.exported_study_uid,
        )

    def check_burned_in(self, sop_uids: Iterable[str], allowed: bool) -> list[str]:
        """PS3.15 E.3.1: key images copy the source pixels, so a de-identified export refuses
        sources whose pixels may carry identifying text unless ``allowed``. Returns the
        warnings (one per flagged image) when allowed; raises ExportError when not."""
        if self.deidentifier is None:
            return []
        warnings = []
        for sop in dict.fromkeys(sop_uids):
            risk = burned_in_risk(self.original_header(sop))
            if not risk.flagged:
                continue
            if not allowed:
                raise ExportError(
                    f"image {uid_hash(sop)} may carry burned-in identifying text "
                    f"({risk.summary()}); key images copy its pixels",
                    self.instance(sop).path,
                    "check the image, then allow burned-in text (--include-burned-in), or "
                    "export without secondary captures and PDF",
                )
            warnings.append(
                f"image {uid_hash(sop)}: burned-in text risk accepted ({risk.summary()})"
            )
        return warnings

    # ------------------------------------------------------------------ pixels
    def render(self, sop_uid: str, frame: int = 0) -> np.ndarray:
        """The image as the viewer shows it by default (the file's window, else automatic;
        MONOCHROME1 inverted): uint8 grey (rows, cols) or RGB (rows, cols, 3)."""
        from desktop_app.dicom.display import render
        from desktop_app.dicom.pixels import load_frame

        inst = self.instance(sop_uid)
        loaded = load_frame(inst.path, frame, ds=self.original_header(sop_uid))
        return render(loaded)
