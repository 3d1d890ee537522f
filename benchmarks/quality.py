"""`make bench-quality`: the offline protocol on every split we have, one table.

CiteULike-a (warm, cold-items, sparse-p1) is read from the compressed copy under
benchmarks/citeulike-a/, so a fresh clone needs nothing else. MovieLens-small (warm,
user-temporal: real reader histories spanning twenty years) is read from
../shared/data/movielens-small/, since its licence forbids a copy here; where that folder is
absent those splits are skipped with a line saying so. Each split runs the `paperrec
evaluate` logic for popular, content, collaborative and hybrid, and the table prints NDCG@20
/ recall@20 / hitrate@20, the best peer measured with the same protocol, the hybrid's ratio
to it and the target. Exit code 1 when the hybrid misses a target or does not beat every
single-signal strategy. Nothing is set per data set: the same `HybridConfig()` fits them all.

    python -m benchmarks.quality [--splits warm,cold-items,...] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from training.evaluate_cmd import STRATEGY_NAMES, evaluate_files

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / "benchmarks" / "citeulike-a"
MOVIELENS = REPO.parent / "shared" / "data" / "movielens-small"
# split -> (data set, best peer's name, its NDCG@20, the hybrid's target)
SPLITS = {
    "warm": ("citeulike-a", "EASE", 0.290, 0.319),
    "cold-items": ("citeulike-a", "TF-IDF profile", 0.332, 0.365),
    "sparse-p1": ("citeulike-a", "TF-IDF profile", 0.108, 0.119),
    "ml-warm": ("movielens-small", "EASE", 0.2526, 0.278),
    "ml-user-temporal": ("movielens-small", "EASE", 0.1180, 0.130),
}


def split_files(split: str, root: Path = ROOT, movielens: Path = MOVIELENS) -> dict | None:
    """The evaluate arguments of a split, or None when its data is not on this machine."""
    if split.startswith("ml-"):
        d = movielens / "splits" / split[3:]
        if not (d / "train.csv").exists():
            return None
        return {"papers_path": movielens / "papers.jsonl", "train_path": d / "train.csv",
                "test_path": d / "test.csv", "candidates_path": None}
    d = root / split
    cands = d / "candidates.txt.gz"
    return {"papers_path": root / "papers.jsonl.gz", "train_path": d / "train.csv.gz",
            "test_path": d / "test.csv.gz", "candidates_path": cands if cands.exists() else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", default=",".join(SPLITS))
    ap.add_argument("--strategies", default=",".join(STRATEGY_NAMES))
    ap.add_argument("--root", type=Path, default=ROOT, help="the CiteULike-a copy")
    ap.add_argument("--movielens", type=Path, default=MOVIELENS, help="the movielens-small folder")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    splits = [s for s in args.splits.split(",") if s]
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        print(f"error: unknown split {','.join(unknown)}; choose from {','.join(SPLITS)}", file=sys.stderr)
        return 2
    strategies = [s for s in args.strategies.split(",") if s]
    all_results = {}
    t0 = time.perf_counter()
    for split in splits:
        files = split_files(split, args.root, args.movielens)
        if files is None:
            print(f"[{split}] skipped: {args.movielens} is not on this machine (its licence forbids a copy "
                  "in the repository)", flush=True)
            continue
        print(f"[{split}] fitting and evaluating {', '.join(strategies)} ...", file=sys.stderr, flush=True)
        all_results[split] = evaluate_files(**files, strategies=strategies,
                                            log=lambda m, s=split: print(f"  [{s}] {m}", file=sys.stderr, flush=True))
    header = ("split", "strategy", "ndcg@20", "recall@20", "hitrate@20", "users", "fit_s", "best peer", "ratio",
              "target")
    rows = [header]
    ok = True
    for split, res in all_results.items():
        data, peer, peer_ndcg, target = SPLITS[split]
        strat = res["strategies"]
        for name, r in strat.items():
            cells = ["", "", ""]
            if name == "hybrid":
                singles = [v["ndcg@20"] for n, v in strat.items() if n != "hybrid"]
                beat = all(r["ndcg@20"] > s for s in singles)
                reach = r["ndcg@20"] >= target
                ok &= beat and reach
                cells = [f"{peer} {peer_ndcg:.4f}", f"{r['ndcg@20'] / peer_ndcg:.2f}x",
                         f">= {target:.3f} {'ok' if reach else 'MISSED'}; "
                         f"{'beats' if beat else 'does NOT beat'} singles"]
            rows.append((split, name, f"{r['ndcg@20']:.4f}", f"{r['recall@20']:.4f}", f"{r['hitrate@20']:.4f}",
                         str(r["users"]), f"{r['fit_s']:.1f}", *cells))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    left = (0, 1, 7, 9)
    lines = ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    print("\n".join(lines))
    print(f"\n(CiteULike-a and MovieLens-small, protocol of DESIGN.md; total {time.perf_counter() - t0:.0f}s)")
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
