"""`ColdStartMap.smooth_scores`: a thin paper's score mixes its own with its content
neighbours' (w = mass / (mass + shrink) its own share); every other paper keeps its score.
One reader's row must come out as its row of a batch, to the bit (the single-reader path)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from recommender.model.cold_start import ColdStartMap


def cold_map(seed: int, n_items: int, n_thin: int) -> ColdStartMap:
    rng = np.random.default_rng(seed)
    thin = np.sort(rng.choice(n_items, n_thin, replace=False)).astype(np.int64)
    K = sp.random(n_thin, n_items, density=0.3, format="csr", dtype=np.float32, random_state=seed)
    mass = (rng.random(n_items) * 20).astype(np.float32)
    return ColdStartMap(thin, K, mass, np.zeros((4, 3), np.float32), np.zeros(3, np.float32), shrink=2.0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), n_items=st.integers(2, 60), thin_share=st.floats(0.0, 1.0),
       batch=st.integers(1, 25))
def test_smoothing_mixes_thin_papers_with_their_neighbours_and_leaves_the_rest(seed, n_items, thin_share, batch):
    cold = cold_map(seed, n_items, int(round(thin_share * n_items)))
    S = np.random.default_rng(seed + 1).standard_normal((batch, n_items)).astype(np.float32)
    before = S.copy()
    out = cold.smooth_scores(S)
    np.testing.assert_array_equal(S, before)  # the caller's scores are not changed
    others = np.setdiff1d(np.arange(n_items), cold.thin)
    np.testing.assert_array_equal(out[:, others], S[:, others])
    m = cold.mass[cold.thin].astype(np.float64)
    w = m / (m + cold.shrink)
    expected = w * S[:, cold.thin] + (1 - w) * (S.astype(np.float64) @ cold.neighbors.toarray().T)
    scale = w * np.abs(S[:, cold.thin]) + (1 - w) * (np.abs(S).astype(np.float64) @ np.abs(cold.neighbors.toarray()).T)
    assert np.all(np.abs(out[:, cold.thin] - expected) <= 1e-5 * scale + 1e-30)
    for i in range(batch):
        np.testing.assert_array_equal(cold.smooth_scores(S[i:i + 1])[0], out[i])
