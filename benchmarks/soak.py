"""`make bench-soak`: the real server under mixed traffic for --minutes (default 10), with
two faults on the way, sampling what must stay bounded (issue 11).

All on 127.0.0.1, bounded in time and count:

- traffic: many distinct readers (`GET /recommendations` for a fresh reader id nearly every
  time, k up to 100, with running experiments of model strategies, which hand an unknown
  reader the shared trending list), known readers, `/trending`, events, and bursts of keyed `GET /users/...`
  (sync routes: worker threads) separated by pauses longer than the server pool's idle
  time (10 s), so the server's threads retire and new ones start (thread churn);
- a 1,000-paper `POST /papers` batch every --batch-every-s seconds, the reads' latency during
  it recorded apart;
- one permission flip (the database file read-only for --fault-s seconds; as root the server
  runs without CAP_DAC_OVERRIDE via `setpriv`, so permissions bind it) and one disk-full
  episode (the server's RLIMIT_FSIZE lowered to 4 KiB, as `prlimit --fsize` does);
- every --sample-s seconds: RSS, open file descriptors, database size (with WAL), p99 of reads.

Targets: RSS grows at most 50 MB per 100,000 distinct readers; open descriptors flat; p99 of
reads during a 1,000-paper POST <= 100 ms; no 5xx but 503s inside the fault windows, and
every 503 ends within 5 s of its fault's end. Writes bench-results/soak.md, soak.json and
soak.png.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import stat
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from benchmarks.load import API_KEY, ROOT, Server, build_db

AUTH = {"X-API-Key": API_KEY}
RESULTS = ROOT / "bench-results"
GRACE_S = 5.0
TARGET_RSS_MB_PER_100K = 50.0
TARGET_BATCH_P99_MS = 100.0


@dataclass
class Log:
    """Every answer: (time since start, what, status, latency s)."""
    t0: float = field(default_factory=time.monotonic)
    rows: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str, status: int, latency: float) -> None:
        with self.lock:
            self.rows.append((time.monotonic() - self.t0, what, status, latency))

    def now(self) -> float:
        return time.monotonic() - self.t0


def call(client: httpx.Client, log: Log, what: str, method: str, url: str,
         timeout: float = 30.0, **kw) -> None:
    start = time.perf_counter()
    try:
        status = client.request(method, url, timeout=timeout, **kw).status_code
    except httpx.HTTPError:
        status = 599  # no answer at all counts as a server error
    log.add(what, status, time.perf_counter() - start)


def proc_stats(pid: int, db: Path) -> dict:
    rss_kb = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status")
                  if line.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    size = sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
    return {"rss_mb": rss_kb / 1024, "fds": fds, "db_mb": size / 2**20}


def soak(minutes: float, sample_s: float, batch_every_s: float, fault_s: float,
         workdir: Path) -> dict:
    db, models = workdir / "soak.db", workdir / "models"
    info = build_db(db, models, train=True, workdir=workdir)
    known = (workdir / "readers.txt").read_text().split()
    papers = (workdir / "papers.txt").read_text().split()
    prefix = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
              if os.geteuid() == 0 and shutil.which("setpriv") else [])
    server = Server(db, models, workdir, prefix=prefix)
    log, stop = Log(), threading.Event()
    readers = {"n": 0}
    faults: list[dict] = []
    batches: list[tuple[float, float]] = []
    samples: list[dict] = []
    duration = minutes * 60.0
    with httpx.Client(base_url=server.url, headers=AUTH) as setup:
        for i, (a, b) in enumerate((("hybrid", "content"), ("popular", "hybrid"))):
            setup.post("/experiments", json={"name": f"soak-{i}", "traffic": 0.5, "variants": [
                {"name": "a", "strategy": a}, {"name": "b", "strategy": b}]})

    def readers_loop(seed: int):
        rng = random.Random(seed)
        with httpx.Client(base_url=server.url) as c:
            while not stop.is_set():
                if rng.random() < 0.85:
                    readers["n"] += 1
                    user = f"soak-{seed}-{readers['n']}"
                else:
                    user = rng.choice(known)
                call(c, log, "read", "GET", "/recommendations",
                     params={"user_id": user, "k": rng.choice((10, 20, 50, 100))})
                if rng.random() < 0.05:
                    call(c, log, "read", "GET", "/trending", params={"k": 20})

    def events_loop():
        rng = random.Random(7)
        n = 0
        with httpx.Client(base_url=server.url, headers=AUTH) as c:
            while not stop.is_set():
                n += 1
                batch = [{"user_id": rng.choice(known), "paper_id": rng.choice(papers),
                          "kind": rng.choice(("click", "read", "upvote")),
                          "idempotency_key": f"soak-{n}-{j}"} for j in range(5)]
                call(c, log, "event", "POST", "/events", json=batch)
                time.sleep(0.05)

    def churn_loop():
        """Bursts of sync-route requests from many client threads, then a pause longer
        than the server pool's 10 s idle time, so its worker threads retire."""
        while not stop.is_set():
            def burst():
                with httpx.Client(base_url=server.url, headers=AUTH) as c:
                    for _ in range(25):
                        call(c, log, "users", "GET", f"/users/{random.choice(known)}")
            threads = [threading.Thread(target=burst) for _ in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            stop.wait(11.0)

    def papers_loop():
        k = 0
        with httpx.Client(base_url=server.url, headers=AUTH) as c:
            while not stop.wait(batch_every_s if k else 20.0):
                k += 1
                body = [{"paper_id": f"soak-{k}-{i}", "title": f"Soak paper {k}.{i} on "
                         f"{random.choice(('diffusion', 'agents', 'speech', 'graphs'))}",
                         "abstract": "We study attention and retrieval. " * 8}
                        for i in range(1000)]
                start = log.now()
                call(c, log, "papers", "POST", "/papers", json=body, timeout=600.0)
                batches.append((start, log.now()))

    def fault_plan():
        """The permission flip at 1/3 of the run, the full disk at 2/3."""
        for at, kind in ((duration / 3, "read-only"), (2 * duration / 3, "disk-full")):
            if stop.wait(max(0.0, at - log.now())):
                return
            begin = log.now()
            if kind == "read-only":
                mode = db.stat().st_mode
                db.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
                stop.wait(fault_s)
                db.chmod(mode)
            else:
                soft, hard = resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE)
                resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (4096, hard))
                stop.wait(fault_s)
                resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
            faults.append({"kind": kind, "start": begin, "end": log.now()})

    def sampler():
        last = 0
        while True:
            with log.lock:
                rows = log.rows[last:]
                last = len(log.rows)
            reads = [r[3] for r in rows if r[1] == "read"]
            samples.append({"t": round(log.now(), 1), **proc_stats(server.proc.pid, db),
                            "readers": readers["n"], "requests": len(rows),
                            "read_p99_ms": float(np.percentile(reads, 99) * 1000) if reads else None,
                            "5xx": sum(r[2] >= 500 for r in rows)})
            if stop.wait(sample_s):
                return

    workers = ([threading.Thread(target=readers_loop, args=(s,)) for s in range(3)]
               + [threading.Thread(target=f) for f in (events_loop, churn_loop, papers_loop,
                                                        fault_plan, sampler)])
    for t in workers:
        t.start()
    try:
        time.sleep(duration)
    finally:
        stop.set()
        for t in workers:
            t.join(timeout=120)
        samples.append({"t": round(log.now(), 1), **proc_stats(server.proc.pid, db),
                        "readers": readers["n"], "requests": 0, "read_p99_ms": None, "5xx": 0})
        tracebacks = server.stop_and_count_tracebacks()
    return judge(info, log, samples, faults, batches, tracebacks, minutes)


