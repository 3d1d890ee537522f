"""SQLite vs PostgreSQL, 1 vs 2 replicas: one table and one plot (part of `make bench-load`).

For each configuration (sqlite x 1, sqlite x 2, postgresql x 1, postgresql x 2 replicas):

1. a fresh store (a temporary SQLite file, or a new database on a PostgreSQL server this
   module starts from the installed binaries, in a temporary folder, on 127.0.0.1), seeded
   with the demo data and a trained, promoted model;
2. the real server: uvicorn with `--workers N` (N replicas behind one port, as
   `paperrec serve --workers N` runs them);
3. the production mix (locust, closed loop, 80% GET /recommendations + 20% POST /events
   batches of 5) at --clients clients for --duration s: throughput, p50/p99, errors;
4. batched ingest (benchmarks/ingest.py): POST /events batches of 1, 100 and 1,000 events
   for --ingest-duration s each: acknowledged events per second, and then a count of the
   store: every acknowledged event must be there (durable).

Everything runs on this machine's 2 cores: the server, PostgreSQL, and the load generators.
Locust is what it is (a Python load generator; its CPU is the same for every configuration,
so the comparison is like for like); the ingest generator is kept cheap (see ingest.py) and
its CPU share is reported next to each ingest figure.

Targets: batched ingest (batches of 1,000) >= 20,000 events/s on SQLite and >= 10,000 on
PostgreSQL; zero errors. Writes bench-results/compare.md, compare.json, compare.png.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.ingest import run_ingest
from benchmarks.load import (API_KEY, ROOT, SCENARIOS, Server, build_db, count_events, run_locust,
                             to_row)

INGEST_BATCHES = (1, 100, 1000)
# Concurrent ingest clients per batch size: single events need many in flight for the group
# commit to have something to group; big batches need few.
INGEST_CLIENTS = {1: 32, 100: 4, 1000: 2}
TARGET_EVENTS_PER_S = {"sqlite": 20_000, "postgresql": 10_000}
CONFIGS = [("sqlite", 1), ("sqlite", 2), ("postgresql", 1), ("postgresql", 2)]


def _postgres_server():
    """A throwaway PostgreSQL server (the one the tests use: tests/postgres_server.py)."""
    from tests.postgres_server import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found (Debian: apt-get install postgresql)")
    return PostgresServer(bindir)


def run_config(backend: str, replicas: int, pg, workdir: Path, args) -> dict:
    here = workdir / f"{backend}-{replicas}"
    here.mkdir()
    location = (pg.create_database(f"bench_{replicas}") if backend == "postgresql"
                else here / "bench.db")
    model_dir = here / "models"
    print(f"{backend} x {replicas}: building the store ...", flush=True)
    data = build_db(location, model_dir, train=True, workdir=here)
    papers = (here / "papers.txt").read_text().split()
    server = Server(location, model_dir, here, replicas=replicas)
    result = {"backend": backend, "replicas": replicas, "data": data, "mix": {}, "ingest": []}
    try:
        print(f"  mix, {args.clients} clients, {args.duration} s ...", flush=True)
        before = count_events(location)
        rows = [to_row(args.clients, "mix", r) for r in
                run_locust(server, SCENARIOS["mix"], args.clients, args.duration, here)]
        for r in rows:
            result["mix"][r.endpoint] = {"rps": r.rps, "p50": r.p50, "p99": r.p99,
                                         "requests": r.requests, "errors": r.failures}
        ev = result["mix"].get("POST /events", {"requests": 0, "errors": 0})
        result["mix_durable"] = count_events(location) - before >= (ev["requests"] - ev["errors"]) * 5
        for size in INGEST_BATCHES:
            print(f"  ingest, batches of {size} ...", flush=True)
            before = count_events(location)
            got = run_ingest(server.url, API_KEY, papers, size, INGEST_CLIENTS[size],
                             args.ingest_duration)
            got["stored"] = count_events(location) - before
            got["durable"] = got["stored"] >= got["acked_events"]
            result["ingest"].append(got)
        result["tracebacks"] = server.tracebacks()
    finally:
        server.stop()
    return result


def render(results: list[dict], meta: dict) -> str:
    lines = [f"# SQLite vs PostgreSQL, 1 vs 2 replicas ({meta['when']})", "",
             f"{meta['cpus']} CPUs shared by the server(s), PostgreSQL and the load generators; "
             f"load average before: {meta['loadavg']}. Mix: locust, {meta['clients']} clients, "
             f"closed loop, {meta['duration']} s. Ingest: {meta['ingest_duration']} s per batch "
             "size, clients per size " + ", ".join(f"{b}: {c}" for b, c in INGEST_CLIENTS.items())
             + ".", "",
             "| store | replicas | mix req/s | GET /recommendations p50 / p99 ms | "
             "POST /events p50 / p99 ms | errors | ingest events/s, batch 1 | batch 100 | "
             "batch 1000 | all acked events stored |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        rec = r["mix"].get("GET /recommendations", {})
        ev = r["mix"].get("POST /events", {})
        errors = sum(m["errors"] for m in r["mix"].values()) + sum(i["errors"] for i in r["ingest"])
        rate = {i["batch"]: i for i in r["ingest"]}
        cells = [f"{rate[b]['events_per_s']:,.0f} (p99 {rate[b]['p99_ms']:.0f} ms, "
                 f"generator {100 * rate[b]['generator_cpu_share']:.0f}% of a core)"
                 for b in INGEST_BATCHES]
        durable = r["mix_durable"] and all(i["durable"] for i in r["ingest"])
        lines.append(f"| {r['backend']} | {r['replicas']} | "
                     f"{sum(m['rps'] for m in r['mix'].values()):.0f} | "
                     f"{rec.get('p50', 0):.0f} / {rec.get('p99', 0):.0f} | "
                     f"{ev.get('p50', 0):.0f} / {ev.get('p99', 0):.0f} | {errors} | "
                     + " | ".join(cells) + f" | {'yes' if durable else 'NO'} |")
    lines += ["", "Targets:"] + [f"- {t}" for t in meta["targets"]]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = [f"{r['backend']}\nx{r['replicas']}" for r in results]
    xs = range(len(results))
    fig, (ax_rps, ax_lat, ax_ing) = plt.subplots(1, 3, figsize=(15, 4.5))
    ax_rps.bar(xs, [sum(m["rps"] for m in r["mix"].values()) for r in results], color="tab:blue")
    ax_rps.set(title="Mix throughput (req/s)", xticks=list(xs), xticklabels=labels)
    for offset, (name, color) in enumerate((("GET /recommendations", "tab:green"),
                                            ("POST /events", "tab:orange"))):
        pos = [x + (offset - 0.5) * 0.4 for x in xs]
        ax_lat.bar(pos, [r["mix"].get(name, {}).get("p99", 0) for r in results], width=0.4,
                   color=color, label=f"{name} p99")
        ax_lat.plot(pos, [r["mix"].get(name, {}).get("p50", 0) for r in results], "k_",
                    markersize=12, label=f"{name} p50" if offset == 0 else None)
    ax_lat.set(title="Mix latency (ms)", xticks=list(xs), xticklabels=labels)
    ax_lat.legend(fontsize=7)
    for offset, size in enumerate(INGEST_BATCHES):
        pos = [x + (offset - 1) * 0.27 for x in xs]
        ax_ing.bar(pos, [next(i["events_per_s"] for i in r["ingest"] if i["batch"] == size)
                         for r in results], width=0.27, label=f"batches of {size}")
    for backend, target in TARGET_EVENTS_PER_S.items():
        ax_ing.axhline(target, ls=":", lw=0.8, color="red" if backend == "sqlite" else "purple",
                       label=f"target {backend} {target:,}")
    ax_ing.set(title="Acknowledged durable events/s", xticks=list(xs), xticklabels=labels,
               yscale="log")
    ax_ing.legend(fontsize=7)
    for ax in (ax_rps, ax_lat, ax_ing):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=int, default=20, help="seconds of the mix per configuration")
    ap.add_argument("--ingest-duration", type=int, default=10, help="seconds per batch size")
    ap.add_argument("--configs", default=",".join(f"{b}x{n}" for b, n in CONFIGS),
                    help="e.g. sqlitex1,postgresqlx2")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = ap.parse_args(argv)
    if not (1 <= args.duration <= 600 and 1 <= args.ingest_duration <= 600):
        ap.error("durations must be 1..600 s")
    configs = [(c.split("x")[0], int(c.split("x")[1])) for c in args.configs.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="paperrec-compare-"))
    meta = {"when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()), "clients": args.clients,
            "duration": args.duration, "ingest_duration": args.ingest_duration, "targets": []}
    pg = _postgres_server() if any(b == "postgresql" for b, _ in configs) else None
    results = []
    try:
        for backend, replicas in configs:
            results.append(run_config(backend, replicas, pg, workdir, args))
    finally:
        if pg is not None:
            pg.close()
        shutil.rmtree(workdir, ignore_errors=True)
    ok = True
    for r in results:
        top = next(i for i in r["ingest"] if i["batch"] == max(INGEST_BATCHES))
        target = TARGET_EVENTS_PER_S[r["backend"]]
        hit = top["events_per_s"] >= target
        errors = sum(m["errors"] for m in r["mix"].values()) + sum(i["errors"] for i in r["ingest"])
        durable = r["mix_durable"] and all(i["durable"] for i in r["ingest"])
        ok &= hit and errors == 0 and durable and r["tracebacks"] == 0
        meta["targets"].append(
            f"{r['backend']} x {r['replicas']}: batches of 1,000 at {top['events_per_s']:,.0f} "
            f"events/s (target >= {target:,}) -> {'PASS' if hit else 'MISS'}; {errors} errors, "
            f"{r['tracebacks']} server tracebacks, every acknowledged event stored: "
            f"{'yes' if durable else 'NO'}")
    args.out.mkdir(parents=True, exist_ok=True)
    table = render(results, meta)
    (args.out / "compare.md").write_text(table)
    (args.out / "compare.json").write_text(json.dumps({"meta": meta, "results": results},
                                                      indent=2, default=str))
    plotted = plot(results, args.out / "compare.png")
    print()
    print(table)
    print(f"written: {args.out / 'compare.md'}, {args.out / 'compare.json'}"
          + (f", {args.out / 'compare.png'}" if plotted else " (no plot: matplotlib missing)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
