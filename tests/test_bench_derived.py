"""`make bench-derived` (benchmarks/derived.py): the derived sets follow their rules, the EASE
peer is EASE, and a verdict says "below" only when the interval is."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.sparse as sp

from benchmarks import derived


def test_the_readers_side_ease_equals_the_papers_side_closed_form():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((30, 12)) < 0.3).astype(np.float32))
    lam = 5.0
    G = (X.T @ X).toarray().astype(np.float64) + lam * np.eye(12)
    P = np.linalg.inv(G)
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0.0)
    np.testing.assert_allclose(derived.ease_scores(X, lam), X.toarray() @ B, rtol=1e-4, atol=1e-5)


def _read(folder, name):
    with open(folder / name, encoding="utf-8") as f:
        return [tuple(r.values()) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def cul_sets(tmp_path_factory):
    out = tmp_path_factory.mktemp("derived")
    return {name: derived.derive(name, out)
            for name in ("cul800-warm", "cul800-titles", "cul800-cold", "cul800-feed", "cul800-feed-unread",
                         "cul100-warm")}


@pytest.fixture(scope="module")
def ml_sets(tmp_path_factory):
    if not (derived.MOVIELENS / "interactions.csv").exists():
        pytest.skip(f"{derived.MOVIELENS} is not on this machine")
    out = tmp_path_factory.mktemp("derived-ml")
    return {name: derived.derive(name, out) for name in ("ml-cold", "ml-p1", "ml-mostly-p1", "ml-global-temporal")}


def test_a_warm_set_holds_out_a_fifth_of_each_readers_papers(cul_sets):
    folder = cul_sets["cul800-warm"]
    train, test = _read(folder, "train.csv"), _read(folder, "test.csv")
    readers = {e[0] for e in train + test}
    assert len(readers) == 800
    count = {}
    for e in train + test:
        count[e[0]] = count.get(e[0], 0) + 1
    held = {}
    for e in test:
        held[e[0]] = held.get(e[0], 0) + 1
    for u, n in count.items():
        assert held.get(u, 0) == (max(1, round(0.2 * n)) if n >= 5 else 0)
    assert not {(e[0], e[1]) for e in train} & {(e[0], e[1]) for e in test}


def test_the_titles_only_set_is_the_warm_set_without_abstracts(cul_sets):
    warm, titles = cul_sets["cul800-warm"], cul_sets["cul800-titles"]
    assert _read(warm, "train.csv") == _read(titles, "train.csv")
    papers = [json.loads(line) for line in (titles / "papers.jsonl").read_text().splitlines()]
    assert papers and all(p["abstract"] == "" for p in papers)
    assert any(json.loads(line)["abstract"] for line in (warm / "papers.jsonl").read_text().splitlines())


def test_a_cold_set_ranks_only_new_papers_nobody_read_in_train(cul_sets):
    folder = cul_sets["cul800-cold"]
    new = set((folder / "candidates.txt").read_text().split())
    train, test = _read(folder, "train.csv"), _read(folder, "test.csv")
    assert new and test
    assert not any(e[1] in new for e in train)
    assert all(e[1] in new for e in test)
    assert {e[0] for e in test} <= {e[0] for e in train}


def test_the_tiny_site_has_a_hundred_readers(cul_sets):
    folder = cul_sets["cul100-warm"]
    assert len({e[0] for e in _read(folder, "train.csv") + _read(folder, "test.csv")}) == 100


def test_one_film_a_reader_in_train_and_the_rest_in_test(ml_sets):
    folder = ml_sets["ml-p1"]
    train, test = _read(folder, "train.csv"), _read(folder, "test.csv")
    readers = [e[0] for e in train]
    assert len(readers) == len(set(readers)) and set(readers) >= {e[0] for e in test}
    assert not {(e[0], e[1]) for e in train} & {(e[0], e[1]) for e in test}
    # no reader has five papers to hold out: the EASE peer takes the middle lambda
    users = {u: i for i, u in enumerate(sorted(set(readers)))}
    films = sorted({e[1] for e in train + test})
    films = {f: i for i, f in enumerate(films)}

    class Events:
        def __init__(self, rows):
            rows = [e for e in rows if e[0] in users]
            self.users = np.asarray([users[e[0]] for e in rows])
            self.items = np.asarray([films[e[1]] for e in rows])

    _, lam = derived.ease_peer(Events(train), Events(test), len(films), len(users), np.random.default_rng(0))
    assert lam == 100.0


def test_most_readers_one_film_the_rest_split_as_warm(ml_sets):
    train = _read(ml_sets["ml-mostly-p1"], "train.csv")
    count: dict = {}
    for e in train:
        count[e[0]] = count.get(e[0], 0) + 1
    one = sum(n == 1 for n in count.values()) / len(count)
    assert 0.85 < one < 0.95 and max(count.values()) > 20


def test_a_global_time_cut_tests_what_came_after_for_readers_seen_before(ml_sets):
    folder = ml_sets["ml-global-temporal"]
    train, test = _read(folder, "train.csv"), _read(folder, "test.csv")
    assert test and max(e[3] for e in train) < min(e[3] for e in test)
    assert {e[0] for e in test} <= {e[0] for e in train}


def test_the_feed_tests_what_came_after_its_cut_mostly_papers_new_since(cul_sets):
    """The 800 readers' CiteULike-a pairs with made-up times: a global cut, readers known
    before it, over the whole catalog; readings cluster within days of a paper's first one,
    so most of the test's papers were never read before the cut."""
    from datetime import datetime

    folder = cul_sets["cul800-feed"]
    train, test = _read(folder, "train.csv"), _read(folder, "test.csv")
    assert not (folder / "candidates.txt").exists()
    assert test and max(e[3] for e in train) < min(e[3] for e in test)
    assert {e[0] for e in test} <= {e[0] for e in train}
    warm = {(e[0], e[1]) for e in _read(cul_sets["cul800-warm"], "train.csv") + _read(cul_sets["cul800-warm"], "test.csv")}
    pairs = {(e[0], e[1]) for e in train + test}
    assert pairs <= warm and len(pairs) > 0.75 * len(warm)
    read_before = {e[1] for e in train}
    new_share = np.mean([e[1] not in read_before for e in test])
    assert 0.6 < new_share < 0.95
    times: dict[str, list[float]] = {}
    for e in train + test:
        times.setdefault(e[1], []).append(datetime.fromisoformat(e[3].replace("Z", "+00:00")).timestamp())
    spread = [np.median(t) - min(t) for t in times.values() if len(t) >= 3]
    assert np.median(spread) < 10 * 86400  # a paper's readings: within days of its first
    published = {p["paper_id"]: datetime.fromisoformat(p["published_at"].replace("Z", "+00:00")).timestamp()
                 for p in map(json.loads, open(folder / "papers.jsonl", encoding="utf-8"))}
    assert all(min(t) >= published[p] for p, t in times.items())  # nobody reads before publication


