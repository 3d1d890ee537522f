"""Hostile input: every bad request gets a clean 4xx, every accepted one a correct 2xx.

Property tests (hypothesis) throw ids with quotes, SQL, unicode, NUL bytes and very long
strings, huge or negative `k`, timestamps far in the past or future, at the real app; the
answer is never a 5xx, what is accepted reads back byte for byte, and the SQLite file stays
intact (integrity check, no table lost). Auth (401 without a key, 403 with a wrong one) and
the body limit (413, declared or chunked) are checked against the real server over a socket.
SQL is only parameterised: a static check of the one module that talks to SQLite.
"""
from __future__ import annotations

import ast
import json
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recommender.core.events import MAX_ID_LENGTH
from recommender.core.kinds import KINDS
from recommender.storage.postgres import raw as pg_raw
from recommender.storage.sqlite import raw
from tests.helpers import API_KEY, AUTH, LiveServer, make_client, raw_query

ROOT = Path(__file__).resolve().parent.parent
PAPER = "2312.17653"  # in the shipped catalog
HOSTILE = ["'", '"', "'; DROP TABLE events; --", "\" OR 1=1 --", "Robert'); DROP TABLE papers;--",
           "%", "_", "\\", "/", "../../etc/passwd", "?x=1&y=2", "#frag", "\u202e", "\ufeff",
           "\U0001F600", "Ω≈ç√", "ﷺ", "\u0301", " ", "\t", "\n", "\x00", "a\x00b", "\x7f",
           "null", "None", "<script>alert(1)</script>", "${jndi:ldap://x}"]
MANY = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def hostile_text(max_size: int = 40):
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.text(max_size=max_size),
        st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=4).map("".join),
        st.integers(min_value=MAX_ID_LENGTH - 2, max_value=5000).map(lambda n: "x" * n),
    )


def valid_id(s: str) -> bool:
    """The API's rule: 1..256 characters, not blank, no control character (C0 or DEL)."""
    return (0 < len(s) <= MAX_ID_LENGTH and s.strip() != ""
            and not any(ord(c) < 0x20 or ord(c) == 0x7f for c in s))


@pytest.fixture(scope="module")
def app_client(module_seeded):
    """The app on a seeded store of each backend; afterwards the store is intact."""
    with make_client(module_seeded) as c:
        yield c
    if "://" in str(module_seeded):
        tables = {r[0] for r in pg_raw.query(
            module_seeded, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        papers = pg_raw.query(module_seeded, "SELECT count(*) FROM papers")[0][0]
    else:
        con = raw.connect(module_seeded)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            papers = con.execute("SELECT count(*) FROM papers").fetchone()[0]
        finally:
            con.close()
    assert {"papers", "events", "impressions", "experiments", "models"} <= tables
    assert papers >= 787


def never_5xx(resp: httpx.Response) -> None:
    assert resp.status_code < 500, f"{resp.status_code}: {resp.text[:500]}"


# -- reads ---------------------------------------------------------------------------------

@MANY
@given(user=hostile_text(), k=st.one_of(st.integers(-5, 120), st.integers(-10**30, 10**30)),
       exclude_seen=st.sampled_from(["true", "false", "1", "no", "maybe", ""]))
def test_recommendations_for_any_reader_and_k(app_client, user, k, exclude_seen):
    r = app_client.get("/recommendations", params={"user_id": user, "k": k,
                                                    "exclude_seen": exclude_seen})
    never_5xx(r)
    ok = valid_id(user) and 1 <= k <= 100 and exclude_seen in ("true", "false", "1", "no")
    assert r.status_code == (200 if ok else 422), r.text[:300]
    if ok:
        body = r.json()
        assert body["user_id"] == user
        ids = [it["paper_id"] for it in body["items"]]
        assert len(ids) == len(set(ids)) and 0 < len(ids) <= k
        assert all(app_client.app.state.recommender.catalog.row_of.get(i) is not None for i in ids)


@MANY
@given(as_of=st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                 timezones=st.sampled_from([None, timezone.utc, timezone(timedelta(hours=-12))])
                 ).map(lambda d: d.isoformat()),
    hostile_text(), st.integers(-10**12, 10**12).map(str)))
