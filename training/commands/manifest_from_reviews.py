"""`radassist-train manifest-from-reviews REVIEW_DIR --out manifest.csv`: a site's reviews as
training data.

Reads every saved review in REVIEW_DIR (the app's ``reviews/`` folder in the data folder, one
JSON file per study) and writes a training manifest in the format of ``training.data``
(shared/DESIGN.md "Training data"): one row per reviewed image, ``path`` relative to the CSV,
one 0/1 column per label, ``patient_id``, and the box of a positive finding.

Labels from the reader's verdicts (``review.state``: the reader's truth per label of a series,
never the model's call; schema-1 review files are upgraded on load):

- present → 1, with the reader's box: the one they drew for a finding the model missed (on the
  image they drew it on) or the model's box they edited. A box the reader left as the model drew
  it is not written (the box columns stay empty) unless ``--model-boxes``, which keeps the
  model's box where the reader agreed with a positive call;
- absent → 0 (whatever the model said);
- uncertain → left out (counted), so that a doubtful label never trains as either;
- no verdict → left out; with ``--pending-negatives-as-0``, a label the model calls negative and
  the reader left alone counts as 0 (the reader saw the study and did not object: a weaker
  label).

A finding is a label's maximum over a whole stack (a radiograph, or a series' slices), so a 0
holds for every image of that stack, while a 1 holds for the finding's own image. A row needs a
value for every label column: an image whose verdicts leave a label unknown (e.g. a CT slice
where one label was found while another label's positive finding sits on a different slice) is
left out (pick fewer labels with ``--labels``). The box columns hold the first positive label's
box (named in ``box_label``). Only frame 0 of an instance can be named in a manifest; findings
on later frames of multi-frame objects are left out. Every leaving-out is counted in the
summary.

Images: the reviews store UIDs, not file paths. Each image is found by its SOP Instance UID in
the folders given with ``--images`` (indexed, headers only), else in the app's local store of
retrieved studies (``<data>/store/<h(study)>/<h(series)>/<h(sop)>.dcm``). The ``path`` column
is the image's path relative to the CSV's folder (``..`` as needed); ``--copy-images`` instead
copies each image into ``<CSV folder>/images/<h(study)>/<h(series)>/<h(sop)>.dcm`` (names from
hashed UIDs, never tag values) so that the folder can be moved or shared as a whole.

``patient_id`` is a keyed hash (HMAC-SHA256 under the local de-identification secret, the one
``radassist deidentify`` uses) of the patient's ID and name: images of one patient share it,
so training splits stay per patient, and it can't be reversed or recomputed elsewhere. The
real ID never enters the manifest or the logs.

``--task segmentation`` writes a segmentation manifest (``training.segdata``) from the
reviews' lesions instead: one row per image of every series whose lesions are all decided
(none pending), with ``path``, ``mask`` (an 8-bit PNG beside the CSV under
``masks/<h(study)>/<h(series)>/<h(sop)>.png``: 255 inside the reader's truth, i.e. accepted and
reader-drawn lesions, 0 elsewhere, including rejected lesions), ``patient_id``, ``split``
(``--splits``: train / val / test 70/15/15 by a keyed hash of the patient, else none), and
``study_id`` / ``series_id``. Slices without a lesion are negative images, which training
stratifies on; ``--lesion-slices-only`` keeps only slices with foreground.

Exit status: 0 written; 1 no usable verdict, or some reviewed images were not found (the
manifest holds the others); 2 usage error.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop_app.commands._common import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, label_list
from desktop_app.infra.errors import DataError, RadAssistError

log = logging.getLogger(__name__)
PROG = "radassist-train manifest-from-reviews"

BOX_COLUMNS = ("x", "y", "width", "height")
COPY_FOLDER = "images"
MASK_FOLDER = "masks"
SEG_COLUMNS = ("path", "mask", "patient_id", "split", "study_id", "series_id")
SPLIT_SHARES = (("train", 0.70), ("val", 0.15), ("test", 0.15))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "review_dir", metavar="REVIEW_DIR", type=Path, help="folder of saved reviews (reviews/)"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="CSV", help="manifest to write")
    parser.add_argument(
        "--images",
        nargs="+",
        default=[],
        metavar="PATH",
        help="folders or files of the reviewed studies (default: the app's local store)",
    )
    parser.add_argument(
        "--copy-images",
        action="store_true",
        help="copy the images next to the manifest (images/...) instead of pointing at them",
    )
    parser.add_argument(
        "--labels",
        type=label_list,
        metavar="A,B",
        help="label columns to write (default: every label with a usable verdict)",
    )
    parser.add_argument(
        "--pending-negatives-as-0",
        action="store_true",
        help="count negative findings the reader left unreviewed as 0",
    )
    parser.add_argument(
        "--task",
        choices=("classification", "segmentation"),
        default="classification",
        help="segmentation: a manifest of per-image lesion masks from the reviewed lesions",
    )
    parser.add_argument(
        "--splits",
        action="store_true",
        help="segmentation: write a split column (train/val/test 70/15/15, per patient)",
    )
    parser.add_argument(
        "--lesion-slices-only",
        action="store_true",
        help="segmentation: only the images with a reviewed lesion (no negative images)",
    )
    parser.add_argument(
        "--model-boxes",
        action="store_true",
        help="write the model's box for a present label whose box the reader left unedited "
        "(default: only boxes the reader drew or edited)",
    )


# --------------------------------------------------------------------------- verdicts → labels


@dataclass
class ImageEntry:
    """One reviewed image: its UIDs, the label values decided on it, and its boxes."""

    study_uid: str
    series_uid: str
    sop_uid: str
    series_key: str = ""
    values: dict[str, int] = field(default_factory=dict)
    boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


@dataclass
class Harvest:
    """What the reviews yield: images with label values, and counts of what was left out."""

    images: dict[str, ImageEntry] = field(default_factory=dict)
    absent: dict[str, set[str]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    reviews: int = 0


def label_from_verdict(
    truth: str,
    positive: bool,
    reader_box: Any,
    model_box: Any,
    pending_negatives: bool,
    model_boxes: bool = False,
) -> tuple[int | None, Any, str]:
    """(label value or None, box or None, why left out) for one label's verdict (module
    docstring). ``positive``: the model's call at the threshold in force; ``reader_box``: the
    reader's box (drawn or edited), else None."""
    if truth == "present":
        if reader_box is not None:
            return 1, reader_box, ""
        return 1, (model_box if model_boxes and positive else None), ""
    if truth == "absent":
        return 0, None, ""
    if truth == "uncertain":
        return None, None, "the reader was uncertain"
    if pending_negatives and not positive:
        return 0, None, ""
    return None, None, "not reviewed"


