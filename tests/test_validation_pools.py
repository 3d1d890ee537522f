"""The blend's validation data (recommender/model/blend_data.py): which papers each ranking
task ranks, and which readers it asks. New papers are ranked among the new papers the
slice's readers read, as a new-items split ranks them among themselves, not among every
unread paper; the joint pool, where the new-paper offset is set, holds the papers with
readers and those the data itself leaves unread; the data's share of one-paper readers is
stood in for by validation readers cut to one paper in every fit matrix."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model.blend_data import (concat_tasks, one_paper_share, stand_in_one_paper_readers,
                                          validation_samples)
from recommender.model.components import fit_components
from recommender.model.content import ContentEncoder
from recommender.model.popularity import text_lengths
from recommender.model.tuning import carve
from tests.helpers import CONFIG, synthetic


def test_new_papers_are_ranked_among_the_carved_ones_and_the_offset_among_the_rest():
    texts, _, users, items, _ = synthetic(n_papers=300, n_users=200)
    keep = items < 150  # papers 150-299: a catalog's unread half
    users, items = users[keep], items[keep]
    n_users, n_items = int(users.max()) + 1, len(texts)
    C = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    C.sum_duplicates()
    read = np.flatnonzero(np.asarray((C > 0).sum(axis=0)).ravel())
    assert len(read) <= 150
    vslice = carve(C, None, 0.2, 0.2, np.random.default_rng(0))
    carved = set(vslice.cold_items.tolist())
    assert carved and carved <= set(read.tolist())
    C_fit, V_pos = vslice.split(C)
    encoder, X = ContentEncoder.fit_transform(texts, dim=CONFIG.content_dim, seed=0)
    comps = fit_components(C_fit, C_fit, X, encoder.encode_tfidf(X), text_lengths(texts), None, CONFIG)
    eligible = np.flatnonzero((np.diff(C_fit.indptr) > 0) & (np.diff(V_pos.indptr) > 0))
    _, _, _, pools = validation_samples(X, encoder.encode_tfidf(X), comps, C_fit, V_pos, eligible, CONFIG,
                                        np.random.default_rng(1), carved_new=vslice.cold_items)
    unread = set(np.flatnonzero(comps.cold_mask).tolist()) - carved

    tasks = {name: concat_tasks(parts) for name, parts in pools.items()}
    cold_task, joint = tasks["cold"], tasks["joint"]
    # every candidate of the new papers' task is new, and every one of its positives carved
    assert cold_task.cold[cold_task.valid].all()
    assert cold_task.label.any()
    # the pool is the new papers the slice's readers read (the carved ones, and any whose
    # every event was held out), not the 150 nobody read
    read_in_slice = set(np.flatnonzero(np.asarray(V_pos.sum(axis=0)).ravel() > 0).tolist())
    new_read = carved | (set(np.flatnonzero(comps.cold_mask).tolist()) & read_in_slice)
    assert len(unread - new_read) >= 150 > 3 * len(new_read)
    assert cold_task.valid.sum(axis=1).max() <= len(new_read)
    # the joint task holds papers with readers and unread ones (the offset's question)
    assert (~joint.cold[joint.valid]).any() and joint.cold[joint.valid].any()


def test_the_datas_share_of_one_paper_readers_is_stood_in_for_by_validation_readers():
    # 6 of 10 readers with one paper; reader 9 with none does not count
    C = sp.csr_matrix(np.array([[1, 0, 0, 0]] * 6 + [[1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]],
                               np.float32))
    assert one_paper_share(C) == pytest.approx(6 / 9) and one_paper_share(C[6:]) == 0.0

    rng = np.random.default_rng(0)
    C_fit = sp.csr_matrix((rng.random((40, 30)) < 0.3).astype(np.float32) * 2.0)
    V_pos = sp.csr_matrix((rng.random((40, 30)) < 0.05).astype(np.float32))
    V_pos = sp.csr_matrix(V_pos - V_pos.multiply(C_fit > 0))
    V_pos.eliminate_zeros()
    Cp_fit = C_fit * 3.0
    candidates = np.flatnonzero((np.diff(C_fit.indptr) >= 2) & (np.diff(V_pos.indptr) > 0))
    fit, pos, popm, n = stand_in_one_paper_readers(C_fit, V_pos, Cp_fit, 0.5, np.random.default_rng(1))
    assert n == round(0.5 * len(candidates)) > 0
    cut = np.flatnonzero(np.diff(fit.indptr) != np.diff(C_fit.indptr))
    assert len(cut) == n and set(cut) <= set(candidates)
    for r in range(40):
        before, after = set(C_fit[r].indices), set(fit[r].indices)
        if r in cut:
            # one paper kept; the others are now to be found, and gone from popularity too
            assert len(after) == 1 and after <= before
            assert set(pos[r].indices) == set(V_pos[r].indices) | (before - after)
            assert set(popm[r].indices) == after
        else:
            assert after == before and set(pos[r].indices) == set(V_pos[r].indices)
            assert set(popm[r].indices) == before
    assert set(np.unique(pos.data)) == {1.0} and set(np.unique(fit.data)) == {2.0}
    assert stand_in_one_paper_readers(C_fit, V_pos, Cp_fit, 0.0, rng)[3] == 0
    # at most half of them, however many of the data's readers have one paper
    assert stand_in_one_paper_readers(C_fit, V_pos, Cp_fit, 0.9, rng)[3] == round(0.5 * len(candidates))


@pytest.mark.parametrize("seed", range(12))
def test_a_pool_is_the_same_searched_a_few_readers_at_a_time(seed, monkeypatch):
    """`pool_task` searches each reader's best papers a block of rows at a time (a whole
    batch's argpartition index was hundreds of MB of fresh memory a call): the pools, their
    features, labels and ages are those of the whole batch searched at once, with or without
    an `allowed` subset (its columns searched alone) and the freshness candidates, ties
    included."""
    from recommender.core import ranking
    from recommender.model import blend_data

    rng = np.random.default_rng(seed)
    nf, B, n = 3, int(rng.integers(2, 40)), int(rng.integers(5, 300))
    Fz = rng.integers(0, 5, (nf, B, n)).astype(np.float32)  # many ties
    excl = rng.random((B, n)) < 0.3
    Pd = rng.random((B, n)) < 0.05
    cold = rng.random(n) < 0.3
    h = rng.random(B)
    allowed = (rng.random(n) < 0.2) if seed % 2 else None
    age = np.where(rng.random((B, n)) < 0.5, rng.integers(0, 9, (B, n)).astype(float), np.nan) if seed % 3 else None
    per = int(rng.integers(1, 30))
    monkeypatch.setattr(ranking, "ROW_BLOCK_CELLS", 10 ** 9)
    whole = blend_data.pool_task(Fz, excl, Pd, cold, h, allowed, per, age)
    monkeypatch.setattr(ranking, "ROW_BLOCK_CELLS", int(rng.integers(1, 3)) * n)  # 1-2 rows a block
    blocked = blend_data.pool_task(Fz, excl, Pd, cold, h, allowed, per, age)
    for name in ("F", "cold", "valid", "label", "n_rel", "age"):
        a, b = getattr(whole, name), getattr(blocked, name)
        assert (a is None and b is None) or np.array_equal(a, b, equal_nan=True), name
    assert whole.valid.any()


def test_a_feature_the_model_does_not_have_proposes_no_candidates():
    """A skipped feature (all zero: a signal the components do not have) adds none of the
    papers a partition of its ties would leave first: each reader's pool is the union of
    the other features' top papers, exactly, and the skipped plane is still carried."""
    from recommender.model import blend_data

    rng = np.random.default_rng(5)
    B, n, per = 6, 200, 8
    Fz = np.zeros((3, B, n), np.float32)
    Fz[0] = rng.normal(size=(B, n))
    Fz[2] = rng.normal(size=(B, n))
    excl = np.zeros((B, n), bool)
    Pd = np.zeros((B, n), bool)
    cold = np.zeros(n, bool)
    t = blend_data.pool_task(Fz, excl, Pd, cold, np.ones(B), None, per, skip=(1,))
    full = blend_data.pool_task(Fz, excl, Pd, cold, np.ones(B), None, per)
    for r in range(B):
        expected = set(np.argsort(-Fz[0, r])[:per]) | set(np.argsort(-Fz[2, r])[:per])
        assert t.valid[r].sum() == len(expected)
        # the task keeps no paper indices: its papers are found by their first feature
        slots = t.F[r, t.valid[r], 0]
        assert sorted(slots.tolist()) == sorted(Fz[0, r, sorted(expected)].tolist())
        assert t.valid[r].sum() < full.valid[r].sum()
    assert t.F.shape[2] == 3 and not t.F[:, :, 1].any()
