"""The single-reader scoring path (recommender/model/one_reader.py) against the batch path.

A live request scores one reader without scipy's sparse products; offline evaluation scores
batches with them. Both must rank the same: the scores of one reader are compared to the
bit with the batch code run on that reader's row, under every strategy, for random
histories (repeats, dismissals, impressions, old and undated events), before and after a
paper is added at serve time."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.core.ranking import top_k
from recommender.model.hybrid import STRATEGIES, HybridModel
from recommender.core.sparse_rows import gather_rows
from recommender.model.one_reader import OneHistory
from recommender.model.reading_order import ReadingRows, reading_rows
from tests.helpers import CONFIG, synthetic

KINDS = ["read", "click", "upvote", "impression", "dismiss", "remove_upvote"]
history_st = st.lists(st.tuples(st.integers(0, 79), st.sampled_from(KINDS),
                                st.one_of(st.none(), st.floats(1.6e9, 1.7e9))), max_size=60)


def fitted(n_papers: int = 80, n_users: int = 160, timed: bool = False) -> HybridModel:
    texts, titles, users, items, _ = synthetic(n_papers=n_papers, n_users=n_users)
    ts = np.random.default_rng(1).uniform(1.6e9, 1.7e9, len(users)) if timed else None
    return HybridModel.fit(texts, users, items, ts=ts, n_users=int(users.max()) + 1, titles=titles,
                           config=replace(CONFIG, ease=True))


# EASE in each form: pruned weights (more readers than papers: the papers' side solve),
# factored (fewer readers: the readers' side keeps B as K and X), and factored as a model
# that serves keeps it (XᵀK beside K: `HybridModel.for_lists`); with event times, the
# reading order's EASE beside it (reading_order.py)
FORMS = {"pruned": (80, 160), "factored": (160, 120), "factored, for lists": (160, 120),
         "factored, timed": (300, 100), "factored, timed, for lists": (300, 100)}


def fitted_form(form: str) -> HybridModel:
    m = fitted(*FORMS[form], timed="timed" in form)
    if form.endswith("for lists"):
        m.for_lists()
        assert m.comps.ease.XK is not None
        assert m.comps.order is None or m.comps.order.XK is not None
    assert type(m.comps.ease).__name__ == ("EaseModel" if form == "pruned" else "FactoredEase")
    assert (m.comps.order is not None) == ("timed" in form), m.comps.order_info
    return m


@pytest.fixture(scope="module", params=sorted(FORMS))
def model(request):
    return fitted_form(request.param)


def batch_reading(model: HybridModel, history, row) -> ReadingRows | None:
    """The reader's latest papers and windows as the batch path takes them (`reading_rows`
    of their events)."""
    timed = [h for h in history if h[2] is not None and 0 <= h[0] < model.n_items]
    if not timed or model.comps.order is None:
        return None
    items = np.array([h[0] for h in timed])
    return reading_rows(np.zeros(len(items), np.int64), items, np.array([h[2] for h in timed]), row,
                        model.config.reading_latest, model.config.reading_windows)


def same_as_batch(model: HybridModel, history, strategy: str) -> None:
    row, seen = model.history_row(history)
    reading = batch_reading(model, history, row)
    batch = model.score_batch(row, strategy, reading=reading)[0]
    one = OneHistory.from_row(row, seen, *model.reading_of(history, row))
    latest, windows = reading.of_one() if reading is not None else (None, None)
    assert (one.latest is None) == (latest is None)
    if one.latest is not None:
        np.testing.assert_array_equal(one.latest, latest)
    assert (one.windows is None) == (windows is None)
    if one.windows is not None:
        assert [w.tolist() for w in one.windows] == [w.tolist() for w in windows]
    single, _ = model.one_reader().scores(one, strategy)
    np.testing.assert_array_equal(single, batch)
    np.testing.assert_array_equal(model.score_rows(row, strategy, reading=reading)[0], batch)
    np.testing.assert_array_equal(model.score_history(history, strategy), batch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=history_st, strategy=st.sampled_from(STRATEGIES))
def test_single_reader_scores_equal_the_batch_path(model, history, strategy):
    same_as_batch(model, history, strategy)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=history_st, k=st.integers(1, 90))
def test_list_is_the_batch_top_k(model, history, k):
    """recommend() ranks exactly as top_k over the batch scores, seen papers excluded."""
    row, seen = model.history_row(history)
    excl = sp.csr_matrix((np.ones(len(seen), bool), (np.zeros(len(seen), np.int64), seen)),
                         shape=(1, model.n_items))
    expected = top_k(model.score_batch(row, "hybrid", reading=batch_reading(model, history, row)), k, excl)[0]
    got = [r.index for r in model.recommend(history, k=k, with_reasons=False)]
    assert got == [int(j) for j in expected if j >= 0]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_equal_after_a_paper_is_added(form):
    """add_paper grows every array; the single-reader cache must follow, not serve stale
    precomputations (the new paper would be missing or mis-scored)."""
    model = fitted_form(form)
    history = [(3, "upvote", 1.65e9), (7, "read", None), (3, "click", 1.66e9)]
    same_as_batch(model, history, "hybrid")
    new = model.add_paper("graph network community spectral clustering", "random walk on nodes")
    assert len(model.one_reader().pop) == model.n_items == new + 1
    for strategy in STRATEGIES:
        same_as_batch(model, history, strategy)


def test_gather_rows_is_a_row_times_matrix():
    rng = np.random.default_rng(0)
    M = sp.random(40, 30, density=0.2, format="csr", dtype=np.float32, random_state=1)
    rows = np.array([2, 5, 5, 17, 39])
    w = rng.random(5).astype(np.float32)
    row = sp.csr_matrix((w, (np.zeros(5, int), rows)), shape=(1, 40))
    row.sum_duplicates()
    expected = np.asarray((row @ M).toarray()[0])
    np.testing.assert_allclose(gather_rows(M, rows, w), expected, rtol=1e-6)
    assert not gather_rows(M, np.zeros(0, np.int64), np.zeros(0, np.float32)).any()


@pytest.mark.parametrize("form", [f for f in sorted(FORMS) if "timed" in f])
def test_a_reader_of_many_timed_papers_scores_their_windows_as_the_batch(form):
    """A reader of 45 timed papers has windows of their reading (`windows_of_history`),
    the `windows` feature is not flat for them, and one reader's scores still equal the
    batch's to the bit, under every strategy."""
    model = fitted_form(form)
    history = [(j, "read", 1.6e9 + 3600.0 * ((j * 37) % 50)) for j in range(45)]
    row, seen = model.history_row(history)
    latest, windows = model.reading_of(history, row)
    assert latest is not None and windows is not None and len(windows) == 4  # 0-20, 10-30, 20-40, 30-45
    z = model.one_reader().features(OneHistory.from_row(row, seen, latest, windows))
    assert z["windows"].std() > 0.5
    for strategy in STRATEGIES:
        same_as_batch(model, history, strategy)
