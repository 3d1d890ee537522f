"""Model swap under load: while clients read lists and post events, the nightly job trains
and promotes a new model twice; no request fails and every list names a model version the
registry had (or none, before the first model)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import httpx

from recommender.storage.sqlite import raw
from tests.helpers import API_KEY, AUTH, ROOT, LiveServer

PAPER = "2312.17653"
CLIENTS = 4


def _train(db, model_dir) -> None:
    subprocess.run([sys.executable, "-m", "training.cli", "train", "--db", str(db),
                    "--model-dir", str(model_dir), "--quiet", "--force"],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)


def test_train_and_promote_while_serving(tmp_path, seeded_db):
    db = tmp_path / "swap.db"
    shutil.copy(seeded_db, db)
    model_dir = tmp_path / "models"
    server = LiveServer(db, API_KEY, tmp_path / "server.log",
                        env={"PAPERREC_MODEL_DIR": str(model_dir)})
    seen: list[str | None] = []
    failures: list[str] = []
    requests = [0] * CLIENTS
    done = threading.Event()

    def client(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            n = 0
            while not done.is_set() and n < 20_000:
                requests[i] = n
                n += 1
                if n % 5 == 0:
                    r = c.post("/events", headers=AUTH, json={
                        "user_id": f"swap-{i}", "paper_id": PAPER, "kind": "read",
                        "idempotency_key": f"swap-{i}-{n}"})
                else:
                    r = c.get("/recommendations", params={
                        "user_id": ["demo-agents", "demo-diffusion", f"swap-{i}", f"new-{n}"][n % 4]})
                    if r.status_code == 200:
                        seen.append(r.json()["model_version"])
                if r.status_code >= 300:
                    failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        time.sleep(1)
        _train(db, model_dir)
        time.sleep(2)
        _train(db, model_dir)
        time.sleep(2)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=60)
        server.stop()
    con = raw.connect(db)
    versions = {r[0] for r in con.execute("SELECT version FROM models")}
    active = con.execute("SELECT version FROM models WHERE status = 'active'").fetchone()[0]
    con.close()
    assert not failures, failures[:5]
    # A client that died (a connection error raised in its thread) also fails the test
    # through pytest's unhandled-thread-exception warning, an error here (pyproject.toml);
    # one still stuck, or one that never got going, fails it here.
    assert not any(t.is_alive() for t in threads), "a client thread never finished"
    assert min(requests) >= 50, requests
    assert len(versions) == 2
    assert set(seen) <= versions | {None}, set(seen) - versions
    assert active in seen, "the last promoted model was never served"
    assert "Traceback" not in server.log_text()