def harvest(
    states: Iterable[Any], pending_negatives: bool = False, model_boxes: bool = False
) -> Harvest:
    """Label values per image from review states (``desktop_app.review.state.ReviewState``)."""
    out = Harvest()
    for state in states:
        out.reviews += 1
        for f in state.findings:
            if f.label not in out.labels:
                out.labels.append(f.label)
            value, box, why = label_from_verdict(
                f.truth,
                state.positive(f),
                f.edited_box,
                f.box,
                pending_negatives,
                model_boxes,
            )
            if value is None:
                out.skipped[why] += 1
                continue
            # A present label is on the image the reader drew its box on, else the model's.
            drawn_elsewhere = value == 1 and f.box_slice_index is not None
            sop = f.box_sop_instance_uid if drawn_elsewhere else f.sop_instance_uid
            frame = f.box_frame if drawn_elsewhere else f.frame
            if frame != 0:
                out.skipped["on a later frame of a multi-frame object"] += 1
                continue
            if not sop:
                out.skipped["no SOP Instance UID (not a DICOM image)"] += 1
                continue
            if value == 0:
                # A finding is the label's maximum over the whole stack: judged absent there,
                # it is absent on every image of the stack (rows made for other labels too).
                out.absent.setdefault(f.series_key, set()).add(f.label)
            entry = out.images.setdefault(
                sop, ImageEntry(state.study_uid, f.series_uid, sop, f.series_key)
            )
            entry.values[f.label] = value
            if value == 1 and box is not None:
                entry.boxes[f.label] = tuple(float(v) for v in box)  # type: ignore[assignment]
    return out


