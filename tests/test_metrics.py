"""Ranking metrics against hand-computed cases (protocol of DESIGN.md)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from recommender.offline.metrics import hitrate_at_k, metrics_from_hits, ndcg_at_k, recall_at_k, summarize


def test_perfect_ranking_scores_one():
    assert ndcg_at_k([1, 2, 3], {1, 2, 3}, k=20) == pytest.approx(1.0)
    assert recall_at_k([1, 2, 3], {1, 2, 3}, k=20) == pytest.approx(1.0)
    assert hitrate_at_k([1, 2, 3], {1, 2, 3}, k=20) == 1.0


def test_single_hit_at_rank_two():
    # one relevant item, found at rank 2: DCG = 1/log2(3), IDCG = 1
    assert ndcg_at_k([9, 5, 7], {5}, k=20) == pytest.approx(1 / math.log2(3))
    assert recall_at_k([9, 5, 7], {5}, k=20) == 1.0


def test_ideal_dcg_uses_min_k_and_test_size():
    # 3 relevant, hits at ranks 1 and 3; IDCG over min(20, 3) = 3 positions
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k([4, 0, 6, 8], {4, 6, 99}, k=20) == pytest.approx(dcg / idcg)
    assert recall_at_k([4, 0, 6, 8], {4, 6, 99}, k=20) == pytest.approx(2 / 3)


def test_more_test_items_than_k_caps_ideal_at_k():
    ranked = list(range(2))
    relevant = set(range(5))  # 5 relevant, k = 2: both slots hit -> ndcg 1, recall 2/5
    assert ndcg_at_k(ranked, relevant, k=2) == pytest.approx(1.0)
    assert recall_at_k(ranked, relevant, k=2) == pytest.approx(0.4)


def test_hits_beyond_k_do_not_count():
    assert ndcg_at_k([1, 2, 3], {3}, k=2) == 0.0
    assert hitrate_at_k([1, 2, 3], {3}, k=2) == 0.0


def test_no_hit():
    assert ndcg_at_k([1, 2], {7}, k=20) == 0.0
    assert recall_at_k([1, 2], {7}, k=20) == 0.0


def test_batched_metrics_and_average_over_users():
    hits = np.array([[True, False, False], [False, False, True], [False, False, False]])
    per = metrics_from_hits(hits, np.array([1, 2, 4]), k=3)
    d = 1 / np.log2(np.arange(2, 5))
    assert per["ndcg"] == pytest.approx([1.0, d[2] / (d[0] + d[1]), 0.0])
    assert per["recall"] == pytest.approx([1.0, 0.5, 0.0])
    assert per["hitrate"] == pytest.approx([1, 1, 0])
    s = summarize(per, k=3)
    assert s["users"] == 3
    assert s["hitrate@3"] == pytest.approx(2 / 3)
    assert s["ndcg@3"] == pytest.approx(np.mean(per["ndcg"]))


def test_empty_slots_are_misses():
    # a candidate list shorter than k pads with -1: still scored against the full ideal
    per = metrics_from_hits(np.array([[True, False]]), np.array([2]), k=20)
    assert per["ndcg"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_hits_from_sets_lists_and_arrays_alike_and_k_defaults_to_20():
    from recommender.offline.metrics import hits_matrix
    top = np.array([[3, 1, -1], [2, 4, 5]])
    for rel in ([{1}, {5, 9}], [[1], [5, 9]], [np.array([1]), np.array([5, 9])]):
        hits = hits_matrix(top, rel)
        assert hits.dtype == bool and hits.tolist() == [[False, True, False], [False, False, True]]
    ranked = list(range(100, 121))  # the only relevant paper is 21st
    assert (recall_at_k(ranked, [120]), hitrate_at_k(ranked, [120]), ndcg_at_k(ranked, [120])) == (0.0, 0.0, 0.0)
    assert recall_at_k(ranked, [119]) == hitrate_at_k(ranked, [119]) == 1.0
    assert ndcg_at_k(ranked, [119]) == pytest.approx(1 / math.log2(21))


def test_a_reader_without_test_papers_scores_zero_everywhere():
    """Recall of a reader with nothing to find is 0 (not 1, not undefined), as floats."""
    m = metrics_from_hits(np.zeros((2, 3), bool), np.array([0, 2]), 3)
    assert m["recall"].tolist() == [0.0, 0.0] and m["recall"].dtype == np.float64
    assert m["ndcg"].tolist() == [0.0, 0.0] and m["hitrate"].tolist() == [0.0, 0.0]
