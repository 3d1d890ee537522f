"""GET /recommendations and /trending: the issue's 'done when' as tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.helpers import AUTH

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
TOPIC_WORDS = ("speech", "audio", "voice", "music", "sound")


def catalog() -> list[dict]:
    return [json.loads(line) for line in (SEEDS / "papers.jsonl").open()]


def is_topic(paper: dict) -> bool:
    text = f"{paper['title']} {paper['abstract']}".lower()
    return sum(text.count(w) for w in TOPIC_WORDS) >= 3


def test_unknown_reader_gets_trending(client):
    rec = client.get("/recommendations", params={"user_id": "never-seen", "k": 10}).json()
    trending = client.get("/trending", params={"k": 10}).json()
    assert rec["strategy"] == "trending"
    assert [i["paper_id"] for i in rec["items"]] == [i["paper_id"] for i in trending["items"]]
    assert all(i["reason"].startswith("trending") for i in rec["items"])


def test_reader_who_upvotes_one_topic_gets_that_topic(client):
    papers = catalog()
    topic = [p for p in papers if is_topic(p)]
    assert len(topic) > 15
    for p in topic[:3]:
        r = client.post("/events", json={"user_id": "new-listener", "paper_id": p["paper_id"],
                                         "kind": "upvote"}, headers=AUTH)
        assert r.status_code == 201
    rec = client.get("/recommendations", params={"user_id": "new-listener", "k": 10}).json()
    trending = client.get("/trending", params={"k": 10}).json()
    ids = [i["paper_id"] for i in rec["items"]]
    assert rec["strategy"] != "trending"
    assert ids != [i["paper_id"] for i in trending["items"]]
    by_id = {p["paper_id"]: p for p in papers}
    on_topic = [is_topic(by_id[i]) for i in ids]
    assert on_topic[0] and on_topic[1], [by_id[i]["title"] for i in ids[:3]]
    assert sum(on_topic) >= 6
    assert not set(ids) & {p["paper_id"] for p in topic[:3]}, "upvoted papers are excluded"
    assert "you upvoted" in rec["items"][0]["reason"]


def test_demo_readers_get_personalised_lists_that_differ(client):
    lists = {}
    for reader in ("demo-diffusion", "demo-agents"):
        body = client.get("/recommendations", params={"user_id": reader, "k": 10}).json()
        assert body["strategy"] != "trending"
        lists[reader] = [i["paper_id"] for i in body["items"]]
    assert not set(lists["demo-diffusion"]) & set(lists["demo-agents"])


def test_response_shape_and_impression_log(client):
    body = client.get("/recommendations", params={"user_id": "demo-agents", "k": 7}).json()
    assert set(body) >= {"request_id", "user_id", "strategy", "model_version", "items"}
    assert len(body["items"]) == 7
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    logged = client.app.state.store.get_impression(body["request_id"])
    assert logged["user_id"] == "demo-agents"
    assert logged["paper_ids"] == [i["paper_id"] for i in body["items"]]


def test_seen_papers_are_excluded_unless_asked(client):
    store = client.app.state.store
    seen = {e["paper_id"] for e in store.user_events("demo-speech") if e["kind"] != "impression"}
    body = client.get("/recommendations", params={"user_id": "demo-speech", "k": 100}).json()
    assert not seen & {i["paper_id"] for i in body["items"]}
    body = client.get("/recommendations", params={"user_id": "demo-speech", "k": 100,
                                                  "exclude_seen": False}).json()
    assert seen & {i["paper_id"] for i in body["items"]}


def test_new_paper_is_recommendable_at_once(client):
    reader = "demo-agents"
    paper = {"paper_id": "new-agent-paper", "title": "WebAgent Arena: LLM web agents that "
             "navigate websites, browse, and complete multi-step tasks with tool use",
             "abstract": "We build autonomous language agents for web navigation and "
                         "multimodal website tasks; agents plan, use tools, and act."}
    assert client.post("/papers", json=paper, headers=AUTH).status_code == 201
    body = client.get("/recommendations", params={"user_id": reader, "k": 10}).json()
    assert "new-agent-paper" in [i["paper_id"] for i in body["items"]]


def test_k_and_as_of_validation(client):
    for k in (0, 101, -1):
        r = client.get("/recommendations", params={"user_id": "u", "k": k})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "k"]
    r = client.get("/recommendations", params={"user_id": "u", "as_of": "not a date"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "as_of"]
    # a time that parses but cannot be served is named too, with what was given
    for path in ("/recommendations", "/trending"):
        r = client.get(path, params={"user_id": "u", "as_of": "1969-12-31T23:59:59Z"})
        assert r.status_code == 422
        assert [(d["loc"], d["msg"], d["input"]) for d in r.json()["detail"]] == \
            [(["query", "as_of"], "before 1970-01-01", "1969-12-31 23:59:59+00:00")]
    # a bare number is not read as Unix seconds: the API documents ISO-8601
    for number in ("1700000000", "1.7e9", "-5"):
        for path in ("/recommendations", "/trending"):
            r = client.get(path, params={"user_id": "u", "as_of": number})
            assert r.status_code == 422, (path, number)
            assert [(d["loc"], d["msg"]) for d in r.json()["detail"]] == \
                [(["query", "as_of"], "Value error, not an ISO-8601 timestamp")]
    assert client.get("/recommendations").status_code == 422


def test_trending_as_of_ignores_later_events(client):
    paper = "2402.17764"
    early = client.get("/trending", params={"k": 100, "as_of": "2026-04-22T00:00:00Z"}).json()
    for i in range(30):
        client.post("/events", json={"user_id": f"fan-{i}", "paper_id": paper, "kind": "upvote",
                                     "ts": "2026-11-01T00:00:00Z"}, headers=AUTH)
    again = client.get("/trending", params={"k": 100, "as_of": "2026-04-22T00:00:00Z"}).json()
    assert again["items"] == early["items"]
    later = client.get("/trending", params={"k": 1, "as_of": "2026-11-02T00:00:00Z"}).json()
    assert later["items"][0]["paper_id"] == paper


def test_recommendations_as_of_a_past_time_are_that_times_list(client):
    """`as_of` is used, not only validated: a reader without history gets trending as of
    that time, so 30 later upvotes of one paper leave the past list as it was and top the
    list of now."""
    paper, past = "2402.17764", "2026-04-22T00:00:00Z"

    def ids(path, **params):
        body = client.get(path, params={"k": 20, **params}).json()
        return [i["paper_id"] for i in body["items"]]

    before = ids("/recommendations", user_id="never-seen", as_of=past)
    assert before == ids("/trending", as_of=past)
    for i in range(30):
        assert client.post("/events", json={"user_id": f"fan-{i}", "paper_id": paper, "kind": "upvote",
                                            "ts": "2026-11-01T00:00:00Z"}, headers=AUTH).status_code == 201
    assert ids("/recommendations", user_id="someone-else", as_of=past) == before
    assert ids("/recommendations", user_id="someone-else")[0] == paper
    assert paper not in before[:1]


def test_strategy_override_needs_key_and_known_name(client):
    params = {"user_id": "demo-3d", "strategy": "popular"}
    assert client.get("/recommendations", params=params).status_code == 401
    assert client.get("/recommendations", params=params, headers={"X-API-Key": "x"}).status_code == 403
    ok = client.get("/recommendations", params=params, headers=AUTH).json()
    assert ok["strategy"] == "popular"
    bad = client.get("/recommendations", params={**params, "strategy": "magic"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "strategy"]


def test_empty_catalog_returns_empty_list_not_error(empty_client):
    body = empty_client.get("/recommendations", params={"user_id": "u"}).json()
    assert body["items"] == [] and body["strategy"] == "trending"


def test_body_is_exactly_the_documented_schema(client):
    """The list is serialised by hand (service/routers/recommendations.py): every field of
    `Recommendations`, in order, nothing else, and what pydantic would have written."""
    import json as jsonlib

    from service.schemas import RecommendedItem, Recommendations

    for reader in ("demo-agents", "a-reader-nobody-knows"):
        resp = client.get("/recommendations", params={"user_id": reader, "k": 5})
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/json"
        body = resp.json()
        assert list(body) == list(Recommendations.model_fields)
        assert all(list(item) == list(RecommendedItem.model_fields) for item in body["items"])
        parsed = Recommendations.model_validate(body, strict=True)
        assert jsonlib.loads(parsed.model_dump_json()) == body
        # ...byte for byte: compact, and non-ASCII text as UTF-8 (not \u escapes)
        assert resp.content == parsed.model_dump_json().encode("utf-8")


def test_non_ascii_titles_are_sent_as_utf8(client):
    title = "Übersicht: naïve Bayes für 数学 — ∑ of 🤖"
    assert client.post("/papers", json={"paper_id": "utf8-paper", "title": title},
                       headers=AUTH).status_code == 201
    for i in range(5):
        client.post("/events", json={"user_id": f"fan-{i}", "paper_id": "utf8-paper", "kind": "upvote"},
                    headers=AUTH)
    resp = client.get("/recommendations", params={"user_id": "nobody-yet", "k": 100})
    assert title.encode("utf-8") in resp.content and b"\\u" not in resp.content


def test_a_corrected_title_is_in_the_very_next_list(client):
    """Lists are encoded once and reused (service/routers/recommendations.py): a title
    corrected in between must not be served from that encoding."""
    first = client.get("/recommendations", params={"user_id": "nobody-yet", "k": 3}).json()["items"][0]
    again = client.get("/recommendations", params={"user_id": "nobody-yet", "k": 3}).json()["items"][0]
    assert again == first
    assert client.post("/papers", json={"paper_id": first["paper_id"], "title": "Corrected title"},
                       headers=AUTH).status_code == 201
    after = client.get("/recommendations", params={"user_id": "nobody-yet", "k": 3}).json()["items"]
    assert [(i["paper_id"], i["title"]) for i in after if i["paper_id"] == first["paper_id"]] == \
        [(first["paper_id"], "Corrected title")]
