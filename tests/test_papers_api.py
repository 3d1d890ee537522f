"""Papers, users, health and metrics endpoints."""
from __future__ import annotations

import pytest

from tests.helpers import AUTH


def test_post_and_get_paper(empty_client):
    paper = {"paper_id": "x1", "title": "A title", "abstract": "Words here.",
             "published_at": "2026-02-10", "authors": ["A. B."], "upvotes": 3}
    r = empty_client.post("/papers", json=paper, headers=AUTH)
    assert r.status_code == 201 and r.json() == {"accepted": 1, "changed": 1}
    got = empty_client.get("/papers/x1").json()
    assert got["title"] == "A title" and got["upvotes"] == 3
    assert got["published_at"].startswith("2026-02-10T00:00:00")
    assert empty_client.post("/papers", json=[paper], headers=AUTH).json()["changed"] == 0


def test_missing_paper_is_404(empty_client):
    assert empty_client.get("/papers/nope").status_code == 404


def test_bad_papers_are_422_naming_field_and_nothing_is_stored(empty_client):
    good = {"paper_id": "g", "title": "Good"}
    r = empty_client.post("/papers", json=[good, {"paper_id": "b", "title": ""}], headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 1, "title"]
    r = empty_client.post("/papers", json=[good, good], headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 1, "paper_id"]
    r = empty_client.post("/papers", json={**good, "upvotes": -1}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "upvotes"]
    assert empty_client.app.state.store.count("papers") == 0


def test_an_update_changes_only_the_fields_it_carries(empty_client):
    """POST /papers for a stored id is an update: a title-only correction keeps the
    abstract, date, authors, upvotes and url; an upvotes-only update is accepted (it was a
    422 for the missing title, and a title-only one erased the rest)."""
    paper = {"paper_id": "x1", "title": "A titel", "abstract": "Words here.",
             "published_at": "2026-02-10", "authors": ["A. B.", "C. D."], "upvotes": 3,
             "url": "https://example.org/x1"}
    assert empty_client.post("/papers", json=paper, headers=AUTH).status_code == 201
    before = empty_client.get("/papers/x1").json()
    r = empty_client.post("/papers", json={"paper_id": "x1", "title": "A title"}, headers=AUTH)
    assert r.status_code == 201 and r.json() == {"accepted": 1, "changed": 1}
    after = empty_client.get("/papers/x1").json()
    assert after == {**before, "title": "A title"}
    r = empty_client.post("/papers", json={"paper_id": "x1", "upvotes": 40}, headers=AUTH)
    assert r.status_code == 201 and r.json()["changed"] == 1
    assert empty_client.get("/papers/x1").json() == {**after, "upvotes": 40}
    # the live catalog has the update at once: the title of lists, the count of trending
    item = empty_client.get("/trending", params={"k": 1}).json()["items"][0]
    assert (item["paper_id"], item["title"], item["upvotes"]) == ("x1", "A title", 40)
    # the same values again change nothing
    assert empty_client.post("/papers", json={"paper_id": "x1", "upvotes": 40},
                             headers=AUTH).json()["changed"] == 0


def test_a_new_paper_needs_a_title_and_nothing_of_its_batch_is_stored(empty_client):
    r = empty_client.post("/papers", json={"paper_id": "n1", "upvotes": 3}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "title"]
    batch = [{"paper_id": "n2", "title": "Fine"}, {"paper_id": "n3", "abstract": "No title"}]
    r = empty_client.post("/papers", json=batch, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 1, "title"]
    assert empty_client.app.state.store.count("papers") == 0


def test_paper_writes_need_key(empty_client):
    assert empty_client.post("/papers", json={"paper_id": "a", "title": "t"}).status_code == 401


def test_user_summary_counts_history(client):
    """Every field of /users, checked against the events the reader's summary comes from
    (the store's own rows), not restated from the summary itself."""
    events = [e for e in client.app.state.store.iter_events() if e["user_id"] == "demo-agents"]
    by_kind = {}
    for e in events:
        by_kind[e["kind"]] = by_kind.get(e["kind"], 0) + 1
    body = client.get("/users/demo-agents", headers=AUTH).json()
    assert body == {"user_id": "demo-agents", "known": True, "events": len(events), "by_kind": by_kind,
                    "distinct_papers": len({e["paper_id"] for e in events}),
                    "first_event_at": min(e["ts"] for e in events),
                    "last_event_at": max(e["ts"] for e in events)}
    assert len(events) > 1 and len(by_kind) > 1
    assert client.get("/users/stranger", headers=AUTH).json() == {
        "user_id": "stranger", "known": False, "events": 0, "by_kind": {}, "distinct_papers": 0,
        "first_event_at": None, "last_event_at": None}
    assert client.get("/users/demo-agents").status_code == 401


def test_health_and_metrics(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["papers"] == 787 and health["events"] > 0
    client.get("/recommendations", params={"user_id": "demo-3d"})
    text = client.get("/metrics").text
    assert 'paperrec_http_requests_total{method="GET",route="/recommendations",status="200"}' in text
    assert "paperrec_http_request_duration_seconds_bucket" in text


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommendations", "/trending", "/events", "/papers", "/health"} <= set(paths)


@pytest.mark.parametrize("field,value", [("title", "a\x00b"), ("abstract", "x\x00"),
                                         ("authors", ["A", "B\x00"])])
def test_a_nul_in_a_papers_text_is_a_422_naming_the_field(client, field, value):
    """PostgreSQL text cannot hold a NUL: the rule is the same on both backends, a 422."""
    body = {"paper_id": "nul-paper", "title": "Fine", field: value}
    r = client.post("/papers", json=body, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", field], r.text
    assert client.get("/papers/nul-paper").status_code == 404
