"""`paperrec simulate`: synthetic readers with known tastes play against the service.

    paperrec simulate --compare popular,content                 # A/B, app in this process
    paperrec simulate --compare popular,content --kind interleave
    paperrec simulate --url http://127.0.0.1:8000 --compare popular,content

Lists come from `GET /recommendations` and what the readers did goes back through
`POST /events`, either to the app in this process (its test client, on --db) or to a live
server on this machine. With --compare an experiment is created first (the first strategy
is the control); without it the readers simply meet whatever experiments are running.
The report of the experiment is printed at the end."""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import sys
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

import numpy as np

from recommender.core.times import to_iso
from training.simulator import (ReaderModel, Readers, Served, TasteSpace, default_start,
                                   new_prefix, simulate)


class HttpBackend:
    """The HTTP API: GET /recommendations, POST /events (batches of up to 1,000).

    `client` is an httpx.Client with base_url set: a live server on 127.0.0.1, or
    fastapi's TestClient around the app in this process."""

    BATCH = 1000

    def __init__(self, client, api_key: str):
        self.client = client
        self.headers = {"X-API-Key": api_key}

    def recommend(self, user_id: str, k: int, as_of: float) -> Served:
        as_of_iso = to_iso(as_of)
        r = self.client.get("/recommendations",
                            params={"user_id": user_id, "k": k, "as_of": as_of_iso})
        r.raise_for_status()
        j = r.json()
        return Served(j["request_id"], [i["paper_id"] for i in j["items"]], j.get("experiment"),
                      j.get("variant"), j["strategy"])

    def log_events(self, events: list[dict]) -> None:
        for start in range(0, len(events), self.BATCH):
            r = self.client.post("/events", json=events[start:start + self.BATCH],
                                 headers=self.headers)
            r.raise_for_status()


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="play synthetic readers against the service",
                       description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--url", help="a live server on this machine (loopback only); "
                                 "default: the app in this process on --db")
    p.add_argument("--db", default=None, help="SQLite file or postgresql:// URL for the "
                   "in-process app (default: $PAPERREC_DB)")
    p.add_argument("--api-key", default=None,
                   help="X-API-Key for --url (default: first of $PAPERREC_API_KEYS)")
    p.add_argument("--compare", metavar="CONTROL,OTHER",
                   help="create an experiment of these two strategies first")
    p.add_argument("--kind", choices=("ab", "interleave"), default="ab")
    p.add_argument("--name", help="experiment name (default: sim-KIND-TIMESTAMP)")
    p.add_argument("--readers", type=int, default=300)
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--k", type=int, default=10, help="list length")
    p.add_argument("--slots", type=int, default=8, help="visit times per day")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop", action="store_true", help="stop the experiment at the end")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=run)


def _summary(report: dict) -> str:
    t = report["totals"]
    lines = [f"experiment {report['name']} ({report['kind']}): {t['readers']} readers, "
             f"{t['lists']} lists, {t['clicks']} clicks, {t['upvotes']} upvotes"]
    if "ab" in report:
        for v in report["ab"]["variants"]:
            line = (f"  {v['name']:<16} readers {v['readers']:>6}  click rate "
                    f"{(v['click_rate'] or 0):.4f}  clicks/reader {(v['clicks_per_reader'] or 0):.3f}")
            d = (v["vs_control"] or {}).get("click_rate")
            if d and d["p_value"] is not None:
                line += (f"  vs control {d['diff']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
                         f" p={d['p_value']:.3g}")
            lines.append(line)
        srm = report["ab"]["srm"]
        lines.append(f"  sample-ratio check p={srm['p_value']}"
                     + ("  MISMATCH" if srm["mismatch"] else ""))
    else:
        il = report["interleave"]
        verdict = (f"{il['preferred']} preferred" if il["significant"]
                   else "no significant preference (yet)")
        lines.append(f"  wins {il['wins']}  ties {il['ties']}  sign test p={il['p_value']}"
                     f"  -> {verdict}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.url:
        if not is_loopback(args.url):
            print("error: --url must be a server on this machine (127.0.0.1, localhost, ::1)",
                  file=sys.stderr)
            return 2
        import httpx
        key = args.api_key or os.environ.get("PAPERREC_API_KEYS", "").split(",")[0].strip()
        if not key:
            print("error: an API key is needed to log events (--api-key or PAPERREC_API_KEYS)",
                  file=sys.stderr)
            return 2
        client_cm = httpx.Client(base_url=args.url.rstrip("/"), timeout=60.0)
    else:
        from fastapi.testclient import TestClient

        from service.app import create_app
        from recommender.core.settings import Settings
        key = secrets.token_hex(16)
        client_cm = TestClient(create_app(Settings(db=args.db or Settings().db, api_keys=key)))
    backend_started = time.time()
    with client_cm as client:
        name = None
        if args.compare:
            strategies = [s.strip() for s in args.compare.split(",")]
            if len(strategies) != 2:
                print("error: --compare takes two strategies, e.g. popular,content", file=sys.stderr)
                return 2
            name = args.name or f"sim-{args.kind}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
            r = client.post("/experiments", headers={"X-API-Key": key}, json={
                "name": name, "kind": args.kind, "control": strategies[0],
                "description": f"simulated readers ({args.readers}, {args.days} days, seed {args.seed})",
                "variants": [{"name": s, "strategy": s, "weight": 1} for s in strategies]})
            if r.status_code != 201:
                print(f"error: creating the experiment: {r.status_code} {r.text}", file=sys.stderr)
                return 1
        elif args.name:
            name = args.name
        space = TasteSpace.from_jsonl()
        rng = np.random.default_rng(args.seed)
        model = ReaderModel()
        readers = Readers.sample(args.readers, space, rng, model, prefix=new_prefix())

        def progress(day, log):
            print(f"day {day + 1}/{args.days}: {log.lists} lists, {log.clicks} clicks, "
                  f"{log.upvotes} upvotes", file=sys.stderr, flush=True)

        log = simulate(HttpBackend(client, key), readers, space, args.days, args.k,
                       default_start(args.days), rng, model, slots_per_day=args.slots,
                       progress=progress)
        print(f"simulated {len(readers)} readers over {args.days} days: {log.lists} lists, "
              f"{log.clicks} clicks, {log.reads} reads, {log.upvotes} upvotes "
              f"({time.time() - backend_started:.1f}s)")
        if name:
            if args.stop:
                client.post(f"/experiments/{name}/stop", headers={"X-API-Key": key})
            r = client.get(f"/experiments/{name}/report")
            if r.status_code == 200:
                print(json.dumps(r.json(), indent=2) if args.json else _summary(r.json()))
                where = args.url.rstrip("/") if args.url else "(the service)"
                print(f"report page: {where}/experiments/{name}")
    return 0
