"""`make bench-load`: the real server under a fixed number of concurrent clients.

What it does, all on 127.0.0.1 and bounded in time:

1. Builds the embedded default data (`paperrec seed`: shipped catalog + synthetic demo
   readers) in a temporary SQLite file and, unless --no-model, trains and promotes a model
   (`paperrec train`), so the measured path is the one production serves.
2. Starts the real server: `uvicorn service.app:app_from_env --factory` (no access log).
3. For each concurrency level (default 8, 32, 64), runs locust headless (benchmarks/locustfile.py)
   for --duration seconds per scenario, closed loop (no think time: N users = N requests in
   flight):
   - floor: GET /health only - the cheapest endpoint through the same app and middleware;
   - recs: GET /recommendations only (known demo readers, bench readers, unknown readers);
   - mix: 80% GET /recommendations + 20% POST /events batches of 5 (the production mix).
   With --swap-during-load, a new model is trained and promoted in the middle of the mix run
   of each level; every answer must name a model version the registry has.
4. Prints a table per level and scenario (requests/s, p50/p95/p99 ms, errors), the ratio
   recommendations-throughput / floor-throughput, checks the targets, and writes
   bench-results/load.md, load.json and load.png (latency and throughput by concurrency).

After each mix run it checks the store: every acknowledged event batch is stored (the
count of new events equals 5 x the 2xx answers) and `PRAGMA integrity_check` is ok.

The load generator runs on the same 2 cores as the server, so the absolute numbers are a
floor for a real deployment; the ratio compares like with like.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from recommender.storage import backend_of
from recommender.storage import raw
from recommender.storage.sqlite import raw as sqlite_raw

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
API_KEY = "bench-key"
BATCH = 5
TARGET_P99_MS = 50.0
TARGET_LEVEL = 32
TARGET_RATIO = 0.5
SCENARIOS = {"floor": "HealthUser", "recs": "RecommendationsUser", "mix": "MixUser"}


@dataclass
class Row:
    level: int
    scenario: str
    endpoint: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    max: float
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_db(path: Path | str, model_dir: Path, train: bool, workdir: Path) -> dict:
    """Seed (and train) the store at `path`, an SQLite file or a PostgreSQL URL; the ids
    the load generator uses go to `workdir`."""
    from recommender.storage import open_store
    from training.seeding import seed

    store = open_store(path)
    try:
        seeded = seed(store, demo=True)
        papers = [p["paper_id"] for p in store.iter_papers()]
        readers = sorted({e["user_id"] for e in store.iter_events()})
    finally:
        store.close()
    info = {"papers": len(papers), "demo_events": seeded.get("events"), "readers": len(readers),
            "model": None}
    (workdir / "papers.txt").write_text("\n".join(papers))
    (workdir / "readers.txt").write_text("\n".join(readers))
    if train:
        t0 = time.perf_counter()
        train_and_promote(path, model_dir, force=True)
        info["model"] = active_model(path)
        info["train_s"] = round(time.perf_counter() - t0, 1)
    return info


def train_and_promote(db: Path, model_dir: Path, force: bool = True) -> subprocess.CompletedProcess:
    """The nightly job, as `make train` runs it; --force so a swap always happens."""
    cmd = [sys.executable, "-m", "training.cli", "train", "--db", str(db), "--model-dir",
           str(model_dir), "--quiet"] + (["--force"] if force else [])
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)


def active_model(db: Path | str) -> str | None:
    try:
        rows = raw.query(db, "SELECT version FROM models WHERE status = 'active'")
    except raw.Error:
        return None
    return rows[0][0] if rows else None


class Server:
    def __init__(self, db: Path | str, model_dir: Path, workdir: Path, env_extra: dict | None = None,
                 name: str = "server", prefix: list[str] | None = None, replicas: int = 1):
        """`replicas`: uvicorn worker processes behind the one port (`paperrec serve
        --workers N`), each a replica with its own model in memory."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        env = {**os.environ, "PAPERREC_DB": str(db), "PAPERREC_API_KEYS": API_KEY,
               "PAPERREC_MODEL_DIR": str(model_dir), **(env_extra or {})}
        # Several replicas through `paperrec serve --workers`, which keeps TCP_NODELAY on
        # the shared socket (training/serve_cmd.py); one through uvicorn as before.
        command = ([sys.executable, "-m", "training.cli", "serve", "--workers", str(replicas)]
                   if replicas > 1 else
                   [sys.executable, "-m", "uvicorn", "service.app:app_from_env", "--factory"])
        self.proc = subprocess.Popen(
            [*(prefix or []), *command,
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
             "--no-access-log"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"),
        )
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    self.health = json.loads(r.read())
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("server did not answer /health within 90 s")
                time.sleep(0.2)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback")

    def stop_and_count_tracebacks(self) -> int:
        tracebacks = self.tracebacks()
        self.stop()
        return tracebacks

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_locust(server: Server, user_class: str, users: int, duration: int, workdir: Path,
               env_extra: dict | None = None) -> list[dict]:
    prefix = workdir / f"{user_class}-{users}"
    env = {**os.environ,
           "PAPERREC_BENCH_PAPERS": str(workdir / "papers.txt"),
           "PAPERREC_BENCH_READERS": str(workdir / "readers.txt"),
           "PAPERREC_BENCH_KEY": API_KEY, "PAPERREC_BENCH_BATCH": str(BATCH),
           **(env_extra or {})}
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), user_class, "--headless",
           "-u", str(users), "-r", str(users), "-t", f"{duration}s", "--host", server.url,
           "--csv", str(prefix), "--only-summary", "--reset-stats", "--stop-timeout", "5",
           "-L", "WARNING", "--exit-code-on-error", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=duration + 120)
    stats = Path(f"{prefix}_stats.csv")
    if proc.returncode != 0 or not stats.exists():
        raise RuntimeError(f"locust failed ({proc.returncode}): {proc.stderr[-2000:]}")
    with stats.open() as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] != "Aggregated"]
    failures = Path(f"{prefix}_failures.csv")
    if failures.exists():
        with failures.open() as f:
            for r in csv.DictReader(f):
                print(f"    failure x{r['Occurrences']}: {r['Method']} {r['Name']}: {r['Error']}",
                      file=sys.stderr)
    return rows


