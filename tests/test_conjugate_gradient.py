"""The fold-in's conjugate gradient: one reader's path (scalars, no masks) must give the bits
a batch gives that reader, or a live list would differ from the offline one."""
import numpy as np
from hypothesis import given, settings, strategies as st

from recommender.model.collaborative import conjugate_gradient


def _problem(seed: int, f: int, rows: int):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((f, f)).astype(np.float32)
    A = (M @ M.T / f + np.eye(f, dtype=np.float32) * rng.uniform(0.01, 2.0)).astype(np.float32)
    b = rng.standard_normal((rows, f)).astype(np.float32) * np.float32(rng.uniform(0.01, 10.0))
    # row by row, as the fold-ins' products are (a CSR row's sum, one reader at a time), so
    # a row's product does not depend on the batch around it (a BLAS matrix product may)
    return (lambda P: np.stack([row @ A for row in P])), b


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), f=st.integers(1, 40), steps=st.integers(0, 12))
def test_one_row_equals_its_row_in_a_batch(seed, f, steps):
    apply, b = _problem(seed, f, rows=3)
    b[2] = 0.0  # a row that has converged from the start: the batch masks it
    batch = conjugate_gradient(apply, b, steps)
    for r in range(3):
        one = conjugate_gradient(apply, b[r:r + 1], steps)
        assert one.dtype == np.float32 and one.shape == (1, f)
        assert np.array_equal(one[0], batch[r]), r


def test_one_row_solves_the_system():
    """Not only equal to the batch: it is conjugate gradient (f steps solve an f x f system)."""
    apply, b = _problem(3, 8, rows=1)
    x = conjugate_gradient(apply, b, 30)
    np.testing.assert_allclose(apply(x), b, rtol=1e-3, atol=1e-3)
    assert not np.array_equal(conjugate_gradient(apply, b, 1), x)  # one step is not yet there


def test_a_zero_row_stays_zero():
    apply, b = _problem(5, 6, rows=1)
    x = conjugate_gradient(apply, np.zeros_like(b), 6)
    assert np.array_equal(x, np.zeros_like(b))