def test_as_of_far_past_future_or_garbage(app_client, as_of):
    for path in ("/recommendations", "/trending"):
        r = app_client.get(path, params={"user_id": "demo-agents", "as_of": as_of, "k": 5})
        never_5xx(r)
        assert r.status_code in (200, 422), r.text[:300]
        if r.status_code == 200:  # accepted only within 1970 .. now + 1 day
            when = datetime.fromisoformat(as_of.strip().replace("Z", "+00:00"))
            when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
            assert datetime(1970, 1, 1, tzinfo=timezone.utc) <= when
            assert when <= datetime.now(timezone.utc) + timedelta(days=1, minutes=1)


@MANY
@given(ident=hostile_text())
def test_lookups_with_hostile_ids(app_client, ident):
    # Old arXiv ids have a slash (hep-th/9901001): /papers/{id} and /users/{id} take it.
    for path in (f"/users/{quote(ident, safe='')}", f"/papers/{quote(ident, safe='')}",
                 f"/experiments/{quote(ident, safe='')}/report"):
        r = app_client.get(path, headers=AUTH)
        never_5xx(r)
        assert r.status_code == 200 or 400 <= r.status_code < 500, (path, r.status_code)


# -- writes ---------------------------------------------------------------------------------

def event_strategy():
    now = datetime.now(timezone.utc)
    ts = st.one_of(
        st.none(), st.just(""),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                     timezones=st.just(timezone.utc)).map(lambda d: d.isoformat()),
        st.floats(-3e9, 3e9, allow_nan=False).map(
            lambda s: (now + timedelta(seconds=s)).isoformat()),
        st.integers(-10**12, 10**12), hostile_text(),
    )
    return st.fixed_dictionaries({
        "user_id": hostile_text(),
        "paper_id": st.one_of(st.just(PAPER), hostile_text()),
        "kind": st.one_of(st.sampled_from(KINDS), hostile_text(12)),
        "ts": ts,
        "idempotency_key": st.one_of(st.none(), hostile_text()),
    })


def _expected_ok(e: dict) -> bool:
    if not (valid_id(e["user_id"]) and e["paper_id"] == PAPER and e["kind"] in KINDS):
        return False
    if e["idempotency_key"] is not None and not valid_id(e["idempotency_key"]):
        return False
    ts = e["ts"]
    if ts in (None, ""):
        return True
    if not isinstance(ts, str):
        return False
    try:
        when = datetime.fromisoformat(ts.strip().replace("Z", "+00:00"))
    except ValueError:
        return False
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    now = datetime.now(timezone.utc)
    return datetime(1970, 1, 1, tzinfo=timezone.utc) <= when <= now + timedelta(days=1) - timedelta(seconds=5) \
        or None  # within 5 s of the edge: either answer is right


@MANY
@given(e=event_strategy())
def test_events_with_hostile_fields(app_client, e):
    store = app_client.app.state.store
    if e["idempotency_key"] is not None and valid_id(e["idempotency_key"]):
        e["idempotency_key"] = "hostile-" + e["idempotency_key"][:200]
        assume(not raw_query(store.location, "SELECT 1 FROM events WHERE idempotency_key = ?",
                             [e["idempotency_key"]]))
    before = store.count("events")
    r = app_client.post("/events", json=e, headers=AUTH)
    never_5xx(r)
    expected = _expected_ok(e)
    if expected is not None:
        assert r.status_code == (201 if expected else 422), (e, r.text[:300])
    if r.status_code == 201:
        assert store.count("events") == before + 1
        row = raw_query(store.location,
                        "SELECT user_id, paper_id, kind FROM events ORDER BY id DESC LIMIT 1")[0]
        assert row == (e["user_id"], PAPER, e["kind"])
        # The reader's next list is served (their one event may be a hostile id).
        never_5xx(app_client.get("/recommendations", params={"user_id": e["user_id"]}))
    else:
        assert store.count("events") == before


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(paper_id=hostile_text(), title=hostile_text(200), abstract=hostile_text(200),
       upvotes=st.one_of(st.none(), st.integers(-10**20, 10**20)))
