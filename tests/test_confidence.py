"""From events to the confidence matrix (recommender/model/confidence.py): kind weights from
the kinds table, time decay from the newest event or each reader's, clipping at zero, and
the `seen` rule."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.kinds import MODEL_WEIGHTS
from recommender.core.times import DAY_S
from recommender.model.confidence import (ConfidenceConfig, confidence_matrix, decay_factors,
                                          history_rows, kind_weights, reader_latest, reduced_by_key,
                                          summed_by_key)

NOW = 1.8e9


def test_kind_weights_come_from_the_table_and_unknown_kinds_count_as_a_read():
    w = kind_weights(np.array(["upvote", "click", "READ", "rating", "impression"], dtype=object))
    assert w.tolist() == [1.0, 0.25, 0.5, 0.5, 0.0]
    assert kind_weights(np.array(["upvote"], dtype=object), {"upvote": 3.0}).tolist() == [3.0]
    assert kind_weights(np.zeros(0, dtype=object)).shape == (0,)
    # with weights of a model's own, an unknown kind still counts as its read, or as 0.5
    assert kind_weights(np.array(["bookmark"], dtype=object), {"read": 0.3}).tolist() == pytest.approx([0.3])
    assert kind_weights(np.array(["bookmark"], dtype=object), {"upvote": 2.0}).tolist() == [0.5]
    assert MODEL_WEIGHTS["remove_dismiss"] == -MODEL_WEIGHTS["dismiss"]  # an undo cancels exactly


def test_decay_halves_per_half_life_and_leaves_unknown_times_alone():
    f = decay_factors(np.array([NOW, NOW - 10 * DAY_S, np.nan]), NOW, half_life_days=10)
    assert f.tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert decay_factors(np.array([NOW - DAY_S]), NOW, half_life_days=0).tolist() == [1.0]
    # a half-life of a day or less decays too
    assert decay_factors(np.array([NOW - DAY_S]), NOW, half_life_days=1).tolist() == [0.5]
    assert decay_factors(np.array([NOW - DAY_S]), NOW, half_life_days=0.5).tolist() == [0.25]
    # without `now`, the newest event is now
    assert decay_factors(np.array([NOW, NOW - 10 * DAY_S]), None, 10).tolist() == pytest.approx([1, 0.5])


def test_each_readers_newest_event_when_decaying_from_the_reader():
    assert reader_latest([0, 1, 0], [1.0, 5.0, 3.0]).tolist() == [3.0, 5.0, 3.0]
    # an event without a time takes its reader's newest known one; a reader with none, NaN
    latest = reader_latest([0, 0, 1], [5.0, np.nan, np.nan])
    assert latest[:2].tolist() == [5.0, 5.0] and np.isnan(latest[2])
    # one reader's live row decays from their own newest event too, whatever `now` says
    row, _ = history_rows([(0, "upvote", NOW - 10 * DAY_S), (1, "upvote", NOW - 20 * DAY_S)], 2, now=NOW,
                          config=ConfidenceConfig(10, decay_from="reader"))
    assert row.toarray().tolist() == [[1.0, 0.5]]
    users, items = np.array([0, 0, 1]), np.array([0, 1, 2])
    ts = np.array([NOW - 10 * DAY_S, NOW - 20 * DAY_S, NOW - 100 * DAY_S])
    kinds = np.array(["upvote"] * 3, dtype=object)
    C, _ = confidence_matrix(users, items, kinds, ts, (2, 3),
                             config=ConfidenceConfig(10, decay_from="reader"))
    # reader 1's only event is their newest: undecayed, however old
    np.testing.assert_allclose(C.toarray(), [[1.0, 0.5, 0.0], [0.0, 0.0, 1.0]], rtol=1e-6)
    with pytest.raises(ValueError, match="decay_from must be one of .* not 'oldest'"):
        ConfidenceConfig(decay_from="oldest")


def test_sums_are_clipped_at_zero_and_seen_follows_the_kinds_table():
    users = np.zeros(6, dtype=np.int64)
    items = np.array([0, 0, 1, 2, 3, 4])
    kinds = np.array(["read", "dismiss", "upvote", "impression", "remove_upvote", "click"], dtype=object)
    C, seen = confidence_matrix(users, items, kinds, None, (1, 5))
    assert C.toarray()[0].tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0, 0.25])
    assert C.nnz == 2 and (C.data > 0).all()
    # dismissed, upvoted and clicked papers are seen; a bare impression or a lone undo not
    assert sorted(seen.indices.tolist()) == [0, 1, 4]


def test_one_history_is_one_row_of_the_same_matrix():
    history = [(3, "upvote", NOW - DAY_S), (1, "read", NOW), (9, "read", NOW)]  # 9: not a paper
    row, seen = history_rows(history, 5, now=NOW)
    C, _ = confidence_matrix(np.zeros(2), np.array([3, 1]), np.array(["upvote", "read"], dtype=object),
                             np.array([NOW - DAY_S, NOW]), (1, 5), now=NOW)
    assert row.toarray().tolist() == C.toarray().tolist() and sorted(seen.tolist()) == [1, 3]
    empty, nothing = history_rows([], 5)
    assert empty.shape == (1, 5) and empty.nnz == 0 and len(nothing) == 0


KIND_NAMES = ["read", "click", "upvote", "impression", "dismiss", "remove_upvote", "remove_dismiss", "bookmark"]


@settings(max_examples=150, deadline=None)
@given(history=st.lists(st.tuples(st.integers(-1, 7), st.sampled_from(KIND_NAMES),
                                  st.one_of(st.none(), st.floats(NOW - 900 * DAY_S, NOW))), max_size=25),
       half_life=st.sampled_from([None, 0.0, 7.0, 180.0]), decay_from=st.sampled_from(["newest", "reader"]),
       now=st.sampled_from([None, NOW]), repeats=st.sampled_from(["sum", "log", "once"]))
def test_one_history_row_equals_the_matrix_rule(history, half_life, decay_from, now, repeats):
    """`history_rows` computes one reader's row without `confidence_matrix`'s sparse
    conversions: the same papers, the same confidences to the bit (both sum a paper's events
    in the history's order, `summed_by_key`: where an upvote, its removal and a decayed
    click cancel, scipy's own order once kept an entry the row did not), the same seen papers."""
    config = ConfidenceConfig(half_life, decay_from=decay_from, repeats=repeats)
    row, seen = history_rows(history, 6, now=now, config=config)
    inside = [h for h in history if 0 <= h[0] < 6]
    C, S = confidence_matrix(np.zeros(len(inside)), np.array([h[0] for h in inside], np.int64),
                             np.array([h[1] for h in inside], dtype=object),
                             np.array([np.nan if h[2] is None else h[2] for h in inside], np.float64),
                             (1, 6), now=now, config=config)
    assert row.indices.tolist() == sorted(C.indices.tolist())
    np.testing.assert_array_equal(row.toarray(), C.toarray())
    assert seen.tolist() == sorted(S.indices.tolist())


def test_repeats_add_up_as_their_sum_or_its_log():
    users, items = np.zeros(5), np.array([0, 0, 0, 1, 2])
    kinds = np.array(["click", "click", "click", "upvote", "dismiss"], dtype=object)
    summed, _ = confidence_matrix(users, items, kinds, None, (1, 3), config=ConfidenceConfig(0))
    logged, _ = confidence_matrix(users, items, kinds, None, (1, 3), config=ConfidenceConfig(0, repeats="log"))
    assert summed.toarray()[0].tolist() == [0.75, 1.0, 0.0]  # a dismissal alone: clipped, not stored
    np.testing.assert_allclose(logged.toarray()[0], [np.log1p(0.75), np.log1p(1.0), 0.0], rtol=1e-6)
    assert logged.nnz == 2
    with pytest.raises(ValueError, match="repeats"):
        ConfidenceConfig(0, repeats="max")


def test_repeats_counted_once_weigh_no_more_than_the_strongest_event():
    """"once": ten clicks weigh one click, a click and an upvote an upvote, an upvote taken
    back and given again an upvote, an upvote taken back nothing, a dismissal cancels."""
    pairs = [(0, ["click"] * 10), (1, ["click", "upvote", "click"]), (2, ["upvote", "remove_upvote", "upvote"]),
             (3, ["upvote", "remove_upvote"]), (4, ["read", "dismiss"]), (5, ["read", "read", "click"])]
    items = np.array([j for j, ks in pairs for _ in ks])
    kinds = np.array([k for _, ks in pairs for k in ks], dtype=object)
    once, _ = confidence_matrix(np.zeros(len(items)), items, kinds, None, (1, 6),
                                config=ConfidenceConfig(0, repeats="once"))
    assert once.toarray()[0].tolist() == [0.25, 1.0, 1.0, 0.0, 0.0, 0.5]
    assert once.indices.tolist() == [0, 1, 2, 5]  # nothing stored where it settles at zero


@settings(max_examples=100, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.sampled_from(KIND_NAMES),
                                 st.floats(NOW - 900 * DAY_S, NOW)), max_size=30),
       half_life=st.sampled_from([0.0, 30.0]))
