"""The ranking contract (recommender/serving/strategies.py) that every registered strategy
keeps, after implicit's recommender_base_test.py: one mixin, inherited by one class a
strategy. `pytest -k contract -v` lists the contract for every registered strategy.

A new strategy gets all of it by one line (`class TestMine(StrategyContract): name = "mine"`);
test_every_registered_strategy_keeps_the_contract fails until that line exists.

The world: the shipped catalog and synthetic demo readers with a trained model in the slot
(the model strategies), and the same without a model (the fallback).
"""
from __future__ import annotations

import shutil
import sys
import uuid
from dataclasses import replace

import numpy as np
import pytest

from recommender.core.times import utcnow_iso
from recommender.serving import strategies
from recommender.serving.feedback import DEFAULT, Feedback
from recommender.serving.live import LiveRecommender
from recommender.serving.reader_history import EMPTY_HISTORY
from recommender.serving.strategies import REGISTRY, Reader
from recommender.storage import EventRow, open_store
from recommender.storage.sqlite import raw

READER = "demo-diffusion"  # a demo reader with a history


def _world(tmp_path_factory, db_template, models=None):
    root = tmp_path_factory.mktemp("contract")
    db = root / "db.sqlite"
    shutil.copy(db_template, db)
    if models is not None:
        shutil.copytree(models, root / "models")
        raw.execute(db, "UPDATE models SET path = replace(path, ?, ?)",
                    [str(models), str(root / "models")])
    store = open_store(db)
    return store, LiveRecommender(store)


@pytest.fixture(scope="module")
def with_model(tmp_path_factory, trained_template):
    root, _ = trained_template
    store, live = _world(tmp_path_factory, root / "db.sqlite", root / "models")
    assert live.served is not None
    yield store, live
    store.close()


@pytest.fixture(scope="module")
def without_model(tmp_path_factory, seeded_db_template):
    store, live = _world(tmp_path_factory, seeded_db_template)
    assert live.served is None
    yield store, live
    store.close()


