"""`make bench-day-one` on a tiny generated split laid out like CiteULike-a's cold-items: the
papers left out of the fit are the same papers once added after it (renumbered events and
candidates name the same ids), only unread ones leave, and the table's figures are the
protocol's on each model."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from benchmarks import day_one
from benchmarks.quality import split_files
from recommender.offline.dataset import load_candidates, load_interactions, load_papers
from tests.helpers import write_split

TOPICS = ["graph network node community", "gene protein expression genome",
          "image pixel convolutional camera", "language word translation corpus"]
N_PAPERS, READ = 72, 48  # papers READ.. are nobody's in train: the candidates, read in test


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("day-one-root")
    rng = np.random.default_rng(5)
    topic = np.arange(N_PAPERS) % 4
    train, test = [], []
    for u in range(120):
        t = u % 4
        for i in rng.choice(np.nonzero(topic[:READ] == t)[0], 5, replace=False):
            train.append([f"u{u}", f"p{i}", "upvote", ""])
        for i in rng.choice(READ + np.nonzero(topic[READ:] == t)[0], 2, replace=False):
            test.append([f"u{u}", f"p{i}", "upvote", ""])
    write_split(root, "cold-items", topic, rng, train, test, TOPICS)
    with gzip.open(root / "cold-items" / "candidates.txt.gz", "wt") as fh:
        fh.write("".join(f"p{i}\n" for i in range(READ, N_PAPERS)))
    return root


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_the_papers_left_out_are_unread_and_renumbered_to_the_same_ids(root, share):
    files = split_files("cold-items", root)
    papers = load_papers(files["papers_path"])
    users: dict = {}
    train = load_interactions(files["train_path"], papers, users)
    test = load_interactions(files["test_path"], papers, users)
    candidates = load_candidates(files["candidates_path"], papers)
    split = day_one.leave_out_unread(papers, train, test, candidates, share, seed=3)
    assert len(split.new) == round(share * (N_PAPERS - READ))
    assert not np.isin(train.items, split.new).any() and (split.new >= READ).all()
    assert len(split.base) == N_PAPERS - len(split.new)
    # index i names the same paper in the fit's catalog extended by the new papers
    extended = split.base.ids + [papers.ids[i] for i in split.new]
    assert extended == [papers.ids[i] for i in split.order]
    for before, after in ((train, split.train), (test, split.test)):
        assert [papers.ids[i] for i in before.items] == [extended[i] for i in after.items]
        assert (after.users == before.users).all()
    assert sorted(extended[i] for i in split.candidates) == sorted(papers.ids[i] for i in candidates)
    # the test's events on the new papers, for their own recall
    on_new = day_one.on_papers(split.test, np.arange(len(split.base), N_PAPERS))
    assert len(on_new) == int(np.isin(test.items, split.new).sum()) > 0
    assert set(papers.ids[i] for i in split.new) == set(extended[i] for i in on_new.items)
    # the new papers' rows are what the serving slot hands add_papers
    rows = day_one.new_paper_rows(papers, split.new)
    assert [r[0] for r in rows] == [papers.titles[i] for i in split.new]


def test_the_table_is_the_protocol_on_a_fit_with_the_papers_and_one_they_were_added_to(root, tmp_path, capsys):
    out = tmp_path / "day_one.json"
    code = day_one.main(["--splits", "cold-items,ml-warm", "--root", str(root), "--movielens", str(tmp_path / "absent"),
                         "--share", "1", "--json", str(out)])
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())["cold-items"]
    assert res["new_papers"] == N_PAPERS - READ and res["test_events_on_new"] == res["test_events"] == 240
    for way in ("catalog", "added"):
        assert set(res[way]) == set(day_one.STRATEGIES)
        for r in res[way].values():
            assert 0 <= r["ndcg@20"] <= 1 and r["users"] == 120
            # every test event is on a new paper here: recall on them is the recall
            assert r["new_recall@20"] == pytest.approx(r["recall@20"])
    # the words carry the topics: the hybrid ranks the new papers well both ways
    assert res["catalog"]["hybrid"]["ndcg@20"] > 0.3 and res["added"]["hybrid"]["ndcg@20"] > 0.3
    hybrid = res["added"]["hybrid"]["ndcg@20"]
    beats = all(hybrid > r["ndcg@20"] for n, r in res["added"].items() if n != "hybrid")
    assert code == (0 if beats else 1)
    line = next(x for x in printed.splitlines() if x.startswith("cold-items"))
    assert f"{res['catalog']['hybrid']['ndcg@20']:.4f}" in line and f"{hybrid:.4f}" in line
    assert "24 of 72" in line and ("beats singles" in line) == beats
    assert "[ml-warm] skipped" in printed
    assert day_one.main(["--share", "0"]) == 2 and day_one.main(["--splits", "nope"]) == 2
