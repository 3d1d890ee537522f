"""Several API replicas on one PostgreSQL database (separate processes, as on separate
machines): they serve the same readers, follow each other's writes through the change
feed, agree on experiments, and follow one model registry.

- An event posted to one replica is in that reader's next list from the other within 1 s.
- A reader gets the same variant from either replica, and the report counts the lists of
  both.
- Under load on both, a model trained by `paperrec train` (another process, with its own
  model folder) is promoted, then another, then the first is rolled back after every model
  folder is gone (so the replicas must load it from the registry in the database): no
  request fails, every list names a registered version, and both replicas serve each
  promoted version within 5 s.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.helpers import API_KEY, AUTH, ROOT, LiveServer, raw_query

PAPER = "2312.17653"


@pytest.fixture
def replicas(request, pg_databases, tmp_path):
    """Two servers on one seeded PostgreSQL database, each with a model folder of its own."""
    url = pg_databases.new(template=request.getfixturevalue("seeded_pg_template"))
    servers = []
    try:
        for name in ("a", "b"):
            servers.append(LiveServer(url, API_KEY, tmp_path / f"replica-{name}.log", env={
                "PAPERREC_MODEL_DIR": str(tmp_path / f"models-{name}")}))
        yield url, servers
    finally:
        for s in servers:
            s.stop()
    for s in servers:
        assert "Traceback" not in s.log_text(), s.log_text()[-3000:]


def _list(server, user, **params) -> dict:
    r = httpx.get(server.url + "/recommendations", params={"user_id": user, **params}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_an_event_on_one_replica_is_in_the_next_list_of_the_other_within_a_second(replicas):
    _, (a, b) = replicas
    delays = []
    for i in range(5):
        user = f"cross-{i}"
        assert _list(b, user)["strategy"] == "trending"  # b knows nothing of this reader
        top = _list(b, user, k=1)["items"][0]["paper_id"]
        r = httpx.post(a.url + "/events", headers=AUTH, timeout=10, json={
            "user_id": user, "paper_id": top, "kind": "upvote"})
        assert r.status_code == 201
        acked = time.monotonic()
        while True:
            got = _list(b, user, k=20)
            if got["strategy"] != "trending" and top not in [x["paper_id"] for x in got["items"]]:
                break
            assert time.monotonic() - acked < 1.0, f"replica b still serves {got['strategy']}"
            time.sleep(0.02)
        delays.append(time.monotonic() - acked)
    print(f"cross-replica delays (s): {[round(d, 3) for d in delays]}")


def test_replicas_agree_on_variants_and_the_report_counts_both(replicas):
    _, (a, b) = replicas
    r = httpx.post(a.url + "/experiments", headers=AUTH, timeout=10, json={
        "name": "replicas", "variants": [{"name": "pop", "strategy": "popular"},
                                         {"name": "con", "strategy": "content"}]})
    assert r.status_code == 201
    time.sleep(1.2)  # b reads the running experiments at most once a second
    served = 0
    for i in range(30):
        user = f"exp-{i}"
        va, vb = _list(a, user)["variant"], _list(b, user)["variant"]
        served += 2
        assert va == vb and va in ("pop", "con"), (user, va, vb)
    time.sleep(0.5)  # b's served lists are written without waiting (well within this)
    report = httpx.get(a.url + "/experiments/replicas/report", timeout=30).json()
    assert report["totals"]["lists"] == served and report["totals"]["readers"] == 30


def _train(url: str, model_dir, *extra: str) -> str:
    out = subprocess.run([sys.executable, "-m", "training.cli", "train", "--db", url,
                          "--model-dir", str(model_dir), "--quiet", "--force", *extra],
                         cwd=ROOT, check=True, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PAPERREC_DB": url})
    return out.stdout.split()[1].rstrip(":")  # "trained vYYYY...: promoted (...)"


def _models_cmd(url: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "training.cli", "models", *args, "--db", url],
                   cwd=ROOT, check=True, capture_output=True, text=True, timeout=120)


def _both_serve(servers, version, timeout=5.0) -> float:
    """Seconds until every replica's /health names `version` (fails after `timeout`)."""
    start = time.monotonic()
    pending = list(servers)
    while pending:
        pending = [s for s in pending
                   if httpx.get(s.url + "/health", timeout=10).json()["model_version"] != version]
        if pending and time.monotonic() - start > timeout:
            raise AssertionError(f"{len(pending)} replica(s) not on {version} after {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def test_train_promote_and_roll_back_under_load_on_two_replicas(replicas, tmp_path):
    url, servers = replicas
    seen: list[str | None] = []
    failures: list[str] = []
    done = threading.Event()

    def client(i: int) -> None:
        server = servers[i % 2]
        n = 0
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not done.is_set() and n < 20_000:
                n += 1
                if n % 5 == 0:
                    r = c.post("/events", headers=AUTH, json={
                        "user_id": f"load-{i}", "paper_id": PAPER, "kind": "read",
                        "idempotency_key": f"load-{i}-{n}"})
                else:
                    r = c.get("/recommendations", params={
                        "user_id": ["demo-agents", "demo-diffusion", f"load-{i}", f"new-{n}"][n % 4]})
                    if r.status_code == 200:
                        seen.append(r.json()["model_version"])
                if r.status_code >= 300:
                    failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    swaps = {}
    try:
        for t in threads:
            t.start()
        time.sleep(1)
        first = _train(url, tmp_path / "trainer-1")
        swaps["first"] = _both_serve(servers, first)
        second = _train(url, tmp_path / "trainer-2")
        swaps["second"] = _both_serve(servers, second)
        # The trainer's machine is gone: the replicas have only the database to load from.
        shutil.rmtree(tmp_path / "trainer-1")
        shutil.rmtree(tmp_path / "trainer-2")
        _models_cmd(url, "rollback")
        swaps["rollback"] = _both_serve(servers, first)
        time.sleep(0.5)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=60)
    registered = {r[0] for r in raw_query(url, "SELECT version FROM models")}
    assert registered == {first, second}
    assert not failures, failures[:5]
    assert len(seen) > 50 and set(seen) <= registered | {None}, set(seen) - registered
    print(f"seconds until both replicas served each version: {swaps}")


