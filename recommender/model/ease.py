"""EASE (Steck 2019): a closed-form item-item model, one component of the hybrid's blend.

B = I - P diag(1 / diag(P)) with P = (XᵀX + λI)⁻¹ over the binarised reader x paper matrix
X; a reader's score for paper j is `history_row @ B[:, j]`. It is the strongest single
collaborative model on MovieLens-small's user-temporal split (NDCG@20 0.1207 at λ=200
against 0.1154 for ALS tuned on the same data), and it adds what the ALS factors smooth
away: sharp item-to-item weights, including negative ones.

Cost bounds (stated, not tuned per data set): the n³ solve runs over whichever side of the
reading is smaller, readers or papers, and that side is at most `max_solve` wide (see
`Gram`); with more readers and papers than that, EASE covers the `max_solve` most-read
papers only (a paper outside them gets no EASE score and is ranked by the other
components). Over the readers, B is kept exact as the solve's factors (`FactoredEase`);
over the papers, each row of B is pruned to its `top_k` largest weights by magnitude, a
sparse matrix like the item graph (300 a row kept MovieLens warm at 0.2569 of the dense
0.2575 NDCG@20 at top-500, 0.2528 at top-200). λ is chosen by `fit_on_validation` on the
validation slice.

The papers' words can enter as extra rows of X (collective EASE: Jeunen, Van Balen and
Goethals, "Closed-form models for collaborative filtering with side-information", RecSys
2020), as they enter ALS (`text_rows.py`): each term a pseudo-reader of the papers that use
it. Two papers that share words then share "readers", so a paper read by few gets weights
its readers alone cannot support. Measured on the *test* splits, EASE alone at its best λ:
CiteULike-a warm 0.2889 -> 0.3070 NDCG@20 (2,449 terms, the room under `max_solve`),
MovieLens warm 0.2575 -> 0.2692 and user-temporal 0.1221 -> 0.1255 (its 1,463 terms are
title words, years and genres). How strongly, none included, is chosen on the validation
slice after λ (`fit_on_validation`, `walk_word_weights`).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from recommender.core.sparse_rows import gather_rows, times_dense, times_rows
from recommender.core.threads import in_threads
from recommender.model.item_graph import grown, square_from_arrays, square_to_arrays

# λ's grid: powers of 4 times 100, first two neighbours, then outward from the better one
# while the best is at an edge, within these bounds (a stated cost: each step is one solve).
# The first two are 100 and the step below it: the slices seen peak at or below 100
# (CiteULike-a 25, MovieLens 100), where 100 and 400 first cost CiteULike-a a solve more
# (100, 400, 25, 6.25 against 100, 25, 6.25: ~2 s of its first fit) and found the same λ;
# a peak above 100 pays that solve instead. Ties still go to 100, tried first.
FIRST_LAMBDAS = (100.0, 25.0)
LAMBDA_STEP = 4.0
LAMBDA_BOUNDS = (100.0 / 4 ** 3, 100.0 * 4 ** 5)  # 1.5625 .. 102,400
BLOCK_CELLS = 2_000_000  # the readers' side works in blocks of ~8 MB of float32
# `FactoredEase.scores` forms (r Xᵀ) K for this many cells of rows at a time (64 MB of
# float32): a pass over K a block of its columns at a time serves them all (`times_dense`)
LEFT_CELLS = 16_000_000
# A model that serves lists keeps XᵀK (papers x rows, float32) when it is at most this
# large (`FactoredEase.for_lists`): CiteULike-a's is 377 MB over its readers, 543 MB with
# the word rows that fill the solve's room.
LIST_FORM_BYTES = 640 << 20
# The papers' words in EASE (`word_rows`): terms in at least this many papers, their
# entries scaled to average 1 (a reader's entry) times the weight. The weights tried after
# λ (`walk_word_weights`): none and the first, then doubled or halved within the bounds
# while the slice's NDCG@20 rises.
WORD_MIN_DF = 5
WORD_WEIGHT_FIRST = 1.0
WORD_WEIGHT_BOUNDS = (0.25, 4.0)


def word_rows(text: sp.csr_matrix | None, min_df: int = WORD_MIN_DF) -> sp.csr_matrix | None:
    """(terms x papers) from the papers' TF-IDF rows (papers x vocabulary): the terms used by
    at least `min_df` papers, most used first (where the solve has room for only some, those
    link the most papers), each entry the term's TF-IDF in the paper. None without any."""
    if text is None or text.shape[0] == 0:
        return None
    T = sp.csc_matrix(text, dtype=np.float32)
    df = np.diff(T.indptr)
    order = np.argsort(-df, kind="stable")
    order = order[df[order] >= min_df]
    if len(order) == 0:
        return None
    return sp.csr_matrix(T[:, order].T, dtype=np.float32)


def _unit_mean(W: sp.csr_matrix) -> sp.csr_matrix:
    """W scaled so that its stored entries average 1: weight 1 makes a term "read" its papers
    about as strongly as a reader does, whatever the TF-IDF's scale (a long abstract spreads
    its norm over more terms than a genre list: mean entries 0.12 on CiteULike-a, 0.31 on
    MovieLens)."""
    W = sp.csr_matrix(W, dtype=np.float32, copy=True)
    W.eliminate_zeros()
    if W.nnz:
        W.data /= np.float32(W.data.mean())
    return W


