"""PostgreSQL itself goes away: an immediate shutdown (no checkpoint, as in a crash) while
clients write and read through a real server, then a start (crash recovery from the WAL).

While it is down: writes answer 503 with Retry-After (never a 500, never a hang), /health
says `degraded` and why, and lists of readers the replica already knows keep being served
from memory. When it is back: the replica recovers by itself (no restart), and every event
that was acknowledged is stored exactly once (the refused ones, resent, too).

The test has a PostgreSQL server of its own: it is the one stopped.
"""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from recommender.storage import open_store
from tests.helpers import API_KEY, AUTH, LiveServer, raw_query
from tests.postgres_server import PostgresServer
from training.seeding import seed

PAPER = "2312.17653"
KNOWN_READERS = ["demo-diffusion", "demo-agents", "demo-3d", "nobody-yet"]
OUTAGE_S = 3.0


@pytest.fixture
def own_postgres(postgres):
    """A server of this test's own (the session's one is left alone), seeded."""
    server = PostgresServer(postgres.bindir)
    try:
        url = server.create_database("outage")
        store = open_store(url)
        seed(store, demo=True)
        store.close()
        yield server, url
    finally:
        server.close()


def test_a_database_outage_is_503_in_health_served_from_memory_and_heals(own_postgres, tmp_path):
    pg, url = own_postgres
    api = LiveServer(url, API_KEY, tmp_path / "server.log")
    acked: dict[str, dict] = {}
    refused: list[dict] = []
    reads: list[tuple[int, float]] = []  # (status, when)
    unexpected: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        n = 0
        with httpx.Client(base_url=api.url, headers=AUTH, timeout=15) as c:
            while not stop.is_set() and n < 3000:
                n += 1
                event = {"user_id": f"outage-w{w}", "paper_id": PAPER, "kind": "read",
                         "idempotency_key": f"outage-{w}-{n}"}
                r = c.post("/events", json=event)
                with lock:
                    if r.status_code == 201:
                        acked[event["idempotency_key"]] = event
                    elif r.status_code == 503 and int(r.headers.get("retry-after", 0)) >= 1:
                        refused.append(event)
                    else:
                        unexpected.append(f"POST {r.status_code} {r.text[:200]}")
                time.sleep(0.01)

    def reader(i: int) -> None:
        n = 0
        with httpx.Client(base_url=api.url, timeout=15) as c:
            while not stop.is_set() and n < 5000:
                n += 1
                if n % 4 == 0:
                    r = c.get("/trending", params={"k": 5})
                else:
                    r = c.get("/recommendations",
                              params={"user_id": KNOWN_READERS[(i + n) % len(KNOWN_READERS)]})
                with lock:
                    reads.append((r.status_code, time.monotonic()))
                    if r.status_code != 200:
                        unexpected.append(f"GET {r.status_code} {r.text[:200]}")
                time.sleep(0.01)

    try:
        for user in KNOWN_READERS:  # the replica knows these readers before the outage
            assert httpx.get(api.url + "/recommendations", params={"user_id": user}).status_code == 200
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
        threads += [threading.Thread(target=reader, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        pg.stop("immediate")
        down_at = time.monotonic()
        time.sleep(1.0)
        health = httpx.get(api.url + "/health", timeout=10).json()
        assert health["status"] == "degraded", health
        assert any(r.startswith("database unavailable") for r in health["reasons"]), health
        time.sleep(OUTAGE_S - 1.0)
        pg.start()
        up_at = time.monotonic()
        deadline = up_at + 15
        while time.monotonic() < deadline:
            if httpx.get(api.url + "/health", timeout=10).json()["status"] == "ok":
                break
            time.sleep(0.1)
        healed_s = time.monotonic() - up_at
        with lock:
            acked_before = len(acked)
        time.sleep(1.0)  # writes go on after the recovery
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        api.stop()
    assert healed_s < 10, f"/health not ok {healed_s:.1f} s after the server came back"
    assert not unexpected, unexpected[:5]
    assert refused, "no write was refused while the database was down"
    assert len(acked) > acked_before, "no write acknowledged after the recovery"
    during = [s for s, when in reads if down_at + 0.5 < when < up_at]
    assert len(during) >= 10 and set(during) == {200}, "lists not served during the outage"
    # A client resends what was refused; every acknowledged event is there exactly once.
    with LiveServer(url, API_KEY, tmp_path / "server2.log") as again:
        for event in refused:
            assert httpx.post(again.url + "/events", json=event, headers=AUTH,
                              timeout=15).status_code == 201
    rows = raw_query(url, "SELECT idempotency_key, count(*) FROM events "
                          "WHERE idempotency_key LIKE 'outage-%' GROUP BY idempotency_key")
    stored = dict(rows)
    assert set(stored) == set(acked) | {e["idempotency_key"] for e in refused}
    assert set(stored.values()) == {1}
    assert "Traceback" not in api.log_text(), api.log_text()[-3000:]
