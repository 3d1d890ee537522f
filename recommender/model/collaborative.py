"""Collaborative filtering: implicit's ALS (or BPR) on the confidence matrix, plus fold-in.

`CollaborativeModel.fit(C)` learns user and item factors. `fold_in(rows)` computes user
factors for any readers' confidence rows without refitting -- the same weighted least squares
ALS solves for a user (implicit's `recalculate_user`), done with a few conjugate-gradient
steps, batched over readers so that offline evaluation and the live service share one code
path. BLAS is limited to one thread around fits, as implicit asks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


@dataclass
class CollaborativeParams:
    algorithm: str = "als"  # "als" | "bpr"
    factors: int = 256
    regularization: float = 10.0
    alpha: float = 30.0
    iterations: int = 15
    learning_rate: float = 0.01  # BPR only
    seed: int = 0
    # conjugate-gradient steps per row and sweep; None: 2 from 128 factors up, else implicit's
    # 3. Two cost 0.77x the time at 512 factors (CiteULike-a with its words: 1.03 against
    # 1.33 s a sweep) and gave the same NDCG@20 (hybrid on CiteULike-a warm 0.3142 against
    # 0.3139, MovieLens warm at 248 factors 0.2663 against 0.2657): each sweep starts from
    # the last. A small model costs little either way, and on a 16-factor synthetic catalog
    # two steps left an upvote's pull on its topic at 0.7 of three's.
    cg_steps: int | None = None

    def solver_steps(self) -> int:
        return int(self.cg_steps) if self.cg_steps is not None else (2 if self.factors >= 128 else 3)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "CollaborativeParams":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def default_params(n_users: int, n_items: int, nnz: int, seed: int = 0) -> CollaborativeParams:
    """Capacity grows with the data: more factors when there is more to explain.

    On CiteULike-a (5.5k readers, 17k papers, 164k pairs) this gives 512 factors; ALS
    quality on its warm split keeps rising up to about that size (128: 0.20, 256: 0.26,
    384: 0.277, 512: 0.283 NDCG@20 on a validation-free probe)."""
    factors = int(np.clip(1.25 * np.sqrt(max(nnz, 1)), 16, 512)) // 8 * 8
    return CollaborativeParams(factors=factors, regularization=10.0, alpha=30.0, iterations=15, seed=seed)


def conjugate_gradient(apply, b: np.ndarray, cg_steps: int) -> np.ndarray:
    """`cg_steps` of conjugate gradient from zero for every row of b (B x f) at once:
    A x = b with A given by `apply` (a batch of vectors -> A times each). Rows that have
    converged stop moving. Shared by the batched and the one-reader fold-in, which must
    give equal factors."""
    if b.shape[0] == 1:
        return _conjugate_gradient_one(apply, b, cg_steps)
    X = np.zeros_like(b, dtype=np.float32)
    r = b.copy()
    p = r.copy()
    rs = np.einsum("bf,bf->b", r, r)
    for _ in range(cg_steps):
        active = rs > 1e-12
        if not active.any():
            break
        Ap = apply(p)
        denom = np.einsum("bf,bf->b", p, Ap)
        a = np.where(active & (denom > 0), rs / np.where(denom > 0, denom, 1.0), 0.0).astype(np.float32)
        X += a[:, None] * p
        r -= a[:, None] * Ap
        rs_new = np.einsum("bf,bf->b", r, r)
        beta = np.where(active, rs_new / np.where(active, rs, 1.0), 0.0).astype(np.float32)
        p = r + beta[:, None] * p
        rs = rs_new
    return X


def _conjugate_gradient_one(apply, b: np.ndarray, cg_steps: int) -> np.ndarray:
    """`conjugate_gradient` for one row: the same float32 operations in the same order, with
    the step sizes as float32 scalars instead of (1,) arrays and no masks (a lone row that
    has converged ends the loop). A live list folds one reader in, and the masks' dozen
    small numpy calls a step were a fifth of it, each holding the GIL while the list's
    helper thread waited: 0.80 -> 0.63 ms a fold-in over 400 random CiteULike-a histories
    of 1-150 papers, and a whole list 0.12 ms faster (median of 3,000 paired lists), with
    the same bits (tests/test_conjugate_gradient.py)."""
    X = np.zeros_like(b, dtype=np.float32)
    r = b.copy()
    p = r.copy()
    rs = np.einsum("bf,bf->b", r, r)[0]
    for _ in range(cg_steps):
        if not rs > 1e-12:
            break
        Ap = apply(p)
        denom = np.einsum("bf,bf->b", p, Ap)[0]
        a = rs / denom if denom > 0 else np.float32(0.0)
        X += a * p
        r -= a * Ap
        rs_new = np.einsum("bf,bf->b", r, r)[0]
        p = r + (rs_new / rs) * p
        rs = rs_new
    return X


# Entries of the confidence matrix folded in at once when a warm start solves its rows.
FOLD_IN_BLOCK_NNZ = 50_000


@dataclass
class CollaborativeModel:
    params: CollaborativeParams
    user_factors: np.ndarray  # (n_users, f) float32, users seen at fit time
    item_factors: np.ndarray  # (n_items, f) float32
    _yty: np.ndarray | None = field(default=None, repr=False)
    side_factors: np.ndarray | None = None  # (n_side, f): the pseudo-readers of `side` rows (text_rows.py)
    _side_yty: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def fit(cls, C: sp.csr_matrix, params: CollaborativeParams | None = None,
            start: "CollaborativeModel | None" = None, iterations: int | None = None,
            side: sp.csr_matrix | None = None) -> "CollaborativeModel":
        """ALS (or BPR) on C, `iterations` sweeps (default: params.iterations).

        `side`: extra rows factorised with C (pseudo-readers, e.g. the papers' words); their
        factors are kept in `side_factors` so that later papers can be folded in from them.

        With `start` (an ALS model of the same shape, e.g. fit on a validation slice of the
        same events) the sweeps continue from its factors rather than from random ones, so
        they can be few: on CiteULike-a warm, 15 sweeps on an 85% slice then 4 on all give
        NDCG@20 0.282, as 15 sweeps from scratch do."""
        params = params or CollaborativeParams()
        C = sp.csr_matrix(C, dtype=np.float32)
        n_users, n_items = C.shape
        n_side = 0
        if side is not None and side.shape[0] and params.algorithm == "als":
            n_side = side.shape[0]
            C = sp.vstack([C, sp.csr_matrix(side, dtype=np.float32)]).tocsr()
        f = int(params.factors)
        warm = start is not None and params.algorithm == "als" and start.item_factors.shape == (n_items, f)
        # a start whose papers do not match this matrix means a fit from scratch, with the
        # full number of sweeps
        iterations = int(params.iterations if iterations is None or (start is not None and not warm) else iterations)
        if C.nnz == 0:
            rng = np.random.default_rng(params.seed)
            return cls(params, np.zeros((n_users, f), np.float32),
                       (rng.standard_normal((n_items, f)) * 0.01).astype(np.float32))
        with threadpool_limits(1, "blas"):
            if params.algorithm == "bpr":
                from implicit.cpu.bpr import BayesianPersonalizedRanking

                model = BayesianPersonalizedRanking(
                    factors=f, learning_rate=params.learning_rate, regularization=params.regularization,
                    iterations=params.iterations, random_state=params.seed, num_threads=1)
                model.fit((C > 0).astype(np.float32).tocsr(), show_progress=False)
            else:
                from implicit.cpu.als import AlternatingLeastSquares

                model = AlternatingLeastSquares(
                    factors=f, regularization=params.regularization, alpha=params.alpha,
                    iterations=iterations, random_state=params.seed,
                    calculate_training_loss=False)
                model.cg_steps = params.solver_steps()  # an attribute implicit reads, not an argument
                if warm:  # implicit keeps factors that are already set and sweeps from them
                    model.user_factors = start.start_rows(C, n_users)
                    model.item_factors = np.array(start.item_factors, dtype=np.float32, copy=True)
                model.fit(C, show_progress=False)
        U = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        fitted = cls(params, U[:n_users], np.ascontiguousarray(model.item_factors, dtype=np.float32),
                     side_factors=U[n_users:] if n_side else None)
        if n_side:
            fitted.solve_unread(C[:n_users], C[n_users:])
        return fitted

    def solve_unread(self, readers: sp.csr_matrix, side: sp.csr_matrix) -> None:
        """The factors of the papers no reader has, solved from their side rows alone
        (`fold_in_items`), as a paper published after the fit is.

        To ALS's fit such a paper is a 0 at confidence 1 in every reader's row: read as
        "every reader passed it over", which pushes it away from what readers read. For a
        paper nobody has read because it is new, nobody has passed it over yet; its words
        are all that is known. Solved from them alone (the readers' entries unobserved), on
        CiteULike-a cold-items the hybrid went from 0.3776 to 0.3795 NDCG@20 (seed 0) and
        `collaborative` from 0.3737 to 0.3761; and a paper added after the fit is folded in
        the same way, so the two kinds of unread paper compete on equal terms (folded in
        against the Gram of every row instead, as the fit treats them, an added paper's
        factors came out 9.5% larger than the fit's own: `make bench-day-one`)."""
        unread = np.nonzero(np.diff(sp.csc_matrix(readers).indptr) == 0)[0]
        if len(unread) == 0:
            return
        columns = sp.csr_matrix(sp.csr_matrix(side, dtype=np.float32).T)[unread]
        self.item_factors = np.array(self.item_factors, dtype=np.float32, copy=True)
        self.item_factors[unread] = self.fold_in_items(columns)
        self.reset_cache()

    def start_rows(self, C: sp.csr_matrix, n_users: int) -> np.ndarray:
        """The row factors (readers, then side rows) a fit warm-started from this model
        begins with: its own where they match C's rows, else solved from its item factors
        -- the half-sweep ALS would make next. A model loaded from its artifact keeps no
        reader factors (its side rows' it keeps), and a night brings new readers; solving
        them is what lets the nightly job continue from the serving model's papers for a
        few sweeps instead of 15 from random."""
        f = self.factors
        side = self.side_factors if self.side_factors is not None else np.zeros((0, f), np.float32)
        readers = self.user_factors if self.user_factors.shape == (n_users, f) else self._fold_in_blocks(C[:n_users])
        if side.shape != (C.shape[0] - n_users, f):
            side = self._fold_in_blocks(C[n_users:])
        return np.vstack([readers, side]).astype(np.float32)

    def _fold_in_blocks(self, C: sp.csr_matrix) -> np.ndarray:
        """`fold_in` of every row of C, in blocks of at most FOLD_IN_BLOCK_NNZ entries (the
        solve gathers an (entries x factors) array)."""
        out = np.empty((C.shape[0], self.factors), np.float32)
        lo, n = 0, C.shape[0]
        while lo < n:
            hi = int(np.searchsorted(C.indptr, C.indptr[lo] + FOLD_IN_BLOCK_NNZ, side="right")) - 1
            hi = min(max(hi, lo + 1), n)
            out[lo:hi] = self.fold_in(C[lo:hi], cg_steps=8)
            lo = hi
        return out

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    def yty(self) -> np.ndarray:
        if self._yty is None or self._yty.shape[0] != self.item_factors.shape[1]:
            Y = self.item_factors.astype(np.float64)
            self._yty = (Y.T @ Y).astype(np.float32)
        return self._yty

    def reset_cache(self) -> None:
        self._yty = None

    def fold_in_items(self, columns: sp.csr_matrix) -> np.ndarray:
        """Factors for papers from their `side` confidences (papers x side rows): the least
        squares ALS solves for an item whose only observed rows are the side rows, with the
        pseudo-readers' factors held fixed (a paper nobody has read: `solve_unread`)."""
        if self.side_factors is None:
            raise ValueError("this model was fit without side rows")
        if self._side_yty is None:
            S = self.side_factors.astype(np.float64)
            self._side_yty = (S.T @ S).astype(np.float32)
        return self.fold_in(columns, item_factors=self.side_factors, cg_steps=8, yty=self._side_yty)

    def fold_in(self, rows: sp.csr_matrix, item_factors: np.ndarray | None = None,
                cg_steps: int = 8, yty: np.ndarray | None = None) -> np.ndarray:
        """User factors for confidence rows (B x n_items) by ALS's weighted least squares.

        Solves (YtY + Yt (Cu - I) Y + reg I) x = Yt Cu p_u with Cu = 1 + alpha * r_u by
        `cg_steps` of conjugate gradient from zero, for all B rows at once."""
        Y = self.item_factors if item_factors is None else item_factors
        rows = sp.csr_matrix(rows, dtype=np.float32)
        B, f = rows.shape[0], Y.shape[1]
        if rows.nnz == 0:
            return np.zeros((B, f), dtype=np.float32)
        alpha = self.params.alpha if self.params.algorithm == "als" else 1.0
        reg = np.float32(self.params.regularization)
        conf = alpha * rows.data
        r_idx = np.repeat(np.arange(B), np.diff(rows.indptr))
        c_idx = rows.indices
        Yc = Y[c_idx]  # (nnz, f)
        if yty is None:
            yty = self.yty() if (item_factors is None or item_factors is self.item_factors) \
                else (Y.T @ Y).astype(np.float32)
        # b = sum_i c_i y_i ; A x = YtY x + reg x + sum_i (c_i - 1) y_i (y_i . x)
        Bmat = sp.csr_matrix((conf, (r_idx, np.arange(len(c_idx)))), shape=(B, len(c_idx)))
        b = np.asarray(Bmat @ Yc, dtype=np.float32)
        W = sp.csr_matrix((conf - 1.0, (r_idx, np.arange(len(c_idx)))), shape=(B, len(c_idx)))

        def apply(P: np.ndarray) -> np.ndarray:
            d = np.einsum("nf,nf->n", P[r_idx], Yc)
            Wd = sp.csr_matrix((W.data * d, W.indices, W.indptr), shape=W.shape)
            return P @ yty + reg * P + np.asarray(Wd @ Yc, dtype=np.float32)

        return conjugate_gradient(apply, b, cg_steps)

    def fold_in_one(self, items: np.ndarray, confidence: np.ndarray, cg_steps: int = 8) -> np.ndarray:
        """`fold_in` for one reader given as (paper indices, confidences): (f,) factors.

        Why a second version: a live request folds in one reader, and there building the
        sparse helper matrices of the batched version cost more than the solve. The same
        float32 operations in the same order (a CSR row times a matrix is a sequential sum
        over the row, which a sum over axis 0 also is), so the result is equal to the bit."""
        Y = self.item_factors
        if len(items) == 0:
            return np.zeros(Y.shape[1], dtype=np.float32)
        alpha = self.params.alpha if self.params.algorithm == "als" else 1.0
        reg = np.float32(self.params.regularization)
        conf = alpha * np.asarray(confidence, np.float32)
        Yc = Y[np.asarray(items, np.int64)]
        extra = (conf - 1.0)[:, None]
        yty = self.yty()

        def apply(P: np.ndarray) -> np.ndarray:
            d = np.einsum("nf,nf->n", np.broadcast_to(P, Yc.shape), Yc)
            return P @ yty + reg * P + (extra * d[:, None] * Yc).sum(axis=0, keepdims=True)

        b = (conf[:, None] * Yc).sum(axis=0, keepdims=True)
        return conjugate_gradient(apply, b, cg_steps)[0]

    def scores(self, user_vecs: np.ndarray, item_factors: np.ndarray | None = None) -> np.ndarray:
        Y = self.item_factors if item_factors is None else item_factors
        return user_vecs @ Y.T

    def to_arrays(self, prefix: str = "cf_") -> dict[str, np.ndarray]:
        a = {f"{prefix}item_factors": self.item_factors}
        if self.side_factors is not None:
            a[f"{prefix}side_factors"] = self.side_factors
        return a

    @classmethod
    def from_arrays(cls, arrays, params: dict, prefix: str = "cf_") -> "CollaborativeModel":
        Y = np.asarray(arrays[f"{prefix}item_factors"], dtype=np.float32)
        side = arrays[f"{prefix}side_factors"] if f"{prefix}side_factors" in arrays else None
        return cls(CollaborativeParams.from_dict(params), np.zeros((0, Y.shape[1]), np.float32), Y,
                   side_factors=None if side is None else np.asarray(side, np.float32))