# --------------------------------------------------------------------------- images and rows


class ImageFinder:
    """SOP Instance UID → file: the ``--images`` folders (indexed), else the local store."""

    def __init__(self, paths: Sequence[str | Path], store_root: Path | None) -> None:
        self.by_sop: dict[str, Path] = {}
        self.problems: list[str] = []
        if paths:
            from desktop_app.studies.index import index_paths

            index = index_paths(list(paths))
            self.problems = [p.one_line() for p in index.problems]
            for inst in index.iter_instances():
                self.by_sop.setdefault(inst.sop_instance_uid, Path(inst.path))
        self.store_root = store_root

    def find(self, entry: ImageEntry) -> Path | None:
        found = self.by_sop.get(entry.sop_uid)
        if found is not None:
            return found
        if self.store_root is not None:
            from desktop_app.infra.hashedpaths import instance_relpath

            rel = instance_relpath(entry.study_uid, entry.series_uid, entry.sop_uid)
            candidate = self.store_root.joinpath(*rel.parts)
            if candidate.is_file():
                return candidate
        return None


def patient_hash(path: Path, sop_uid: str, keys: Any) -> str:
    """``p`` + 16 hex digits of HMAC(local secret, patient key) for the image's patient; checks
    that the file is the expected instance."""
    from desktop_app.dicom import dsvalues
    from desktop_app.dicom.dicomfile import read_header
    from desktop_app.infra.hashedpaths import clean_uid
    from desktop_app.studies.index import patient_key

    ds = read_header(path)
    if clean_uid(ds.get("SOPInstanceUID", "")) != sop_uid:
        raise DataError(
            "is not the reviewed image (its SOP Instance UID differs)",
            path,
            "point --images at the reviewed studies' original files",
        )
    key = patient_key(dsvalues.text(ds, "PatientID", ""), dsvalues.text(ds, "PatientName", ""))
    return "p" + keys.derive("manifest-patient", key).hex()[:16]


def _relative(path: Path, base: Path) -> str:
    try:
        rel = os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive (Windows): no relative path exists
        raise DataError(
            "can't be named relative to the manifest's folder (another drive)",
            path,
            "use --copy-images, or write the manifest on the images' drive",
        ) from None
    return Path(rel).as_posix()


def _copy(path: Path, entry: ImageEntry, base: Path) -> str:
    from desktop_app.infra.atomicio import atomic_path
    from desktop_app.infra.hashedpaths import instance_relpath

    rel = instance_relpath(entry.study_uid, entry.series_uid, entry.sop_uid)
    target = base / COPY_FOLDER / Path(*rel.parts)
    if not target.exists():
        with atomic_path(target) as tmp:
            shutil.copyfile(path, tmp)
    return (Path(COPY_FOLDER) / Path(*rel.parts)).as_posix()