def test_papers_with_hostile_fields_round_trip(app_client, paper_id, title, abstract, upvotes):
    body = {"paper_id": paper_id, "title": title, "abstract": abstract, "upvotes": upvotes}
    r = app_client.post("/papers", json=body, headers=AUTH)
    never_5xx(r)
    ok = (valid_id(paper_id) and 1 <= len(title) <= 2000
          and "\x00" not in title + abstract  # text holds no NUL (PostgreSQL cannot store one)
          and (upvotes is None or 0 <= upvotes <= 10**9))
    assert r.status_code == (201 if ok else 422), (body, r.text[:300])
    if ok and paper_id not in (".", ".."):  # dot segments: every URL client resolves them
        got = app_client.get(f"/papers/{quote(paper_id, safe='')}")
        assert got.status_code == 200, got.text[:200]
        assert (got.json()["paper_id"], got.json()["title"]) == (paper_id, title)
        rec = app_client.get("/recommendations", params={"user_id": "demo-agents", "k": 100})
        assert rec.status_code == 200


def test_first_paper_without_a_usable_word_does_not_break_the_service(empty_client):
    """Regression: a fresh store whose first paper is titled "t" made the encoder refit
    raise (empty vocabulary) on every request: 500 everywhere until a real paper came."""
    c = empty_client
    assert c.post("/papers", json={"paper_id": "p1", "title": "t"}, headers=AUTH).status_code == 201
    assert c.post("/papers", json={"paper_id": "p2", "title": "a"}, headers=AUTH).status_code == 201
    assert c.get("/health").json()["status"] == "ok"
    assert c.get("/recommendations", params={"user_id": "u"}).status_code == 200
    assert c.post("/papers", json={"paper_id": "p3", "title": "Diffusion models for video"},
                  headers=AUTH).status_code == 201
    assert c.get("/trending").status_code == 200


def test_sql_in_ids_is_data_not_code(app_client):
    evil = "x'); DELETE FROM events; DROP TABLE papers; --"
    store = app_client.app.state.store
    before = store.count("events")
    r = app_client.post("/events", json={"user_id": evil, "paper_id": PAPER, "kind": "read"},
                        headers=AUTH)
    assert r.status_code == 201
    assert store.count("events") == before + 1
    assert app_client.get(f"/users/{quote(evil, safe='')}", headers=AUTH).json()["events"] == 1
    assert app_client.get("/recommendations", params={"user_id": evil}).status_code == 200


# -- auth and body limit, on the real server ---------------------------------------------------

LIMIT = 4096


@pytest.fixture(scope="module")
def live(tmp_path_factory, module_seeded):
    tmp = tmp_path_factory.mktemp("hostile-live")
    server = LiveServer(module_seeded, API_KEY, tmp / "server.log",
                        env={"PAPERREC_MAX_BODY_BYTES": str(LIMIT)})
    yield server
    server.stop()
    assert "Traceback" not in server.log_text()


WRITES = [("POST", "/events", {"user_id": "u", "paper_id": PAPER, "kind": "read"}),
          ("POST", "/papers", {"paper_id": "auth-test", "title": "t"}),
          ("POST", "/experiments", {"name": "auth-test", "variants": [
              {"name": "a", "strategy": "popular"}, {"name": "b", "strategy": "trending"}]}),
          ("POST", "/experiments/auth-test/stop", None)]


@pytest.mark.parametrize("method,path,body", WRITES, ids=[w[1] for w in WRITES])
def test_every_write_needs_the_key(live, method, path, body):
    for headers, status in (({}, 401), ({"X-API-Key": ""}, 401), ({"X-API-Key": "wrong"}, 403),
                            ({"X-API-Key": API_KEY[:-1]}, 403)):
        r = httpx.request(method, live.url + path, json=body, headers=headers, timeout=10)
        assert r.status_code == status, (headers, r.status_code, r.text)
    assert httpx.get(live.url + "/papers/auth-test", timeout=10).status_code == 404


