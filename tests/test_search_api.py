"""GET /search, GET /papers/{id}/similar, and the fields every list item carries."""
from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import AUTH

from recommender.core.events import without_cancelled
from recommender.core.papers import paper_url
from service.schemas import RecommendedItem


def test_search_ranks_a_title_word_first_and_names_the_match(client):
    body = client.get("/search", params={"q": "Lumiere", "k": 5}).json()
    assert body["items"][0]["title"].startswith("Lumiere")
    assert "“lumiere”" in body["items"][0]["reason"]
    assert body["request_id"] is None  # no reader named: nothing to attribute it to


def test_search_matches_only_papers_with_a_query_word(client):
    items = client.get("/search", params={"q": "speech", "k": 50}).json()["items"]
    assert items
    for item in items:
        paper = client.get(f"/papers/{item['paper_id']}").json()
        assert "speech" in (paper["title"] + " " + paper["abstract"]).lower()
    assert client.get("/search", params={"q": "qqqzzzxxyy"}).json()["items"] == []


def test_search_bad_query_is_a_422_naming_q(client):
    for params in ({}, {"q": ""}, {"q": "   "}, {"q": "x" * 201}):
        r = client.get("/search", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"][0]["loc"] == ["query", "q"]
    assert client.get("/search", params={"q": "graph", "k": 0}).status_code == 422


def test_search_for_a_reader_is_a_served_list_and_personalised(client):
    """demo-speech reads speech papers: for the ambiguous query 'model' their list leans to
    speech more than the anonymous one, and it is logged under its request_id."""
    anon = client.get("/search", params={"q": "model", "k": 10}).json()["items"]
    mine = client.get("/search", params={"q": "model", "k": 10, "user_id": "demo-speech"}).json()
    speech = re.compile(r"\b(speech|audio|music|voice|tts)\b", re.I)

    def on_topic(items):
        return sum(bool(speech.search(client.get(f"/papers/{i['paper_id']}").json()["abstract"]
                                      + i["title"])) for i in items)

    assert on_topic(mine["items"]) > on_topic(anon)
    assert any("close to what you read" in i["reason"] for i in mine["items"])
    logged = client.app.state.store.get_impression(mine["request_id"])
    assert logged["user_id"] == "demo-speech" and logged["strategy"] == "search"
    assert logged["paper_ids"] == [i["paper_id"] for i in mine["items"]]


def test_a_new_paper_is_searchable_at_once(client):
    paper = {"paper_id": "new-1", "title": "Quokkanet: marsupial vision transformers",
             "abstract": "We study quokkas.", "url": "https://example.org/quokkanet"}
    assert client.post("/papers", json=paper, headers=AUTH).status_code == 201
    items = client.get("/search", params={"q": "quokkanet"}).json()["items"]
    assert [i["paper_id"] for i in items] == ["new-1"]
    assert items[0]["url"] == "https://example.org/quokkanet"
    assert client.get("/papers/new-1").json()["url"] == "https://example.org/quokkanet"
    # an update is searched by its new words, not the old ones
    paper["title"] = "Wombatformer: burrowing transformers"
    assert client.post("/papers", json=paper, headers=AUTH).status_code == 201
    assert [i["paper_id"] for i in client.get("/search", params={"q": "wombatformer"}).json()["items"]] == ["new-1"]
    assert client.get("/search", params={"q": "quokkanet"}).json()["items"] == []


def test_post_papers_refuses_a_url_that_is_not_a_web_address(client):
    for url in ("javascript:alert(1)", "ftp://x", "https://x y"):
        r = client.post("/papers", json={"paper_id": "p", "title": "t", "url": url}, headers=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "url", url


def test_similar_papers_share_text_or_readers_and_say_which(client):
    body = client.get("/papers/2401.12945/similar", params={"k": 8}).json()
    assert body["title"].startswith("Lumiere")
    ids = [i["paper_id"] for i in body["items"]]
    assert len(ids) == 8 and "2401.12945" not in ids
    for item in body["items"]:
        assert item["reason"].startswith(("shares “", "close in topic")) or "readers of this paper" in item["reason"]
    text = " ".join(i["title"].lower() for i in body["items"])
    assert text.count("video") + text.count("diffusion") >= 5


def test_similar_counts_co_readers(client):
    """A paper read by the same readers as the target rises in its similar list."""
    target, other = "2401.12945", "2402.14797"
    before = [i["paper_id"] for i in client.get(f"/papers/{target}/similar", params={"k": 50}).json()["items"]]
    events = [{"user_id": f"co-{n}", "paper_id": p, "kind": "read"}
              for n in range(6) for p in (target, other)]
    assert client.post("/events", json=events, headers=AUTH).status_code == 201
    after = client.get(f"/papers/{target}/similar", params={"k": 50}).json()["items"]
    ids = [i["paper_id"] for i in after]
    assert ids.index(other) < (before.index(other) if other in before else 50)
    assert "6 readers of this paper also read it" in after[ids.index(other)]["reason"]


def test_similar_of_unknown_paper_is_404(client):
    assert client.get("/papers/no-such-paper/similar").status_code == 404
    assert client.get("/papers/2401.12945/similar", params={"k": 101}).status_code == 422


def test_paper_route_still_serves_ids_with_slashes(client):
    old_style = {"paper_id": "hep-th/9901001", "title": "Old style arXiv id", "abstract": "strings"}
    assert client.post("/papers", json=old_style, headers=AUTH).status_code == 201
    paper = client.get("/papers/hep-th/9901001").json()
    assert paper["url"] == "https://arxiv.org/abs/hep-th/9901001"
    assert client.get("/papers/hep-th/9901001/similar").json()["paper_id"] == "hep-th/9901001"


def test_every_list_item_carries_what_a_front_end_shows(client):
    lists = [client.get("/recommendations", params={"user_id": "demo-3d", "k": 5}).json()["items"],
             client.get("/trending", params={"k": 5}).json()["items"],
             client.get("/search", params={"q": "graph", "k": 5}).json()["items"],
             client.get("/papers/2401.12945/similar", params={"k": 5}).json()["items"]]
    for items in lists:
        assert len(items) == 5
        for item in items:
            assert list(item) == list(RecommendedItem.model_fields)
            paper = client.get(f"/papers/{item['paper_id']}").json()
            assert item["url"] == paper["url"] and item["authors"] == paper["authors"]
            assert item["published_at"] == paper["published_at"] and item["upvotes"] == paper["upvotes"]
            if re.fullmatch(r"\d{4}\.\d{4,5}", item["paper_id"]):
                assert item["url"] == f"https://arxiv.org/abs/{item['paper_id']}"
    seed_page = client.get("/search", params={"q": "Low-Dimensional Execution Manifolds"}).json()["items"][0]
    assert seed_page["authors"] == [] and seed_page["author_count"] == 1 and seed_page["url"] is None


def test_paper_url_rule():
    assert paper_url("2401.12945") == "https://arxiv.org/abs/2401.12945"
    assert paper_url("2401.12945v2") == "https://arxiv.org/abs/2401.12945v2"
    assert paper_url("math.GT/0309136") == "https://arxiv.org/abs/math.GT/0309136"
    assert paper_url("x-1", "https://example.org/p") == "https://example.org/p"
    assert paper_url("x-1", "javascript:alert(1)") is None
    assert paper_url("x-1", 'https://e.org/"><script>') is None
    assert paper_url("x-1") is None


def test_remove_dismiss_cancels_only_the_dismissal_it_undoes():
    ev = lambda p, k: {"paper_id": p, "kind": k}  # noqa: E731
    history = [ev("a", "click"), ev("a", "dismiss"), ev("b", "dismiss"), ev("a", "remove_dismiss"),
               ev("c", "remove_dismiss"), ev("b", "upvote")]
    assert without_cancelled(history) == [ev("a", "click"), ev("b", "dismiss"), ev("b", "upvote")]
    twice = [ev("a", "dismiss"), ev("a", "dismiss"), ev("a", "remove_dismiss")]
    assert without_cancelled(twice) == [ev("a", "dismiss")]


def test_undoing_a_dismissal_brings_the_paper_back(client):
    reader = "undo-reader"
    first = client.get("/recommendations", params={"user_id": reader, "k": 5}).json()["items"][0]["paper_id"]
    client.post("/events", json={"user_id": reader, "paper_id": first, "kind": "dismiss"}, headers=AUTH)
    ids = [i["paper_id"] for i in client.get("/recommendations", params={"user_id": reader, "k": 5}).json()["items"]]
    assert first not in ids
    client.post("/events", json={"user_id": reader, "paper_id": first, "kind": "remove_dismiss"}, headers=AUTH)
    ids = [i["paper_id"] for i in client.get("/recommendations", params={"user_id": reader, "k": 5}).json()["items"]]
    assert ids[0] == first


@given(st.lists(st.tuples(st.sampled_from("abc"),
                          st.sampled_from(["click", "dismiss", "remove_dismiss", "upvote"])),
                max_size=30))
def test_without_cancelled_is_the_history_minus_matched_undos(pairs):
    history = [{"paper_id": p, "kind": k, "n": i} for i, (p, k) in enumerate(pairs)]
    kept = without_cancelled(history)
    assert all(e["kind"] != "remove_dismiss" for e in kept)
    assert [e for e in history if e["kind"] not in ("dismiss", "remove_dismiss")] == \
        [e for e in kept if e["kind"] != "dismiss"]
    assert [e["n"] for e in kept] == sorted(e["n"] for e in kept)  # order kept
    for paper in "abc":
        open_ = 0
        for e in history:
            if e["paper_id"] == paper and e["kind"] == "dismiss":
                open_ += 1
            elif e["paper_id"] == paper and e["kind"] == "remove_dismiss":
                open_ = max(0, open_ - 1)
        assert sum(e["paper_id"] == paper and e["kind"] == "dismiss" for e in kept) == open_