def manifest_rows(
    found: Harvest,
    labels: Sequence[str],
    finder: ImageFinder,
    out_csv: Path,
    keys: Any,
    copy_images: bool = False,
) -> tuple[list[dict[str, str]], Counter[str], list[str]]:
    """(rows, counts of images left out by reason, missing images as one-line messages)."""
    from desktop_app.infra.hashedpaths import uid_hash

    rows: list[dict[str, str]] = []
    left_out: Counter[str] = Counter()
    missing: list[str] = []
    base = out_csv.parent
    for entry in found.images.values():
        for label in found.absent.get(entry.series_key, ()):
            entry.values.setdefault(label, 0)
        if any(label not in entry.values for label in labels):
            left_out["a label column has no usable verdict on the image"] += 1
            continue
        path = finder.find(entry)
        if path is None:
            missing.append(
                f"image {uid_hash(entry.sop_uid)} of study {uid_hash(entry.study_uid)} "
                "(hashed UIDs) was not found"
            )
            continue
        row = {
            "path": _copy(path, entry, base) if copy_images else _relative(path, base),
            "patient_id": patient_hash(path, entry.sop_uid, keys),
        }
        for label in labels:
            row[label] = str(entry.values[label])
        box_label = next((lab for lab in labels if lab in entry.boxes), "")
        box = entry.boxes.get(box_label) if box_label else None
        for column, value in zip(BOX_COLUMNS, box or ("", "", "", ""), strict=True):
            row[column] = f"{value:.1f}" if box else ""
        row["box_label"] = box_label
        row["study_id"] = uid_hash(entry.study_uid)
        row["series_id"] = uid_hash(entry.series_uid)
        rows.append(row)
    rows.sort(key=lambda r: (r["patient_id"], r["study_id"], r["path"]))
    return rows, left_out, missing


