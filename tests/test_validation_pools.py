"""The blend's validation pools (recommender/model/blend_data.py): which papers each ranking
task ranks. New papers are ranked among the new papers the slice's readers read, as a
new-items split ranks them among themselves, not among every unread paper; the joint pool,
where the new-paper offset is set, holds the papers with readers and those the data itself
leaves unread."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.model.blend_data import concat_tasks, validation_samples
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
