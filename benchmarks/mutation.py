"""`make mutation`: mutmut over the decision modules, then the score per module and every
surviving mutant as a one-line change.

Why a script around mutmut: its own summary is a live progress line and `mutmut results`
lists names, not what was changed; the README keeps the per-module table and says why each
survivor is harmless, so the run has to print exactly that. What is mutated and which test
files run is `[tool.mutmut]` in pyproject.toml.

    python -m benchmarks.mutation             # run (resumes a stopped run), then report
    python -m benchmarks.mutation --report    # report the last run only
    python -m benchmarks.mutation --fresh     # forget earlier results first

Killed counts timeouts too (the mutant made a test hang: it was noticed). A mutant no
selected test reaches ("no tests") counts as not killed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
KILLED = {"killed", "timeout", "caught by type check"}
TARGET = 0.85


def _status(code) -> str:
    from mutmut.stats import status_by_exit_code
    return status_by_exit_code[code]


def load() -> dict[str, dict[str, str]]:
    """Source file -> {mutant name: status}, from mutmut's .meta files."""
    out = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        source = meta.relative_to(MUTANTS).as_posix()[: -len(".meta")]
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        out[source] = {name: _status(code) for name, code in codes.items()}
    return out


def changed_lines(name: str, source: str) -> str:
    """The mutant as `- original` / `+ mutated` lines (no diff headers or context)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    diff = get_diff_for_mutant(name, path=source).splitlines()
    return "\n".join("      " + line for line in diff
                     if line[:1] in "+-" and not line.startswith(("+++", "---")))


def report(results: dict[str, dict[str, str]], seconds: float | None = None) -> float:
    rows, total = [], Counter()
    for source, statuses in results.items():
        c = Counter("killed" if s in KILLED else s for s in statuses.values())
        c.pop("not checked", None)
        c.pop("skipped", None)
        n = sum(c.values())
        if n:
            rows.append((source, c, n))
            total.update(c)
    print(f"\n{'module':<45} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'score':>6}")
    for source, c, n in rows + [("all", total, sum(total.values()))]:
        if source == "all":
            print("-" * 86)
        print(f"{source:<45} {n:>7} {c['killed']:>6} {c['survived']:>8} {c['no tests']:>8} "
              f"{c['killed'] / n:>6.1%}")
    score = total["killed"] / max(sum(total.values()), 1)
    if seconds is not None:
        print(f"\nwall time {seconds / 60:.1f} min")
    print("\nsurviving mutants (what was changed, and no test failed):")
    for source, statuses in results.items():
        for name, status in statuses.items():
            if status in ("survived", "no tests", "suspicious"):
                print(f"  {name} [{status}]")
                print(changed_lines(name, source))
    verdict = "meets" if score >= TARGET else "BELOW"
    print(f"\nscore {score:.1%} ({total['killed']} of {sum(total.values())} killed): "
          f"{verdict} the {TARGET:.0%} target")
    return score


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report", action="store_true", help="only report the last run")
    p.add_argument("--fresh", action="store_true", help="delete mutants/ and start over")
    p.add_argument("--max-children", type=int, default=2, help="parallel mutant runs (2 cores)")
    args = p.parse_args(argv)
    seconds = None
    if not args.report:
        if args.fresh and MUTANTS.exists():
            shutil.rmtree(MUTANTS)
        started = time.monotonic()
        # mutmut draws a progress line many times a second; it is kept out of the log.
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                              str(args.max_children)], cwd=ROOT, stdout=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        if run.returncode != 0:
            print(f"mutmut run exited with {run.returncode}", file=sys.stderr)
            return run.returncode
    score = report(load(), seconds)
    return 0 if score >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
