"""`make bench-page`: what the reader page and search cost on the server, in process.

1. The page against the JSON list it shows. A seeded store (shipped catalog + demo
   readers) with a trained, promoted model (unless --no-model), the real app; a known demo
   reader's "For you" page (GET /?tab=for-you, signed in by its session cookie) and
   GET /recommendations for the same reader and k, alternated, N times each. Server time is
   measured inside the process by an ASGI wrapper around the app: from the request reaching
   the app to the last byte of its answer (the test client's own work is left out).
   Target: page median <= 2x the JSON median.
2. GET /search over the CiteULike-a catalog (benchmarks/citeulike-a/papers.jsonl.gz,
   16,980 papers), the same way: one- to three-word queries made from words of random
   titles, after one warm-up query that builds the index (its time is printed too).
   Target: p99 <= 20 ms.

Prints a table; the figures are medians and percentiles of one run on this machine's 2
cores (whatever else runs on them at the time is not controlled).
"""
from __future__ import annotations

import argparse
import gzip
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CITEULIKE = ROOT / "benchmarks" / "citeulike-a" / "papers.jsonl.gz"
API_KEY = "bench-page-key"
READER = "demo-diffusion"
TARGET_RATIO = 2.0
TARGET_SEARCH_P99_MS = 20.0


class ServerTimer:
    """ASGI wrapper: records, per request path, the seconds from the call to the last
    body message of the answer."""

    def __init__(self, app):
        self.app = app
        self.times: dict[str, list[float]] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()

        async def timed_send(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.times.setdefault(scope["path"], []).append(time.perf_counter() - start)

        await self.app(scope, receive, timed_send)


def _ms(values) -> dict:
    a = np.asarray(values) * 1000.0
    return {"n": len(a), "p50": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99))}


def _row(name: str, s: dict) -> str:
    return f"| {name} | {s['n']} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} |"


def bench_page(workdir: Path, n: int, with_model: bool) -> tuple[dict, dict, str]:
    from fastapi.testclient import TestClient

    from recommender.storage import open_store
    from service.app import create_app
    from recommender.core.settings import Settings
    from training.seeding import seed

    db = workdir / "page.db"
    store = open_store(db)
    seed(store, demo=True)
    if with_model:
        from training.train_job import train
        train(store, workdir / "models", force=True, progress=False)
    store.close()
    app = create_app(Settings(db=db, model_dir=workdir / "models", api_keys=API_KEY))
    timer = ServerTimer(app)
    with TestClient(timer) as client:
        page = client.get("/")
        csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        signed = client.post("/page/signin", data={"reader_id": READER, "csrf": csrf},
                             follow_redirects=False)
        assert signed.status_code == 303, signed.text
        strategy = client.get("/recommendations", params={"user_id": READER, "k": 20}).json()["strategy"]
        timer.times.clear()
        for _ in range(n):
            assert client.get("/", params={"tab": "for-you"}).status_code == 200
            assert client.get("/recommendations", params={"user_id": READER, "k": 20}).status_code == 200
    return _ms(timer.times["/"]), _ms(timer.times["/recommendations"]), strategy


def bench_search(workdir: Path, n: int, seed_: int = 0) -> tuple[dict, float, int]:
    from fastapi.testclient import TestClient

    from recommender.storage import open_store
    from service.app import create_app
    from recommender.core.settings import Settings
    from training.importing import import_papers

    papers = workdir / "citeulike-papers.jsonl"
    with gzip.open(CITEULIKE, "rb") as src, open(papers, "wb") as dst:
        shutil.copyfileobj(src, dst)
    db = workdir / "citeulike.db"
    store = open_store(db)
    report = import_papers(store, papers, skip_invalid=True)  # 10 are dated before 1970
    titles = [p["title"] for p in store.iter_papers()]
    store.close()
    rng = random.Random(seed_)
    words = [[w for w in t.split() if w.isalpha() and len(w) > 3] for t in titles]
    words = [w for w in words if w]
    queries = [" ".join(rng.sample(ws, min(len(ws), rng.randint(1, 3))))
               for ws in (rng.choice(words) for _ in range(n))]
    app = create_app(Settings(db=db, model_dir=workdir / "cmodels", api_keys=API_KEY))
    timer = ServerTimer(app)
    with TestClient(timer) as client:
        started = time.perf_counter()
        assert client.get("/search", params={"q": "network", "k": 20}).status_code == 200
        build_s = time.perf_counter() - started
        timer.times.clear()
        for q in queries:
            assert client.get("/search", params={"q": q, "k": 20}).status_code == 200
    return _ms(timer.times["/search"]), build_s, report.stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="page and JSON requests each")
    parser.add_argument("--queries", type=int, default=2000, help="search queries")
    parser.add_argument("--no-model", action="store_true", help="skip training a model")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="paperrec-bench-page-"))
    try:
        page, js, strategy = bench_page(workdir, args.requests, not args.no_model)
        search, build_s, n_papers = bench_search(workdir, args.queries)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratio = page["p50"] / js["p50"]
    print(f"server time in process (ms), reader {READER}, k=20, strategy {strategy}")
    print("| request | n | p50 | p90 | p99 |")
    print("|---|---:|---:|---:|---:|")
    print(_row("GET /?tab=for-you (page)", page))
    print(_row("GET /recommendations (JSON)", js))
    print(_row(f"GET /search, CiteULike-a ({n_papers:,} papers)", search))
    print(f"page / JSON (medians): {ratio:.2f}x  (target <= {TARGET_RATIO:g}x)  "
          f"{'ok' if ratio <= TARGET_RATIO else 'MISSED'}")
    print(f"search p99: {search['p99']:.2f} ms  (target <= {TARGET_SEARCH_P99_MS:g} ms)  "
          f"{'ok' if search['p99'] <= TARGET_SEARCH_P99_MS else 'MISSED'};  "
          f"index built by the first query in {build_s:.2f} s")
    return 0 if ratio <= TARGET_RATIO and search["p99"] <= TARGET_SEARCH_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