def to_row(level: int, scenario: str, r: dict) -> Row:
    num = lambda k: float(r[k]) if r.get(k) not in (None, "", "N/A") else float("nan")  # noqa: E731
    return Row(level=level, scenario=scenario, endpoint=f"{r['Type']} {r['Name']}",
               requests=int(r["Request Count"]), failures=int(r["Failure Count"]),
               rps=round(num("Requests/s"), 1), p50=num("50%"), p95=num("95%"), p99=num("99%"),
               max=num("Max Response Time"))


def count_events(db: Path | str) -> int:
    return int(raw.query(db, "SELECT count(*) FROM events")[0][0])


def integrity(db: Path | str) -> str:
    """SQLite's integrity_check of the file ('ok'); a PostgreSQL server checks its own
    pages (checksums, WAL), so there it is 'ok' when the database answers."""
    if backend_of(db) == "postgresql":
        raw.query(db, "SELECT 1")
        return "ok"
    return sqlite_raw.query(db, "PRAGMA integrity_check")[0][0]


def swap_during(db: Path, model_dir: Path, delay: float, out: dict) -> threading.Thread:
    """Train and promote a new model `delay` seconds into a run (item 3 of the issue)."""
    def work():
        time.sleep(delay)
        t0 = time.perf_counter()
        try:
            train_and_promote(db, model_dir, force=True)
            out["swapped_to"] = active_model(db)
        except subprocess.CalledProcessError as exc:
            out["swap_error"] = (exc.stderr or "")[-500:]
        out["swap_s"] = round(time.perf_counter() - t0, 1)
    t = threading.Thread(target=work, name="swap", daemon=True)
    t.start()
    return t


def recs_without_kept_lists(db: Path, model_dir: Path, workdir: Path, duration: int,
                            rows: list[Row], summary: dict, meta: dict) -> int:
    """The recommendations-only run again on a server that ranks every list afresh
    (PAPERREC_LIST_TTL_S=0), at the target level: what the per-reader list cache is worth,
    reported next to the figures it helps. Returns the server's tracebacks."""
    server = Server(db, model_dir, workdir, {"PAPERREC_LIST_TTL_S": "0"}, name="server-no-kept-lists",
                    replicas=meta["replicas"])
    try:
        print(f"  {TARGET_LEVEL:>3} clients, recs with lists not kept ({duration} s) ...", flush=True)
        got = [to_row(TARGET_LEVEL, "recs, no kept lists", r) for r in
               run_locust(server, SCENARIOS["recs"], TARGET_LEVEL, duration, workdir)]
    finally:
        tracebacks = server.stop_and_count_tracebacks()
    rows += got
    rec = next(r for r in got if r.endpoint == "GET /recommendations")
    summary["recs_no_kept_rps"], summary["recs_no_kept_p99"] = rec.rps, rec.p99
    meta["notes"].append(
        f"{TARGET_LEVEL} clients, recommendations with every list ranked afresh "
        f"(PAPERREC_LIST_TTL_S=0, a second server on the same store, right after the recs "
        f"run): {rec.rps:.0f} req/s, p99 {rec.p99:.0f} ms, ratio to the floor "
        f"{rec.rps / summary['floor_rps']:.2f}. By default a "
        "reader's list is kept up to 60 s unless their events, the model or the catalog "
        "change; half of these requests are for the 46 demo readers, so kept lists are "
        "reused often here.")
    return tracebacks


