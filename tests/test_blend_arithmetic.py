"""The blend's batch arithmetic (recommender/model/blend.py): its shortcuts change no score.

`zscore_rows` computes in fewer passes than numpy's `(S - mean) / std` and `combine` picks
each paper's regime weight instead of computing it; a popularity row broadcast down the
batch is standardised once and a component the model lacks is skipped. Held to the bit
against the formulas written out, on random scores and weights."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.model.blend import FEATURES, Blender, zscore_rows
from recommender.model.components import _absent


def zscore_written_out(S: np.ndarray) -> np.ndarray:
    S = np.asarray(S, np.float32)
    mu = S.mean(axis=1, keepdims=True)
    sd = S.std(axis=1, keepdims=True)
    return np.divide(S - mu, sd, out=np.zeros_like(S), where=sd > 1e-12)


def combine_written_out(W: np.ndarray, z: dict, cold: np.ndarray, h: np.ndarray) -> np.ndarray:
    c = cold.astype(np.float32)[None, :]
    h = np.asarray(h, np.float32)[:, None]
    out = 0
    for j, f in enumerate(FEATURES):
        ww, wwh, wc, wch = W[4 * j: 4 * j + 4]
        out = out + z[f] * ((ww + wwh * h) * (1.0 - c) + (wc + wch * h) * c)
    return out + (W[-2] + W[-1] * h) * c


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 300), st.floats(-6, 6), st.integers(0, 2**31 - 1))
def test_zscore_rows_is_numpys_formula_to_the_bit(B, n, log_scale, seed):
    rng = np.random.default_rng(seed)
    S = (rng.standard_normal((B, n)) * 10.0 ** log_scale).astype(np.float32)
    S[0, :] = S[0, 0] if seed % 3 == 0 else S[0, :]  # a constant row: zeros
    if seed % 5 == 0:
        S = rng.integers(0, 3, (B, n)).astype(np.float32)  # ties
    got, want = zscore_rows(S), zscore_written_out(S)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # in place, into a slice of a caller's array, and summed a row or two at a time: the same bits
    from recommender.core import ranking
    from recommender.model import blend as blend_module
    old_cells = blend_module.ROW_BLOCK_CELLS
    blend_module.ROW_BLOCK_CELLS = n * (1 + seed % 2)
    try:
        own = S.copy()
        assert zscore_rows(own, out=own) is own
        into = np.full((3, B, n), np.nan, np.float32)
        zscore_rows(S, out=into[1])
    finally:
        blend_module.ROW_BLOCK_CELLS = old_cells
    assert ranking.ROW_BLOCK_CELLS == old_cells
    for Z in (own, into[1]):
        np.testing.assert_array_equal(Z.view(np.uint32), want.view(np.uint32))
    assert np.isnan(into[0]).all() and np.isnan(into[2]).all()
    # a row broadcast down a batch: every row is that row standardised alone, as the
    # single-reader path standardises it (a reduction over a materialised batch may sum
    # in another order, so this is not the batch formula's rounding)
    row = np.broadcast_to(S[:1], (B + 1, n))
    np.testing.assert_array_equal(zscore_rows(row), np.repeat(zscore_written_out(S[:1]), B + 1, axis=0))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 6), st.integers(2, 200), st.integers(0, 2**31 - 1))
def test_combine_with_broadcast_and_missing_components_is_the_formula(B, n, seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal(4 * len(FEATURES) + 2).astype(np.float32)
    cold = rng.random(n) < 0.3
    h = np.log1p(rng.integers(1, 200, B)).astype(np.float32)
    z = {f: zscore_rows(rng.standard_normal((B, n)).astype(np.float32)) for f in FEATURES}
    z["pop"] = zscore_rows(np.broadcast_to(rng.random((1, n)).astype(np.float32), (B, n)))
    z["ease"] = zscore_rows(_absent(B, n))
    full = {f: np.array(v) for f, v in z.items()}  # every array written out
    got = Blender(W, True, {}).combine(z, cold, h)
    want = combine_written_out(W, full, cold, h)
    np.testing.assert_array_equal(got, want)
    assert got.shape == (B, n) and got.dtype == np.float32


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 120), st.integers(0, 2**31 - 1))
def test_each_features_contribution_adds_up_to_the_blended_score(n, seed):
    """What a reason names (`Blender.contributions`: each feature's weight in the paper's
    regime at the reader's history length, times the feature) adds up, with the new papers'
    offset, to the score the blend ranks by."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal(4 * len(FEATURES) + 2).astype(np.float32)
    cold = rng.random(n) < 0.4
    h = float(np.log1p(rng.integers(1, 200)))
    z = {f: rng.standard_normal(n).astype(np.float32) for f in FEATURES}
    parts = Blender(W, True, {}).contributions(z, cold, h)
    assert sorted(parts) == sorted(FEATURES)
    total = sum(parts.values()) + (W[-2] + W[-1] * h) * cold
    want = combine_written_out(W, {f: v[None, :] for f, v in z.items()}, cold, np.array([h]))[0]
    np.testing.assert_allclose(total, want, rtol=1e-5, atol=1e-5)
    for j, f in enumerate(FEATURES):  # and each part is that feature's alone
        ww, wwh, wc, wch = (float(x) for x in W[4 * j: 4 * j + 4])
        np.testing.assert_allclose(parts[f], z[f] * np.where(cold, wc + wch * h, ww + wwh * h), rtol=1e-5, atol=1e-6)