def test_once_is_the_sum_capped_at_the_strongest_decayed_event(events, half_life):
    """The rule written out per pair: min(sum of decayed weights, the largest of them),
    clipped at zero; the sum is never below "once" where that is positive."""
    config = ConfidenceConfig(half_life, repeats="once")
    users, items = np.array([e[0] for e in events], np.int64), np.array([e[1] for e in events], np.int64)
    kinds, ts = np.array([e[2] for e in events], dtype=object), np.array([e[3] for e in events])
    C, _ = confidence_matrix(users, items, kinds, ts, (3, 4), now=NOW, config=config)
    summed, _ = confidence_matrix(users, items, kinds, ts, (3, 4), now=NOW, config=replace(config, repeats="sum"))
    w = kind_weights(kinds) * decay_factors(ts, NOW, half_life)
    want, scale = np.zeros((3, 4)), np.zeros((3, 4))
    for u, j in {(e[0], e[1]) for e in events}:
        mine = w[(users == u) & (items == j)].astype(np.float64)
        want[u, j] = max(0.0, min(mine.sum(), mine.max()))
        scale[u, j] = np.abs(mine).sum()
    # float32 sums in the events' order: within a few float32 roundings of what they add up to
    assert (np.abs(C.toarray() - want) <= 4e-6 * (1.0 + scale)).all(), (C.toarray(), want)
    assert (summed.toarray() >= C.toarray()).all()


