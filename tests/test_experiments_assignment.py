"""Assignment: sticky, independent across experiments, shares within 1 pp of the weights;
and the config checks that name the offending field."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from recommender.experiments.assignment import assign_variant, choose_experiment, in_traffic, unit_hash
from recommender.experiments.config import Experiment, InvalidConfig, Variant, validate_config

STRATEGIES = ("popular", "trending", "content")
USERS = [f"reader-{i}" for i in range(10_000)]


def exp(name="e", weights=(1, 1), **kw) -> Experiment:
    return Experiment(name=name, control="v0", variants=tuple(
        Variant(f"v{i}", "popular", float(w)) for i, w in enumerate(weights)), **kw)


def test_assignment_is_a_pure_function_of_names():
    e = exp()
    first = [assign_variant(e, u).name for u in USERS[:500]]
    assert first == [assign_variant(exp(), u).name for u in USERS[:500]]
    # Pinned values: a change of hashing would silently reshuffle every running
    # experiment after a deploy, so it must be a deliberate, visible change.
    assert unit_hash("variant", "e", "reader-0") == pytest.approx(
        int.from_bytes(__import__("hashlib").sha256(b"variant\x00e\x00reader-0").digest()[:8],
                       "big") / 2**64)
    assert [assign_variant(e, u).name for u in ("alice", "bob", "carol", "dave")] == \
        [assign_variant(Experiment.from_row({"name": "e", "kind": "ab", "control": "v0",
                                             "config": e.to_config()}), u).name
         for u in ("alice", "bob", "carol", "dave")]


@pytest.mark.parametrize("weights", [(1, 1), (1, 3), (0.2, 0.3, 0.5), (5, 0, 5), (1, 1, 1, 1)])
def test_shares_within_one_point_of_weights(weights):
    e = exp(weights=weights)
    names = [assign_variant(e, u).name for u in USERS]
    w = np.array(weights, dtype=float) / sum(weights)
    for i, share in enumerate(w):
        observed = names.count(f"v{i}") / len(USERS)
        assert abs(observed - share) < 0.01, (i, observed, share)


def test_independent_across_experiments():
    a = [assign_variant(exp("first"), u).name for u in USERS]
    b = [assign_variant(exp("second"), u).name for u in USERS]
    table = np.array([[sum(x == i and y == j for x, y in zip(a, b)) for j in ("v0", "v1")]
                      for i in ("v0", "v1")])
    assert stats.chi2_contingency(table).pvalue > 0.001
    assert 0.47 < np.mean([x == y for x, y in zip(a, b)]) < 0.53


def test_traffic_share_and_oldest_first():
    small = exp("small", traffic=0.3)
    other = exp("other")
    chosen = [choose_experiment([small, other], u) for u in USERS]
    share = sum(c is small for c in chosen) / len(USERS)
    assert abs(share - 0.3) < 0.02  # 4 standard errors
    assert all(c is not None for c in chosen)
    assert choose_experiment([], "x") is None


def good(**over):
    cfg = {"name": "ab-1", "control": "a",
           "variants": [{"name": "a", "strategy": "popular", "weight": 1},
                        {"name": "b", "strategy": "content", "weight": 2}]}
    cfg.update(over)
    return cfg


def test_valid_config_round_trips():
    e = validate_config(good(), STRATEGIES)
    assert e.control == "a" and [v.weight for v in e.variants] == [1.0, 2.0]
    assert validate_config(e.to_config(), STRATEGIES) == e
    assert validate_config(good(control=None) | {"control": "b"}, STRATEGIES).control == "b"
    no_control = good()
    del no_control["control"]
    assert validate_config(no_control, STRATEGIES).control == "a"


@pytest.mark.parametrize("cfg, loc", [
    (good(variants=[{"name": "a", "strategy": "popular"}, {"name": "a", "strategy": "content"}]),
     ("variants", 1, "name")),
    (good(variants=[{"name": "a", "strategy": "popular"}, {"name": "b", "strategy": "nope"}]),
     ("variants", 1, "strategy")),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": 0},
                    {"name": "b", "strategy": "content", "weight": 0}]), ("variants",)),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": -1},
                    {"name": "b", "strategy": "content", "weight": 2}]), ("variants", 0, "weight")),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": "x"},
                    {"name": "b", "strategy": "content"}]), ("variants", 0, "weight")),
    (good(variants=[{"name": "a", "strategy": "popular"}]), ("variants",)),
    (good(control="zzz"), ("control",)),
    (good(name="bad name!"), ("name",)),
    (good(kind="bandit"), ("kind",)),
    (good(traffic=0), ("traffic",)),
    (good(kind="interleave", variants=[{"name": n, "strategy": "popular"} for n in "abc"]),
     ("variants",)),
    (good(colour="red"), ("colour",)),
])
def test_invalid_configs_name_the_field(cfg, loc):
    with pytest.raises(InvalidConfig) as info:
        validate_config(cfg, STRATEGIES)
    assert info.value.loc == loc


def test_huge_weights_whose_sum_overflows_are_refused():
    cfg = {"name": "big", "variants": [{"name": "a", "strategy": "popular", "weight": 1e308},
                                       {"name": "b", "strategy": "content", "weight": 1e308}]}
    with pytest.raises(InvalidConfig) as err:
        validate_config(cfg, ["popular", "content"])
    assert err.value.loc == ("variants",)


def test_assignment_of_a_stored_experiment_with_huge_weights_still_splits():
    """A row stored before weights were bounded: shares follow the weights' ratios."""
    exp = Experiment("big", (Variant("a", "popular", 1e308), Variant("b", "content", 1e308)), "a")
    got = Counter(assign_variant(exp, f"reader-{i}").name for i in range(4000))
    assert 0.45 < got["a"] / 4000 < 0.55


