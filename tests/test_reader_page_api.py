"""The reader page's routes through the real app (TestClient on a real SQLite file): the
session cookie, CSRF, what a refused request leaves behind (nothing), escaping, security
headers, and that page lists are served lists under the running experiments."""
from __future__ import annotations

import re

from tests.helpers import API_KEY, AUTH

HOSTILE = {"paper_id": "hostile-1",
           "title": 'Zyxqu <script>alert(1)</script> "><img src=x onerror=alert(2)>',
           "abstract": '"><img src=x onerror=alert(3)> <script>alert(4)</script>',
           "authors": ['"><svg onload=alert(5)>']}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def request_id_of(html: str) -> str:
    return re.search(r'data-request-id="([^"]*)"', html).group(1)


def sign_in(client, reader: str) -> str:
    token = csrf_of(client.get("/").text)
    r = client.post("/page/signin", data={"reader_id": reader, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    return csrf_of(client.get("/").text)


def events(client) -> int:
    return client.app.state.store.count("events")


def test_page_headers_and_cookie(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    # JSON answers: nosniff, no page policy
    js = client.get("/trending")
    assert js.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in js.headers


def test_page_has_no_outside_address_and_no_api_key(client):
    anonymous = client.get("/").text
    sign_in(client, "ada")
    html = anonymous + client.get("/?tab=for-you").text
    assert API_KEY not in html and "other-key" not in html
    script = client.get("/static/page/page.js").text
    assert API_KEY not in script
    # every src/href of the page's own assets is local
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith(("/", "#", "https://arxiv.org/abs/")), url
    assert "<script>" not in html  # no inline script at all


def test_docs_and_redoc_are_served_offline(client):
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        assert r.status_code == 200
        assert "http://" not in r.text and "https://" not in r.text, path
        for asset in re.findall(r'(?:src|href)="([^"]+)"', r.text):
            assert client.get(asset).status_code == 200, asset
    docs = client.get("/docs")
    assert "'sha256-" in docs.headers["content-security-policy"]
    assert "unsafe-inline" not in docs.headers["content-security-policy"].split("script-src")[1].split(";")[0]
    assert b"cdn.redoc.ly" not in client.get("/static/docs/redoc.standalone.js").content
    assert client.get("/openapi.json").json()["paths"]["/search"]


def test_sign_in_validates_the_reader_id_and_rotates_the_token(client):
    first = csrf_of(client.get("/").text)
    for bad in ("", "   ", "a\x00b", "x" * 300):
        r = client.post("/page/signin", data={"reader_id": bad, "csrf": first}, follow_redirects=False)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "reader_id"], bad
    after = sign_in(client, "ada")
    assert after != first
    page = client.get("/?tab=for-you").text
    assert "Signed in as <b>ada</b>" in page
    r = client.post("/page/events", data={"paper_id": "2401.12945", "kind": "upvote", "csrf": first})
    assert r.status_code == 403  # the token from before signing in is worth nothing


def test_refused_actions_store_nothing(client):
    token = sign_in(client, "ada")
    html = client.get("/?tab=for-you").text
    ok = {"paper_id": "2401.12945", "kind": "upvote", "csrf": token}
    before = events(client)
    cookie = client.cookies.get("paperrec_session")

    client.cookies.clear()
    assert client.post("/page/events", data=ok).status_code == 403  # no cookie
    client.cookies.set("paperrec_session", cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB"))
    assert client.post("/page/events", data=ok).status_code == 403  # forged cookie
    client.cookies.set("paperrec_session", cookie)
    assert client.post("/page/events", data={**ok, "csrf": ""}).status_code == 403
    assert client.post("/page/events", data={k: v for k, v in ok.items() if k != "csrf"}).status_code == 403
    # a token with its last character changed (a random token ends in "x" one time in 64)
    forged = token[:-1] + ("x" if token[-1] != "x" else "y")
    assert client.post("/page/events", data={**ok, "csrf": forged}).status_code == 403
    for origin in ("http://evil.example", "http://testserver.evil.example", "null"):
        assert client.post("/page/events", data=ok, headers={"Origin": origin}).status_code == 403
    for field, data in (("kind", {**ok, "kind": "impression"}), ("kind", {**ok, "kind": "like"}),
                        ("paper_id", {**ok, "paper_id": "no-such-paper"}),
                        ("key", {**ok, "key": "has spaces"})):
        r = client.post("/page/events", data=data)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], data
    # a request_id of somebody else's list is not this reader's to claim
    other = client.get("/recommendations", params={"user_id": "demo-3d"}).json()["request_id"]
    r = client.post("/page/events", data={**ok, "request_id": other})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "request_id"]
    assert events(client) == before
    # anonymous session: a valid token, but nobody to act as
    client.cookies.clear()
    anon = csrf_of(client.get("/").text)
    assert client.post("/page/events", data={**ok, "csrf": anon}).status_code == 403
    assert events(client) == before
    assert request_id_of(html)


def test_an_action_is_stored_for_the_session_reader_and_attributed(client):
    token = sign_in(client, "ada")
    html = client.get("/?tab=trending").text
    rid = request_id_of(html)
    pid = re.search(r'data-paper-id="([^"]+)"', html).group(1)
    data = {"paper_id": pid, "kind": "upvote", "request_id": rid, "key": "k-1",
            "user_id": "demo-3d"}  # a user_id in the form is not listened to
    r = client.post("/page/events", data=data, headers={"X-CSRF-Token": token, "Accept": "application/json",
                                                        "Origin": "https://testserver"})  # TLS ended by a proxy
    assert r.status_code == 200 and r.json()["stored"] == 1
    again = client.post("/page/events", data=data, headers={"X-CSRF-Token": token, "Accept": "application/json"})
    assert again.json()["stored"] == 0  # a retry of the same action is stored once
    rows = client.app.state.store.user_events("ada")
    assert [(e["paper_id"], e["kind"], e["request_id"]) for e in rows] == [(pid, "upvote", rid)]
    assert not [e for e in client.app.state.store.user_events("demo-3d") if e["request_id"] == rid]
    # a plain form post goes back to the page, never to another site
    r = client.post("/page/events", data={**data, "key": "k-2", "kind": "remove_upvote", "csrf": token,
                                          "next": "/?tab=trending"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/?tab=trending"
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        r = client.post("/page/events", data={**data, "key": None, "kind": "click", "csrf": token,
                                              "next": evil}, follow_redirects=False)
        assert r.headers["location"] == "/", evil


def test_hostile_paper_text_is_escaped(client):
    assert client.post("/papers", json=HOSTILE, headers=AUTH).status_code == 201
    sign_in(client, "ada")
    for url in ("/?q=zyxqu", "/?similar=hostile-1"):
        html = client.get(url).text
        assert "<img src=x" not in html and "<script>alert" not in html and "<svg" not in html
        if url.startswith("/?q"):
            assert "Zyxqu &lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
            assert "&#34;&gt;&lt;svg onload=alert(5)&gt;" in html
    html = client.get("/", params={"q": '"><script>alert(6)</script>'}).text
    assert "<script>alert(6)" not in html and "&lt;script&gt;alert(6)" in html


def test_page_lists_are_served_lists_under_running_experiments(client):
    exp = {"name": "page-ab", "control": "pop", "variants": [
        {"name": "pop", "strategy": "popular"}, {"name": "con", "strategy": "content"}]}
    assert client.post("/experiments", json=exp, headers=AUTH).status_code == 201
    sign_in(client, "demo-agents")
    html = client.get("/?tab=for-you").text
    served = client.app.state.store.get_impression(request_id_of(html))
    assert served["user_id"] == "demo-agents" and served["experiment"] == "page-ab"
    assert served["variant"] in ("pop", "con")
    assert served["strategy"] == {"pop": "popular", "con": "content"}[served["variant"]]
    shown = re.findall(r'<article class="card[^"]*" id="card-\d+" data-paper-id="([^"]+)"', html)
    assert shown == served["paper_ids"]
    # the team's report page keeps its own policy (inline styles, no script at all)
    report = client.get("/experiments/page-ab")
    assert report.status_code == 200 and "script-src" not in report.headers["content-security-policy"]
    assert report.headers["x-frame-options"] == "DENY"
    # the same reader's JSON list is the same variant
    js = client.get("/recommendations", params={"user_id": "demo-agents"}).json()
    assert (js["experiment"], js["variant"]) == ("page-ab", served["variant"])


def test_anonymous_page_offers_demo_readers_and_trending(client):
    html = client.get("/").text
    demo = re.findall(r'data-reader="([^"]+)"', html)
    assert demo[:2] == ["demo-3d", "demo-agents"] and "demo-crowd-01" not in demo[:6]
    assert 'id="tab-trending"' in html and 'aria-current="page">Trending' in html


def test_more_papers_and_bad_page_parameters(client):
    sign_in(client, "ada")
    html = client.get("/?tab=trending").text
    assert html.count('<article class="card') == 20
    more = re.search(r'id="more" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert more.startswith("/?tab=trending&k=40")
    assert client.get(more.split("#")[0]).text.count('<article class="card') == 40
    assert client.get("/?k=101").status_code == 422
    r = client.get("/?q=")
    assert r.status_code == 422 and "Search words must not be empty" in r.text
    assert client.get("/?similar=no-such-paper").status_code == 404