def test_the_config_round_trips_through_the_manifest():
    c = ConfidenceConfig(30.0, decay_from="reader")
    assert ConfidenceConfig.from_dict(c.to_dict()) == ConfidenceConfig(30.0, dict(MODEL_WEIGHTS), "reader")
    logged = ConfidenceConfig(0.0, repeats="log")
    assert ConfidenceConfig.from_dict(logged.to_dict()).repeats == "log"
    old = {k: v for k, v in c.to_dict().items() if k != "repeats"}  # a manifest from before the choice
    assert ConfidenceConfig.from_dict(old).repeats == "sum"
    assert c.describe() == "half-life 30 days from each reader's latest event"
    assert replace(c, decay_from="newest").describe() == "half-life 30 days from the newest event"
    assert ConfidenceConfig(0).describe() == "no decay"


def test_a_manifest_without_a_field_reads_as_the_rule_it_was_written_under():
    """A model written before a field was chosen and recorded still serves with the rule it
    was trained under: the 180-day half-life from the newest event, the kinds table, sums;
    a null half-life is no decay, and weights of its own stay its own."""
    assert ConfidenceConfig.from_dict({}) == ConfidenceConfig(180.0, dict(MODEL_WEIGHTS), "newest", "sum")
    assert ConfidenceConfig.from_dict({"half_life_days": 30, "weights": None}).weights == dict(MODEL_WEIGHTS)
    no_decay = ConfidenceConfig.from_dict({"half_life_days": None, "decay_from": "reader"})
    assert no_decay.half_life_days is None and not no_decay.decays and no_decay.describe() == "no decay"
    own = {"upvote": 1.0, "read": 0.25, "click": 0.0}
    assert ConfidenceConfig.from_dict({"weights": own}).weights == own


def test_a_models_own_kind_weights_hold_in_its_manifest_and_in_one_readers_row():
    """Kind weights of a model's own (not the table's) are written with it, read back, and
    weigh a live history exactly as they weighed its training matrix."""
    own = {"upvote": 2.0, "read": 0.125, "click": 0.0}
    config = ConfidenceConfig(0.0, weights=own)
    assert ConfidenceConfig.from_dict(config.to_dict()).weights == own
    history = [(0, "upvote", NOW), (1, "read", NOW), (1, "click", NOW), (2, "click", NOW)]
    row, _ = history_rows(history, 3, now=NOW, config=config)
    C, _ = confidence_matrix(np.zeros(4), np.array([0, 1, 1, 2]), np.array([h[1] for h in history], dtype=object),
                             np.full(4, NOW), (1, 3), now=NOW, config=config)
    assert row.toarray().tolist() == C.toarray().tolist() == [[2.0, 0.125, 0.0]]


def test_a_history_may_leave_out_kinds_and_times():
    """A history entry may be a paper alone or a paper and its kind: the kind then counts as
    a read and the time as unknown, which does not decay; papers outside the catalog drop."""
    row, seen = history_rows([(3,), (1, "upvote"), (1, "click", NOW - 30 * DAY_S)], 5, now=NOW,
                             config=ConfidenceConfig(10.0))
    assert row.toarray()[0].tolist() == pytest.approx([0.0, 1.0 + 0.25 / 8, 0.0, 0.5, 0.0])
    assert seen.tolist() == [1, 3]
    outside, none_seen = history_rows([(7, "read", NOW), (-1, "upvote", NOW)], 5, now=NOW)
    assert outside.nnz == 0 and len(none_seen) == 0


