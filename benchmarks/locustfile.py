"""Locust scenario for `make bench-load` (driven by benchmarks/load.py, headless).

Two user classes, picked by name on the locust command line:

- ``MixUser``: the production mix — 80% ``GET /recommendations`` and 20% ``POST /events``
  batches. Readers are a blend of the seeded demo readers (demo-diffusion, demo-agents,
  demo-crowd-NN, ...), bench readers who acquire a history during the run (their events are
  what the POSTs write), and readers nobody has seen (trending).
- ``HealthUser``: ``GET /health`` only — the framework floor the mix is compared with.

No wait time: each user sends its next request when the last one is answered, so the number
of users is the concurrency. Configuration comes from the environment (set by bench_load):
PAPERREC_BENCH_PAPERS (file with one paper id a line), PAPERREC_BENCH_KEY (X-API-Key),
PAPERREC_BENCH_READERS (file with one known reader id a line), PAPERREC_BENCH_BATCH (events
per POST, default 5).
"""
from __future__ import annotations

import os
import random
import uuid
from datetime import datetime, timezone
from pathlib import Path

from locust import FastHttpUser, task


def _lines(env: str, default: list[str]) -> list[str]:
    path = os.environ.get(env)
    if not path:
        return default
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


PAPERS = _lines("PAPERREC_BENCH_PAPERS", [])
KNOWN_READERS = _lines("PAPERREC_BENCH_READERS",
                       ["demo-diffusion", "demo-agents"] + [f"demo-crowd-{i:02d}" for i in range(1, 41)])
BENCH_READERS = [f"bench-reader-{i:03d}" for i in range(200)]
API_KEY = os.environ.get("PAPERREC_BENCH_KEY", "demo-key-change-me")
BATCH = int(os.environ.get("PAPERREC_BENCH_BATCH", "5"))
KINDS = ("impression", "impression", "click", "read", "upvote")


def _model_versions():
    """When PAPERREC_BENCH_DB is set (a model is swapped during the run), every answer must
    name a model version the registry has (or none: the content fallback). Read-only, and
    cached for a second so the check costs the load generator little."""
    path = os.environ.get("PAPERREC_BENCH_DB")
    if not path:
        return None
    import time

    from recommender.storage import raw

    cache = {"at": 0.0, "versions": {None}}

    def versions(fresh: bool = False) -> set:
        if fresh or time.monotonic() - cache["at"] > 1.0:
            cache["versions"] = {None} | {r[0] for r in raw.query(path, "SELECT version FROM models")}
            cache["at"] = time.monotonic()
        return cache["versions"]

    return versions


MODEL_VERSIONS = _model_versions()


def pick_reader(rng: random.Random) -> str:
    """50% seeded demo readers, 25% bench readers (history grows during the run), 25%
    readers nobody has seen."""
    x = rng.random()
    if x < 0.5:
        return rng.choice(KNOWN_READERS)
    if x < 0.75:
        return rng.choice(BENCH_READERS)
    return f"unknown-{uuid.uuid4().hex[:12]}"


def get_recommendations(user: FastHttpUser) -> None:
    reader = pick_reader(user.rng)
    with user.client.get(f"/recommendations?user_id={reader}&k=20", name="/recommendations",
                         catch_response=True) as resp:
        if resp.status_code != 200:
            resp.failure(f"status {resp.status_code}")
            return
        body = resp.json()
        if not body.get("items"):
            resp.failure("empty list")
        elif (MODEL_VERSIONS is not None and body.get("model_version") not in MODEL_VERSIONS()
              and body.get("model_version") not in MODEL_VERSIONS(fresh=True)):
            resp.failure(f"unknown model_version {body.get('model_version')!r}")


def post_events(user: FastHttpUser) -> None:
    reader = user.rng.choice(BENCH_READERS)
    now = datetime.now(timezone.utc).isoformat()
    batch = [
        {"user_id": reader, "paper_id": user.rng.choice(PAPERS), "kind": user.rng.choice(KINDS),
         "ts": now, "idempotency_key": uuid.uuid4().hex}
        for _ in range(BATCH)
    ]
    with user.client.post("/events", json=batch, name="/events",
                          headers={"X-API-Key": API_KEY}, catch_response=True) as resp:
        if resp.status_code != 201:
            resp.failure(f"status {resp.status_code}")
        elif resp.json().get("stored") != BATCH:
            resp.failure(f"stored {resp.json().get('stored')} of {BATCH}")


class MixUser(FastHttpUser):
    """The production mix: 80% recommendations, 20% event batches."""

    tasks = {get_recommendations: 8, post_events: 2}

    def on_start(self) -> None:
        self.rng = random.Random()


class RecommendationsUser(FastHttpUser):
    """Recommendations only: the throughput compared with the floor."""

    tasks = [get_recommendations]

    def on_start(self) -> None:
        self.rng = random.Random()


class HealthUser(FastHttpUser):
    """The floor: the cheapest endpoint of the same app, through the same middleware."""

    @task
    def health(self) -> None:
        with self.client.get("/health", name="/health", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
