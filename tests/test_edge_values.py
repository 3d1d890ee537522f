"""Values at the edges of what a type holds: a clean 4xx (or the right answer), never a 500.

Each case here was a 500 or a wrong answer on a running server (issue 11, findings 3, 6, 7,
11, 13, 15): datetimes whose UTC conversion leaves year 1..9999, an API key with a
non-ASCII byte, lone surrogates and non-finite numbers echoed in a 422 body, the Unix epoch
read as "no time given", names and paths that end in a newline, method names from the
client turned into metric labels, reader data readable without a key, HTML pages without
security headers. Through the real app (TestClient raises what the server would answer as
a 500, so a regression fails loudly)."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import AUTH, make_client

PAPER = "2312.17653"  # in the shipped catalog
JSON = {**AUTH, "content-type": "application/json"}
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"]


@pytest.fixture(scope="module")
def app_client(tmp_path_factory, seeded_db_template):
    db = tmp_path_factory.mktemp("edges") / "edges.db"
    shutil.copy(seeded_db_template, db)
    with make_client(db) as c:
        yield c


def names_field(resp, *loc) -> None:
    assert resp.status_code == 422, resp.text
    assert any(e["loc"][-len(loc):] == list(loc) for e in resp.json()["detail"]), resp.text


# -- finding 6: as_of out of range, non-ASCII key ----------------------------------------

@pytest.mark.parametrize("as_of", OUT_OF_RANGE)
def test_trending_as_of_outside_the_datetime_range_is_422(app_client, as_of):
    names_field(app_client.get("/trending", params={"as_of": as_of}), "query", "as_of")


@pytest.mark.parametrize("as_of", OUT_OF_RANGE)
def test_recommendations_as_of_outside_the_datetime_range_is_422(app_client, as_of):
    resp = app_client.get("/recommendations", params={"user_id": "u", "as_of": as_of})
    names_field(resp, "query", "as_of")


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/events", {"user_id": "u", "paper_id": PAPER, "kind": "click"}),
    ("POST", "/papers", {"paper_id": "p-x", "title": "t"}),
    ("POST", "/experiments", {"name": "x", "variants": []}),
    ("POST", "/experiments/x/stop", None),
    ("GET", "/users/demo-agents", None),
])
@pytest.mark.parametrize("key", ["t\xe9st-key", "\xff", "test-key\xa0"])
def test_a_non_ascii_api_key_is_refused_not_a_500(app_client, method, path, body, key):
    headers = [(b"x-api-key", key.encode("latin-1"))]
    resp = app_client.request(method, path, headers=headers, json=body)
    assert resp.status_code == 403, resp.text


# -- finding 7: timestamps, surrogates and non-finite numbers in bodies -------------------

@pytest.mark.parametrize("ts", OUT_OF_RANGE)
def test_event_ts_outside_the_datetime_range_is_422(app_client, ts):
    resp = app_client.post("/events", headers=AUTH,
                           json={"user_id": "u-ts", "paper_id": PAPER, "kind": "click", "ts": ts})
    names_field(resp, "body", "ts")
    assert app_client.get("/users/u-ts", headers=AUTH).json()["events"] == 0


@pytest.mark.parametrize("when", OUT_OF_RANGE)
def test_paper_published_at_outside_the_datetime_range_is_422(app_client, when):
    resp = app_client.post("/papers", headers=AUTH,
                           json={"paper_id": "p-range", "title": "t", "published_at": when})
    names_field(resp, "body", "published_at")
    assert app_client.get("/papers/p-range").status_code == 404


@pytest.mark.parametrize("path,raw,loc", [
    ("/events", '{"user_id":"\\ud800","paper_id":"%s","kind":"click"}' % PAPER, "user_id"),
    ("/events", '{"user_id":"u","paper_id":"%s","kind":"click","idempotency_key":"a\\udfffb"}'
     % PAPER, "idempotency_key"),
    ("/papers", '{"paper_id":"p-s","title":"\\ud800"}', "title"),
    ("/experiments", '{"name":"\\ud800x","variants":[{"name":"a","strategy":"popular"},'
     '{"name":"b","strategy":"content"}]}', "name"),
])
def test_a_lone_surrogate_is_a_422_whose_body_is_valid_json(app_client, path, raw, loc):
    resp = app_client.post(path, headers=JSON, content=raw.encode())
    names_field(resp, "body", loc)
    json.loads(resp.content.decode("utf-8"))  # strict UTF-8, parseable


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("template,loc", [
    ('{"paper_id":"p-n","title":"t","upvotes":%s}', ("body", "upvotes")),
    ('{"name":"n1","variants":[{"name":"a","strategy":"popular","weight":%s},'
     '{"name":"b","strategy":"content"}]}', ("body", "variants", 0, "weight")),
    ('{"name":"n2","traffic":%s,"variants":[{"name":"a","strategy":"popular"},'
     '{"name":"b","strategy":"content"}]}', ("body", "traffic")),
])
def test_non_finite_numbers_are_a_422_in_strict_json(app_client, number, template, loc):
    path = "/papers" if template.startswith('{"paper_id"') else "/experiments"
    resp = app_client.post(path, headers=JSON, content=(template % number).encode())
    names_field(resp, *loc)
    body = json.loads(resp.text, parse_constant=lambda c: pytest.fail(f"{c} in the 422 body"))
    assert body["detail"]
    assert app_client.get("/experiments").json() == [] or all(
        e["name"] not in ("n1", "n2") for e in app_client.get("/experiments").json())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_non_finite_query_numbers_are_a_422(app_client, value):
    app_client.post("/experiments", headers=AUTH, json={
        "name": "q-num", "variants": [{"name": "a", "strategy": "popular"},
                                      {"name": "b", "strategy": "content"}]})
    resp = app_client.get("/experiments/q-num/report", params={"window_hours": value})
    names_field(resp, "query", "window_hours")
    json.loads(resp.text, parse_constant=lambda c: pytest.fail(f"{c} in the 422 body"))


# -- finding 11: the epoch is a time, not "no time" ----------------------------------------

def test_trending_as_of_the_epoch_answers_as_of_the_epoch(app_client):
    body = app_client.get("/trending", params={"as_of": "1970-01-01T00:00:00Z"}).json()
    assert body["as_of"].startswith("1970-01-01T00:00:00")


def test_a_list_as_of_the_epoch_is_logged_at_the_epoch(app_client):
    resp = app_client.get("/recommendations",
                          params={"user_id": "epoch-reader", "as_of": "1970-01-01T00:00:00Z"})
    assert resp.status_code == 200, resp.text
    store = app_client.app.state.store
    served = store.get_impression(resp.json()["request_id"])
    assert served["served_at"].startswith("1970-01-01T00:00:00")


# -- finding 13: names and paths that end in a newline --------------------------------------

@pytest.mark.parametrize("name", ["trail\n", "trail\r\n", "x\ny"])
def test_experiment_names_with_a_newline_are_422(app_client, name):
    resp = app_client.post("/experiments", headers=AUTH, json={
        "name": name, "variants": [{"name": "a", "strategy": "popular"},
                                   {"name": "b", "strategy": "content"}]})
    names_field(resp, "body", "name")
    resp = app_client.post("/experiments", headers=AUTH, json={
        "name": "ok-name-" + str(len(name)), "variants": [
            {"name": "a\n", "strategy": "popular"}, {"name": "b", "strategy": "content"}]})
    names_field(resp, "body", "variants", 0, "name")


@pytest.mark.parametrize("path", [f"/papers/{PAPER}%0A", f"/papers/{PAPER}%0D%0A",
                                  "/users/demo-agents%0A", "/experiments/x%0A/report",
                                  "/experiments/x%0A"])
def test_a_path_ending_in_a_newline_is_not_another_resource(app_client, path):
    resp = app_client.get(path, headers=AUTH)
    assert resp.status_code in (400, 404), resp.text
    assert PAPER not in resp.text or resp.status_code == 404
    assert "demo-agents\"" not in resp.text


# -- finding 15: reader data needs the key; pages carry security headers -------------------

def test_a_readers_activity_needs_the_key(app_client):
    assert app_client.get("/users/demo-agents").status_code == 401
    assert app_client.get("/users/demo-agents",
                          headers={"X-API-Key": "wrong"}).status_code == 403
    body = app_client.get("/users/demo-agents", headers=AUTH).json()
    assert body["known"] and body["events"] > 0


def test_html_pages_carry_security_headers(app_client):
    app_client.post("/experiments", headers=AUTH, json={
        "name": "page-headers", "variants": [{"name": "a", "strategy": "popular"},
                                             {"name": "b", "strategy": "content"}]})
    for path in ("/experiments/page-headers", "/docs"):
        resp = app_client.get(path)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    # the report page needs nothing from outside: its policy allows only itself
    csp = app_client.get("/experiments/page-headers").headers["content-security-policy"]
    assert "default-src 'none'" in csp
    # JSON answers are not sniffed either
    assert app_client.get("/health").headers["x-content-type-options"] == "nosniff"


# -- finding 3: metric labels come from a fixed set -----------------------------------------

def test_unknown_methods_do_not_become_metric_labels(app_client):
    for i in range(50):
        app_client.request(f"M{i}", "/health")
    app_client.request("GET", "/no/such/path")
    text = app_client.get("/metrics").text
    methods = {line.split('method="')[1].split('"')[0]
               for line in text.splitlines() if 'method="' in line}
    assert methods <= {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"}
    assert "other" in methods