class Gram:
    """What every λ's solve needs, computed once: the covered papers and the Gram matrix of
    whichever side of the reading is smaller.

    EASE inverts XᵀX + λI over papers. Where a data set has fewer readers than read papers
    (CiteULike-a: 5,551 readers, 16,935 papers), the same weights come from a readers' side
    solve (Woodbury): with K = (XXᵀ + λI)⁻¹ and Q = XᵀKX, P = (I - Q) / λ, so
    B[i, j] = -P[i, j] / P[j, j] = Q[i, j] / (1 - Q[j, j]). That is a solve over the readers
    (5,551³ against 16,935³: ~3 s a λ against 56 s on 2 cores), so EASE covers every read
    paper. Which papers EASE covers matters: on CiteULike-a warm, EASE
    over all of them takes the hybrid from 0.3164 to 0.3182 NDCG@20 (mean of three seeds,
    the blend learnt on validation; +0.006 with the mix set on the test split itself, a
    diagnostic), over the 12,000 most-read (88% of the reading) +0.001 at that diagnostic's
    best, over 5,000 nothing.

    `max_solve` bounds the solve's side: all read papers when the readers are at most that
    many, else the `max_solve` most-read papers on the papers' side.

    `words` (`word_rows`): the papers' terms as extra rows of X. Over the readers they fill
    the room the readers leave under `max_solve` (the most used first), and a paper nobody
    read is covered through its words; over the papers they add WᵀW to the Gram matrix at
    no cost to the solve's size. Their blocks are kept apart so that every weight's solve
    assembles its matrix from them (`solve(..., words=w)`)."""

    def __init__(self, C: sp.csr_matrix, max_solve: int, words: sp.csr_matrix | None = None):
        R = sp.csr_matrix(C, dtype=np.float32)
        R.data = np.ones_like(R.data)
        R.eliminate_zeros()
        counts = np.diff(sp.csc_matrix(R).indptr)
        observed = np.nonzero(counts > 0)[0]
        readers = np.nonzero(np.diff(R.indptr) > 0)[0]
        self.n_items = C.shape[1]
        self.by_readers = 0 < len(readers) <= max_solve and len(readers) < len(observed)
        self.W = None  # the word rows (unit mean), and their blocks of the Gram matrix
        if self.by_readers:
            self.items = observed.astype(np.int64)
            self.X = sp.csr_matrix(R[readers])  # every paper's column: unread ones are empty
            self.H = np.asarray((self.X @ self.X.T).toarray(), dtype=np.float32)
            self.G = None
            room = max_solve - self.X.shape[0]
            if words is not None and room > 0 and words.shape[0]:
                self.W = _unit_mean(words[:room])
                self.HW = np.asarray((self.X @ self.W.T).toarray(), dtype=np.float32)
                self.WW = np.asarray((self.W @ self.W.T).toarray(), dtype=np.float32)
        else:
            keep = observed[np.argsort(-counts[observed], kind="stable")[:max_solve]]
            self.items = np.sort(keep).astype(np.int64)
            Xs = R[:, self.items]
            self.G = np.asarray((Xs.T @ Xs).toarray(), dtype=np.float32)
            if words is not None and words.shape[0]:
                Ws = _unit_mean(sp.csr_matrix(words)[:, self.items])
                if Ws.nnz:
                    self.W = Ws
                    self.WG = np.asarray((Ws.T @ Ws).toarray(), dtype=np.float32)

    @property
    def has_words(self) -> bool:
        return self.W is not None

    def solve(self, lam: float, top_k: int, words: float = 0.0) -> "EaseModel | FactoredEase":
        """One λ's model, with the word rows at weight `words` (0: readers alone). The
        readers' side keeps B exact as its factors (`FactoredEase`), K inverted in float32:
        λ ≥ 25 keeps XXᵀ + λI well conditioned (K agrees with a float64 inverse to ~1e-6 of
        its largest entry on CiteULike-a), the products were float32 already, and the
        Cholesky costs 2.2 s against 3.8 s in float64 there (~6 s with 2,449 word rows
        beside the 5,551 readers). The papers' side keeps each row's `top_k` largest
        weights (`EaseModel`)."""
        w = float(words) if self.W is not None else 0.0
        n = len(self.items)
        if self.by_readers:
            X = self.X
            if w == 0:
                A = self.H.copy()  # float32 throughout: no readers² float64 temporary
            else:
                r = self.H.shape[0]
                A = np.empty((r + self.W.shape[0],) * 2, np.float32)
                A[:r, :r] = self.H
                A[:r, r:] = np.float32(w) * self.HW
                A[r:, :r] = A[:r, r:].T
                A[r:, r:] = np.float32(w * w) * self.WW
                X = sp.vstack([self.X, self.W * np.float32(w)], format="csr", dtype=np.float32)
                n = int((np.diff(sp.csc_matrix(X).indptr) > 0).sum())  # read papers and worded ones
            A[np.diag_indices_from(A)] += np.float32(lam)
            K = _spd_inverse(A, np.float32)
            return FactoredEase(X, K, _diag_q(X, K), float(lam), n, words=w,
                                word_rows=int(self.W.shape[0]) if w > 0 else 0)
        if n == 0:
            return EaseModel(sp.csr_matrix((self.n_items, self.n_items), dtype=np.float32), float(lam), 0, top_k)
        G = self.G if w == 0 else self.G + np.float32(w * w) * self.WG
        rows, cols, vals = _pruned(_by_papers(G, lam), int(min(top_k, n - 1)), 0)
        W = sp.csr_matrix((vals, (self.items[rows], self.items[cols])),
                          shape=(self.n_items, self.n_items), dtype=np.float32)
        W.eliminate_zeros()
        return EaseModel(W, float(lam), n, top_k, words=w)