def test_the_sample_ratio_check_works_with_huge_weights():
    from recommender.experiments.statistics import srm_test
    res = srm_test([900, 100], [1e308, 1e308])
    assert res.mismatch and res.expected == [500.0, 500.0]


# Pinned answers for a fixed salt: the variant of each reader is part of every running
# experiment's meaning, so a change of the hash or of how it maps onto the weights (e.g.
# `1 - unit_hash(...)`, which moves every reader of a 1:1 split to the other arm) must fail
# here rather than reshuffle readers after a deploy.
PINNED_READERS = [f"reader-{i}" for i in range(12)]


def pinned(weights, traffic=1.0) -> Experiment:
    return Experiment(name="e", control="v0", salt="pinned-salt", traffic=traffic, variants=tuple(
        Variant(f"v{i}", "popular", float(w)) for i, w in enumerate(weights)))


def test_pinned_readers_keep_their_variants():
    assert [round(unit_hash("variant", "pinned-salt", "e", u), 4) for u in PINNED_READERS[:4]] == \
        [0.9514, 0.2547, 0.8762, 0.8354]
    assert [assign_variant(pinned((1, 1)), u).name for u in PINNED_READERS] == \
        ["v1", "v0", "v1", "v1", "v0", "v0", "v1", "v0", "v1", "v0", "v1", "v1"]
    # 1:2:1 -> cut points 0.25 and 0.75 of the same hashes
    assert [assign_variant(pinned((1, 2, 1)), u).name for u in PINNED_READERS] == \
        ["v2", "v1", "v2", "v2", "v0", "v0", "v2", "v1", "v2", "v1", "v2", "v1"]


def test_pinned_readers_keep_their_traffic_share():
    half = pinned((1, 1), traffic=0.5)
    assert [in_traffic(half, u) for u in PINNED_READERS] == \
        [False, False, False, False, True, True, True, False, False, False, True, False]
    assert all(in_traffic(pinned((1, 1), traffic=1.0), u) for u in PINNED_READERS)


def test_a_reader_joins_the_oldest_experiment_that_includes_them():
    """Order is precedence: the first running experiment (oldest) whose traffic includes the
    reader wins, the next one only gets readers the first left out."""
    half, full = pinned((1, 1), traffic=0.5), exp("full")
    chosen = [choose_experiment([half, full], u) for u in PINNED_READERS]
    assert [c.name for c in chosen] == ["full" if not in_traffic(half, u) else "e"
                                        for u in PINNED_READERS]
    assert [c.name for c in chosen].count("e") == 4
    assert [choose_experiment([full, half], u).name for u in PINNED_READERS] == ["full"] * 12


NAME_RULE = "must be 1-64 characters of letters, digits, '_', '.', '-', starting with a letter or digit"


