"""desktop_app.studies.frames: frames counted before they are listed (issue 12).

Files that declare millions of frames, more frames than they hold, or no dataset at all are
refused by the index with one line; a legitimately huge multi-frame object is indexed with a
lazy frame list and inspected a block at a time. The bounded checks run ``radassist inspect``
and the predict command's planning in a subprocess under an address-space limit.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from desktop_app.dicom.limits import ReadLimits
from desktop_app.infra.errors import LimitExceededError, PixelDecodeError
from desktop_app.studies.frames import declared_frames, spread
from desktop_app.studies.index import NO_DATASET, index_paths
from desktop_app.studies.inspection import STATUS_OK, STATUS_REFUSED, inspect_paths
from desktop_app.studies.series import FrameRefs, assemble
from desktop_app.studies.volume import read_native_frame, read_native_frames
from tests.studies.framefiles import encapsulated, meta_only, multiframe, preamble_only

GIB = 1024**3
ADDRESS_SPACE = 3 * GIB // 2  # 1.5 GiB: the hostile-corpus bound of issue 12

Builder = Callable[[Path], Path]

REFUSED: dict[str, tuple[Builder, str]] = {
    "10M frames": (
        lambda p: multiframe(p, 10_000_000, columns=2, pixel_bytes=2),
        r"declares 10000000 frames, over the limit of 100000 \(a safety limit for untrusted files ",
    ),
    "2**32 frames": (
        lambda p: multiframe(p, 2**32, columns=2, pixel_bytes=2),
        r"declares 4294967296 frames, over the limit of 100000",
    ),
    "truncated": (
        lambda p: multiframe(p, 100_000, rows=4, columns=4, pixel_bytes=50_000),
        r"pixel data holds 50000 bytes, enough for 3125 of the 100000 frames declared "
        r"\(1600000 bytes\) \(the file is truncated",
    ),
    "too few fragments": (
        lambda p: encapsulated(p, 1000, 3),
        r"encapsulated pixel data holds 3 fragment\(s\), fewer than the 1000 frames declared",
    ),
    "short offset table": (
        lambda p: encapsulated(p, 3, 2, fragments_per_frame=2, bot=True),
        r"the Basic Offset Table lists 2 frame\(s\), fewer than the 3 frames declared",
    ),
    "preamble only": (preamble_only, r"no dataset after the file meta \("),
    "meta only": (meta_only, r"no dataset after the file meta \("),
}


@pytest.fixture(scope="module")
def refused_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("refused")
    return {
        name: build(folder / f"{name.replace(' ', '_').replace('*', '')}.dcm")
        for name, (build, _) in REFUSED.items()
    }


@pytest.fixture(scope="module")
def huge_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Legitimate, consistent multi-frame objects with very many tiny frames."""
    folder = tmp_path_factory.mktemp("huge")
    return {
        "100k 1x1": multiframe(folder / "f100k.dcm", 100_000),
        "20k 4x4": multiframe(folder / "f20k.dcm", 20_000, rows=4, columns=4),
    }


class TestDeclaredFrames:
    @pytest.mark.parametrize(("raw", "expected"), [
        (b"12 ", 12.0),
        (b"4294967296", 4294967296.0),
        (b"3\\4", 3.0),
        (b"", None),
        (None, None),
        (b"abc", None),
        (b"1e999", None),
        (b"\xff", None),
    ])  # fmt: skip
    def test_parses_the_first_value(self, raw: bytes | None, expected: float | None) -> None:
        assert declared_frames(raw) == expected


class TestSpread:
    @pytest.mark.parametrize(("count", "most", "expected"), [
        (3, 5, [0, 1, 2]),
        (10, 4, [0, 3, 6, 9]),
        (5, 1, [0]),
        (100_000, 3, [0, 50_000, 99_999]),
    ])  # fmt: skip
    def test_first_and_last_are_included(self, count: int, most: int, expected: list[int]) -> None:
        assert list(spread(count, most)) == expected


class TestIndexRefuses:
    @pytest.mark.parametrize("name", list(REFUSED))
    def test_one_line_and_no_instance(self, name: str, refused_files: dict[str, Path]) -> None:
        path = refused_files[name]
        index = index_paths([path], executor="serial")
        assert index.instance_count == 0
        assert [p.path for p in index.problems] == [path]
        problem = index.problems[0]
        assert "\n" not in problem.one_line()
        assert problem.one_line().startswith(f"{path}: ")
        assert re.search(REFUSED[name][1], problem.reason), problem.reason

    @pytest.mark.parametrize("name", list(REFUSED))
    def test_inspect_lists_it_as_a_problem(self, name: str, refused_files: dict[str, Path]) -> None:
        report = inspect_paths([refused_files[name]], executor="serial")
        assert report.exit_code == 1
        assert [f.status for f in report.files] == [STATUS_REFUSED]
        assert report.summary()["instances"] == 0

    def test_the_reason_names_the_empty_dataset(self, refused_files: dict[str, Path]) -> None:
        index = index_paths([refused_files["meta only"]], executor="serial")
        assert index.problems[0].reason.startswith(NO_DATASET)
        assert index.problems[0].kind == "DicomReadError"

    def test_over_the_limit_is_a_limit_error(self, refused_files: dict[str, Path]) -> None:
        index = index_paths([refused_files["2**32 frames"]], executor="serial")
        assert index.problems[0].kind == LimitExceededError.__name__

    def test_the_limit_is_the_callers(self, tmp_path: Path) -> None:
        path = multiframe(tmp_path / "f20.dcm", 20)
        assert index_paths([path], executor="serial").instance_count == 1
        small = index_paths([path], limits=ReadLimits(max_frames=10), executor="serial")
        assert small.instance_count == 0
        assert "declares 20 frames, over the limit of 10" in small.problems[0].reason

    def test_enough_fragments_are_indexed(self, tmp_path: Path) -> None:
        index = index_paths([encapsulated(tmp_path / "rle.dcm", 3, 3, bot=True)])
        assert index.instance_count == 1 and not index.problems


