"""The blend's weights are the mean of the coordinate ascent's ends from every start
(blend.restarted_ascent), each restart on its own random half of the validation readers:
on a flat validation slice the ends score alike and the slice cannot choose among them, so
none is picked; each end is scaled to unit norm first, since a linear ranker's order does
not depend on its scale."""
from __future__ import annotations

import numpy as np
import pytest

from recommender.model.blend import FEATURES, RankingTask, coordinate_ascent, personal_ok, restarted_ascent

N_W = 4 * len(FEATURES) + 2


def _rng():
    return np.random.default_rng(7)
CF, GRAPH, EASE = (4 * FEATURES.index(f) for f in ("cf", "graph", "ease"))


def _task(readers: int = 50, pool: int = 30, seed: int = 0, twins: bool = True) -> RankingTask:
    """Papers with readers only. cf ranks each reader's three relevant papers first; with
    `twins` graph is the same signal (so cf alone, graph alone and any mix of the two rank
    perfectly); ease is noise."""
    rng = np.random.default_rng(seed)
    F = rng.normal(0, 1.0, (readers, pool, len(FEATURES))).astype(np.float32)
    label = np.zeros((readers, pool), bool)
    for u in range(readers):
        label[u, rng.choice(pool, 3, replace=False)] = True
    F[:, :, 0] = rng.normal(0, 0.1, (readers, pool)) + 5.0 * label
    if twins:
        F[:, :, 1] = F[:, :, 0]
    return RankingTask(F=F, cold=np.zeros((readers, pool), bool), valid=np.ones((readers, pool), bool),
                       label=label, n_rel=label.sum(1), h=np.full(readers, 1.0, np.float32))


def _only(j: int, value: float = 1.0) -> np.ndarray:
    W = np.zeros(N_W, np.float32)
    W[j] = W[j + 2] = value
    return W


def test_ends_that_rank_alike_are_averaged_not_picked():
    task = _task()
    W, before, after, ends = restarted_ascent([task], [_only(CF), _only(GRAPH, 3.0)], _rng(), share=1.0)
    # each start already ranks every reader's papers perfectly, so neither ascent moves;
    # the mean of the unit-norm ends, at their mean norm (2 and 6 -> 4)
    expected = (_only(CF) / 2.0 + _only(GRAPH, 3.0) / 6.0) / 2.0 * 4.0
    np.testing.assert_allclose(W, expected, rtol=1e-6)
    assert ends == [1.0, 1.0] and before == 1.0 and after == 1.0


def test_the_scale_of_a_start_does_not_change_the_blend_s_direction():
    task = _task(twins=False, seed=1)
    starts = [_only(CF), _only(EASE), np.r_[np.ones(N_W - 2), 0.0, 0.0].astype(np.float32)]
    W1, *_ = restarted_ascent([task], starts, _rng())
    W2, *_ = restarted_ascent([task], [starts[0] * 10.0, starts[1], starts[2] * 0.1], _rng())
    np.testing.assert_allclose(W1 / np.abs(W1[:-2]).sum(), W2 / np.abs(W2[:-2]).sum(), atol=1e-5)


def test_the_mean_of_the_ends_is_scored_and_each_end_is_its_own_ascent():
    task = _task(twins=False, seed=2)
    starts = [_only(EASE), _only(CF), _only(GRAPH)]
    W, before, after, ends = restarted_ascent([task], starts, _rng(), passes=2, share=1.0)
    own = [coordinate_ascent([task], w, passes=2) for w in starts]
    assert ends == pytest.approx([o[2] for o in own], abs=1e-12)
    assert before == max(o[1] for o in own)
    assert after == task.ndcg(W)
    assert personal_ok(W)
    # a noise start climbs toward cf, and the mean keeps cf's lead over ease
    assert W[CF] > W[EASE]


def test_a_start_that_stays_at_zero_adds_nothing_to_the_mean():
    task = _task()
    task.F[:] = 0.0  # no weight changes any ranking, so no ascent moves from its start
    W, *_, ends = restarted_ascent([task], [_only(CF, 2.0), np.zeros(N_W, np.float32), _only(GRAPH, 2.0)], _rng())
    assert len(ends) == 3
    np.testing.assert_allclose(W, (_only(CF, 2.0) + _only(GRAPH, 2.0)) / 2.0, rtol=1e-6)


