"""Papers published after the data's newest event (hybrid.not_yet_published): in an offline
split of a feed, the catalog already holds the papers the test period reads, and the blend
must not learn from them that new papers go unread (a live catalog never holds them: a paper
published after training arrives through add_papers)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.core.ranking import top_k
from recommender.model.hybrid import HybridModel, first_reads, not_yet_published
from tests.helpers import CONFIG, TOPICS

DAY = 86400.0


def test_only_unread_papers_published_after_the_newest_event_are_not_yet_published():
    C = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]], np.float32))
    published = np.array([50.0, 200.0, 200.0, np.nan, 90.0])
    mask, ignored = not_yet_published(published, C, now=100.0)
    np.testing.assert_array_equal(mask, [False, False, True, False, False])
    assert ignored is None
    assert not_yet_published(None, C, now=100.0) == (None, None)  # no publication times
    assert not_yet_published(published, C, now=None) == (None, None)  # no event times: no "newest"
    with pytest.raises(ValueError, match="published"):
        not_yet_published(published[:3], C, now=100.0)


def test_publication_times_after_their_papers_first_readings_are_not_trusted():
    """A catalog stamped when it was crawled (after the readings) would hide every unread
    paper from the blend: such times are ignored, with the reason; a day's slack is kept."""
    C = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0]], np.float32))
    first = first_reads(np.array([0, 1, 1, 2]), np.array([10.0, 20.0, 5.0, 30.0]) * DAY, 4)
    np.testing.assert_array_equal(first, np.array([10.0, 5.0, 30.0, np.nan]) * DAY)
    crawled = np.full(4, 100.0 * DAY)
    mask, ignored = not_yet_published(crawled, C, now=30.0 * DAY, first_read=first)
    assert mask is None and "read before their publication" in ignored
    dated = np.array([9.5, 5.0, 29.2, 60.0]) * DAY  # within a day of the first reading: fine
    mask, ignored = not_yet_published(dated, C, now=30.0 * DAY, first_read=first)
    np.testing.assert_array_equal(mask, [False, False, False, True])
    assert ignored is None
    assert first_reads(np.array([0]), None, 4) is None


def feed(seed: int = 0, n_papers: int = 240, n_readers: int = 160, cut_day: float = 80.0):
    """A topic feed: papers published over 100 days, each reader reading a third of their
    topics' papers within days of publication. Train: the readings before `cut_day`; test:
    the later ones of readers seen before (mostly papers published after the cut)."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    topic = rng.integers(0, len(names), n_papers)
    texts = []
    for i in range(n_papers):
        words = TOPICS[names[topic[i]]].split()
        texts.append(f"{' '.join(rng.choice(words, 3))} study {i} {' '.join(rng.choice(words, 12))}")
    day = rng.uniform(0, 100, n_papers)
    users, items, ts = [], [], []
    for u in range(n_readers):
        likes = rng.choice(len(names), 1 + (u % 2), replace=False)
        for i in np.nonzero(np.isin(topic, likes) & (rng.random(n_papers) < 0.35))[0]:
            users.append(u)
            items.append(int(i))
            ts.append((day[i] + rng.exponential(1.5)) * DAY)
    users, items, ts = np.asarray(users), np.asarray(items), np.asarray(ts)
    train = ts < cut_day * DAY
    known = np.isin(users, users[train])
    test = ~train & known
    return texts, day * DAY, (users[train], items[train], ts[train]), (users[test], items[test])


def hit_rate(model: HybridModel, train, test, n_readers: int, k: int = 10) -> float:
    """Share of each test reader's later papers in their top k (train papers excluded)."""
    users, items, _ = train
    C = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=(n_readers, model.n_items))
    readers = np.unique(test[0])
    S = model.score_rows(C[readers], "hybrid")
    top = top_k(S, k, C[readers])
    hits = [np.isin(test[1][test[0] == u], top[n]).mean() for n, u in enumerate(readers)]
    return float(np.mean(hits))


def test_the_blend_learns_new_papers_from_what_existed_at_the_slice():
    texts, published, train, test = feed()
    n_readers = int(max(train[0].max(), test[0].max())) + 1
    users, items, ts = train
    unread_later = (~np.isin(np.arange(len(texts)), items)) & (published > ts.max())
    assert unread_later.sum() > 20 and np.isin(test[1], np.nonzero(unread_later)[0]).mean() > 0.5

    def fit(pub):
        return HybridModel.fit(texts, users, items, ["read"] * len(users), ts, n_users=n_readers,
                               config=CONFIG, published=pub)

    blind, aware = fit(None), fit(published)
    assert "not_yet_published" not in blind.stats["validation"]
    assert aware.stats["validation"]["not_yet_published"] == int(unread_later.sum())
    crawled = fit(np.full(len(texts), ts.max() + 10 * DAY))  # a crawl date, after every reading
    assert "not_yet_published" not in crawled.stats["validation"]
    assert "read before" in crawled.stats["validation"]["publication_times_ignored"]
    np.testing.assert_array_equal(crawled.blender.weights, blind.blender.weights)
    new_offset = lambda m: float(m.blender.weights[-2])  # noqa: E731
    assert new_offset(aware) > new_offset(blind)
    assert hit_rate(aware, train, test, n_readers) > hit_rate(blind, train, test, n_readers) + 0.05
