"""`paperrec evaluate`: the offline protocol of DESIGN.md on any data in the generic format.

    paperrec evaluate --papers P.jsonl --train T.csv --test S.csv [--candidates C.txt]
                      [--strategies popular,content,collaborative,hybrid] [--json OUT]

Each strategy is fit on the train file alone (the hybrid picks its blend on a validation
slice carved from it) and scored on the test file: for every reader with a test item, the
candidates (all papers without --candidates) minus the reader's train papers are ranked and
the top k kept. Prints a table; --json writes
{"strategies": {name: {"recall@20", "ndcg@20", "hitrate@20", "users", "fit_s"}}, ...}.
Files may be gzipped (.gz).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recommender.model import STRATEGIES as STRATEGY_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="offline evaluation of ranking strategies on a split",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--papers", type=Path, required=True, help="papers.jsonl (paper_id, title, abstract, ...)")
    p.add_argument("--train", type=Path, required=True, help="train interactions csv (user_id,paper_id,kind,ts)")
    p.add_argument("--test", type=Path, required=True, help="test interactions csv")
    p.add_argument("--candidates", type=Path, default=None, help="rank only among these paper ids (one a line)")
    p.add_argument("--strategies", default=",".join(STRATEGY_NAMES),
                   help=f"comma-separated, some of {','.join(STRATEGY_NAMES)} (default: all)")
    p.add_argument("-k", type=int, default=20, help="list length (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--quiet", action="store_true", help="no per-strategy progress lines")
    p.set_defaults(func=run)


def evaluate_files(papers_path, train_path, test_path, candidates_path=None, strategies=STRATEGY_NAMES,
                   k: int = 20, seed: int = 0, log=None) -> dict:
    from recommender.offline.dataset import DataFileError, load_candidates, load_interactions, load_papers
    from recommender.offline.evaluation import evaluate_split
    from recommender.model.hybrid import HybridConfig

    papers = load_papers(papers_path)
    if not len(papers):
        raise DataFileError(papers_path, None, "no paper in the file")
    users: dict[str, int] = {}
    train = load_interactions(train_path, papers, users)
    if not len(train):
        raise DataFileError(train_path, None, f"no event with a paper_id of the papers file "
                                              f"({train.dropped} row(s), none with one)")
    test = load_interactions(test_path, papers, users)
    if not len(test):
        raise DataFileError(test_path, None, f"no event with a paper_id of the papers file "
                                             f"({test.dropped} row(s), none with one): nothing to score")
    cands = load_candidates(candidates_path, papers) if candidates_path else None
    results = evaluate_split(papers, train, test, cands, tuple(strategies), k=k,
                             config=HybridConfig(seed=seed), log=log)
    keys = (f"recall@{k}", f"ndcg@{k}", f"hitrate@{k}", "users", "fit_s")
    out = {"strategies": {n: {key: r[key] for key in keys} for n, r in results.items()},
           "data": {"papers": len(papers), "train_events": len(train), "test_events": len(test),
                    "dropped_events": train.dropped + test.dropped,
                    "candidates": None if cands is None else int(len(cands))},
           "k": k}
    if "hybrid" in results:
        out["hybrid_blend"] = results["hybrid"].get("blend")
        out["hybrid_validation"] = results["hybrid"].get("validation")
        out["hybrid_tuning"] = results["hybrid"].get("tuning")
    return out


def format_table(results: dict, k: int = 20) -> str:
    rows = [("strategy", f"ndcg@{k}", f"recall@{k}", f"hitrate@{k}", "users", "fit_s")]
    for name, r in results["strategies"].items():
        rows.append((name, f"{r[f'ndcg@{k}']:.4f}", f"{r[f'recall@{k}']:.4f}", f"{r[f'hitrate@{k}']:.4f}",
                     str(r["users"]), f"{r['fit_s']:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in strategies if s not in STRATEGY_NAMES]
    if bad or not strategies:
        print(f"error: unknown strategy {','.join(bad) or '(none)'}; choose from {','.join(STRATEGY_NAMES)}",
              file=sys.stderr)
        return 2
    for label, path in (("papers", args.papers), ("train", args.train), ("test", args.test),
                        ("candidates", args.candidates)):
        if path is not None and not path.exists():
            print(f"error: {label} file {path} does not exist", file=sys.stderr)
            return 2
    if args.k < 1:
        print(f"error: -k must be at least 1; got {args.k}", file=sys.stderr)
        return 2
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    from recommender.offline.dataset import DataFileError
    try:
        results = evaluate_files(args.papers, args.train, args.test, args.candidates, strategies,
                                 k=args.k, seed=args.seed, log=log)
    except DataFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results, args.k))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0