class TestHugeObjects:
    def test_frames_are_listed_lazily(self, huge_files: dict[str, Path]) -> None:
        index = index_paths([huge_files["100k 1x1"]], executor="serial")
        (_, _, series), = index.iter_series()  # fmt: skip
        (stack,) = assemble(series).stacks
        assert isinstance(stack.slices, FrameRefs)
        assert len(stack) == 100_000 and stack.ordered_by == "frame order"
        assert stack.slices[-1].frame == 99_999
        assert [r.frame for r in stack.slices[10:13]] == [10, 11, 12]
        with pytest.raises(IndexError, match=r"frame 100000 is out of range 0\.\.99999"):
            stack.slices[100_000]

    @pytest.mark.parametrize("name", ["100k 1x1", "20k 4x4"])
    def test_inspect_decodes_every_frame(self, name: str, huge_files: dict[str, Path]) -> None:
        report = inspect_paths([huge_files[name]], executor="serial")
        (result,) = report.files
        assert result.status == STATUS_OK, result.reason
        assert result.frames_decoded == result.frames == report.images_decoded
        assert result.shape == ((1, 1) if name == "100k 1x1" else (4, 4))


class TestReadNativeFrames:
    def test_a_block_is_the_frames_one_by_one(self, tmp_path: Path) -> None:
        path = multiframe(tmp_path / "f30.dcm", 30, rows=3, columns=5)
        (inst,) = index_paths([path], executor="serial").iter_instances()
        block = read_native_frames(inst, 4, 20)
        assert block is not None and block.shape == (20, 3, 5)
        for k in (0, 7, 19):
            np.testing.assert_array_equal(block[k], read_native_frame(inst, 4 + k))

    def test_a_file_cut_after_indexing_is_not_read(self, tmp_path: Path) -> None:
        path = multiframe(tmp_path / "f30.dcm", 30, rows=3, columns=5)
        (inst,) = index_paths([path], executor="serial").iter_instances()
        assert inst.pixel_data is not None
        os.truncate(path, inst.pixel_data.value_offset + 10 * 15 + 4)  # inside frame 10
        assert read_native_frames(inst, 0, 30) is None  # changed since indexing
        (result,) = inspect_paths([path], executor="serial").files
        assert result.status == STATUS_REFUSED
        assert (
            result.reason is not None and "declares 450 bytes but only 154 remain" in result.reason
        )

    def test_out_of_range(self, tmp_path: Path) -> None:
        (inst,) = index_paths([multiframe(tmp_path / "f3.dcm", 3)]).iter_instances()
        with pytest.raises(PixelDecodeError, match="frames 2 to 3 are out of range"):
            read_native_frames(inst, 2, 2)


# --------------------------------------------------------------------------- bounded runs

_CHILD = """
import json, sys, contextlib, io
from desktop_app.cli import main
from desktop_app.inference.sources import plan_slices
from desktop_app.infra.errors import RadAssistError
path = sys.argv[1]
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(["inspect", path])
try:
    plan = plan_slices(path)  # what predict does with a file before its first frame
    planned, refusal = len(plan), None
    plan.load(0), plan.load(len(plan) - 1)
except RadAssistError as e:
    planned, refusal = 0, e.one_line()
# VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec on Linux)
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
           if line.startswith("VmHWM:"))
print(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
    "planned": planned, "refusal": refusal, "maxrss": hwm}))
"""


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_bounded(path: Path) -> dict[str, object]:
    """``radassist inspect PATH`` and predict's plan for PATH in a child process limited to
    1.5 GiB of address space; the generous timeout is a bound, not a benchmark."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_address_space,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.skipif(
    not hasattr(resource, "RLIMIT_AS") or not Path("/proc/self/status").exists(),
    reason="needs RLIMIT_AS and /proc (Linux)",
)
class TestBounded:
    @pytest.mark.parametrize("name", ["10M frames", "2**32 frames", "truncated", "meta only"])
    def test_refused_by_inspect_and_predict(
        self, name: str, refused_files: dict[str, Path]
    ) -> None:
        path = refused_files[name]
        result = run_bounded(path)
        problems = [
            line for line in str(result["stderr"]).splitlines() if line.startswith(str(path))
        ]
        assert result["code"] == 1
        assert len(problems) == 1
        assert "Traceback" not in str(result["stderr"]) + str(result["stdout"])
        refusal = str(result["refusal"])
        assert refusal == problems[0]  # predict refuses with inspect's own line
        assert int(str(result["maxrss"])) < GIB

    @pytest.mark.parametrize("name", ["100k 1x1", "20k 4x4"])
    def test_huge_objects_are_decoded_and_planned(
        self, name: str, huge_files: dict[str, Path]
    ) -> None:
        from desktop_app.inference.sources import MAX_RUN_IMAGES

        result = run_bounded(huge_files[name])
        assert result["code"] == 0, result["stderr"]
        assert result["refusal"] is None
        assert result["planned"] == MAX_RUN_IMAGES
        assert int(str(result["maxrss"])) < GIB