def write_manifest(path: Path, labels: Sequence[str], rows: Sequence[dict[str, str]]) -> None:
    from desktop_app.infra.atomicio import atomic_write_text

    columns = ["path", "patient_id", *labels, *BOX_COLUMNS, "box_label", "study_id", "series_id"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


# --------------------------------------------------------------------------- command


def run(args: argparse.Namespace) -> int:
    from desktop_app.review.store import ReviewStore

    review_dir: Path = args.review_dir
    if not review_dir.is_dir():
        print(
            f"{PROG}: error: {review_dir}: no such folder (pass the reviews/ folder of the "
            "RadAssist data folder)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    out: Path = args.out
    if out.is_dir():
        print(f"{PROG}: error: {out}: is a folder (give the CSV file to write)", file=sys.stderr)
        return EXIT_USAGE
    if args.task == "segmentation":
        return run_segmentation(args, list(ReviewStore(review_dir).iter_states()))
    found = harvest(
        ReviewStore(review_dir).iter_states(), args.pending_negatives_as_0, args.model_boxes
    )
    if not found.reviews:
        print(f"{PROG}: error: {review_dir}: holds no readable review file", file=sys.stderr)
        return EXIT_SOME_FAILED
    labels = list(args.labels) if args.labels else _usable_labels(found)
    unknown = [lab for lab in labels if lab not in found.labels]
    if unknown:
        print(
            f"{PROG}: error: no review has label {unknown[0]!r} (labels: "
            f"{', '.join(found.labels) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not labels:
        _print_skipped(found.skipped)
        print(
            f"{PROG}: error: no accepted or rejected finding usable as a label in "
            f"{found.reviews} review(s)",
            file=sys.stderr,
        )
        return EXIT_SOME_FAILED
    try:
        from desktop_app.infra.userdirs import store_dir
        from desktop_app.privacy.deid_keys import DeidKeyStore

        store = None if args.images else store_dir()
        finder = ImageFinder(args.images, store)
        rows, left_out, missing = manifest_rows(
            found, labels, finder, out, DeidKeyStore(), copy_images=args.copy_images
        )
        if not rows:
            _report(found, left_out, missing, finder.problems)
            print(f"{PROG}: error: no image has a usable row; nothing written", file=sys.stderr)
            return EXIT_SOME_FAILED
        write_manifest(out, labels, rows)
    except RadAssistError as err:
        print(f"{PROG}: error: {err.one_line()}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except OSError as err:
        print(f"{PROG}: error: {out}: can't be written: {err.strerror or err}", file=sys.stderr)
        return EXIT_SOME_FAILED
    positives = {lab: sum(r[lab] == "1" for r in rows) for lab in labels}
    print(
        f"wrote {len(rows)} image(s) from {found.reviews} review(s) to {out}: "
        + ", ".join(
            f"{lab} {positives[lab]} positive / {len(rows) - positives[lab]} negative"
            for lab in labels
        )
    )
    _report(found, left_out, missing, finder.problems)
    return EXIT_SOME_FAILED if missing else EXIT_OK


def _usable_labels(found: Harvest) -> list[str]:
    seen = {lab for entry in found.images.values() for lab in entry.values}
    return [lab for lab in found.labels if lab in seen]


def _print_skipped(skipped: Counter[str]) -> None:
    for why, n in sorted(skipped.items()):
        print(f"left out {n} finding(s): {why}", file=sys.stderr)


def _report(
    found: Harvest, left_out: Counter[str], missing: list[str], problems: list[str]
) -> None:
    _print_skipped(found.skipped)
    for why, n in sorted(left_out.items()):
        print(f"left out {n} image(s): {why} (pick fewer labels with --labels)", file=sys.stderr)
    for line in problems:
        print(line, file=sys.stderr)
    for line in missing:
        print(line, file=sys.stderr)
    if missing:
        print(
            f"{PROG}: {len(missing)} reviewed image(s) not found (pass their folders with "
            "--images); the manifest holds the others",
            file=sys.stderr,
        )


# --------------------------------------------------------------------------- segmentation


@dataclass
class SegSlice:
    """One image of a reviewed series and its mask (the reader's truth on that slice)."""

    entry: ImageEntry
    mask: Any  # bool (rows, cols)


@dataclass
class SegHarvest:
    """The reviewed series' slices, and what was left out (series and images, by reason)."""

    slices: list[SegSlice] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    series: int = 0
    lesions: Counter[str] = field(default_factory=Counter)
    reviews: int = 0


def harvest_lesions(states: Iterable[Any], lesion_slices_only: bool = False) -> SegHarvest:
    """Per-image masks from the reviews' lesions (``ReviewState.reviewed_labels``): only series
    whose model lesions all have a verdict, so that an undecided lesion never trains as
    background."""
    out = SegHarvest()
    for state in states:
        out.reviews += 1
        for problem in getattr(state, "lesion_problems", []):
            out.left_out[f"a series' lesion mask could not be read ({problem})"] += 1
        for key, series in state.lesion_sets.items():
            lesions = list(series.lesions.values())
            if not lesions:
                out.left_out["series with no lesion at all (not known to be reviewed)"] += 1
                continue
            if any(x.verdict == "pending" for x in lesions):
                out.left_out["series with lesions still pending"] += 1
                continue
            if len(series.slice_refs) != series.shape[0]:
                out.left_out["series whose images the review does not name"] += 1
                continue
            reviewed = state.reviewed_labels(key)
            out.series += 1
            for x in lesions:
                out.lesions[x.agreement or x.verdict] += 1
            for index, (sop, frame) in enumerate(series.slice_refs):
                mask = reviewed[index] != 0
                if lesion_slices_only and not mask.any():
                    continue
                if frame != 0 or not sop:
                    out.left_out["images on a later frame or without a SOP Instance UID"] += 1
                    continue
                entry = ImageEntry(state.study_uid, series.series_uid, sop, key)
                out.slices.append(SegSlice(entry, mask))
    return out


def split_of(patient: str, keys: Any) -> str:
    """train / val / test for a patient (``SPLIT_SHARES``), from a keyed hash: stable for one
    site, never the same cut as another site's."""
    digest = keys.derive("manifest-split", patient)
    share = int.from_bytes(digest[:8], "big") / 2**64
    for name, part in SPLIT_SHARES:
        if share < part:
            return name
        share -= part
    return SPLIT_SHARES[-1][0]


def segmentation_rows(
    found: SegHarvest,
    finder: ImageFinder,
    out_csv: Path,
    keys: Any,
    copy_images: bool = False,
    splits: bool = False,
) -> tuple[list[dict[str, str]], list[str]]:
    """(rows, missing images as one-line messages); writes each row's mask PNG."""
    import numpy as np

    from desktop_app.infra.hashedpaths import instance_relpath, uid_hash
    from desktop_app.phantoms.studies import write_mask_png

    rows: list[dict[str, str]] = []
    missing: list[str] = []
    base = out_csv.parent
    for item in found.slices:
        entry = item.entry
        path = finder.find(entry)
        if path is None:
            missing.append(
                f"image {uid_hash(entry.sop_uid)} of study {uid_hash(entry.study_uid)} "
                "(hashed UIDs) was not found"
            )
            continue
        rel = instance_relpath(entry.study_uid, entry.series_uid, entry.sop_uid)
        mask_rel = Path(MASK_FOLDER, *rel.parts).with_suffix(".png")
        write_mask_png(base / mask_rel, np.where(item.mask, 255, 0).astype(np.uint8))
        patient = patient_hash(path, entry.sop_uid, keys)
        rows.append(
            {
                "path": _copy(path, entry, base) if copy_images else _relative(path, base),
                "mask": mask_rel.as_posix(),
                "patient_id": patient,
                "split": split_of(patient, keys) if splits else "",
                "study_id": uid_hash(entry.study_uid),
                "series_id": uid_hash(entry.series_uid),
                "_positive": "1" if item.mask.any() else "0",  # counted, not written
            }
        )
    rows.sort(key=lambda r: (r["patient_id"], r["study_id"], r["series_id"], r["path"]))
    return rows, missing


def write_segmentation_manifest(path: Path, rows: Sequence[dict[str, str]], splits: bool) -> None:
    from desktop_app.infra.atomicio import atomic_write_text

    columns = [c for c in SEG_COLUMNS if splits or c != "split"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def run_segmentation(args: argparse.Namespace, states: list[Any]) -> int:
    """``--task segmentation``: the reviewed lesions as a segmentation manifest."""
    out: Path = args.out
    if not states:
        print(f"{PROG}: error: {args.review_dir}: holds no readable review file", file=sys.stderr)
        return EXIT_SOME_FAILED
    found = harvest_lesions(states, args.lesion_slices_only)
    if not found.slices:
        _print_left_out(found.left_out)
        print(
            f"{PROG}: error: no series with every lesion decided in {found.reviews} review(s) "
            "(accept or reject each lesion, or draw the missed ones, first)",
            file=sys.stderr,
        )
        return EXIT_SOME_FAILED
    try:
        from desktop_app.infra.userdirs import store_dir
        from desktop_app.privacy.deid_keys import DeidKeyStore

        finder = ImageFinder(args.images, None if args.images else store_dir())
        rows, missing = segmentation_rows(
            found, finder, out, DeidKeyStore(), args.copy_images, args.splits
        )
        if not rows:
            _print_left_out(found.left_out)
            for line in [*finder.problems, *missing]:
                print(line, file=sys.stderr)
            print(f"{PROG}: error: no reviewed image was found; nothing written", file=sys.stderr)
            return EXIT_SOME_FAILED
        write_segmentation_manifest(out, rows, args.splits)
    except RadAssistError as err:
        print(f"{PROG}: error: {err.one_line()}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except OSError as err:
        print(f"{PROG}: error: {out}: can't be written: {err.strerror or err}", file=sys.stderr)
        return EXIT_SOME_FAILED
    positive = sum(r["_positive"] == "1" for r in rows)
    lesions = ", ".join(f"{k} {n}" for k, n in sorted(found.lesions.items()))
    print(
        f"wrote {len(rows)} image(s) with masks ({positive} with a lesion, "
        f"{len(rows) - positive} without) from {found.series} reviewed series to {out}; "
        f"lesions at lesion level: {lesions} (TP accepted, FP rejected, FN drawn by the reader)"
    )
    _print_left_out(found.left_out)
    for line in [*finder.problems, *missing]:
        print(line, file=sys.stderr)
    return EXIT_SOME_FAILED if missing else EXIT_OK


def _print_left_out(left_out: Counter[str]) -> None:
    for why, n in sorted(left_out.items()):
        print(f"left out {n}: {why}", file=sys.stderr)
