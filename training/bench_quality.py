"""`make bench-quality`: the offline protocol on the three CiteULike-a splits, one table.

Reads the compressed copy under benchmarks/citeulike-a/ (so a fresh clone needs nothing
else), runs `paperrec evaluate` logic on each split for popular, content, collaborative and
hybrid, and prints NDCG@20 / recall@20 / hitrate@20 with the issue's targets. Exit code 1
when the hybrid misses a target or does not beat every single-signal strategy.

    python -m training.bench_quality [--splits warm,cold-items,sparse-p1] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from training.evaluate_cmd import STRATEGY_NAMES, evaluate_files

ROOT = Path(__file__).resolve().parent.parent / "benchmarks" / "citeulike-a"
SPLITS = ("warm", "cold-items", "sparse-p1")
# NDCG@20 the hybrid must reach, and the best peer measured with the same protocol
TARGETS = {"warm": 0.300, "cold-items": 0.350, "sparse-p1": 0.115}
PEERS = {"warm": "EASE 0.290", "cold-items": "TF-IDF profile 0.332", "sparse-p1": "TF-IDF profile 0.108"}


def split_files(split: str, root: Path = ROOT) -> dict:
    d = root / split
    cands = d / "candidates.txt.gz"
    return {"papers_path": root / "papers.jsonl.gz", "train_path": d / "train.csv.gz",
            "test_path": d / "test.csv.gz", "candidates_path": cands if cands.exists() else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.bench_quality", description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--strategies", default=",".join(STRATEGY_NAMES))
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    splits = [s for s in args.splits.split(",") if s]
    strategies = [s for s in args.strategies.split(",") if s]
    all_results = {}
    t0 = time.perf_counter()
    for split in splits:
        print(f"[{split}] fitting and evaluating {', '.join(strategies)} ...", file=sys.stderr, flush=True)
        all_results[split] = evaluate_files(**split_files(split, args.root), strategies=strategies,
                                            log=lambda m, s=split: print(f"  [{s}] {m}", file=sys.stderr, flush=True))
    header = ("split", "strategy", "ndcg@20", "recall@20", "hitrate@20", "users", "fit_s", "target")
    rows = [header]
    ok = True
    for split, res in all_results.items():
        strat = res["strategies"]
        for name, r in strat.items():
            target = ""
            if name == "hybrid" and split in TARGETS:
                singles = [v["ndcg@20"] for n, v in strat.items() if n != "hybrid"]
                beat = all(r["ndcg@20"] > s for s in singles)
                reach = r["ndcg@20"] >= TARGETS[split]
                ok &= beat and reach
                target = (f">= {TARGETS[split]:.3f} {'ok' if reach else 'MISSED'}; "
                          f"{'beats' if beat else 'does NOT beat'} singles (peer {PEERS[split]})")
            rows.append((split, name, f"{r['ndcg@20']:.4f}", f"{r['recall@20']:.4f}", f"{r['hitrate@20']:.4f}",
                         str(r["users"]), f"{r['fit_s']:.1f}", target))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i in (0, 1, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    print("\n".join(lines))
    print(f"\n(CiteULike-a, protocol of DESIGN.md; total {time.perf_counter() - t0:.0f}s)")
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
