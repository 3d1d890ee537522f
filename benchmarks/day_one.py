"""`make bench-day-one`: papers published after the nightly fit, ranked on the day they arrive.

The service fits its model at night; a paper published during the day reaches it through
`HybridModel.add_papers` (the serving slot's `align`): its words give it a TF-IDF profile
and a dense vector in the fit's vocabulary, ALS folds its words in through the fitted word
rows, it gets content neighbours (through which the item graph's and EASE's scores reach
it) and a popularity predicted from its text. Until the next fit, nothing else learns of
it. This benchmark measures what that costs against a fit that had the paper in its
catalog from the start, with the protocol of DESIGN.md on the same test events.

For each split, a share (`--share`, half by default, drawn at random) of the papers nobody
reads in its train file is left out of one fit and added after it; a second fit has them
in its catalog, as `make bench-quality` does. Why not all of them: the nightly fit's
catalog holds papers nobody has read yet (yesterday's), and a fit that has none learns its
new-paper offset only from read papers it held out, so papers added after it are pushed
up as if every one of them would be read (MovieLens warm with all 3,455 never-watched
films added after the fit: the hybrid 0.2748 -> 0.2693 while `collaborative` rose to
0.2710). One
hybrid fit per way (seed `--seed`) serves every strategy in the table. Printed per
strategy: NDCG@20 both ways and their ratio, and recall@20 on the test events whose paper
is one of the new ones (the new papers' own share of the test). Exit code 1 when the
hybrid, with its papers added after the fit, does not beat each single signal so added.

    python -m benchmarks.day_one [--splits cold-items,ml-warm,...] [--share 0.5] [--seed 0] [--json OUT]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from benchmarks.quality import MOVIELENS, ROOT, SPLITS, available
from benchmarks.tables import pick, report
from recommender.model.hybrid import HybridConfig, HybridModel
from recommender.offline.dataset import Interactions, Papers, load_candidates, load_interactions, load_papers
from recommender.offline.evaluation import evaluate_model, fit_model

STRATEGIES = ("hybrid", "collaborative", "content")
DEFAULT_SPLITS = ("cold-items", "ml-warm", "ml-user-temporal")


@dataclass
class LeftOut:
    """A split with some of the papers nobody reads in train moved to the end of the catalog:
    the fit sees `base`, `new` (indices into the full catalog, ascending) arrive after it, and
    the events and candidates are renumbered so that index i is the same paper in the fit
    and in the catalog the new papers extend."""
    base: Papers
    new: np.ndarray
    order: np.ndarray  # the full catalog's indices in their new order: base papers, then new ones
    train: Interactions
    test: Interactions
    candidates: np.ndarray | None


def leave_out_unread(papers: Papers, train: Interactions, test: Interactions,
                     candidates: np.ndarray | None, share: float = 1.0, seed: int = 0) -> LeftOut:
    """`share` of the papers nobody reads in `train`, drawn at random (`seed`), arrive after
    the fit."""
    unread = np.ones(len(papers), bool)
    unread[train.items] = False
    unread = np.nonzero(unread)[0]
    rng = np.random.default_rng(seed)
    new = np.sort(rng.choice(unread, int(round(share * len(unread))), replace=False))
    old = np.setdiff1d(np.arange(len(papers)), new)
    order = np.r_[old, new]
    position = np.empty_like(order)
    position[order] = np.arange(len(order))

    def renumbered(events: Interactions) -> Interactions:
        return replace(events, items=position[events.items].astype(np.int32))

    base = Papers([papers.ids[i] for i in old], [papers.titles[i] for i in old],
                  [papers.abstracts[i] for i in old], papers.published_ts[old], papers.upvotes[old])
    return LeftOut(base, new, order, renumbered(train), renumbered(test),
                   None if candidates is None else position[np.asarray(candidates)])


def new_paper_rows(papers: Papers, new: np.ndarray) -> list[tuple]:
    """`add_papers`' rows for the new papers, as the serving slot builds them."""
    return [(papers.titles[i], papers.abstracts[i], float(papers.upvotes[i]), float(papers.published_ts[i]))
            for i in new]


def on_papers(events: Interactions, papers: np.ndarray) -> Interactions:
    """The events whose paper is one of `papers` (same readers' numbering)."""
    keep = np.isin(events.items, papers)
    return replace(events, users=events.users[keep], items=events.items[keep], kinds=events.kinds[keep],
                   ts=events.ts[keep])