def test_a_single_event_and_events_without_kinds_make_a_matrix():
    """One event is a matrix of one entry, seen; events logged without kinds are upvotes."""
    C, seen = confidence_matrix([0], [2], np.array(["click"], dtype=object), [NOW], (1, 3))
    assert C.toarray().tolist() == [[0.0, 0.0, 0.25]] and seen.toarray().tolist() == [[False, False, True]]
    C, seen = confidence_matrix([0, 0], [0, 1], None, None, (1, 2))
    assert C.toarray().tolist() == [[1.0, 1.0]] and seen.nnz == 2


def test_keys_reduce_to_their_sum_or_their_strongest_in_float32():
    """Keys out of order and weights of another dtype: the distinct keys ascending and each
    one's sum or largest weight as float32; no key, no value."""
    keys, w = np.array([3, 1, 3, 7, 1]), np.array([0.5, 2.0, 0.25, -1.0, -3.0])
    for how, want in ((np.add, [-1.0, 0.75, -1.0]), (np.maximum, [2.0, 0.5, -1.0])):
        distinct, out = reduced_by_key(keys, w, how)
        assert distinct.tolist() == [1, 3, 7] and distinct.dtype == np.int64
        assert out.tolist() == want and out.dtype == np.float32
        distinct, out = reduced_by_key(np.zeros(0, np.int32), np.zeros(0), how)
        assert distinct.shape == out.shape == (0,) and (distinct.dtype, out.dtype) == (np.int64, np.float32)
    assert summed_by_key(keys, w)[1].tolist() == [-1.0, 0.75, -1.0]


def test_a_keys_sum_is_the_same_alone_as_among_other_keys_events():
    """`summed_by_key` sums a key's weights in their given order, wherever the other keys'
    events sit: so a reader's row of the matrix (their events among everyone's) has the
    bits of their live row (their events alone). Weights of mixed magnitudes make the
    order show in the float32 sum; the keys repeat out of order, not only the first."""
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 5, 300)
    w = (rng.normal(size=300) * 10.0 ** rng.integers(-4, 8, 300)).astype(np.float32)
    distinct, sums = summed_by_key(keys, w)
    assert distinct.tolist() == [0, 1, 2, 3, 4]
    for key, total in zip(distinct, sums):
        alone_key, alone = summed_by_key(np.full(int((keys == key).sum()), key), w[keys == key])
        assert alone_key.tolist() == [key] and alone[0] == total
    assert summed_by_key([2, 1, 2, 1], np.float32([1, 10, 100, 1000])) [1].tolist() == [1010.0, 101.0]
    # in the matrix: a reader's upvote, its removal and a decayed click on a paper other
    # than their first, among another reader's events
    users = np.array([1, 0, 1, 1, 0, 1, 1])
    items = np.array([2, 0, 1, 1, 1, 1, 0])
    kinds = np.array(["read", "upvote", "upvote", "remove_upvote", "click", "click", "read"], dtype=object)
    ts = NOW - np.array([1, 2, 3, 3, 5, 40, 6]) * DAY_S
    config = ConfidenceConfig(10.0)
    C, _ = confidence_matrix(users, items, kinds, ts, (2, 3), now=NOW, config=config)
    mine = users == 1
    row, _ = history_rows(list(zip(items[mine], kinds[mine], ts[mine])), 3, now=NOW, config=config)
    np.testing.assert_array_equal(C[1].toarray(), row.toarray())
    assert C[1, 1] == pytest.approx(0.25 * 0.5 ** 4, rel=1e-3)  # the upvote and its removal cancel


def test_decay_from_the_newest_event_is_one_time_for_every_reader():
    """From the newest event overall, a reader whose only event is old has it decayed (from
    their own newest, it would not be); events with no time at all never decay."""
    users, items = np.array([0, 0, 1]), np.array([0, 1, 2])
    ts = np.array([NOW - 10 * DAY_S, NOW - 20 * DAY_S, NOW - 100 * DAY_S])
    kinds = np.array(["upvote"] * 3, dtype=object)
    C, _ = confidence_matrix(users, items, kinds, ts, (2, 3), config=ConfidenceConfig(10, decay_from="newest"))
    np.testing.assert_allclose(C.toarray(), [[1.0, 0.5, 0.0], [0.0, 0.0, 0.5 ** 9]], rtol=1e-6)
    for decay_from in ("newest", "reader"):
        C, _ = confidence_matrix(users, items, kinds, None, (2, 3), config=ConfidenceConfig(10, decay_from=decay_from))
        assert C.toarray().tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_an_index_outside_the_shape_is_refused_not_folded_into_another_reader():
    """The matrix keys a (reader, paper) pair as reader x papers + paper: a paper index past
    the last would land on the next reader's first paper, so it is refused."""
    for users, items in (([0], [3]), ([2], [0]), ([0], [-1]), ([-1], [0])):
        with pytest.raises(ValueError, match="outside the matrix's shape"):
            confidence_matrix(users, items, None, None, (2, 3))
