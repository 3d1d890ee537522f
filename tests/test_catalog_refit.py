"""The live catalog's vocabulary refit (recommender/serving/catalog_refit.py): done in a
child process once the catalog has doubled, without holding up the write that crossed the
line, and swapped in with every paper stored meanwhile."""
from __future__ import annotations

import numpy as np

from recommender.model.content import paper_text
from recommender.serving.catalog_refit import IN_PROCESS_BELOW, fit_catalog, fit_elsewhere
from recommender.serving.live import LiveRecommender
from recommender.serving.papers import store_papers
from recommender.storage import open_store

WORDS = ("graph neural network attention transformer diffusion retrieval robust quantum "
         "language model vision bandit causal sparse kernel").split()


def papers(prefix: str, n: int, rng: np.random.Generator, extra_word: str = "") -> list[dict]:
    """n papers of random common words; every third one also says `extra_word` (a word in
    more than half the papers would be left out of the vocabulary: max_df)."""
    return [{"paper_id": f"{prefix}.{i:05d}",
             "title": " ".join(rng.choice(WORDS, 5)),
             "abstract": " ".join(rng.choice(WORDS, 40)) + (f" {extra_word}" if i % 3 == 0 else "")}
            for i in range(n)]


def test_the_child_fits_what_this_process_would():
    rng = np.random.default_rng(0)
    texts = [paper_text(p["title"], p["abstract"])
             for p in papers("c", IN_PROCESS_BELOW, rng, "")]
    here_encoder, here = fit_catalog(texts)
    child_encoder, child = fit_elsewhere(texts)  # >= IN_PROCESS_BELOW: a child process
    assert child_encoder.terms == here_encoder.terms
    assert np.array_equal(child_encoder.idf, here_encoder.idf)
    assert child.shape == here.shape == (len(texts), here_encoder.dim)
    assert np.allclose(child, here, atol=1e-5)


def test_a_doubled_catalog_is_refit_in_the_background_with_every_paper(tmp_path):
    rng = np.random.default_rng(1)
    store = open_store(tmp_path / "db.sqlite")
    try:
        store.upsert_papers(papers("a", 600, rng))
        live = LiveRecommender(store)  # no model: the catalog's own vocabulary
        assert "zyxophile" not in live.encoder.terms
        first_encoder = live.encoder

        # 700 papers with a word the vocabulary lacks: 1,300 > 2 x 600, a child refit
        store_papers(store, live, papers("b", 700, rng, "zyxophile"))
        assert live.catalog.size == 1300  # recommendable at once, with the old vocabulary
        # papers stored while the refit may still run are kept by the swap
        store_papers(store, live, papers("c", 50, rng))
        live.wait_for_refit(timeout=120)

        catalog = live.catalog
        assert catalog.encoder is not first_encoder
        assert "zyxophile" in catalog.encoder.terms
        assert catalog.size == 1350
        assert catalog.paper_ids[:600] == tuple(f"a.{i:05d}" for i in range(600))
        assert catalog.paper_ids[1300:] == tuple(f"c.{i:05d}" for i in range(50))
        assert catalog.vectors.shape == (1350, catalog.encoder.dim)
        # the new word now counts: the papers that carry it are the ones nearest to it
        query = catalog.encoder.encode(["zyxophile"])[0]
        assert np.linalg.norm(query) > 0
        best = np.argsort(-(catalog.vectors @ query))[:50]
        assert all(catalog.paper_ids[i].startswith("b.") and int(catalog.paper_ids[i][2:]) % 3 == 0
                   for i in best), [catalog.paper_ids[i] for i in best]
    finally:
        store.close()


def test_a_small_catalog_is_refit_in_the_writers_thread(tmp_path):
    rng = np.random.default_rng(2)
    store = open_store(tmp_path / "db.sqlite")
    try:
        store.upsert_papers(papers("a", 100, rng))
        live = LiveRecommender(store)
        store_papers(store, live, papers("b", 150, rng, "zyxophile"))
        # no waiting: below IN_PROCESS_BELOW the refit is part of the write
        assert "zyxophile" in live.encoder.terms
        assert live.catalog.size == 250 and "catalog-refit" not in live._background
    finally:
        store.close()
