"""The persisted header index: hits, stale and replaced files, corrupt caches, privacy, bounds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import generate_uid

from desktop_app.dicom.limits import ReadLimits
from desktop_app.studies import indexcache
from desktop_app.studies.index import StudyIndex, index_paths
from desktop_app.studies.indexcache import IndexCache, default_index_cache
from tests.helpers.dicomfiles import image_dataset, save

STUDY, SERIES = generate_uid(), generate_uid()
NAME, PATIENT_ID = "Secretname^Jane", "PID-4711-XYZ"
DESCRIPTION = "Unusualdescription head"


def slice_file(path: Path, z: float, **elements: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = dict(
        StudyInstanceUID=STUDY,
        SeriesInstanceUID=SERIES,
        ImagePositionPatient=[0, 0, z],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        PatientName=NAME,
        PatientID=PATIENT_ID,
        StudyDescription=DESCRIPTION,
        SeriesNumber=3,
        InstanceNumber=int(z) + 1,
    )
    values.update(elements)
    return save(image_dataset(**values), path)


@pytest.fixture
def series(tmp_path: Path) -> Path:
    folder = tmp_path / "Patient Jane folder"
    for i in range(5):
        slice_file(folder / f"Jane_{i}.dcm", float(i))
    return folder


def new_cache(folder: Path, **kw: Any) -> IndexCache:
    # racy_seconds=0: the files were just written (the racy rule has its own test).
    return IndexCache(folder, racy_seconds=0.0, **kw)


def after_the_clock_passes(stat: os.stat_result, folder: Path) -> None:
    """Return once the file system stamps a change later than ``stat``'s ctime. A kernel with
    coarse timestamps (one tick: 1-10 ms; Linux before 6.13) gives a rewrite in the same tick
    the same size, mtime and ctime as the cached file: the racy case that ``racy_seconds=0``
    switches off here, and a stale hit by chance (the files are written ~4 ms before)."""
    probe = folder / "clock-probe"
    probe.touch()
    while probe.stat().st_ctime_ns <= stat.st_ctime_ns:
        os.utime(probe)  # a new ctime: the clock as the file system reads it


def summary(index: StudyIndex) -> list[Any]:
    """Everything the index gives, compared between cached and fresh runs."""
    tree = [
        (p.key, p.name, p.patient_id, s.study_instance_uid, s.description, se.series_instance_uid)
        for p in index.patients
        for s in p.studies
        for se in s.series
    ]
    return [tree, list(index.iter_instances()), [x.one_line() for x in index.problems]]


class TestHits:
    def test_reopen_reads_one_header_per_series_and_gives_the_same_index(
        self, series: Path, tmp_path: Path
    ) -> None:
        fresh = index_paths([series])
        first = new_cache(tmp_path / "c")
        assert summary(index_paths([series], cache=first)) == summary(fresh)
        assert (first.hits, first.misses) == (0, 5)
        again = new_cache(tmp_path / "c")  # as a new process would
        assert summary(index_paths([series], cache=again)) == summary(fresh)
        assert (again.hits, again.misses, again.dropped) == (4, 0, 0)
        # Built without __init__ (see indexcache._instance): the same object in every way.
        cached = index_paths([series], cache=new_cache(tmp_path / "c"))
        for a, b in zip(cached.iter_instances(), fresh.iter_instances(), strict=True):
            assert (vars(a), hash(a), repr(a)) == (vars(b), hash(b), repr(b))

    @pytest.mark.parametrize("executor", ["threads", "processes"])
    def test_pooled_runs_use_it_too(self, series: Path, tmp_path: Path, executor: str) -> None:
        index_paths([series], cache=new_cache(tmp_path / "c"))
        cache = new_cache(tmp_path / "c")
        result = index_paths([series], cache=cache, executor=executor, workers=2)  # type: ignore[arg-type]
        assert summary(result) == summary(index_paths([series]))
        assert cache.hits == 4

    def test_no_identifier_in_plain_text(self, series: Path, tmp_path: Path) -> None:
        index_paths([series], cache=new_cache(tmp_path / "c"))
        (file,) = (tmp_path / "c").glob("*.json")
        text = file.read_bytes()
        for secret in (NAME, "Secretname", PATIENT_ID, DESCRIPTION, STUDY, SERIES, "Jane"):
            assert secret.encode() not in text
        if os.name == "posix":
            assert file.stat().st_mode & 0o777 == 0o600
            assert (tmp_path / "c" / "key").stat().st_mode & 0o777 == 0o600

    def test_files_just_written_are_not_cached(self, series: Path, tmp_path: Path) -> None:
        index_paths([series], cache=IndexCache(tmp_path / "c"))  # default racy window
        assert not list((tmp_path / "c").glob("*.json"))

    def test_other_limits_use_another_cache(self, series: Path, tmp_path: Path) -> None:
        index_paths([series], cache=new_cache(tmp_path / "c"))
        limits = ReadLimits(max_frames=10)
        other = new_cache(tmp_path / "c", limits=limits)
        index_paths([series], cache=other, limits=limits)
        assert other.hits == 0
        with pytest.raises(ValueError, match="should be the run's"):
            index_paths([series], cache=new_cache(tmp_path / "c"), limits=limits)


class TestStale:
    def test_a_rewritten_file_is_read_again(self, series: Path, tmp_path: Path) -> None:
        index_paths([series], cache=new_cache(tmp_path / "c"))
        after_the_clock_passes((series / "Jane_3.dcm").stat(), tmp_path)
        slice_file(series / "Jane_3.dcm", 30.0)
        cache = new_cache(tmp_path / "c")
        result = index_paths([series], cache=cache)
        assert summary(result) == summary(index_paths([series]))
        positions = {i.path.name: i.image_position for i in result.iter_instances()}
        assert positions["Jane_3.dcm"] == (0.0, 0.0, 30.0)
        assert cache.hits == 3

    def test_same_size_and_mtime_but_new_content_is_read_again(
        self, series: Path, tmp_path: Path
    ) -> None:
        target = series / "Jane_2.dcm"
        before = target.stat()
        index_paths([series], cache=new_cache(tmp_path / "c"))
        after_the_clock_passes(before, tmp_path)
        data = bytearray(target.read_bytes())
        # Same length, other value: Instance Number "3 " -> "9 ".
        i = data.index(b"\x20\x00\x13\x00IS\x02\x003 ")
        data[i + 8 : i + 10] = b"9 "
        target.write_bytes(bytes(data))
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert (target.stat().st_size, target.stat().st_mtime_ns) == (
            before.st_size,
            before.st_mtime_ns,
        )
        cache = new_cache(tmp_path / "c")
        result = index_paths([series], cache=cache)
        numbers = {i.path.name: i.instance_number for i in result.iter_instances()}
        assert numbers["Jane_2.dcm"] == 9
        assert cache.hits == 3

    def test_a_hostile_file_under_the_same_name_size_and_mtime_is_refused(
        self, series: Path, tmp_path: Path
    ) -> None:
        target = series / "Jane_4.dcm"
        before = target.stat()
        index_paths([series], cache=new_cache(tmp_path / "c"))
        data = bytearray(target.read_bytes())
        # Rows' value length 2 -> 0xFFF0: a declared length far past the end of the file.
        i = data.index(b"\x28\x00\x10\x00US\x02\x00")
        data[i + 6 : i + 8] = b"\xf0\xff"
        replacement = series / "replacement.tmp"
        replacement.write_bytes(bytes(data))
        os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(replacement, target)  # a new inode, same name, size and mtime
        cache = new_cache(tmp_path / "c")
        result = index_paths([series], cache=cache)
        assert [p.path.name for p in result.problems] == ["Jane_4.dcm"]
        assert "Jane_4.dcm" not in {i.path.name for i in result.iter_instances()}

    def test_a_file_that_is_no_longer_dicom_is_forgotten(
        self, series: Path, tmp_path: Path
    ) -> None:
        index_paths([series], cache=new_cache(tmp_path / "c"))
        (series / "Jane_1.dcm").write_bytes(b"not dicom at all")
        result = index_paths([series], cache=new_cache(tmp_path / "c"))
        assert [p.path.name for p in result.problems] == ["Jane_1.dcm"]
        (file,) = (tmp_path / "c").glob("*.json")
        assert len(json.loads(file.read_text())["entries"]) == 4


class TestCorrupt:
    def cache_file(self, folder: Path) -> Path:
        (file,) = folder.glob("*.json")
        return file

    @pytest.mark.parametrize(
        "damage",
        [
            lambda doc: "{not json",
            lambda doc: json.dumps([1, 2, 3]),
            lambda doc: json.dumps({**doc, "version": 999}),
            lambda doc: json.dumps({**doc, "layouts": [["x"] * 19]}),
            lambda doc: json.dumps({**doc, "entries": {k: [1] for k in doc["entries"]}}),
        ],
        ids=["not-json", "not-a-cache", "other-version", "bad-layout", "bad-entry"],
    )
    def test_refused_and_rebuilt(self, series: Path, tmp_path: Path, damage: Any) -> None:
        index_paths([series], cache=new_cache(tmp_path / "c"))
        file = self.cache_file(tmp_path / "c")
        file.write_text(damage(json.loads(file.read_text())))
        result = index_paths([series], cache=new_cache(tmp_path / "c"))
        assert summary(result) == summary(index_paths([series]))
        json.loads(self.cache_file(tmp_path / "c").read_text())  # rewritten whole
        again = new_cache(tmp_path / "c")
        index_paths([series], cache=again)
        assert again.hits == 4

    def test_rows_over_the_limits_are_refused(self, series: Path, tmp_path: Path) -> None:
        index_paths([series], cache=new_cache(tmp_path / "c"))
        file = self.cache_file(tmp_path / "c")
        doc = json.loads(file.read_text())
        for layout in doc["layouts"]:
            layout[5] = 10**9  # Number of Frames
        file.write_text(json.dumps(doc))
        cache = new_cache(tmp_path / "c")
        assert summary(index_paths([series], cache=cache)) == summary(index_paths([series]))
        assert cache.dropped == 1

    def test_the_spot_check_drops_a_cache_that_disagrees(
        self, series: Path, tmp_path: Path
    ) -> None:
        index_paths([series], cache=new_cache(tmp_path / "c"))
        file = self.cache_file(tmp_path / "c")
        doc = json.loads(file.read_text())
        for entry in doc["entries"].values():
            entry[6][1] = 1000  # every Instance Number, the first file's included
        file.write_text(json.dumps(doc))
        cache = new_cache(tmp_path / "c")
        result = index_paths([series], cache=cache)
        assert summary(result) == summary(index_paths([series]))
        assert (cache.dropped, cache.hits) == (1, 0)


class TestBounds:
    def test_least_recently_used_folders_go(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(indexcache, "MAX_CACHE_FILES", 2)
        for k in range(4):
            slice_file(tmp_path / f"s{k}" / "a.dcm", 0.0)
            index_paths([tmp_path / f"s{k}"], cache=new_cache(tmp_path / "c"))
        assert len(list((tmp_path / "c").glob("*.json"))) == 2

    def test_an_oversized_cache_file_is_not_read(
        self, series: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        index_paths([series], cache=new_cache(tmp_path / "c"))
        monkeypatch.setattr(indexcache, "MAX_CACHE_BYTES", 100)
        cache = new_cache(tmp_path / "c")
        index_paths([series], cache=cache)
        assert cache.hits == 0

    def test_a_folder_over_the_entry_cap_is_not_cached(
        self, series: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(indexcache, "MAX_ENTRIES", 3)
        index_paths([series], cache=new_cache(tmp_path / "c"))
        assert not list((tmp_path / "c").glob("*.json"))


def test_default_cache_lives_in_the_data_folder(data_dir: Path) -> None:
    cache = default_index_cache()
    assert cache is not None
    assert cache.folder == data_dir / indexcache.CACHE_FOLDER
