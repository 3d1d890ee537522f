"""How new papers (no reader yet) rank against papers with readers: the blend's offset for
new papers is set on a validation pool where both compete (blend.calibrate_new_offset).
Without it, MovieLens user-temporal at seed 1 filled 45% of every list with new papers."""
from __future__ import annotations

import numpy as np

from recommender.model.blend import FEATURES, RankingTask, calibrate_new_offset, line_search, per_reader_ndcg

N_W = 4 * len(FEATURES) + 2


def _task(new_relevant: bool, readers: int = 60, pool: int = 40, seed: int = 0) -> RankingTask:
    """Half the pool new papers. The relevant papers are new ones (`new_relevant`) or ones
    with readers; one feature (cf) ranks each kind's relevant papers first within the kind,
    and new papers start well above (an offset of +3) or well below (-3) the others."""
    rng = np.random.default_rng(seed)
    F = rng.normal(0, 0.1, (readers, pool, len(FEATURES))).astype(np.float32)
    cold = np.zeros((readers, pool), bool)
    cold[:, pool // 2:] = True
    label = np.zeros((readers, pool), bool)
    kind = slice(pool // 2, pool // 2 + 3) if new_relevant else slice(0, 3)
    label[:, kind] = True
    F[:, :, 0] += label * 1.0  # cf knows which of its kind a reader wants
    return RankingTask(F=F, cold=cold, valid=np.ones((readers, pool), bool), label=label,
                       n_rel=label.sum(1), h=np.full(readers, 1.0, np.float32))


def _weights(offset: float) -> np.ndarray:
    W = np.zeros(N_W, np.float32)
    W[0] = W[2] = 1.0  # cf in both regimes
    W[-2] = offset
    return W


def test_new_papers_nobody_reads_next_sink_below_the_others():
    task = _task(new_relevant=False)
    given = _weights(3.0)
    W, before, after = calibrate_new_offset(task, given)
    np.testing.assert_array_equal(given, _weights(3.0))  # the caller's weights are left as they were
    assert before < 0.5 and after > 0.99  # the relevant papers with readers now lead
    assert W[-2] + W[-1] * 1.0 < 0  # new papers rank below papers with readers
    np.testing.assert_array_equal(W[:-2], _weights(3.0)[:-2])  # nothing else moves


def test_new_papers_readers_do_read_next_rise_above_the_others():
    task = _task(new_relevant=True)
    W, before, after = calibrate_new_offset(task, _weights(-3.0))
    assert before < 0.5 and after > 0.99
    assert W[-2] + W[-1] * 1.0 > 0


def test_an_offset_that_already_ranks_best_is_kept():
    task = _task(new_relevant=True)
    W, before, after = calibrate_new_offset(task, _weights(3.0))
    assert before == after
    np.testing.assert_array_equal(W, _weights(3.0))


def test_a_pool_without_new_papers_leaves_the_weights():
    task = _task(new_relevant=False)
    task.cold[:] = False
    W, before, after = calibrate_new_offset(task, _weights(3.0))
    np.testing.assert_array_equal(W, _weights(3.0))
    assert (before, after) == (0.0, 0.0)


def test_the_offset_has_a_part_that_grows_with_the_readers_history():
    """Readers with one paper want new papers, readers with two hundred want papers with
    readers, and cf finds three likely papers of each kind for everyone: no single offset
    serves both, so the history-length part ("cold*h") moves, downward."""
    task = _task(new_relevant=True)
    long = np.arange(len(task.h)) % 2 == 1
    task.h[:] = np.where(long, np.log1p(200.0), np.log1p(1.0)).astype(np.float32)
    task.F[:, :, 0] = np.random.default_rng(1).normal(0, 0.1, task.F.shape[:2])
    task.F[:, 0:3, 0] += 1.0
    task.F[:, 20:23, 0] += 1.0
    task.label[:] = False
    task.label[~long, 20:23] = True
    task.label[long, 0:3] = True
    W, before, after = calibrate_new_offset(task, _weights(0.0))
    assert W[-1] < 0  # the longer the history, the lower new papers go
    offset = W[-2] + W[-1] * task.h
    assert (offset[~long] > 0).all() and (offset[long] < 0).all()
    assert after > before + 0.1  # 0.79 -> 0.94


def test_the_line_search_steps_a_column_once_a_pass_while_it_gains():
    """`line_search`, which sets the offset here and the papers' age in freshness.py: one
    step of +1 a pass on the new papers' column climbs from -3 past the papers with readers
    (spread from -3 to 3) until the new ones lead; a column of zeros and a grid of zeros
    move nothing; what it returns is the NDCG of the scores it returns."""
    task = _task(new_relevant=True)
    spread = np.zeros(task.cold.shape, np.float32)
    spread[:, :20] = np.linspace(-3.0, 3.0, 20)
    S0 = task.scores(_weights(-3.0)) + spread
    start = float(per_reader_ndcg(task, S0, 20).mean())
    cold = task.cold.astype(np.float32)
    seen = []

    def plus_one(name, moved):
        seen.append((name, moved))
        return [0.0, 1.0]

    columns = {"nothing": np.zeros_like(cold), "offset": cold}
    S, value, moved = line_search(task, S0, start, columns, plus_one, 2, 20)
    assert moved == {"offset": 2.0, "nothing": 0.0}  # both passes gained; each took one step
    assert seen == [("offset", 0.0), ("offset", 1.0)]  # the zero column is never searched
    np.testing.assert_array_equal(S, S0 + np.float32(1.0) * cold + np.float32(1.0) * cold)
    assert value == float(per_reader_ndcg(task, S, 20).mean()) and value > start

    seen.clear()
    S, value, moved = line_search(task, S0, start, columns, plus_one, 20, 20)
    assert value > 0.99 and 3.0 < moved["offset"] < 20.0
    assert len(seen) == moved["offset"] + 1  # it stopped after the first pass that gained nothing

    S, value, moved = line_search(task, S0, start, columns, lambda name, moved: [0.0], 2, 20)
    assert moved == {"offset": 0.0, "nothing": 0.0} and value == start
    np.testing.assert_array_equal(S, S0)
    # a gain of no more than 1e-5 is not a gain
    S, value, moved = line_search(task, S0, start + 1.0, columns, plus_one, 2, 20)
    assert moved["offset"] == 0.0 and value == start + 1.0


def _fit_with_unread_twins(monkeypatch=None):
    """The synthetic catalog plus as many papers on the same topics that nobody reads, so
    no reader's next paper is ever one of them."""
    from recommender.model.hybrid import HybridModel
    from tests.helpers import CONFIG, synthetic

    texts, titles, users, items, _ = synthetic()
    twins = [t.replace("study", "note") for t in texts]
    n_users = int(users.max()) + 1
    model = HybridModel.fit(texts + twins, users, items, n_users=n_users, titles=titles + twins, config=CONFIG)
    return model, users, items, len(texts), n_users


def _unread_share(model, users, items, n_read, n_users, k=10) -> float:
    shares = []
    for u in range(0, n_users, 4):
        history = [(int(i), "read", None) for i in items[users == u]]
        recs = [r.index for r in model.recommend(history, k=k)]
        shares.append(np.mean([i >= n_read for i in recs]))
    return float(np.mean(shares))


def test_the_fit_sets_the_offset_from_what_readers_read_next(monkeypatch):
    """Papers nobody reads, textually as close to each reader as the papers they do read,
    stay out of the lists once the offset is set on the joint pool (and the joint
    validation NDCG it was chosen on never falls)."""
    model, users, items, n_read, n_users = _fit_with_unread_twins()
    info = model.stats["validation"]
    assert info["joint_ndcg"] >= info["joint_ndcg_before"]
    calibrated = _unread_share(model, users, items, n_read, n_users)
    import recommender.model.hybrid as hybrid

    monkeypatch.setattr(hybrid, "calibrate_new_offset", lambda task, W: (W, 0.0, 0.0))
    uncalibrated = _unread_share(*_fit_with_unread_twins()[:1], users, items, n_read, n_users)
    assert calibrated < 0.1 and uncalibrated > calibrated + 0.1, (calibrated, uncalibrated)