def judge(info, log, samples, faults, batches, tracebacks, minutes) -> dict:
    rows = log.rows

    def in_fault(t: float) -> dict | None:
        return next((f for f in faults if f["start"] <= t <= f["end"] + GRACE_S), None)

    bad = [r for r in rows if r[2] >= 500 and not (r[2] == 503 and in_fault(r[0]))]
    late = []
    for f in faults:
        last_503 = max((r[0] for r in rows if r[2] == 503 and f["start"] <= r[0] <= f["end"] + 60),
                       default=None)
        f["503s"] = sum(1 for r in rows if r[2] == 503 and f["start"] <= r[0] <= f["end"] + 60)
        f["last_503_after_end_s"] = None if last_503 is None else round(last_503 - f["end"], 2)
        if last_503 is not None and last_503 > f["end"] + GRACE_S:
            late.append(f["kind"])
    during = [r[3] for r in rows if r[1] == "read" and any(a <= r[0] <= b for a, b in batches)]
    warm = next((s for s in samples if s["t"] >= 60), samples[0])
    end = samples[-1]
    # What readers cost, apart from what the catalog legitimately gains (3,000+ papers in
    # the catalog and the model): RSS change and new readers over the sampling intervals
    # after the first minute in which no paper batch ran.
    rss_delta = readers_delta = 0.0
    for a, b in zip(samples, samples[1:]):
        if a["t"] >= warm["t"] and not any(x < b["t"] and y > a["t"] for x, y in batches):
            rss_delta += b["rss_mb"] - a["rss_mb"]
            readers_delta += b["readers"] - a["readers"]
    rss_per_100k = rss_delta * 100_000 / max(1.0, readers_delta)
    reads = [r[3] for r in rows if r[1] == "read"]
    summary = {
        "minutes": minutes, "requests": len(rows), "distinct_new_readers": end["readers"],
        "rss_mb_start_end": [round(warm["rss_mb"], 1), round(end["rss_mb"], 1)],
        "rss_mb_per_100k_readers": round(rss_per_100k, 1),
        "fds_min_max": [min(s["fds"] for s in samples), max(s["fds"] for s in samples)],
        "db_mb_start_end": [round(samples[0]["db_mb"], 1), round(end["db_mb"], 1)],
        "read_p50_p99_ms": [round(float(np.percentile(reads, q)) * 1000, 1) for q in (50, 99)],
        "paper_batches": len(batches),
        "batch_s": [round(b - a, 1) for a, b in batches],
        "reads_during_batches": len(during),
        "read_p99_during_batch_ms": round(float(np.percentile(during, 99)) * 1000, 1) if during else None,
        "rss_mb_readers_only": [round(rss_delta, 1), int(readers_delta)],
        "fds_warm_end": [warm["fds"], end["fds"]],
        "unexpected_5xx": len(bad), "faults": faults, "tracebacks": tracebacks,
        "unexpected_by_kind": sorted({f"{r[1]} {r[2]}" for r in bad}),
    }
    summary["targets"] = {
        "rss": summary["rss_mb_per_100k_readers"] <= TARGET_RSS_MB_PER_100K,
        # flat: no growth from the first minute to the end (between, threads come and go
        # with the bursts, each with its connection, and close it when they retire)
        "fds_flat": end["fds"] - warm["fds"] <= 4,
        "batch_p99": (summary["read_p99_during_batch_ms"] or 0) <= TARGET_BATCH_P99_MS,
        "no_unexpected_5xx": not bad,
        "503s_end_in_5s": not late and len(faults) == 2,
    }
    return {"info": info, "summary": summary, "samples": samples}