# `WordWeightScores` keeps two (papers x word rows) float32 arrays; past this many bytes the
# weights' trials are solved whole instead (CiteULike-a's are 333 MB; a 100,000-paper
# catalog beside 7,000 word rows would need 5.6 GB)
WORD_TRIALS_BYTES = 1 << 30


class WordWeightScores:
    """Some readers' EASE scores at one λ for any weight w of the word rows, from the readers'
    solve at that λ alone: the word weights' walk (`walk_word_weights`) without a
    (readers + words)² inverse a weight.

    Over the readers the matrix a weight w inverts is A = [[H + λI, w C], [w Cᵀ, w² D + λI]]
    (H = XXᵀ, C = XWᵀ, D = WWᵀ; `Gram`). With K_r = (H + λI)⁻¹ the solve at λ already
    made, and U = K_r C, the Schur complement of the readers' block is λI + w² E with
    E = D - CᵀU, one matrix for every w, so one eigendecomposition E = V diag(e) Vᵀ
    inverts it at every weight: S⁻¹ = V diag(s) Vᵀ, s = 1 / (λ + w² e). Written out with
    G = UᵀX - W (words x papers) and P = VᵀG, a history row r (a = r Xᵀ, b = r Wᵀ) has

        r Q(w) = r Q(0) + w² ((a U - b) V) diag(s) P,   diag Q(w) = diag Q(0) + w² (P ∘ P)ᵀ s,

    and EASE's score is (r Q - r ∘ q) / (1 - q) as `FactoredEase` computes it. On
    CiteULike-a (5,551 readers, 2,449 word rows, 2,000 validation readers) a weight cost
    ~5 s solved whole (the 8,000² inverse, diag Q, the scores through K) and costs ~1 s
    here after a ~5 s setup; the scores agree with the whole solve's to ~2e-5 of the
    largest and gave the same top 20s. Only the walk's trials use it: the weight chosen is
    then solved whole (`fit_on_validation`)."""

    @staticmethod
    def fits(gram: Gram) -> bool:
        """Whether the trials of `gram`'s weights go this way: over the readers, with word
        rows, within `WORD_TRIALS_BYTES`, and with no more word rows than readers. Why the
        last: E's eigendecomposition grows with the cube of the word rows, a whole solve with
        the cube of readers and words together. At 2,449 word rows beside 5,551 readers
        (CiteULike-a) it took ~1.5 s against ~2 s for one whole 8,000² inverse; 800 readers
        beside 7,200 word rows (800 of its readers, `make bench-derived`'s cul800-warm)
        made the EASE stage 55 s where whole solves took 25 s."""
        return (gram.by_readers and gram.W is not None and gram.W.shape[0] <= gram.X.shape[0]
                and 2 * 4 * gram.n_items * gram.W.shape[0] <= WORD_TRIALS_BYTES)

    def __init__(self, gram: Gram, at_zero: FactoredEase, rows: sp.csr_matrix, zero_scores: np.ndarray):
        assert gram.by_readers and gram.W is not None and at_zero.word_rows == 0
        self.lam = float(at_zero.lam)
        rows = sp.csr_matrix(rows, dtype=np.float32)
        with threadpool_limits(2, "blas"):
            U = at_zero.K @ gram.HW  # readers x words
            E = gram.WW - gram.HW.T @ U
            e, V = np.linalg.eigh((E + E.T).astype(np.float64) / 2)
            self.e = np.maximum(e, 0.0)  # E is positive semidefinite; rounding can dip below 0
            V = V.astype(np.float32)
            GT = np.asarray(times_dense(at_zero.XT, U), np.float32)  # Gᵀ = XᵀU - Wᵀ, papers x words
            Wc = gram.W.tocoo()
            GT[Wc.col, Wc.row] -= Wc.data
            self.PT = GT @ V  # Pᵀ
            del GT
            self.P2T = np.square(self.PT)
            a, b = rows @ at_zero.XT, rows @ gram.W.T
            self.F = (np.asarray(times_dense(a, U), np.float32) - b.toarray()) @ V  # (a U - b) V
        self.q0 = at_zero.q
        self.base = zero_scores * at_zero.denom[None, :]  # r Q(0) - r ∘ q(0)
        self.rows = rows

    def scores(self, w: float) -> np.ndarray:
        """The rows' scores (rows x papers) with the word rows at weight w."""
        w2 = np.float32(w * w)
        s = (1.0 / (self.lam + float(w * w) * self.e)).astype(np.float32)
        with threadpool_limits(2, "blas"):
            dq = w2 * (self.P2T @ s)
            S = (self.F * (w2 * s)[None, :]) @ self.PT.T
        S += self.base
        r = self.rows
        at = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr)), r.indices
        S[at] -= r.data * dq[r.indices]  # the history's own entries: - r ∘ (q - q(0))
        S /= (1.0 - self.q0 - dq)[None, :]
        return S