def test_serve_with_two_workers_answers_from_both(request, pg_databases, tmp_path):
    """`paperrec serve --workers 2`: two replicas behind one port on one database; an event
    posted through the port is in the reader's list within 1 s whichever worker answers."""
    from tests.helpers import free_port

    url = pg_databases.new(template=request.getfixturevalue("seeded_pg_template"))
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.cli", "serve", "--workers", "2", "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
        env={**os.environ, "PAPERREC_DB": url, "PAPERREC_API_KEYS": API_KEY,
             "PAPERREC_MODEL_DIR": str(tmp_path / "models")})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        # Keep-alive requests are not held back by Nagle's algorithm (uvicorn's shared socket
        # lost TCP_NODELAY: every request took ~43 ms, the delayed ACK).
        with httpx.Client(base_url=base, timeout=10) as c:
            took = []
            for _ in range(21):
                t0 = time.perf_counter()
                assert c.get("/health").status_code == 200
                took.append(time.perf_counter() - t0)
        assert sorted(took)[10] < 0.025, f"median {sorted(took)[10] * 1000:.0f} ms a request"
        for i in range(10):  # new connections: the kernel spreads them over both workers
            user = f"workers-{i}"
            r = httpx.post(base + "/events", headers=AUTH, timeout=10, json={
                "user_id": user, "paper_id": PAPER, "kind": "upvote"})
            assert r.status_code == 201
            acked = time.monotonic()
            while httpx.get(base + "/recommendations", params={"user_id": user},
                            timeout=10).json()["strategy"] == "trending":
                assert time.monotonic() - acked < 1.0
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    text = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