def render(result: dict) -> str:
    s = result["summary"]
    lines = ["# bench-soak", "",
             f"{s['minutes']:g} minutes, {s['requests']:,} requests, "
             f"{s['distinct_new_readers']:,} distinct new readers, {s['paper_batches']} "
             "batches of 1,000 papers, one read-only and one disk-full episode; server and "
             "load generator on the same 2 shared cores.", "",
             "| t (s) | RSS MB | open fds | db MB | readers | requests | read p99 ms | 5xx |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["samples"]:
        p99 = "" if r["read_p99_ms"] is None else f"{r['read_p99_ms']:.0f}"
        lines.append(f"| {r['t']:.0f} | {r['rss_mb']:.0f} | {r['fds']} | {r['db_mb']:.1f} | "
                     f"{r['readers']:,} | {r['requests']:,} | {p99} | {r['5xx']} |")
    lines += ["", "| target | result | met |", "|---|---|---|",
              f"| RSS growth <= {TARGET_RSS_MB_PER_100K:g} MB per 100k readers | "
              f"{s['rss_mb_per_100k_readers']} MB ({s['rss_mb_readers_only'][0]} MB over "
              f"{s['rss_mb_readers_only'][1]:,} readers in intervals without a paper batch; "
              f"all in: {s['rss_mb_start_end'][0]} -> {s['rss_mb_start_end'][1]} MB after "
              f"the first minute) | {s['targets']['rss']} |",
              f"| open descriptors flat | first minute {s['fds_warm_end'][0]} -> end "
              f"{s['fds_warm_end'][1]} (range {s['fds_min_max'][0]}..{s['fds_min_max'][1]}) | "
              f"{s['targets']['fds_flat']} |",
              f"| read p99 during a 1,000-paper POST <= {TARGET_BATCH_P99_MS:g} ms | "
              f"{s['read_p99_during_batch_ms']} ms over {s['reads_during_batches']} reads "
              f"(batches took {s['batch_s']} s) | {s['targets']['batch_p99']} |",
              f"| no 5xx but 503 in fault windows | {s['unexpected_5xx']} others {s['unexpected_by_kind']} | "
              f"{s['targets']['no_unexpected_5xx']} |"]
    for f in s["faults"]:
        lines.append(f"| 503s of {f['kind']} ({f['end'] - f['start']:.0f} s) end within 5 s | "
                     f"{f['503s']} answered 503, last {f['last_503_after_end_s']} s after the "
                     f"end | {s['targets']['503s_end_in_5s']} |")
    lines += ["", f"reads overall p50/p99: {s['read_p50_p99_ms']} ms; database "
              f"{s['db_mb_start_end'][0]} -> {s['db_mb_start_end'][1]} MB; server tracebacks: "
              f"{s['tracebacks']}", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    t = [s["t"] for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    for ax, key, label in zip(axes, ("rss_mb", "fds", "db_mb", "read_p99_ms"),
                              ("RSS (MB)", "open fds", "database (MB)", "read p99 (ms)")):
        ax.plot(t, [s[key] if s[key] is not None else np.nan for s in samples], marker="o")
        ax.set_ylabel(label)
        for f in result["summary"]["faults"]:
            ax.axvspan(f["start"], f["end"], color="tab:red", alpha=0.15)
    axes[-1].set_xlabel("seconds (red: fault windows)")
    fig.suptitle("bench-soak")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--sample-s", type=float, default=30.0)
    p.add_argument("--batch-every-s", type=float, default=90.0)
    p.add_argument("--fault-s", type=float, default=15.0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="paperrec-soak-") as tmp:
        result = soak(args.minutes, args.sample_s, args.batch_every_s, args.fault_s, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    text = render(result)
    (args.out / "soak.md").write_text(text)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2))
    plot(result, args.out / "soak.png")
    print(text)
    return 0 if all(result["summary"]["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