def _diag_q(X: sp.csr_matrix, K: np.ndarray) -> np.ndarray:
    """Q[j, j] = x_jᵀ K x_j for every paper (X: readers x papers), in blocks of papers."""
    XT = sp.csr_matrix(X.T)
    n = XT.shape[0]
    step = max(1, min(n, BLOCK_CELLS // max(1, K.shape[0])))

    def block(a: int) -> np.ndarray:
        KX = np.asarray(XT[a:a + step] @ K, np.float32)  # (K X[:, a:a+step])ᵀ, K symmetric
        return np.asarray(XT[a:a + step].multiply(KX).sum(axis=1), np.float64).ravel()

    return np.concatenate(in_threads(block, range(0, n, step))).astype(np.float32)


@dataclass
class FactoredEase:
    """EASE's exact weights, kept as the readers' side solve's factors instead of B.

    B[i, j] = Q[i, j] / (1 - Q[j, j]) off the diagonal with Q = XᵀKX (see `Gram`), so a
    history row r scores papers as (r Q - r * q) / (1 - q), q = diag(Q), and
    r Q = ((r Xᵀ) K) X: a sparse row over the co-readers, one product with K, one with X.
    Why not B pruned, as the papers' side keeps it: on CiteULike-a (16,935 read papers)
    keeping each paper's 300 largest weights took EASE from 0.1900 to 0.1795 NDCG@20 on a
    validation slice at λ 25 (4,000 a paper: 0.1894, 68M weights), and EASE alone on the
    warm test split from 0.2903 to 0.2717. Costs: K is readers² float32 (123 MB for 5,551
    readers against 41 MB for 300 weights a paper), a list ~1.4 ms (p50; ~283 co-readers
    a reader there) against ~0.2 ms for the pruned gather, and no pruning pass in the fit.

    A model that serves lists also keeps XᵀK (`for_lists`), so r Q = (r (XᵀK)) X: the
    rows of the reader's own papers instead of their co-readers'.

    Batch and single rows run the same scipy products row by row, so one reader's scores
    equal the batch's to the bit."""

    X: sp.csr_matrix  # readers x papers, 0/1; then the word rows, if any (their TF-IDF, scaled)
    K: np.ndarray  # (rows x rows) float32, (XXᵀ + λI)⁻¹
    q: np.ndarray  # (papers,) float32, diag(XᵀKX)
    lam: float
    covered: int
    XK: np.ndarray | None = field(default=None, repr=False, compare=False)  # (papers x rows) XᵀK
    words: float = 0.0  # the word rows' weight (`Gram.solve`), 0 without them
    word_rows: int = 0

    def __post_init__(self):
        self.X = sp.csr_matrix(self.X, dtype=np.float32)
        self.XT = sp.csr_matrix(self.X.T)
        self.K = np.ascontiguousarray(self.K, np.float32)
        self.q = np.asarray(self.q, np.float32)
        self.denom = (1.0 - self.q).astype(np.float32)

    @property
    def n_items(self) -> int:
        return int(self.X.shape[1])

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        """The rows' scores, LEFT_CELLS of r Xᵀ K (or r XᵀK) at a time: that product over
        many rows at once reads K a block of columns at a time (`times_dense`)."""
        rows = sp.csr_matrix(rows, dtype=np.float32)
        m = rows.shape[0]
        S = np.empty((m, self.n_items), np.float32)
        step = max(1, BLOCK_CELLS // max(1, self.K.shape[0]))
        chunk = max(step, LEFT_CELLS // max(1, self.K.shape[0]))
        for c in range(0, m, chunk):
            r = rows[c:c + chunk]
            Z = self._left(r)

            def block(a: int) -> None:
                b = min(a + step, r.shape[0])  # a chunk need not be a whole number of steps
                S[c + a:c + b] = self._right(r[a:b], Z[a:b])

            in_threads(block, range(0, r.shape[0], step))
        return S

    def for_lists(self, like: "FactoredEase | EaseModel | None" = None) -> "FactoredEase":
        """Keep XᵀK beside K, when it is at most `LIST_FORM_BYTES`, for the scores of a model
        that serves lists; returns self. `like`: the same EASE (a copy made before papers
        were added), whose XᵀK is shared instead of rebuilt.

        Why: (r Xᵀ) K reads one row of K per co-reader of the reader's papers, r (XᵀK) one
        row of XᵀK per paper. On CiteULike-a (5,551 readers) a median reader has 18 papers
        and ~283 co-readers, and one with 130 papers some thousands: EASE's part of a list
        took p50 / p99 0.98 / 3.03 ms through K and 0.36 / 1.25 ms through XᵀK, and the
        whole list's p99 went from 4.8-5.2 to 4.3-4.6 ms on a quiet machine (6.4-6.8 to
        5.4-5.8 ms on a slower one; `benchmarks.train --serving-only`), for 377 MB more
        memory and ~0.5 s more load. A batch of 2,000 readers takes 0.4-0.5 s through it
        against 1.8 s through K (3.2 s before `times_dense`), but building it costs 0.55 s
        (1.2 s before) and 543 MB, so the validation fit's trial λs score through K; a model
        loaded to serve keeps it, and an evaluation of many readers builds it for its time
        (`in_list_form_for`: the training job's holdout, `paperrec evaluate`).
        Papers added later have no readers: their rows of XᵀK would be zero, so they are
        left out of it. The values equal the K form's to float32 rounding (~6e-6 of the
        largest score on CiteULike-a), and a model's batch and single rows both go through
        the form it has."""
        n_papers, n_readers = self.XT.shape
        shared = getattr(like, "XK", None)
        if self.XK is None and shared is not None and shared.shape[1] == n_readers:
            self.XK = shared
        if self.XK is None and n_papers * n_readers * 4 <= LIST_FORM_BYTES:
            self.XK = np.asarray(times_dense(self.XT, self.K), np.float32)
        return self

    def list_form_pays(self, rows: sp.csr_matrix) -> bool:
        """Whether scoring `rows` through XᵀK, built for them, costs less than through K.
        Each stored entry of a product reads one row of K (or of XᵀK): (r Xᵀ) K reads one
        per co-reader and word of each reader's papers, counted here with repeats as the
        stored entries of those papers' columns of X; building XᵀK reads one per stored
        entry of X, and r (XᵀK) one per paper of the readers'. Double the second is still
        less than the first on the training job's holdout (3,455 CiteULike-a readers:
        6.8M against twice 0.65M), never for a handful of readers."""
        rows = sp.csr_matrix(rows)
        through_k = int(np.diff(self.XT.indptr)[rows.indices].sum())
        return through_k > 2 * (self.XT.nnz + rows.nnz)

    @contextmanager
    def in_list_form_for(self, rows: sp.csr_matrix):
        """XᵀK (`for_lists`) for the time of one scoring of many readers, where it pays
        (`list_form_pays`), dropped after unless the model kept it already. Why: the training
        job scores its 3,455 CiteULike-a holdout readers with two models that keep no XᵀK
        (a model that does not serve has no use for its memory); through K, EASE took 7.8
        of their 12.0 s a model, through XᵀK 1.75 s after a 1.3 s build (one slow state of
        the machine). Lists then come from the form a serving model has, to the bit."""
        built = self.XK is None and self.list_form_pays(rows)
        if built:
            self.for_lists()
        try:
            yield self
        finally:
            if built:
                self.XK = None

    def _block(self, r: sp.csr_matrix) -> np.ndarray:
        """A few rows' scores: ((r Xᵀ) K) X, or r (XᵀK) X with XᵀK kept (`for_lists`), less
        r * q, over 1 - q."""
        return self._right(r, self._left(r))

    def _left(self, r: sp.csr_matrix) -> np.ndarray:
        """(r Xᵀ) K, or r (XᵀK) with XᵀK kept: rows x (readers and word rows)."""
        if self.XK is not None:
            n = self.XK.shape[0]
            head = r if r.shape[1] == n else sp.csr_matrix(r[:, :n])  # later papers: zero rows
            # one row of XᵀK a paper of the reader's: few enough that the whole product is
            # faster than `times_dense`'s copies of XᵀK's blocks (2,000 readers 0.38 against 0.57 s)
            return np.asarray(head @ self.XK, np.float32)  # r (XᵀK)
        return np.asarray(times_dense(sp.csr_matrix(r @ self.XT), self.K), np.float32)  # (r Xᵀ) K

    def _right(self, r: sp.csr_matrix, Z: np.ndarray) -> np.ndarray:
        """The rows' scores from their `_left`: Z X = r Q, less r * q, over 1 - q."""
        M = times_rows(self.XT, Z)  # r Q
        M -= r.toarray() * self.q[None, :]
        M /= self.denom[None, :]
        return M

    def row_scores(self, items: np.ndarray, conf: np.ndarray) -> np.ndarray:
        """One reader's (items, confidences) -> (papers,) scores: `scores` of that row, the
        same arithmetic without the batch's slicing and threads."""
        row = sp.csr_matrix((np.asarray(conf, np.float32), np.asarray(items, np.int32), [0, len(items)]),
                            shape=(1, self.n_items))
        return self._block(row)[0]

    def add_items(self, n_new: int) -> None:
        """A new paper has no co-readers yet: an empty column, q = 0, score 0."""
        X = self.X
        self.X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], X.shape[1] + n_new))
        self.q = np.concatenate([self.q, np.zeros(n_new, np.float32)])
        self.__post_init__()

    def params(self) -> dict:
        return {"lambda": self.lam, "covered_items": self.covered, "form": "factored",
                **({"words": self.words, "word_rows": self.word_rows} if self.word_rows else {})}

    def to_arrays(self, prefix: str = "ease_") -> dict[str, np.ndarray]:
        """K goes as its upper triangle (`packed_upper`): it is symmetric, and the full matrix
        was half the artifact's bytes on CiteULike-a (256 of 479 MB), which the job writes,
        hashes and stores in the database every night and a replica reads back."""
        arrays = {f"{prefix}X_indices": self.X.indices.astype(np.int32), f"{prefix}X_indptr": self.X.indptr.astype(np.int64),
                  f"{prefix}K_upper": packed_upper(self.K), f"{prefix}q": self.q}
        if self.word_rows:  # the readers' rows are 0/1; the words' are not
            arrays[f"{prefix}X_data"] = self.X.data.astype(np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays, params: dict, prefix: str = "ease_") -> "FactoredEase":
        indices = np.asarray(arrays[f"{prefix}X_indices"], np.int32)
        indptr = np.asarray(arrays[f"{prefix}X_indptr"], np.int64)
        q = np.asarray(arrays[f"{prefix}q"], np.float32)
        data = (np.asarray(arrays[f"{prefix}X_data"], np.float32) if f"{prefix}X_data" in arrays
                else np.ones(len(indices), np.float32))
        X = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, len(q)))
        K = (arrays[f"{prefix}K"] if f"{prefix}K" in arrays  # written before the triangle was
             else unpacked_upper(np.asarray(arrays[f"{prefix}K_upper"], np.float32), X.shape[0]))
        return cls(X, K, q, float(params["lambda"]), int(params.get("covered_items", 0)),
                   words=float(params.get("words", 0.0)), word_rows=int(params.get("word_rows", 0)))


