"""The hostile corpus through the real CLI, in child processes under an address-space limit: every
file is decoded or refused in one line, never a crash, a traceback, a log line or a raw control
character on the terminal (issue 12). `make test` runs one file per class; `make fuzz` runs
tests/hostile/fuzz.py over more seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_app.infra.safetext import is_safe
from tests.hostile import harness
from tests.hostile.corpus import CLASSES, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_corpus(tmp_path_factory.mktemp("hostile"), seeds_per_class=1)


@pytest.fixture(scope="module")
def child_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-data")


def _report(run: harness.Run) -> str:
    return (
        f"exit {run.returncode}, {run.wall_s:.1f} s, peak RSS {run.peak_rss >> 20} MiB; "
        f"problems: {run.problems}; stderr tail: {run.stderr[-800:]!r}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CLASSES))
def test_inspect_decodes_or_refuses_in_one_line(
    name: str, corpus: list[Path], child_data: Path
) -> None:
    path = next(p for p in corpus if p.name.startswith(f"{name}-"))
    run = harness.inspect([path], child_data)
    assert not run.problems, _report(run)
    if run.returncode == 1:
        assert harness.refused(run, path), _report(run)
        mine = [line for line in run.stderr.splitlines() if line.startswith(str(path))]
        assert len(mine) == 1, _report(run)


@pytest.fixture(scope="module")
def predicted(
    corpus: list[Path], child_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[harness.Run, harness.Run]:
    """A benign predict (its address space sets the limit), then one predict over the corpus."""
    out = tmp_path_factory.mktemp("predict")
    benign = harness.predict([harness.BENIGN], out / "benign", child_data, 0)
    assert benign.returncode == 0 and not benign.problems, _report(benign)
    run = harness.predict(corpus, out / "hostile", child_data, harness.predict_limit(benign))
    return benign, run


@pytest.mark.slow
def test_predict_over_the_corpus_is_clean(predicted: tuple[harness.Run, harness.Run]) -> None:
    _, run = predicted
    assert not run.problems, _report(run)
    assert "Traceback" not in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CLASSES))
def test_predict_refuses_what_inspect_refuses_in_one_line(
    name: str, corpus: list[Path], predicted: tuple[harness.Run, harness.Run]
) -> None:
    _, run = predicted
    path = next(p for p in corpus if p.name.startswith(f"{name}-"))
    mine = [line for line in run.stderr.splitlines() if line.startswith(f"{path}: ")]
    assert len(mine) <= 1, mine


@pytest.mark.slow
def test_logs_go_to_the_file_not_the_terminal(
    predicted: tuple[harness.Run, harness.Run], child_data: Path
) -> None:
    log = child_data / "logs" / "radassist.log"
    assert log.is_file()
    text = log.read_text(encoding="utf-8")
    assert "desktop_app" in text
    assert all(is_safe(line) for line in text.splitlines())
    for run in predicted:
        assert not any(harness.LOG_LINE.search(line) for line in run.stderr.splitlines())