class StrategyContract:
    """What every strategy promises. Subclasses set `name` (a key of REGISTRY)."""

    name: str

    @pytest.fixture
    def world(self, request):
        """(store, live recommender) the strategy serves in: the fallback serves while no
        model is loaded, every other strategy alongside one."""
        needs_no_model = self.strategy.name == "fallback"
        return request.getfixturevalue("without_model" if needs_no_model else "with_model")

    @property
    def strategy(self) -> strategies.Strategy:
        return REGISTRY[self.name]

    def serve(self, live: LiveRecommender, user_id: str, k: int, exclude_seen: bool = True):
        """A list through the live recommender's entry point, asking for the strategy by
        the public name that resolves to it."""
        public = self.name if self.strategy.public else "content"
        assert strategies.resolve(public, live.served is not None) is self.strategy
        return live.recommend(user_id, k, exclude_seen=exclude_seen, strategy=public)[1]

    def reader(self, live: LiveRecommender, user_id: str = READER) -> Reader:
        live.refresh()
        history = live.history(user_id)
        return Reader(history, float(np.nanmax(history.ts)) if len(history) else 1.8e9)

    # -- the contract --------------------------------------------------------------------
    def test_contract_scores_are_finite(self, world):
        _, live = world
        scored = self.strategy.score(live.view(), self.reader(live))
        assert len(scored.scores) > 0 and np.isfinite(scored.scores).all()

    def test_contract_no_excluded_paper_is_returned(self, world):
        _, live = world
        reader = self.reader(live)
        first = self.strategy.rank(live.view(), reader, 30)
        excluded = np.union1d(reader.history.excluded(), first.rows[::2])
        again = self.strategy.rank(live.view(), reader, 30, excluded)
        assert len(again.rows) == 30 and not set(again.rows.tolist()) & set(excluded.tolist())
        seen = set(reader.history.seen.tolist())
        assert seen and not seen & set(self.serve(live, READER, 100).rows.tolist())

    def test_contract_exactly_k_items_from_k_candidates(self, world):
        _, live = world
        reader = self.reader(live)
        candidates = np.setdiff1d(np.arange(0, 400, 37), reader.history.excluded())
        k = len(candidates)
        ranked = self.strategy.rank(live.view(), reader, k, reader.history.excluded(), candidates)
        assert sorted(ranked.rows.tolist()) == sorted(candidates.tolist())
        assert len(self.strategy.rank(live.view(), reader, k - 2, candidates=candidates).rows) == k - 2

    def test_contract_same_inputs_give_the_same_list(self, world):
        _, live = world
        reader = self.reader(live)
        a = self.strategy.rank(live.view(), reader, 25, reader.history.excluded())
        b = self.strategy.rank(live.view(), reader, 25, reader.history.excluded())
        assert a.rows.tolist() == b.rows.tolist() and a.reasons == b.reasons
        np.testing.assert_array_equal(a.scores, b.scores)

    def test_contract_an_unknown_reader_gets_trending(self, world):
        _, live = world
        stranger = Reader(EMPTY_HISTORY, 1.8e9)
        # `popular` is itself a trending list (one that never forgets): it ranks everyone
        # alike, so a stranger gets it as is; every personal strategy hands them `trending`.
        expected = self.strategy if not self.strategy.personal else REGISTRY["trending"]
        got = self.strategy.rank(live.view(), stranger, 20)
        want = expected.rank(live.view(), stranger, 20)
        assert got.rows.tolist() == want.rows.tolist() and got.reasons == want.reasons
        served = self.serve(live, f"stranger-{uuid.uuid4().hex[:8]}", 20)
        assert served.rows.tolist() == expected.rank(live.view(), Reader(EMPTY_HISTORY, 0.0), 20).rows.tolist()

    def test_contract_a_paper_added_a_moment_ago_can_be_returned(self, world):
        store, live = world
        pid = f"contract-{self.name}-{uuid.uuid4().hex[:8]}"
        store.upsert_papers([{"paper_id": pid, "title": "Diffusion models for video generation",
                              "abstract": "A video diffusion model with temporal attention."}])
        live.refresh(wait=True)
        row = live.catalog.row_of[pid]
        ranked = self.strategy.rank(live.view(), self.reader(live), 1, candidates=np.array([row]))
        assert ranked.rows.tolist() == [row]

    def test_contract_a_dismissed_paper_is_never_returned(self, world):
        store, live = world
        user = f"dismisser-{self.name}-{uuid.uuid4().hex[:8]}"
        store.add_events([EventRow(user, live.catalog.paper_ids[3], "read", utcnow_iso())])
        top = self.serve(live, user, 5).rows[0]
        store.add_events([EventRow(user, live.catalog.paper_ids[int(top)], "dismiss", utcnow_iso())])
        for exclude_seen in (True, False):
            assert int(top) not in self.serve(live, user, live.catalog.size, exclude_seen).rows

    def test_contract_what_a_reader_turned_down_moves_down(self, world):
        """A personal strategy moves papers like a dismissed one, and papers passed over,
        down (serving/feedback.py); a list everybody shares (trending, popular) ignores one
        reader's feedback."""
        _, live = world
        reader = self.reader(live)
        excluded = reader.history.excluded()
        plain = self.strategy.rank(live.view(), reader, 20, excluded)
        top = plain.rows[:5]
        feedback = Feedback(dismissed=np.zeros(0, np.int64), skipped=top,
                            visits=np.full(len(top), 3), weights=DEFAULT)
        turned = self.strategy.rank(live.view(), replace(reader, feedback=feedback), 20, excluded)
        if not self.strategy.personal:
            assert turned.rows.tolist() == plain.rows.tolist()
            return
        assert turned.rows.tolist() != plain.rows.tolist()
        before = {int(r): n for n, r in enumerate(plain.rows)}
        after = {int(r): n for n, r in enumerate(turned.rows)}
        assert all(after.get(int(r), 20) >= before[int(r)] for r in top)
        assert np.all(np.diff(turned.scores) <= 1e-9) and len(turned.reasons) == 20

    def test_contract_every_item_has_a_reason(self, world):
        _, live = world
        for reader in (self.reader(live), Reader(EMPTY_HISTORY, 1.8e9)):
            ranked = self.strategy.rank(live.view(), reader, 40, reader.history.excluded())
            assert len(ranked.reasons) == len(ranked.rows) == 40
            assert all(isinstance(r, str) and r.strip() for r in ranked.reasons)


class TestTrendingContract(StrategyContract):
    name = "trending"


class TestPopularContract(StrategyContract):
    name = "popular"


class TestContentContract(StrategyContract):
    name = "content"


class TestCollaborativeContract(StrategyContract):
    name = "collaborative"


class TestHybridContract(StrategyContract):
    name = "hybrid"


class TestFallbackContract(StrategyContract):
    name = "fallback"


def test_every_registered_strategy_keeps_the_contract():
    covered = {cls.name for cls in vars(sys.modules[__name__]).values()
               if isinstance(cls, type) and issubclass(cls, StrategyContract) and cls is not StrategyContract}
    assert covered == set(REGISTRY), f"add a StrategyContract class for {set(REGISTRY) - covered}"
