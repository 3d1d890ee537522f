"""The embedded default from `seeds/`: the shipped catalog and the synthetic demo readers.

Running it again changes nothing: papers are upserted and demo events carry content-based
idempotency keys. (`paperrec seed` runs it; the tests and benchmarks build their stores
with it too.)"""
from __future__ import annotations

from pathlib import Path

from recommender.storage import Store
from training.importing import import_events, import_papers

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def seed(store: Store, demo: bool = True) -> dict:
    papers = import_papers(store, SEEDS / "papers.jsonl")
    out = {"papers": papers.rows, "papers_stored": papers.stored}
    if demo:
        events = import_events(store, SEEDS / "demo_events.csv")
        out.update(events=events.rows, events_stored=events.stored)
    return out