def test_the_openapi_schema_marks_every_write_as_keyed(live):
    spec = httpx.get(live.url + "/openapi.json", timeout=10).json()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("post", "put", "patch", "delete"):
                assert {"APIKeyHeader": []} in op.get("security", []), (method, path)


def test_strategy_override_needs_the_key(live):
    url = live.url + "/recommendations"
    params = {"user_id": "demo-agents", "strategy": "popular"}
    assert httpx.get(url, params=params, timeout=10).status_code == 401
    assert httpx.get(url, params=params, headers={"X-API-Key": "x"}, timeout=10).status_code == 403
    assert httpx.get(url, params=params, headers=AUTH, timeout=10).status_code == 200


def _raw(live, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (no client library to fix them up); return status and body."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(request)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")]
                    if length and len(rest) >= length[0]:
                        break
        except (ConnectionResetError, socket.timeout):
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data.partition(b"\r\n\r\n")[2]


def _events_body(size: int) -> bytes:
    one = {"user_id": "limit", "paper_id": PAPER, "kind": "impression"}
    n = max(1, size // len(json.dumps(one)))
    return json.dumps([one] * n).encode()


def test_declared_body_over_the_limit_is_413(live):
    body = _events_body(LIMIT * 3)
    status, resp = _raw(live, b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + f"X-API-Key: {API_KEY}\r\nContent-Length: {len(body)}\r\n".encode()
                        + b"Connection: close\r\n\r\n" + body)
    assert status == 413, resp


def test_lying_small_content_length_is_not_5xx(live):
    body = _events_body(LIMIT * 3)
    status, _ = _raw(live, b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"X-API-Key: {API_KEY}\r\nContent-Length: 10\r\n".encode()
                     + b"Connection: close\r\n\r\n" + body)
    assert 400 <= status < 500


@pytest.mark.parametrize("chunk", [100, 4000])
def test_chunked_body_over_the_limit_is_413(live, chunk):
    body = _events_body(LIMIT * 4)
    pieces = b"".join(f"{len(body[i:i + chunk]):x}\r\n".encode() + body[i:i + chunk] + b"\r\n"
                      for i in range(0, len(body), chunk))
    status, resp = _raw(live, b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + f"X-API-Key: {API_KEY}\r\n".encode()
                        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + pieces + b"0\r\n\r\n")
    assert status == 413, resp
    assert httpx.get(live.url + "/users/limit", headers=AUTH, timeout=10).json()["events"] == 0


def test_chunked_body_under_the_limit_is_accepted(live):
    body = json.dumps([{"user_id": "chunky", "paper_id": PAPER, "kind": "read"}]).encode()
    pieces = b"".join(f"{len(body[i:i + 7]):x}\r\n".encode() + body[i:i + 7] + b"\r\n"
                      for i in range(0, len(body), 7))
    status, resp = _raw(live, b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + f"X-API-Key: {API_KEY}\r\n".encode()
                        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + pieces + b"0\r\n\r\n")
    assert status == 201, resp


@pytest.mark.parametrize("payload", [b"{", b"[", b"null", b"[]", b"{}", b"\x00\x01\x02", b"\xff\xfe",
                                     b'{"user_id": "\\u0000", "paper_id": "x", "kind": "read"}',
                                     b"[" + b"[" * 5000 + b"]" * 5000 + b"]", b'"' + b"a" * 3000 + b'"'])
def test_malformed_json_is_a_4xx(live, payload):
    r = httpx.post(live.url + "/events", content=payload,
                   headers={**AUTH, "Content-Type": "application/json"}, timeout=10)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:200])


# -- SQL is only ever parameterised --------------------------------------------------------------

SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "PRAGMA ", " WHERE ", "CREATE ")
# Interpolations that are not data: placeholder lists, checked table names, integers,
# the module's own constant fragments.
ALLOWED_INTERPOLATIONS = {"marks", "table", "int(BUSY_TIMEOUT_S * 1000)", "version",
                          "_COLUMNS", "LOCK_CLASS", "EVENTS_FEED_LOCK", "PAPERS_FEED_LOCK"}


