"""`make fuzz`: the whole hostile corpus (several seeds per class) through `inspect` (one child per
file) and `predict` (one child per class), each under the address-space limit; prints a summary
table and exits 1 if any file crashed, broke the terminal or missed the goals (10 s, 1 GiB)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.hostile import harness
from tests.hostile.corpus import CLASSES, write_corpus


def _row(cmd: str, runs: list[tuple[list[Path], harness.Run]]) -> str:
    files = sum(len(paths) for paths, _ in runs)
    crashed = sum(len(paths) for paths, r in runs if r.problems)
    refused = sum(1 for paths, r in runs for p in paths if not r.problems and harness.refused(r, p))
    rss = max(r.peak_rss for _, r in runs) >> 20
    wall = max(r.wall_s for _, r in runs)
    return f"{cmd:8s} {files:6d} {refused:8d} {files - refused - crashed:8d} {crashed:8d} {rss:8d} {wall:8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="files per class (default 4)")
    parser.add_argument("--no-predict", action="store_true", help="inspect only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="radassist-fuzz-") as tmp:
        root = Path(tmp)
        corpus = write_corpus(root / "corpus", args.seeds)
        bad: list[str] = []
        inspected = []
        for path in corpus:
            run = harness.inspect([path], root / "data")
            inspected.append(([path], run))
            late = run.wall_s > harness.GOAL_S or run.peak_rss > harness.GOAL_RSS
            if run.problems or late:
                bad.append(
                    f"inspect {path.name}: {run.wall_s:.1f} s, {run.peak_rss >> 20} MiB, {run.problems[:3]}"
                )
        rows = [_row("inspect", inspected)]
        if not args.no_predict:
            benign = harness.predict([harness.BENIGN], root / "out0", root / "data", 0)
            limit = harness.predict_limit(benign)
            predicted = []
            for name in CLASSES:
                paths = [p for p in corpus if p.name.startswith(f"{name}-")]
                run = harness.predict(paths, root / "out" / name, root / "data", limit)
                predicted.append((paths, run))
                if run.problems:
                    bad.append(
                        f"predict {name}: {run.wall_s:.1f} s, {run.peak_rss >> 20} MiB, {run.problems[:3]}"
                    )
            rows.append(_row("predict", predicted))
            rows.append(
                f"(predict: one child per class of {args.seeds} files; benign chest_pa.dcm: "
                f"{benign.wall_s:.1f} s, {benign.peak_rss >> 20} MiB)"
            )
    print(
        f"{'command':8s} {'files':>6s} {'refused':>8s} {'decoded':>8s} {'crashed':>8s} {'maxRSS_MiB':>8s} {'max_s':>8s}"
    )
    print("\n".join(rows))
    for line in bad:
        print(f"FAIL {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
