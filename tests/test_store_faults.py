"""Faults outside our control: 503 with Retry-After while they last, visible in /health, and
healed by themselves once the cause is gone (issue 11, findings 1 and 8).

The read-only case changes the database file's permissions under a real server (uvicorn
subprocess). Root ignores file permissions, so as root the server runs without
CAP_DAC_OVERRIDE (util-linux `setpriv`), as an ordinary service account would. The
disk-full case lowers the running server's file-size limit (RLIMIT_FSIZE, what `prlimit`
sets), so its next write past that size fails as on a full disk."""
from __future__ import annotations

import os
import resource
import shutil
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest

from recommender.storage.sqlite import raw
from tests.helpers import API_KEY, AUTH, LiveServer

PAPER = "2312.17653"


def open_handles(path: Path) -> int:
    """How many file descriptors of this process point at the database or its WAL/SHM."""
    names = {str(path), f"{path}-wal", f"{path}-shm"}
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") in names
        except OSError:
            pass
    return count


def test_connections_of_finished_threads_are_closed(store):
    store.count("papers")
    base = open_handles(store.path)
    for _ in range(40):
        t = threading.Thread(target=store.count, args=("papers",))
        t.start()
        t.join()
    assert open_handles(store.path) <= base + 2
    assert store.open_connections() <= 3


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) needed to drop root's permission override")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.fixture
def server(tmp_path, seeded_db_template):
    db = tmp_path / "faults.db"
    shutil.copy(seeded_db_template, db)
    srv = LiveServer(db, API_KEY, tmp_path / "server.log", prefix=_unprivileged())
    yield srv
    srv.stop()
    log = srv.log_text()
    assert "Traceback" not in log, log[-3000:]


def _health(srv) -> dict:
    return httpx.get(srv.url + "/health", timeout=10).json()


def _until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _post_paper(srv, pid: str) -> httpx.Response:
    return httpx.post(srv.url + "/papers", headers=AUTH, timeout=30,
                      json={"paper_id": pid, "title": "Fault tolerant paper"})


def _post_event(srv, key: str) -> httpx.Response:
    return httpx.post(srv.url + "/events", headers=AUTH, timeout=30,
                      json={"user_id": "fault-reader", "paper_id": PAPER, "kind": "click",
                            "idempotency_key": key})


def test_a_read_only_database_is_503_in_health_and_heals(server):
    db = server.db
    mode = db.stat().st_mode
    db.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        answers = [_post_paper(server, f"ro-{i}") for i in range(3)]
        answers.append(httpx.post(server.url + "/experiments", headers=AUTH, timeout=30, json={
            "name": "ro-exp", "variants": [{"name": "a", "strategy": "popular"},
                                           {"name": "b", "strategy": "content"}]}))
        for r in answers:
            assert r.status_code in (201, 503), r.text
        refused = [r for r in answers if r.status_code == 503]
        assert refused, "no write noticed the read-only file"
        assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
        health = _health(server)
        assert health["status"] == "degraded"
        assert any("database" in reason for reason in health["reasons"]), health
    finally:
        db.chmod(mode)
    healed = _until(lambda: _post_paper(server, "ro-after").status_code == 201)
    assert healed, "writes still refused after the permissions were restored"
    assert _until(lambda: _health(server)["status"] == "ok")
    assert httpx.get(server.url + "/papers/ro-after", timeout=10).status_code == 200


def test_a_full_disk_is_503_in_health_and_heals(server):
    assert _post_event(server, "before").status_code == 201
    soft, hard = resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (4096, hard))
    try:
        answers = []
        for i in range(5):  # served lists (written without waiting) share the failing commits
            httpx.get(server.url + "/recommendations", params={"user_id": f"f{i}"}, timeout=10)
            answers.append(_post_event(server, f"full-{i}"))
        answers += [_post_paper(server, "full-paper")]
        assert all(r.status_code == 503 for r in answers), [r.text for r in answers]
        assert all("retry-after" in r.headers for r in answers)
        health = _health(server)
        assert health["status"] == "degraded", health
        # reads go on
        assert httpx.get(server.url + "/trending", timeout=10).status_code == 200
    finally:
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
    assert _until(lambda: _post_event(server, "after").status_code == 201)
    assert _until(lambda: _health(server)["status"] == "ok")
    keys = {r[0] for r in raw.query(
        server.db, "SELECT idempotency_key FROM events WHERE user_id = 'fault-reader'", readonly=False)}
    assert keys == {"before", "after"}  # nothing of a refused batch is stored


def test_events_sharing_a_commit_with_served_lists_on_a_full_disk_are_503(server):
    """Served lists are written without waiting and share group commits with event batches;
    a full disk inside the served-list insert must make the whole commit a fault (503 for
    the events in it), not a bad row followed by a failed rollback (500)."""
    assert _post_event(server, "before").status_code == 201
    soft, hard = resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (4096, hard))
    statuses: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            for i in range(8):
                c.get("/recommendations", params={"user_id": f"shared-{n}-{i}"})
                r = c.post("/events", headers=AUTH, json={
                    "user_id": "fault-reader", "paper_id": PAPER, "kind": "click",
                    "idempotency_key": f"shared-{n}-{i}"})
                with lock:
                    statuses.append(r.status_code)

    try:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
    finally:
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
    assert len(statuses) == 64
    assert set(statuses) == {503}, sorted(set(statuses))
    assert _until(lambda: _post_event(server, "after").status_code == 201)
