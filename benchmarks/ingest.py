"""Batched ingest: how many events a server acknowledges durably per second, for batches of
1, 100 and 1,000 events per POST /events.

The load generator is kept cheap so that the 2 cores go to the server and the database:
each client thread holds one keep-alive connection (http.client, no framework), and a
batch's JSON is built once per batch size; only the idempotency keys' prefix is replaced
per request (a bytes replace), so every event is new and still keyed. The generator's own
CPU time is measured (resource.getrusage of its threads' process) and reported as a share
of the run, so the reader can see what it took from the server.

An acknowledged event is one in a batch answered 201; afterwards the store is counted:
every acknowledged event must be there (durable), or the run is marked failed.
"""
from __future__ import annotations

import http.client
import json
import resource
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

KEY_MARK = "@@@@@@@@@@@@@@@@"  # 16 characters replaced by a per-request prefix


def batch_template(papers: list[str], size: int) -> bytes:
    """A batch of `size` events whose keys all start with KEY_MARK."""
    now = datetime.now(timezone.utc).isoformat()
    kinds = ("read", "click", "upvote", "impression")
    events = [{"user_id": f"ingest-{i % 97}", "paper_id": papers[i % len(papers)],
               "kind": kinds[i % len(kinds)], "ts": now,
               "idempotency_key": f"{KEY_MARK}-{i}"} for i in range(size)]
    return json.dumps(events if size > 1 else events[0]).encode()


def run_ingest(url: str, api_key: str, papers: list[str], size: int, clients: int,
               seconds: float) -> dict:
    """`clients` threads post batches of `size` for `seconds`; returns the counts, event
    rate, request latencies and the generator's CPU share."""
    template = batch_template(papers, size)
    mark = KEY_MARK.encode()
    parts = urlsplit(url)
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"acked_events": 0, "requests": 0, "errors": 0}
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def client(c: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        headers = {"Content-Type": "application/json", "X-API-Key": api_key}
        n = 0
        mine, acked, failed = [], 0, 0
        while time.monotonic() < deadline:
            n += 1
            body = template.replace(mark, f"{size:04d}{c:03d}{n:09d}".encode())
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/events", body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                failed += 1
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                continue
            mine.append(time.perf_counter() - t0)
            if resp.status == 201:
                acked += size
            else:
                failed += 1
                errors.append(f"{resp.status}: {payload[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)
            counts["acked_events"] += acked
            counts["requests"] += len(mine)
            counts["errors"] += failed

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies.sort()
    pick = lambda q: round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1) \
        if latencies else float("nan")  # noqa: E731
    return {"batch": size, "clients": clients, "seconds": round(wall, 2), **counts,
            "events_per_s": round(counts["acked_events"] / wall, 1),
            "requests_per_s": round(counts["requests"] / wall, 1),
            "p50_ms": pick(0.50), "p99_ms": pick(0.99),
            "generator_cpu_share": round(cpu / wall, 2), "error_samples": errors[:3]}