def test_the_feed_with_unread_papers_is_the_feed_with_papers_nobody_reads_added(cul_sets):
    feed, unread = cul_sets["cul800-feed"], cul_sets["cul800-feed-unread"]
    for name in ("train.csv", "test.csv"):
        assert _read(unread, name) == _read(feed, name)
    papers = {p["paper_id"]: p for p in map(json.loads, open(feed / "papers.jsonl", encoding="utf-8"))}
    more = [p for p in map(json.loads, open(unread / "papers.jsonl", encoding="utf-8")) if p["paper_id"] not in papers]
    assert len(more) == derived.FEED_UNREAD and all(p["published_at"] for p in more)
    read = {e[1] for e in _read(feed, "train.csv") + _read(feed, "test.csv")}
    assert not read & {p["paper_id"] for p in more}


def test_a_film_set_with_new_films_ranks_only_them(ml_sets):
    folder = ml_sets["ml-cold"]
    new = set((folder / "candidates.txt").read_text().split())
    train, test = _read(folder, "train.csv"), _read(folder, "test.csv")
    assert new and test and not any(e[1] in new for e in train) and all(e[1] in new for e in test)


@pytest.mark.parametrize("diff, half, word", [(0.01, 0.005, "beats singles"), (-0.01, 0.005, "BELOW cf"),
                                               (-0.004, 0.009, "within noise of cf"),
                                               (0.004, 0.009, "within noise of cf")])
def test_the_verdict_follows_the_interval(diff, half, word):
    assert derived.verdict({"hybrid_minus_best": diff, "interval95": half, "best_single": "cf"}) == word
