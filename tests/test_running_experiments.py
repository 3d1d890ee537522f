"""Which experiments are running, as every list sees them (assignment.running_experiments):
read at most once a second, a change through this process's store seen at once, and the
last ones read kept while the database cannot answer. On a real SQLite store."""
from __future__ import annotations

import pytest

from recommender.experiments import assignment
from recommender.experiments.config import create_experiment
from recommender.storage import StoreUnavailable

STRATEGIES = ("popular", "content")


def config(name):
    return {"name": name, "variants": [{"name": "a", "strategy": "popular"},
                                       {"name": "b", "strategy": "content"}]}


def names(store):
    return [e.name for e in assignment.running_experiments(store)]


@pytest.fixture
def reads(store, monkeypatch):
    """How often the store was asked for the running experiments."""
    count = []
    real = store.list_experiments
    monkeypatch.setattr(store, "list_experiments", lambda **kw: count.append(1) or real(**kw))
    return count


def test_read_once_within_the_ttl_and_again_after_it(store, reads, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(assignment.time, "monotonic", lambda: clock[0])
    create_experiment(store, config("one"), STRATEGIES)
    assert names(store) == names(store) == names(store) == ["one"]
    assert len(reads) == 1
    clock[0] += assignment.RUNNING_TTL_S - 0.01
    names(store)
    assert len(reads) == 1  # within the TTL of the read at 1000.0
    clock[0] += 0.02
    assert names(store) == ["one"]
    assert len(reads) == 2


def test_a_change_through_this_store_is_seen_at_once(store, reads):
    """Stop one and create another with no read in between: the counter the cache keys on
    must differ from what it was at the last read (a counter that went back to it would
    serve the stale list for up to a second)."""
    create_experiment(store, config("one"), STRATEGIES)
    assert names(store) == ["one"]
    store.stop_experiment("one")
    create_experiment(store, config("two"), STRATEGIES)
    assert names(store) == ["two"]
    store.stop_experiment("two")
    assert names(store) == []
    assert len(reads) == 3


def test_while_the_store_cannot_answer_the_last_read_goes_on(store, monkeypatch):
    create_experiment(store, config("one"), STRATEGIES)
    assert names(store) == ["one"]

    def down(**kw):
        raise StoreUnavailable("database outage")
    monkeypatch.setattr(store, "list_experiments", down)
    store.experiments_changed += 1  # force a read
    assert names(store) == ["one"]


def test_with_nothing_read_yet_an_outage_is_raised(store, monkeypatch):
    def down(**kw):
        raise StoreUnavailable("database outage")
    monkeypatch.setattr(store, "list_experiments", down)
    with pytest.raises(StoreUnavailable):
        assignment.running_experiments(store)


def test_each_experiment_gets_a_secret_salt_of_its_own(store):
    """32 hex digits, different for every experiment, unless a replay gives its own; a
    name is never reused."""
    import re
    from recommender.experiments.config import ExperimentExists
    one = create_experiment(store, config("one"), STRATEGIES)["config"]["salt"]
    two = create_experiment(store, config("two"), STRATEGIES)["config"]["salt"]
    assert re.fullmatch(r"[0-9a-f]{32}", one) and re.fullmatch(r"[0-9a-f]{32}", two) and one != two
    assert create_experiment(store, config("three"), STRATEGIES, salt="given")["config"]["salt"] == "given"
    with pytest.raises(ExperimentExists, match="^one$"):
        create_experiment(store, config("one"), STRATEGIES)
    assert [e.salt for e in assignment.running_experiments(store)] == [one, two, "given"]


def test_a_stop_alone_is_seen_at_once(store):
    create_experiment(store, config("one"), STRATEGIES)
    assert names(store) == ["one"]
    store.stop_experiment("one")
    assert names(store) == []
