"""The blend's validation pools (recommender/model/blend_data.py): which papers each ranking
task ranks. New papers are ranked among the new papers the slice's readers read, as a
new-items split ranks them among themselves, not among every unread paper; the joint pool,
where the new-paper offset is set, holds the papers with readers and those the data itself
leaves unread."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model.blend import history_scale
from recommender.model.blend_data import as_one_paper_readers, concat_tasks, keep_one_paper, validation_samples
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


def test_the_datas_share_of_one_paper_readers_is_scored_from_one_paper():
    # 6 of 10 readers with one paper; reader 9 with none does not count
    C = sp.csr_matrix(np.array([[1, 0, 0, 0]] * 6 + [[1, 1, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]],
                               np.float32))
    which, share = as_one_paper_readers(C, 50, np.random.default_rng(0))
    assert share == pytest.approx(6 / 9, abs=1e-4) and which.sum() == round(50 * 6 / 9)
    assert as_one_paper_readers(C[6:], 50, np.random.default_rng(0)) == (None, 0.0)

    R = sp.csr_matrix(np.array([[1, 2, 3, 0], [0, 5, 0, 6], [7, 0, 0, 0]], np.float32))
    cut = keep_one_paper(R, np.array([True, False, True]), np.random.default_rng(1))
    assert np.diff(cut.indptr).tolist() == [1, 2, 1]
    assert cut[0].toarray()[0][cut[0].indices[0]] == R[0].toarray()[0][cut[0].indices[0]] > 0
    np.testing.assert_array_equal(cut[1:].toarray(), R[1:].toarray())


def test_validation_readers_marked_one_paper_are_scored_as_one_paper_readers():
    texts, _, users, items, _ = synthetic(n_papers=120, n_users=200)
    n_users, n_items = int(users.max()) + 1, len(texts)
    C = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_users, n_items))
    C.sum_duplicates()
    vslice = carve(C, None, 0.05, 0.2, np.random.default_rng(0))
    C_fit, V_pos = vslice.split(C)
    encoder, X = ContentEncoder.fit_transform(texts, dim=CONFIG.content_dim, seed=0)
    V = encoder.encode_tfidf(X)
    comps = fit_components(C_fit, C_fit, X, V, text_lengths(texts), None, CONFIG)
    eligible = np.flatnonzero((np.diff(C_fit.indptr) > 1) & (np.diff(V_pos.indptr) > 0))
    _, _, _, pools = validation_samples(X, V, comps, C_fit, V_pos, eligible, CONFIG, np.random.default_rng(1),
                                        one_paper=np.ones(len(eligible), bool))
    warm = concat_tasks(pools["warm"])
    np.testing.assert_allclose(warm.h, history_scale(np.ones(1))[0])  # every reader scored as a one-paper reader
    full = concat_tasks(validation_samples(X, V, comps, C_fit, V_pos, eligible, CONFIG,
                                           np.random.default_rng(1))[3]["warm"])
    assert (full.h > warm.h[0]).all()  # without the mask, scored from all their papers
