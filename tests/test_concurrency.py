"""Many writers and readers on one SQLite file: nobody ever sees "database is locked".

- Processes x threads through the Store: event batches, served lists, paper upserts and
  model-registry writes from several processes at once, with readers ranking lists all
  along; every write is stored exactly once and nothing raises.
- Two real servers (uvicorn subprocesses) on one file, HTTP clients on both, while a third
  process holds the write lock for seconds at a time (an import or a training job): every
  answer is a 2xx, only slower.
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import shutil
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from recommender.storage.sqlite import raw
from tests.helpers import API_KEY, AUTH, LiveServer

PAPER = "2312.17653"
DURATION_S = 4.0


def _worker(db: str, role: str, wid: int, threads: int, duration: float, out) -> None:
    """One process: `threads` threads doing `role` until the time is up."""
    from recommender.serving.live import LiveRecommender
    from recommender.serving.serve_list import serve_list
    from recommender.storage import EventRow, open_store

    store = open_store(db)
    errors: list[str] = []
    counts = {"events": 0, "lists": 0, "papers": 0, "reads": 0}
    lock = threading.Lock()
    rec = LiveRecommender(store) if role == "reader" else None
    papers = [p["paper_id"] for p in itertools.islice(store.iter_papers(), 200)]

    def loop(tid: int) -> None:
        n = 0
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            n += 1
            try:
                if role == "writer":
                    batch = [EventRow(f"cc-{wid}-{tid}", papers[(n + i) % len(papers)], "read",
                                      "2026-01-01T00:00:00.000000+00:00",
                                      idempotency_key=f"cc-{wid}-{tid}-{n}-{i}") for i in range(3)]
                    stored, dup = store.add_events(batch)
                    assert (stored, dup) == (3, 0)
                    store.log_served_list(uuid.uuid4().hex, f"cc-{wid}-{tid}", "trending", papers[:5])
                    with lock:
                        counts["events"] += 3
                        counts["lists"] += 1
                    if n % 25 == 0:
                        store.upsert_papers([{"paper_id": f"cc-paper-{wid}-{tid}-{n}",
                                              "title": f"Concurrent paper {n} about graphs"}])
                        with lock:
                            counts["papers"] += 1
                    if n % 50 == 0:  # a write through the plain transaction path
                        store.stop_experiment(f"none-{wid}")
                else:
                    user = f"cc-{n % 3}-{tid % 2}"
                    serve_list(store, rec, user, 10)
                    store.user_summary(user)
                    with lock:
                        counts["reads"] += 1
            except Exception:
                errors.append(traceback.format_exc())
                return

    pool = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    store.close()
    out.put({"role": role, "wid": wid, "errors": errors, **counts})


def test_processes_and_threads_share_one_file(tmp_path, seeded_db):
    db = tmp_path / "shared.db"
    shutil.copy(seeded_db, db)
    con = raw.connect(db)
    events_before = con.execute("SELECT count(*) FROM events").fetchone()[0]
    lists_before = con.execute("SELECT count(*) FROM impressions").fetchone()[0]
    con.close()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    plan = [("writer", 0, 4), ("writer", 1, 4), ("writer", 2, 2), ("reader", 3, 3), ("reader", 4, 3)]
    procs = [ctx.Process(target=_worker, args=(str(db), role, wid, threads, DURATION_S, out))
             for role, wid, threads in plan]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    errors = [e for r in results for e in r["errors"]]
    assert not errors, errors[0]
    written = sum(r["events"] for r in results)
    lists = sum(r["lists"] + r["reads"] for r in results)
    assert written > 100 and sum(r["reads"] for r in results) > 20, results
    con = raw.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == events_before + written
        assert con.execute("SELECT count(*) FROM impressions").fetchone()[0] == lists_before + lists
        assert con.execute("SELECT count(*) FROM events WHERE idempotency_key LIKE 'cc-%' "
                           "GROUP BY idempotency_key HAVING count(*) > 1").fetchall() == []
    finally:
        con.close()


def _hold_write_lock(db: str, seconds: float, times: int, gap: float) -> None:
    """Another process taking the write lock for `seconds` at a time: an import, a
    training run registering its model, a backup."""
    con = raw.connect(db, timeout=60, autocommit=True)
    for _ in range(times):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO models (version, status, created_at, path) VALUES (?, 'candidate', ?, '-')",
                    (uuid.uuid4().hex, "2026-01-01"))
        time.sleep(seconds)
        con.execute("COMMIT")
        time.sleep(gap)
    con.close()


def test_two_servers_and_a_lock_holder_never_answer_locked(tmp_path, seeded_db):
    db = tmp_path / "shared.db"
    shutil.copy(seeded_db, db)
    servers = [LiveServer(db, API_KEY, tmp_path / f"server{i}.log") for i in range(2)]
    try:
        ctx = mp.get_context("spawn")
        holder = ctx.Process(target=_hold_write_lock, args=(str(db), 1.5, 2, 0.5))
        holder.start()
        statuses: list[int] = []
        bodies: list[str] = []
        acked = []
        stop_at = time.monotonic() + DURATION_S + 1

        def client(i: int) -> None:
            base = servers[i % 2].url
            with httpx.Client(base_url=base, timeout=60) as c:
                n = 0
                while time.monotonic() < stop_at:
                    n += 1
                    if n % 4 == 0:
                        key = f"lock-{i}-{n}"
                        r = c.post("/events", headers=AUTH, json={
                            "user_id": f"lock-{i}", "paper_id": PAPER, "kind": "read",
                            "idempotency_key": key})
                        if r.status_code == 201:
                            acked.append(key)
                    else:
                        r = c.get("/recommendations", params={"user_id": f"lock-{i % 3}"})
                    statuses.append(r.status_code)
                    if r.status_code >= 300:
                        bodies.append(r.text[:300])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(client, range(8)))
        holder.join(timeout=60)
        assert holder.exitcode == 0
    finally:
        for s in servers:
            s.stop()
    logs = "".join((tmp_path / f"server{i}.log").read_text(errors="replace") for i in range(2))
    assert "database is locked" not in logs and "Traceback" not in logs, logs[-3000:]
    assert statuses and all(s in (200, 201) for s in statuses), bodies[:5]
    con = raw.connect(db)
    try:
        stored = {r[0] for r in con.execute("SELECT idempotency_key FROM events WHERE idempotency_key LIKE 'lock-%'")}
    finally:
        con.close()
    assert set(acked) <= stored and len(acked) > 10