def test_each_restart_searches_its_own_half_of_the_readers():
    task = _task(twins=False, seed=3, readers=80)
    starts = [_only(EASE), _only(CF), np.r_[np.ones(N_W - 2), 0.0, 0.0].astype(np.float32)]
    W, _, _, ends = restarted_ascent([task], starts, _rng(), passes=2)
    rng = _rng()
    halves = [np.sort(rng.choice(80, 40, replace=False)) for _ in starts]
    assert len({tuple(h) for h in halves}) == 3
    own = [coordinate_ascent([task.readers(h)], w, passes=2)[0] for h, w in zip(halves, starts)]
    assert ends == pytest.approx([task.ndcg(e) for e in own], abs=1e-12)
    unit = [e / np.abs(e[:-2]).sum() for e in own]
    np.testing.assert_allclose(W, np.mean(unit, axis=0) * np.mean([np.abs(e[:-2]).sum() for e in own]), rtol=1e-5)


def test_the_passes_and_the_cutoff_given_reach_every_restart():
    task = _task(twins=False, seed=3, readers=80)
    noise = np.random.default_rng(5)
    for f in (0, 1):  # cf and graph two noisy views of the relevant papers: passes and k matter
        task.F[:, :, f] = noise.normal(0, 1, task.label.shape) + task.label
    starts = [_only(EASE), _only(CF), np.r_[np.ones(N_W - 2), 0.0, 0.0].astype(np.float32)]
    W, before, after, ends = restarted_ascent([task], starts, _rng(), passes=1, k=3)
    rng = _rng()
    halves = [np.sort(rng.choice(80, 40, replace=False)) for _ in starts]
    own = [coordinate_ascent([task.readers(h)], w, passes=1, k=3)[0] for h, w in zip(halves, starts)]
    unit = [e / np.abs(e[:-2]).sum() for e in own]
    np.testing.assert_allclose(W, np.mean(unit, axis=0) * np.mean([np.abs(e[:-2]).sum() for e in own]), rtol=1e-5)
    assert ends == pytest.approx([task.ndcg(e, 3) for e in own], abs=1e-12)
    assert after == task.ndcg(W, 3) and before == max(task.ndcg(w, 3) for w in starts)
    # two passes, or NDCG@20, end elsewhere: what is above is the given passes' and cutoff's
    for other in ({"passes": 2, "k": 3}, {"passes": 1, "k": 20}):
        assert not np.allclose(restarted_ascent([task], starts, _rng(), **other)[0], W, atol=1e-3)


def test_an_end_of_small_norm_counts_as_much_as_a_large_one():
    task = _task()
    W, *_ = restarted_ascent([task], [_only(CF, 0.25), _only(GRAPH, 3.0)], _rng(), share=1.0)
    # L1 norms 0.5 and 6: each end at unit norm, the mean at their mean norm, 3.25
    expected = (_only(CF, 0.25) / 0.5 + _only(GRAPH, 3.0) / 6.0) / 2.0 * 3.25
    np.testing.assert_allclose(W, expected, rtol=1e-6)


def test_without_readers_the_first_start_is_kept_inside_the_constraint():
    outside = _only(CF)
    outside[CF] = -1.0  # cf below zero for every history length
    for tasks in ([], [_task().readers(np.array([], np.int64))]):
        W, before, after, ends = restarted_ascent(tasks, [outside, _only(GRAPH)], _rng())
        assert personal_ok(W) and W[CF] == 0.0 and W[CF + 2] == 1.0
        assert (before, after, ends) == (0.0, 0.0, [])


def test_a_task_of_one_reader_gives_each_restart_that_reader():
    task = _task().readers(np.array([4]))
    W, before, after, ends = restarted_ascent([task], [_only(CF), _only(GRAPH, 3.0)], _rng())
    assert len(ends) == 2 and after == task.ndcg(W) == 1.0


def test_ends_all_at_zero_give_zero_weights():
    task = _task()
    task.F[:] = 0.0
    W, *_, ends = restarted_ascent([task], [np.zeros(N_W, np.float32)] * 2, _rng())
    assert len(ends) == 2 and not W.any() and W.dtype == np.float32


def test_an_ascent_without_readers_is_its_start_inside_the_constraint():
    outside = _only(CF)
    outside[CF] = -1.0
    for tasks in ([], [_task().readers(np.array([], np.int64))]):
        W, start, end = coordinate_ascent(tasks, outside)
        assert personal_ok(W) and W[CF] == 0.0 and W[CF + 2] == 1.0 and (start, end) == (0.0, 0.0)