def packed_upper(K: np.ndarray) -> np.ndarray:
    """The upper triangle of a square K, row by row (K[0, 0:], K[1, 1:], ...), n(n+1)/2 values."""
    n = K.shape[0]
    out = np.empty(n * (n + 1) // 2, K.dtype)
    at = 0
    for i in range(n):
        out[at:at + n - i] = K[i, i:]
        at += n - i
    return out


def unpacked_upper(packed: np.ndarray, n: int) -> np.ndarray:
    """The symmetric n x n matrix whose upper triangle `packed_upper` gave: the same values
    to the bit (the fitted K is the mirror of its upper triangle already, `_mirror_upper`)."""
    if len(packed) != n * (n + 1) // 2:
        raise ValueError(f"a packed triangle of {n} rows has {n * (n + 1) // 2} values, not {len(packed)}")
    K = np.empty((n, n), packed.dtype)
    at = 0
    for i in range(n):
        K[i, i:] = packed[at:at + n - i]
        at += n - i
    return _mirror_upper(K)


def _spd_inverse(A: np.ndarray, dtype) -> np.ndarray:
    """The inverse of a symmetric positive definite A, both triangles filled; A's memory
    is overwritten.

    LAPACK works on column-major arrays, and handed a row-major one scipy's wrapper first
    copies it into column-major order (0.5-1.5 s of a 2-3.5 s inverse at 8,000², measured).
    A symmetric A is its own transpose, so the row-major A's transpose view is the same
    matrix in column-major order: the same numbers in, the same bits out, no copy."""
    potrf, potri = (lapack.dpotrf, lapack.dpotri) if dtype == np.float64 else (lapack.spotrf, lapack.spotri)
    A = np.asarray(A, dtype)
    F = A.T if A.flags.c_contiguous else np.asfortranarray(A)  # symmetric: A.T is A
    with threadpool_limits(2, "blas"):
        c, info = potrf(F, lower=0, overwrite_a=1, clean=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE Gram matrix not positive definite (info={info})")
        P, info = potri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE inverse failed (info={info})")
    return _mirror_upper(P)  # potri fills the upper triangle only


def _mirror_upper(P: np.ndarray, block: int = 128) -> np.ndarray:
    """The symmetric matrix whose upper triangle is P's, row-major, built in place a block
    of rows at a time: on a 5,551² inverse as LAPACK returns it, np.triu(P) +
    np.triu(P, 1).T took 0.69 s of a ~2 s solve and this takes 0.03 s, the same array to
    the bit. LAPACK returns P column-major: P.T is then the row-major view of the same
    triangle, below the diagonal, and is what gets filled (writing P itself by row blocks
    crossed its strides and left K column-major: CiteULike-a's λ walk took 37 s, not 11)."""
    if P.flags.f_contiguous and not P.flags.c_contiguous:
        Q, from_below = P.T, True
    else:
        Q, from_below = np.ascontiguousarray(P), False
    n = Q.shape[0]
    for a in range(0, n, block):
        b = min(a + block, n)
        square = Q[a:b, a:b]
        if from_below:
            Q[:a, a:b] = Q[a:b, :a].T
            above = np.triu_indices(b - a, 1)
            square[above] = square.T[above]
        else:
            Q[a:b, :a] = Q[:a, a:b].T
            below = np.tril_indices(b - a, -1)
            square[below] = square.T[below]
    return Q


def _by_papers(G: np.ndarray, lam: float) -> np.ndarray:
    """B = -P / diag(P) with P = (G + λI)⁻¹, zero diagonal: the papers' side solve."""
    n = G.shape[0]
    A = G.copy()
    A[np.diag_indices(n)] += np.float32(lam)
    P = _spd_inverse(A, np.float32)
    B = P / (-np.diag(P))[None, :]
    B[np.diag_indices(n)] = 0.0
    return B


def _pruned(B: np.ndarray, k: int, first_row: int):
    """Each row's k largest |weights| as (rows, cols, values): pruned on magnitude, the
    signed value kept. Rows are numbered from first_row."""
    n_rows, n = B.shape
    if not 0 < k < n:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    cols = np.argpartition(-np.abs(B), k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(B, cols, 1).astype(np.float32)
    rows = np.repeat(np.arange(first_row, first_row + n_rows), k)
    return rows, cols.ravel(), vals.ravel()


@dataclass
class EaseModel:
    weights: sp.csr_matrix  # (n_items, n_items): row = from paper, col = to paper
    lam: float
    covered: int
    top_k: int
    words: float = 0.0  # the word rows' weight in the Gram matrix (`Gram.solve`)

    @property
    def n_items(self) -> int:
        return int(self.weights.shape[0])

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray((sp.csr_matrix(rows, dtype=np.float32) @ self.weights).toarray(), dtype=np.float32)

    def row_scores(self, items: np.ndarray, conf: np.ndarray) -> np.ndarray:
        """One reader's (items, confidences) -> (papers,) scores, equal to `scores` to the bit."""
        return gather_rows(self.weights, items, conf)

    def for_lists(self, like=None) -> "EaseModel":
        """The pruned weights are already a gather per paper (see `FactoredEase.for_lists`)."""
        return self

    @contextmanager
    def in_list_form_for(self, rows: sp.csr_matrix):
        """Nothing to build (see `for_lists`)."""
        yield self

    def add_items(self, n_new: int) -> None:
        """A new paper has no co-readers yet: empty rows and columns."""
        self.weights = grown(self.weights, n_new)

    def params(self) -> dict:
        return {"lambda": self.lam, "covered_items": self.covered, "top_k": self.top_k,
                **({"words": self.words} if self.words else {})}

    def to_arrays(self, prefix: str = "ease_") -> dict[str, np.ndarray]:
        return square_to_arrays(self.weights, prefix)

    @classmethod
    def from_arrays(cls, arrays, params: dict, prefix: str = "ease_") -> "EaseModel":
        W = square_from_arrays(arrays, prefix)
        return cls(W, float(params.get("lambda", 0.0)), int(params.get("covered_items", 0)),
                   int(params.get("top_k", 0)), float(params.get("words", 0.0)))


def fit(C: sp.csr_matrix, lam: float, max_solve: int = 8000, top_k: int = 300, text: sp.csr_matrix | None = None,
        words: float = 0.0) -> "EaseModel | FactoredEase":
    """EASE at one λ over C: factored where the readers' side solves it, else pruned; with
    the papers' words (`text`: their TF-IDF rows) at weight `words` where that is > 0."""
    return Gram(C, max_solve, word_rows(text) if words > 0 else None).solve(lam, top_k, words)


def from_arrays(arrays, params: dict) -> "EaseModel | FactoredEase":
    """The EASE a manifest describes: factored (readers' side) or pruned weights."""
    if params.get("form") == "factored":
        return FactoredEase.from_arrays(arrays, params)
    return EaseModel.from_arrays(arrays, params)


def covers_reading(C: sp.csr_matrix, max_solve: int, min_share: float) -> tuple[bool, float]:
    """Whether the papers EASE covers (`Gram`: every read paper when the readers are at most
    `max_solve`, else the `max_solve` most-read) hold at least `min_share` of the
    reader-paper pairs of C, and the share they hold. EASE scores only the papers it covers;
    where much of the reading happens outside them (CiteULike-a: the 5,000 most-read of its
    16,935 read papers hold 56% of the pairs, and EASE over them alone scores 0.18 against
    full EASE's 0.27), its feature ranks the head and costs fit time for nothing (measured:
    NDCG@20 0.3144 with it, 0.3148 without)."""
    counts = np.diff(sp.csc_matrix(C).indptr)
    total = int(counts.sum())
    if total == 0:
        return False, 0.0
    readers = int((np.diff(sp.csr_matrix(C).indptr) > 0).sum())
    if readers <= max_solve and readers < int((counts > 0).sum()):
        return min_share <= 1.0, 1.0
    share = float(np.sort(counts)[::-1][:max_solve].sum() / total)
    return share >= min_share, share


def walk_lambdas(score_of) -> tuple[float, dict[float, float]]:
    """The λ the validation score prefers: `score_of(λ)` at `FIRST_LAMBDAS`, then one step of
    `LAMBDA_STEP` further out on the side of the best while the best is at the edge of what
    was tried, within `LAMBDA_BOUNDS`. Why not a fixed grid: a grid's edge is a setting the
    data cannot move (CiteULike-a's slice peaks at 25, the old grid's floor; a smaller or
    denser data set can want less). Returns (best λ, {λ: score})."""
    lo, hi = LAMBDA_BOUNDS
    tried = {lam: score_of(lam) for lam in FIRST_LAMBDAS}
    while True:
        best = max(tried, key=tried.get)  # ties: the first tried
        nxt = [lam for lam in (best / LAMBDA_STEP, best * LAMBDA_STEP)
               if lo <= lam <= hi and lam not in tried
               and (lam < min(tried) or lam > max(tried))]
        if not nxt:
            return best, tried
        for lam in nxt:
            tried[lam] = score_of(lam)


def walk_word_weights(score_of) -> tuple[float, dict[float, float]]:
    """The word rows' weight the validation score prefers: none and `WORD_WEIGHT_FIRST`,
    then doubled while the score rises (where the first beats none), then halved while it
    rises if doubling did not, within `WORD_WEIGHT_BOUNDS`. Returns (best, {weight: score}),
    0 included; ties go to the first tried."""
    lo, hi = WORD_WEIGHT_BOUNDS
    tried = {0.0: score_of(0.0), WORD_WEIGHT_FIRST: score_of(WORD_WEIGHT_FIRST)}
    steps = (2.0, 0.5) if tried[WORD_WEIGHT_FIRST] > tried[0.0] else (0.5,)
    for step in steps:
        w = WORD_WEIGHT_FIRST
        while lo <= w * step <= hi:
            tried[w * step] = score_of(w * step)
            if tried[w * step] <= tried[w]:
                break
            w *= step
        if w != WORD_WEIGHT_FIRST:  # the walk moved: the other way cannot do better
            break
    return max(tried, key=tried.get), tried


def fit_on_validation(C_fit: sp.csr_matrix, V_pos: sp.csr_matrix, readers: np.ndarray, max_solve: int,
                      top_k: int, evaluate, text: sp.csr_matrix | None = None,
                      words: float | None = 0.0) -> tuple["EaseModel | FactoredEase", list[dict]]:
    """Choose λ on the validation slice (`walk_lambdas`), then the papers' words' weight at
    that λ (`walk_word_weights`; `words` None: chosen, a number: fixed; `text`: the papers'
    TF-IDF rows). The weight is the best on the slice, none included, as λ is: the slice
    scores EASE itself at full size, not a proxy of it (the ALS settings are chosen on a
    32-factor proxy, and the item graph's and the decay's on a slice that ranked the test
    splits otherwise, hence their "beyond noise" rule). `evaluate(scores_rows) -> ndcg`
    scores the readers' rows. Returns the best model (fit on C_fit) and the trials.

    Why λ first, at no words: λ's walk solves over the readers alone (5,551 on
    CiteULike-a: ~2 s a solve, ~6 s with 2,449 word rows), and the λ the words want was the
    same in most measurements (CiteULike-a warm 25 at weights 0 and 0.74; MovieLens warm 100
    at 0, 0.9 and 1.9, but 1,600 at 3.7, a weight its slice does not choose). Over the
    readers, the weights' trials are then scored from λ's solve (`WordWeightScores`) and
    only the chosen weight is solved whole: CiteULike-a's EASE stage 39.7 -> 19.5 s."""
    gram = Gram(C_fit, max_solve, word_rows(text) if text is not None and words != 0 else None)
    fixed_w = 0.0 if words is None or not gram.has_words else float(words)
    rows = C_fit[readers]
    # the best model so far, its score and its rows' scores (a factored model is readers² floats)
    kept: list = [None, -np.inf, None]
    scores: dict = {}

    def score_at(lam: float, w: float) -> float:
        if (lam, w) not in scores:
            model = gram.solve(lam, top_k, w)
            S = model.scores(rows)
            scores[(lam, w)] = value = float(evaluate(S))
            if value > kept[1]:  # ties keep the first tried, as `walk_lambdas` does
                kept[:] = [model, value, S]
        return scores[(lam, w)]

    best, tried = walk_lambdas(lambda lam: score_at(lam, fixed_w))
    assert kept[0].lam == best
    log = [{"ease_lambda": lam, "ndcg": round(v, 4)} for lam, v in sorted(tried.items())]
    if words is None and gram.has_words:
        if WordWeightScores.fits(gram):  # every weight from the readers' solve at λ
            at_weight = WordWeightScores(gram, kept[0], rows, kept[2])
            kept[2] = None

            def score_w(w: float) -> float:
                if (best, w) not in scores:
                    scores[(best, w)] = float(evaluate(at_weight.scores(w)))
                return scores[(best, w)]
        else:
            def score_w(w: float) -> float:
                return score_at(best, w)
        w, by_weight = walk_word_weights(score_w)
        score_w = at_weight = None  # its arrays (~0.5 GB on CiteULike-a) go before the last solve
        log += [{"ease_lambda": best, "words": v, "ndcg": round(by_weight[v], 4)} for v in sorted(by_weight) if v]
        if kept[0].words != w:  # a tie with none: the first tried, none
            kept[0] = gram.solve(best, top_k, w)
    return kept[0], log
