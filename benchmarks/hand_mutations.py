"""The six one-line wrong versions of issue 15, each made in a copy of the repository and
checked to fail the test that now catches it (README, "What the tests prove").

    python -m benchmarks.hand_mutations      # ~2 min; exit 1 if any wrong version passes

Why a copy: the working tree is never edited, so an interrupted run leaves nothing behind.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (what it breaks, file, the line as it is, the wrong line, the test that must fail)
CHANGES = [
    ("equally good models are no longer promoted", "training/promotion.py",
     "if comparison.high < -TOLERANCE:", "if comparison.high < TOLERANCE:",
     "tests/test_comparison.py"),
    ("every reader of every running experiment changes variant",
     "recommender/experiments/assignment.py",
     'u = unit_hash("variant", *_salted(experiment), user_id)',
     'u = 1 - unit_hash("variant", *_salted(experiment), user_id)',
     "tests/test_experiments_assignment.py"),
    ("a reader joins the wrong one of two experiments", "recommender/storage/sqlite/experiments.py",
     '" ORDER BY created_at, name"', '" ORDER BY created_at DESC, name"',
     "tests/test_experiments_api.py::test_a_reader_in_two_experiments_joins_the_older_one[sqlite]"),
    ("cold-items ranks the whole catalog", "recommender/offline/evaluation.py",
     "res = evaluate_model(model, name, train, test, candidates, k)",
     "res = evaluate_model(model, name, train, test, None, k)",
     "tests/test_evaluate_cli.py"),
    ("lists as of a past time are lists of now", "service/routers/recommendations.py",
     "exclude_seen, _as_of_unix(as_of), strategy)", "exclude_seen, _as_of_unix(as_of) and None, strategy)",
     "tests/test_recommendations_api.py::test_recommendations_as_of_a_past_time_are_that_times_list[sqlite]"),
    ("an injection path", "recommender/storage/sqlite/experiments.py",
     '"SELECT * FROM experiments WHERE name = ?", [name]',
     "\"SELECT * FROM experiments WHERE name = '\" + name + \"'\"",
     "tests/test_hostile_input.py::test_sql_text_never_interpolates_data"),
]


def _copy(dest: Path) -> None:
    for name in ("recommender", "service", "training", "tests", "seeds", "benchmarks", "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)


def _pytest(copy: Path, tests: list[str]) -> int:
    return subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                           "-k", "not postgresql", *tests], cwd=copy, capture_output=True).returncode


def check(change) -> bool:
    """True when the wrong version fails its test (as it must)."""
    breaks, path, right, wrong, test = change
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        _copy(copy)
        text = (copy / path).read_text()
        if text.count(right) != 1:
            raise SystemExit(f"{path}: the line to change is gone or not unique: {right}")
        (copy / path).write_text(text.replace(right, wrong))
        caught = _pytest(copy, [test]) == 1
    print(f"{'caught' if caught else 'MISSED'}  {breaks}: {path}: {wrong}\n        by {test}")
    return caught


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:  # the control: the copy as it is passes them
        _copy(Path(tmp))
        if _pytest(Path(tmp), [c[4] for c in CHANGES]) != 0:
            raise SystemExit("the unchanged copy fails these tests: fix that first")
    results = [check(c) for c in CHANGES]
    print(f"{sum(results)} of {len(results)} wrong versions fail a test")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