@pytest.mark.parametrize("cfg, loc, msg", [
    (good(variants=[{"name": "a", "strategy": "popular"}, {"name": "a", "strategy": "content"}]),
     ("variants", 1, "name"), "duplicate variant name 'a'"),
    (good(variants=[{"name": "a", "strategy": "popular"}, {"name": "b", "strategy": "nope"}]),
     ("variants", 1, "strategy"), "unknown strategy; one of content, popular, trending"),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": 0},
                    {"name": "b", "strategy": "content", "weight": 0}]),
     ("variants",), "weights must sum to a positive number"),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": -1},
                    {"name": "b", "strategy": "content", "weight": 2}]),
     ("variants", 0, "weight"), "must not be negative"),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": "x"}, {"name": "b", "strategy": "content"}]),
     ("variants", 0, "weight"), "must be a number"),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": True}, {"name": "b", "strategy": "content"}]),
     ("variants", 0, "weight"), "must be a number"),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": float("inf")},
                    {"name": "b", "strategy": "content"}]), ("variants", 0, "weight"), "must be finite"),
    (good(variants=[{"name": "a", "strategy": "popular"}]), ("variants",), "must be a list of at least two variants"),
    (good(variants="ab"), ("variants",), "must be a list of at least two variants"),
    (good(variants=[{"name": f"v{i}", "strategy": "popular"} for i in range(17)]), ("variants",), "at most 16 variants"),
    (good(variants=["x", {"name": "b", "strategy": "content"}]), ("variants", 0), "must be an object"),
    (good(variants=[{"name": "a", "strategy": "popular", "colour": 1}, {"name": "b", "strategy": "content"}]),
     ("variants", 0, "colour"), "unknown field; allowed: name, strategy, weight"),
    (good(variants=[{"name": "", "strategy": "popular"}, {"name": "b", "strategy": "content"}]),
     ("variants", 0, "name"), NAME_RULE),
    (good(control="zzz"), ("control",), "must be the name of one of the variants"),
    (good(name="bad name!"), ("name",), NAME_RULE),
    (good(name="a" * 65), ("name",), NAME_RULE),
    (good(name="-a"), ("name",), NAME_RULE),
    (good(kind="bandit"), ("kind",), "must be one of ab, interleave"),
    (good(traffic=0), ("traffic",), "must be in (0, 1]"),
    (good(traffic=1.0000001), ("traffic",), "must be in (0, 1]"),
    (good(traffic="all"), ("traffic",), "must be a number"),
    (good(description=5), ("description",), "must be a string of at most 2000 characters"),
    (good(description="x" * 2001), ("description",), "must be a string of at most 2000 characters"),
    (good(kind="interleave", variants=[{"name": n, "strategy": "popular"} for n in "abc"]),
     ("variants",), "an interleave experiment compares exactly two strategies"),
    (good(colour="red"), ("colour",), "unknown field; allowed: control, description, kind, name, traffic, variants"),
    ([1], (), "must be an object"),
    ({"name": "big", "variants": [{"name": "a", "strategy": "popular", "weight": 1e308},
                                  {"name": "b", "strategy": "content", "weight": 1e308}]},
     ("variants",), "weights must sum to a finite number"),
])
def test_each_refusal_names_its_field_and_says_why(cfg, loc, msg):
    """Exactly what the API's 422 shows (loc and message): a client is told which field
    and what is wrong with it."""
    with pytest.raises(InvalidConfig) as info:
        validate_config(cfg, STRATEGIES)
    assert (info.value.loc, info.value.msg) == (loc, msg)
    assert str(info.value) == f"{'.'.join(map(str, loc))}: {msg}"


def test_each_limit_is_allowed_at_itself():
    at_limits = good(name="a" * 64, traffic=1, description="x" * 2000, kind="ab",
                     variants=[{"name": f"v{i}", "strategy": "popular", "weight": 0 if i else 1}
                               for i in range(16)], control="v0")
    e = validate_config(at_limits, STRATEGIES)
    assert (len(e.name), e.traffic, len(e.description), len(e.variants)) == (64, 1.0, 2000, 16)
    assert [v.weight for v in e.variants] == [1.0] + [0.0] * 15
    assert validate_config(good(name="A.b_c-9", traffic=1e-9), STRATEGIES).traffic == 1e-9
    two = validate_config(good(kind="interleave"), STRATEGIES)
    assert two.kind == "interleave" and two.variant("b").strategy == "content"
    with pytest.raises(KeyError):
        two.variant("zzz")