def render(rows: list[Row], meta: dict) -> str:
    lines = [
        f"# paperrec load benchmark ({meta['when']})",
        "",
        f"Server: uvicorn, {meta['replicas']} process(es) on {meta['backend']}, "
        f"{meta['cpus']} CPUs shared with the load generator "
        f"(locust {meta['locust']}, closed loop, no think time); {meta['duration']} s per run; "
        f"data: {meta['data']['papers']} papers, {meta['data']['demo_events']} demo events, "
        f"model: {meta['data']['model'] or 'none (content + trending)'}. "
        f"Load average before the run: {meta['loadavg']}.",
        "",
        "| clients | scenario | endpoint | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.level} | {r.scenario} | {r.endpoint} | {r.rps:.1f} | {r.p50:.0f} | "
                     f"{r.p95:.0f} | {r.p99:.0f} | {r.max:.0f} | {r.failures} |")
    lines += ["", "| clients | recs req/s | floor req/s | ratio recs/floor | mix req/s (all) | "
              "mix /recommendations p99 ms |", "|---:|---:|---:|---:|---:|---:|"]
    for level, s in meta["levels"].items():
        lines.append(f"| {level} | {s['recs_rps']:.1f} | {s['floor_rps']:.1f} | "
                     f"{s['ratio']:.2f} | {s['mix_rps']:.1f} | {s['mix_recs_p99']:.0f} |")
    lines += ["", "Targets:"] + [f"- {t}" for t in meta["targets"]]
    if meta.get("notes"):
        lines += ["", "Notes:"] + [f"- {n}" for n in meta["notes"]]
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series = {
        ("floor", "GET /health"): ("GET /health (floor)", "tab:gray"),
        ("recs", "GET /recommendations"): ("GET /recommendations (recs only)", "tab:blue"),
        ("recs, no kept lists", "GET /recommendations"):
            ("GET /recommendations (recs only, lists not kept)", "tab:purple"),
        ("mix", "GET /recommendations"): ("GET /recommendations (mix)", "tab:green"),
        ("mix", "POST /events"): ("POST /events (mix)", "tab:orange"),
    }
    fig, (ax_lat, ax_rps) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, (label, color) in series.items():
        pts = sorted((r.level, r) for r in rows if (r.scenario, r.endpoint) == key)
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ax_lat.plot(xs, [p[1].p99 for p in pts], "-o", color=color, label=f"{label} p99")
        ax_lat.plot(xs, [p[1].p50 for p in pts], "--", color=color, alpha=0.6)
        ax_rps.plot(xs, [p[1].rps for p in pts], "-o", color=color, label=label)
    ax_lat.axhline(TARGET_P99_MS, color="red", lw=0.8, ls=":", label=f"target p99 {TARGET_P99_MS:.0f} ms")
    ax_lat.set(xlabel="concurrent clients", ylabel="latency ms (solid p99, dashed p50)",
               title="Latency", xscale="log", yscale="log")
    ax_rps.set(xlabel="concurrent clients", ylabel="requests/s", title="Throughput", xscale="log")
    for ax in (ax_lat, ax_rps):
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(sorted({r.level for r in rows}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="8,32,64", help="concurrent clients, comma-separated")
    ap.add_argument("--duration", type=int, default=20, help="seconds per run (bounded)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results")
    ap.add_argument("--no-model", action="store_true", help="serve without a trained model")
    ap.add_argument("--swap-during-load", action="store_true",
                    help="train and promote a new model in the middle of each mix run")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--db", default=None,
                    help="a PostgreSQL URL (postgresql://...) of an empty database to run on "
                         "(it is seeded, trained and written to); default: a temporary SQLite file")
    ap.add_argument("--replicas", type=int, default=1,
                    help="API processes behind the port (uvicorn --workers; default 1)")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    if not 1 <= args.duration <= 600:
        ap.error("--duration must be 1..600 s")

    import locust
    workdir = Path(tempfile.mkdtemp(prefix="paperrec-bench-"))
    db, model_dir = args.db or workdir / "bench.db", workdir / "models"
    meta: dict = {"when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
                  "backend": backend_of(db), "replicas": args.replicas,
                  "locust": locust.__version__, "duration": args.duration,
                  "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                  "levels": {}, "targets": [], "notes": []}
    print(f"building the demo store in {workdir} ...", flush=True)
    meta["data"] = build_db(db, model_dir, train=not args.no_model, workdir=workdir)
    server = Server(db, model_dir, workdir, replicas=args.replicas)
    print(f"server {server.url}: {server.health}", flush=True)
    rows: list[Row] = []
    ok = True
    extra_tracebacks = 0
    try:
        for level in levels:
            summary: dict = {}
            for scenario, user_class in SCENARIOS.items():
                extra, swap, swap_out = {}, None, {}
                if scenario == "mix" and args.swap_during_load:
                    extra["PAPERREC_BENCH_DB"] = str(db)
                    swap = swap_during(db, model_dir, args.duration / 3, swap_out)
                before = count_events(db)
                print(f"  {level:>3} clients, {scenario:<5} ({args.duration} s) ...", flush=True)
                got = [to_row(level, scenario, r) for r in
                       run_locust(server, user_class, level, args.duration, workdir, extra)]
                rows += got
                if swap is not None:
                    swap.join(timeout=600)
                    note = (f"{level} clients: model {swap_out.get('swapped_to')} trained and "
                            f"promoted during the mix in {swap_out.get('swap_s')} s")
                    if "swap_error" in swap_out:
                        note = f"{level} clients: swap FAILED: {swap_out['swap_error']}"
                        ok = False
                    meta["notes"].append(note)
                by_ep = {r.endpoint: r for r in got}
                if scenario == "mix":
                    ev = by_ep.get("POST /events")
                    added = count_events(db) - before
                    acked = (ev.requests - ev.failures) * BATCH if ev else 0
                    check = integrity(db)
                    if added < acked or check != "ok":
                        ok = False
                    meta["notes"].append(
                        f"{level} clients, mix: {acked} events acknowledged, {added} new in the "
                        f"store (more: batches answered in the first second are stored but not "
                        f"in locust's statistics, which restart once all clients run), "
                        f"integrity_check {check}")
                    rec = by_ep["GET /recommendations"]
                    summary.update(mix_rps=sum(r.rps for r in got), mix_recs_p99=rec.p99)
                elif scenario == "floor":
                    summary["floor_rps"] = by_ep["GET /health"].rps
                else:
                    summary["recs_rps"] = by_ep["GET /recommendations"].rps
                    summary["recs_p99"] = by_ep["GET /recommendations"].p99
                    if level == TARGET_LEVEL and not args.no_model:
                        # Right after the recs run: the same store, so like for like.
                        extra_tracebacks += recs_without_kept_lists(
                            db, model_dir, workdir, args.duration, rows, summary, meta)
            summary["ratio"] = summary["recs_rps"] / summary["floor_rps"] if summary["floor_rps"] else 0
            meta["levels"][level] = summary
    finally:
        tracebacks = server.tracebacks() + extra_tracebacks
        final_health = None
        try:
            final_health = server.get("/health")
        except OSError:
            pass
        server.stop()

    errors = sum(r.failures for r in rows)
    meta["targets"].append(f"zero errors: {errors} failed requests, {tracebacks} server "
                           f"tracebacks -> {'PASS' if errors == 0 and tracebacks == 0 else 'MISS'}")
    ok &= errors == 0 and tracebacks == 0
    targets_ok = ok
    if TARGET_LEVEL in meta["levels"]:
        s = meta["levels"][TARGET_LEVEL]
        for name, p99 in (("mix", s["mix_recs_p99"]), ("recs only", s["recs_p99"])):
            hit = p99 < TARGET_P99_MS
            targets_ok &= hit
            meta["targets"].append(f"p99 of /recommendations ({name}) at {TARGET_LEVEL} clients "
                                   f"< {TARGET_P99_MS:.0f} ms: {p99:.0f} ms -> {'PASS' if hit else 'MISS'}")
        floor_p99 = next((r.p99 for r in rows if r.level == TARGET_LEVEL and r.scenario == "floor"), None)
        meta["notes"].append(
            f"closed loop: mean latency = clients / throughput (Little's law), so {TARGET_LEVEL} "
            f"clients at {s['recs_rps']:.0f} req/s wait {1000 * TARGET_LEVEL / max(s['recs_rps'], 1):.0f} ms "
            f"on average; even the floor (/health) has p99 {floor_p99:.0f} ms at {TARGET_LEVEL} clients here")
        hit = s["ratio"] >= TARGET_RATIO
        targets_ok &= hit
        meta["targets"].append(f"recs/floor throughput at {TARGET_LEVEL} clients >= {TARGET_RATIO}: "
                               f"{s['ratio']:.2f} -> {'PASS' if hit else 'MISS'}")
    meta["final_health"] = final_health

    args.out.mkdir(parents=True, exist_ok=True)
    table = render(rows, meta)
    (args.out / "load.md").write_text(table)
    (args.out / "load.json").write_text(json.dumps(
        {"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2, default=str))
    plotted = plot(rows, args.out / "load.png")
    print()
    print(table)
    print(f"written: {args.out / 'load.md'}, {args.out / 'load.json'}"
          + (f", {args.out / 'load.png'}" if plotted else " (no plot: matplotlib missing)"))
    shutil.rmtree(workdir, ignore_errors=True)
    if not ok:
        return 1
    return 0 if targets_ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