# Names that may be concatenated with SQL text: the variable a query is built up in from
# constant fragments. Anything else (a parameter such as `name` or `paper_id`) is data.
SQL_TEXT_NAMES = {"sql"}


def _operands(node):
    """The operands of a chain of `+` / `%` (a + b + c is ((a + b) + c))."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return _operands(node.left) + _operands(node.right)
    return [node]


def _is_sql(node) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and \
        any(w in node.value.upper() for w in SQL_WORDS)


def _sql_problems(tree) -> list[str]:
    """What in a module builds SQL text out of data: an f-string interpolating anything but
    whitelisted fragments, `+` / `%` / `+=` joining SQL text with anything but constants,
    the query variable or UPPER_CASE constants, and `.format` on SQL text."""
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if any(w in text.upper() for w in SQL_WORDS):
                problems += [f"line {node.lineno}: {{{ast.unparse(v.value)}}} in SQL"
                             for v in node.values if isinstance(v, ast.FormattedValue)
                             and ast.unparse(v.value) not in ALLOWED_INTERPOLATIONS]
        parts = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            parts = _operands(node)
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
            parts = [node.target] + _operands(node.value)
        if any(_is_sql(p) for p in parts) or (
                parts and any(isinstance(p, ast.Name) and p.id in SQL_TEXT_NAMES for p in parts)):
            problems += [f"line {node.lineno}: SQL built with {ast.unparse(p)}" for p in parts
                         if not isinstance(p, ast.Constant)
                         and not (isinstance(p, ast.Name) and (p.id in SQL_TEXT_NAMES or p.id.isupper()))]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr == "format" and _is_sql(node.func.value):
            problems.append(f"line {node.lineno}: SQL built with .format")
    return problems


def test_sql_text_never_interpolates_data():
    """Every piece of SQL the store builds joins only constant fragments, placeholders
    (`?,?,?`), whitelisted table names or integers; values travel as parameters."""
    problems = {p.relative_to(ROOT).as_posix(): _sql_problems(ast.parse(p.read_text()))
                for p in (ROOT / "recommender" / "storage").rglob("*.py")}
    assert {p: found for p, found in problems.items() if found} == {}


@pytest.mark.parametrize("code", [
    "db.query(\"SELECT * FROM experiments WHERE name = '\" + name + \"'\")",
    "db.query('SELECT * FROM papers WHERE paper_id = %s' % paper_id)",
    "sql = 'SELECT * FROM events WHERE 1'\nsql += ' AND user_id = ' + user_id",
    "sql = 'SELECT * FROM events'\nsql = sql + \" WHERE user_id = '\" + user_id + \"'\"",
    "db.query('SELECT * FROM papers WHERE paper_id = {}'.format(paper_id))",
    "db.query(f'SELECT * FROM papers WHERE paper_id = {paper_id}')",
])
def test_the_sql_check_refuses_each_way_of_building_sql_from_data(code):
    """The check itself: each of these injection paths is reported (a check that passes
    everything proves nothing); the store's own ways of building SQL are not."""
    assert _sql_problems(ast.parse(code))
    assert not _sql_problems(ast.parse("sql = 'SELECT * FROM e'\nsql += ' WHERE ts <= ?'\n"
                                       "db.query(sql + ' ORDER BY ts, id', [ts])"))


def test_only_the_store_talks_to_a_database():
    """No module outside recommender/storage/ imports a database driver (SQLite's or
    PostgreSQL's): not the service, the CLI, the benchmarks or the tests (they reach the
    databases through the storage's raw helpers, recommender/storage/*/raw.py)."""
    drivers = {"sqlite3", "sqlite_utils", "psycopg", "psycopg2", "psycopg_pool"}
    users = []
    for d in ("recommender", "service", "training", "benchmarks", "tests"):
        for p in (ROOT / d).rglob("*.py"):
            for node in ast.walk(ast.parse(p.read_text())):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] in drivers for n in names):
                    users.append(p.relative_to(ROOT).as_posix())
    assert users and all(u.startswith("recommender/storage/") for u in users), sorted(set(users))