def scored(model: HybridModel, train: Interactions, test: Interactions, candidates, new: np.ndarray,
           strategies) -> dict:
    test_new = on_papers(test, new)
    out = {}
    for name in strategies:
        r = evaluate_model(model, name, train, test, candidates)
        on_new = evaluate_model(model, name, train, test_new, candidates) if len(test_new) else None
        out[name] = {"ndcg@20": r["ndcg@20"], "recall@20": r["recall@20"], "users": r["users"],
                     "new_recall@20": None if on_new is None else on_new["recall@20"]}
    return out


def day_one(files: dict, seed: int = 0, share: float = 0.5, strategies=STRATEGIES, log=print) -> dict:
    papers = load_papers(files["papers_path"])
    users: dict[str, int] = {}
    train = load_interactions(files["train_path"], papers, users)
    test = load_interactions(files["test_path"], papers, users)
    candidates = load_candidates(files["candidates_path"], papers) if files.get("candidates_path") else None
    split = leave_out_unread(papers, train, test, candidates, share, seed)
    config = HybridConfig(seed=seed)
    t = time.perf_counter()
    catalog = fit_model(papers, train, strategies=("hybrid",), config=config)
    catalog_s = time.perf_counter() - t
    log(f"in the catalog: fit {catalog_s:.1f}s")
    t = time.perf_counter()
    later = fit_model(split.base, split.train, strategies=("hybrid",), config=config)
    later_s = time.perf_counter() - t
    t = time.perf_counter()
    later.add_papers(new_paper_rows(papers, split.new))
    add_s = time.perf_counter() - t
    log(f"added after: fit {later_s:.1f}s on {len(split.base)} papers, {len(split.new)} added in {add_s:.1f}s")
    new_after = np.arange(len(split.base), len(papers))
    return {"papers": len(papers), "new_papers": int(len(split.new)), "share": share,
            "test_events_on_new": int(np.isin(test.items, split.new).sum()), "test_events": len(test),
            "fit_s": {"catalog": round(catalog_s, 1), "added": round(later_s, 1)}, "add_s": round(add_s, 2),
            "catalog": scored(catalog, train, test, candidates, split.new, strategies),
            "added": scored(later, split.train, split.test, split.candidates, new_after, strategies)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.day_one", description=__doc__.split("\n\n")[0])
    ap.add_argument("--splits", default=",".join(DEFAULT_SPLITS))
    ap.add_argument("--root", type=Path, default=ROOT, help="the CiteULike-a copy")
    ap.add_argument("--movielens", type=Path, default=MOVIELENS, help="the movielens-small folder")
    ap.add_argument("--share", type=float, default=0.5,
                    help="the share of the papers nobody reads in train that arrive after the fit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    splits = pick(args.splits, SPLITS, "split")
    if splits is None:
        return 2
    if not 0 < args.share <= 1:
        print(f"error: --share must be in (0, 1], got {args.share}", file=sys.stderr)
        return 2
    results = {}
    t0 = time.perf_counter()
    for split, files in available(splits, args.root, args.movielens):
        results[split] = day_one(files, args.seed, args.share,
                                 log=lambda m, s=split: print(f"  [{s}] {m}", file=sys.stderr, flush=True))
    rows = [("split", "new papers", "strategy", "ndcg@20 in the catalog", "added after the fit", "ratio",
             "recall@20 on new papers (catalog / added)", "verdict")]
    ok = True
    for split, res in results.items():
        added = res["added"]
        singles = [r["ndcg@20"] for n, r in added.items() if n != "hybrid"]
        for name in STRATEGIES:
            a, b = res["catalog"][name], added[name]
            verdict = ""
            if name == "hybrid":
                beats = all(b["ndcg@20"] > s for s in singles)
                ok &= beats
                verdict = "beats singles, added" if beats else "does NOT beat singles, added"
            recall = ("-" if a["new_recall@20"] is None
                      else f"{a['new_recall@20']:.4f} / {b['new_recall@20']:.4f}")
            rows.append((split if name == "hybrid" else "",
                         f"{res['new_papers']} of {res['papers']}" if name == "hybrid" else "", name,
                         f"{a['ndcg@20']:.4f}", f"{b['ndcg@20']:.4f}",
                         f"{b['ndcg@20'] / a['ndcg@20']:.3f}" if a["ndcg@20"] else "-", recall, verdict))
    return report(rows, (0, 1, 2, 7),
                  f"NDCG@20, protocol of DESIGN.md; {args.share:g} of the papers nobody reads in train left out of "
                  f"the fit and added after it, against a fit with them in its catalog; seed {args.seed}; "
                  f"total {time.perf_counter() - t0:.0f}s", results, args.json, ok)


if __name__ == "__main__":
    sys.exit(main())
