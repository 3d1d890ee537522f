"""`make bench-quality` end to end on a tiny generated split laid out like the CiteULike-a copy:
one seed gives the evaluate figures as they are; several give their means, the hybrid's
figure at each seed, and targets judged on the means."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import quality
from tests.helpers import write_split

TOPICS = ["graph network node community", "gene protein expression genome",
          "image pixel convolutional camera", "language word translation corpus"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A `warm` split in the layout `split_files` reads (gzipped papers, train and test)."""
    root = tmp_path_factory.mktemp("bench-root")
    rng = np.random.default_rng(3)
    n_papers, n_users = 70, 140
    topic = rng.integers(0, 4, n_papers)
    train, test = [], []
    for u in range(n_users):
        mine = rng.choice(np.nonzero(topic == u % 4)[0], 7, replace=False)
        for j, i in enumerate(mine):
            (test if j >= 5 else train).append([f"u{u}", f"p{i}", "upvote", ""])
    write_split(root, "warm", topic, rng, train, test, TOPICS)
    return root


def run(root, tmp_path, capsys, *extra):
    out = tmp_path / "results.json"
    code = quality.main(["--splits", "warm", "--root", str(root), "--movielens", str(tmp_path / "absent"),
                         "--strategies", "popular,collaborative,hybrid", "--json", str(out), *extra])
    printed = capsys.readouterr()
    return code, json.loads(out.read_text()) if out.exists() else None, printed.out + printed.err


def test_several_seeds_print_and_judge_the_means(root, tmp_path, capsys):
    code, res, printed = run(root, tmp_path, capsys, "--seeds", "0,1")
    warm = res["warm"]
    assert warm["seeds"] == [0, 1] and set(warm["per_seed"]) == {"0", "1"}
    for name, r in warm["strategies"].items():
        by_seed = [warm["per_seed"][s]["strategies"][name] for s in ("0", "1")]
        for key in ("ndcg@20", "recall@20", "hitrate@20"):
            assert r[key] == pytest.approx((by_seed[0][key] + by_seed[1][key]) / 2)
        assert r["ndcg_by_seed"] == {"0": by_seed[0]["ndcg@20"], "1": by_seed[1]["ndcg@20"]}
    hybrid = warm["strategies"]["hybrid"]
    line = next(x for x in printed.splitlines() if x.startswith("warm") and " hybrid " in x)
    assert f"{hybrid['ndcg@20']:.4f}" in line
    assert " / ".join(f"{v:.4f}" for v in hybrid["ndcg_by_seed"].values()) in line
    assert "means over seeds 0, 1" in printed
    # the verdict is the means': the target and every single signal's mean
    singles = [r["ndcg@20"] for n, r in warm["strategies"].items() if n != "hybrid"]
    ok = hybrid["ndcg@20"] >= quality.SPLITS["warm"][3] and all(hybrid["ndcg@20"] > s for s in singles)
    assert code == (0 if ok else 1)
    assert ("ok; beats singles" in line) == ok


def test_one_seed_gives_the_evaluate_figures_unchanged(root, tmp_path, capsys):
    code, res, printed = run(root, tmp_path, capsys, "--seeds", "1")
    warm = res["warm"]
    assert "per_seed" not in warm and "ndcg_by_seed" not in warm["strategies"]["hybrid"]
    assert "hybrid_blend" in warm  # what evaluate_files returns, as it is
    assert "by seed" not in printed and "seed 1;" in printed


def test_bad_seeds_and_absent_movielens_are_said_plainly(root, tmp_path, capsys):
    for bad in ("zero", "-1", ","):
        code, res, printed = run(root, tmp_path, capsys, "--seeds", bad)
        assert code == 2 and res is None and "--seeds must be comma-separated integers >= 0" in printed
    code = quality.main(["--splits", "ml-warm", "--movielens", str(tmp_path / "absent")])
    assert code == 0
    assert "[ml-warm] skipped" in capsys.readouterr().out