def test_a_stored_row_reads_back_as_the_experiment_it_was():
    """Rows as the store keeps them: every field of the config is read back, and rows from
    before a field existed (no traffic, no weight, no description, control only in the
    config) get that field's default."""
    cfg = {"name": "e", "kind": "ab", "control": "b", "traffic": 0.3, "description": "why",
           "salt": "s", "variants": [{"name": "a", "strategy": "popular", "weight": 1.0},
                                     {"name": "b", "strategy": "content", "weight": 3.0}]}
    e = Experiment.from_row({"name": "e", "kind": "ab", "control": None, "config": cfg})
    assert e == Experiment("e", (Variant("a", "popular", 1.0), Variant("b", "content", 3.0)), "b",
                           kind="ab", traffic=0.3, description="why", salt="s")
    old = {"name": "e", "kind": "interleave", "control": "a",
           "config": {"control": "zzz", "variants": [{"name": "a", "strategy": "popular"},
                                                     {"name": "b", "strategy": "content"}]}}
    assert Experiment.from_row(old) == Experiment(
        "e", (Variant("a", "popular", 1.0), Variant("b", "content", 1.0)), "a", kind="interleave",
        traffic=1.0, description="", salt="")
    with pytest.raises(KeyError, match="nobody"):
        e.variant("nobody")


def test_a_refusal_carries_the_value_it_refused():
    """The API's 422 echoes it as `input`."""
    with pytest.raises(InvalidConfig) as info:
        validate_config(good(traffic=7), STRATEGIES)
    assert info.value.value == 7.0


@pytest.mark.parametrize("cfg, value", [
    (good(variants=[{"name": "a", "strategy": "popular"}, {"name": "a", "strategy": "content"}]), "a"),
    (good(variants=[{"name": "a", "strategy": "popular"}, {"name": "b", "strategy": "nope"}]), "nope"),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": 0},
                    {"name": "b", "strategy": "content", "weight": 0}]), [0.0, 0.0]),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": "x"}, {"name": "b", "strategy": "content"}]), "x"),
    (good(variants=[{"name": "a", "strategy": "popular", "weight": float("inf")},
                    {"name": "b", "strategy": "content"}]), float("inf")),
    (good(variants="ab"), "ab"),
    (good(variants=["x", {"name": "b", "strategy": "content"}]), "x"),
    (good(name="-a"), "-a"),
    (good(kind="bandit"), "bandit"),
    (good(kind="interleave", variants=[{"name": n, "strategy": "popular"} for n in "abc"]), 3),
    ([1], [1]),
])
def test_each_refusal_carries_the_value_it_refused(cfg, value):
    """The API's 422 echoes it as `input`, so a client sees what was wrong."""
    with pytest.raises(InvalidConfig) as info:
        validate_config(cfg, STRATEGIES)
    assert info.value.value == value


def test_a_variant_without_a_weight_weighs_one():
    e = validate_config({"name": "w", "variants": [{"name": "a", "strategy": "popular"},
                                                   {"name": "b", "strategy": "content", "weight": 3}]},
                        STRATEGIES)
    assert [v.weight for v in e.variants] == [1.0, 3.0] and e.control == "a" and e.traffic == 1.0
    assert (e.kind, e.description, e.salt) == ("ab", "", "")


def test_experiments_from_before_salts_hash_the_name_alone():
    """Rows stored before salts existed keep assigning as they did: (variant, name, reader)."""
    e = pinned((1, 1))
    unsalted = Experiment(name="e", control="v0", variants=e.variants)
    for u in PINNED_READERS:
        expect = "v0" if unit_hash("variant", "e", u) < 0.5 else "v1"
        assert assign_variant(unsalted, u).name == expect
    assert [assign_variant(unsalted, u).name for u in PINNED_READERS] != \
        [assign_variant(e, u).name for u in PINNED_READERS]


def test_the_salt_survives_the_round_trip_through_the_store_row():
    e = pinned((1, 3))
    assert e.to_config()["salt"] == "pinned-salt"
    row = {"name": "e", "kind": "ab", "control": "v0", "config": e.to_config()}
    assert Experiment.from_row(row) == e
    assert "salt" not in exp().to_config()


@pytest.mark.parametrize("cfg, value", [
    (good(variants=[{"name": "a", "strategy": "popular", "weight": -1},
                    {"name": "b", "strategy": "content", "weight": 2}]), -1.0),
    ({"name": "big", "variants": [{"name": "a", "strategy": "popular", "weight": 1e308},
                                  {"name": "b", "strategy": "content", "weight": 1e308}]}, [1e308, 1e308]),
    (good(control="zzz"), "zzz"),
])
def test_more_refusals_carry_their_value(cfg, value):
    with pytest.raises(InvalidConfig) as info:
        validate_config(cfg, STRATEGIES)
    assert info.value.value == value
