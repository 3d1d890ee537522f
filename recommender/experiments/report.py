"""An experiment's report: attributed counts per reader, statistics, and a timeline.

The store answers two questions (which lists were served under the experiment, and which
events are attributed to them); everything here is plain Python/numpy over those rows, so
the benchmark and the API produce their numbers through the same code.
"""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone

import numpy as np
from recommender.experiments import statistics as ab_stats

from recommender.experiments import interleaving
from recommender.core.times import to_iso, to_unix
from recommender.experiments.config import Experiment
from recommender.storage import Store

DEFAULT_WINDOW_HOURS = 24.0
TIMELINE_POINTS = 60


def reader_outcomes(lists: list[dict], events: list[dict]) -> dict[str, ab_stats.ReaderOutcomes]:
    """Per variant, per reader (in order of their first list) counts of lists, items shown
    and attributed clicks, reads and upvotes."""
    per: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    arrival: dict[str, int] = {}
    for row in lists:  # ordered by served_at: readers enter in arrival order
        arrival.setdefault(row["user_id"], len(arrival))
        r = per[row["variant"]].setdefault(
            row["user_id"], dict.fromkeys(ab_stats.COUNTS, 0.0))
        r["lists"] += 1
        r["impressions"] += row["items"] or 0
    plural = {"click": "clicks", "read": "reads", "upvote": "upvotes"}
    for e in events:
        r = per.get(e["variant"], {}).get(e["user_id"])
        if r is not None and e["kind"] in plural:
            r[plural[e["kind"]]] += 1
    return {
        variant: ab_stats.ReaderOutcomes(
            *(np.array([r[c] for r in readers.values()]) for c in ab_stats.COUNTS),
            arrival=np.array([arrival[u] for u in readers], dtype=np.int64))
        for variant, readers in per.items()
    }


def interleave_credits(lists: list[dict], events: list[dict],
                       experiment: Experiment) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per reader (arrival order): clicks credited to the first and the second variant."""
    a_name, b_name = (v.name for v in experiment.variants)
    readers: dict[str, list[int]] = {}
    for row in lists:
        readers.setdefault(row["user_id"], [0, 0])
    for e in events:
        if e["kind"] != "click" or e["position"] is None or not e["sources"]:
            continue
        sources = json.loads(e["sources"]) if isinstance(e["sources"], str) else e["sources"]
        if not 0 <= e["position"] < len(sources) or e["user_id"] not in readers:
            continue
        team = sources[e["position"]]
        if team == a_name:
            readers[e["user_id"]][0] += 1
        elif team == b_name:
            readers[e["user_id"]][1] += 1
    ids = list(readers)
    credits = np.array([readers[u] for u in ids], dtype=np.int64).reshape(-1, 2)
    return ids, credits[:, 0], credits[:, 1]


def _sample_times(times: np.ndarray, points: int) -> np.ndarray:
    lo, hi = float(times.min()), float(times.max())
    if hi <= lo:
        return np.array([hi])
    return np.linspace(lo, hi, points)


def timeline(lists: list[dict], events: list[dict], experiment: Experiment,
             points: int = TIMELINE_POINTS) -> dict:
    """Cumulative rate per variant over time, sampled at evenly spaced times.

    A/B: clicks so far / items shown so far. Interleaving: clicks credited to each variant
    so far / lists served so far (both variants share every list)."""
    list_t = np.array([to_unix(r["served_at"]) for r in lists])
    ev_t = np.array([to_unix(e["ts"]) for e in events])
    all_t = np.concatenate([list_t, ev_t])
    all_t = all_t[np.isfinite(all_t)]
    if experiment.kind == "interleave":
        metric, unit = "credited clicks per list", "clicks / list"
    else:
        metric, unit = "click rate (clicks per item shown)", "clicks / item"
    out = {"metric": metric, "unit": unit, "series": []}
    if len(all_t) == 0:
        return out
    grid = _sample_times(all_t, points)
    for v in experiment.variants:
        if experiment.kind == "interleave":
            den_t = np.sort(list_t)
            den_w = np.ones(len(den_t))
            num_t = []
            for e, t in zip(events, ev_t):
                if e["kind"] != "click" or e["position"] is None or not e["sources"]:
                    continue
                sources = json.loads(e["sources"]) if isinstance(e["sources"], str) else e["sources"]
                if 0 <= e["position"] < len(sources) and sources[e["position"]] == v.name:
                    num_t.append(t)
        else:
            mask = np.array([r["variant"] == v.name for r in lists], dtype=bool)
            order = np.argsort(list_t[mask])
            den_t = list_t[mask][order]
            den_w = np.array([r["items"] or 0 for r in lists], dtype=np.float64)[mask][order]
            num_t = [t for e, t in zip(events, ev_t) if e["variant"] == v.name and e["kind"] == "click"]
        num_t = np.sort(np.asarray(num_t, dtype=np.float64))
        den_cum = np.concatenate([[0.0], np.cumsum(den_w)])
        pts = []
        for g in grid:
            den = den_cum[np.searchsorted(den_t, g, side="right")]
            if den <= 0:
                continue
            num = float(np.searchsorted(num_t, g, side="right"))
            pts.append([to_iso(g, "seconds"), num / den])
        out["series"].append({"variant": v.name, "strategy": v.strategy, "points": pts})
    return out


def build_report(store: Store, row: dict, window_hours: float = DEFAULT_WINDOW_HOURS) -> dict:
    """The full JSON report for one stored experiment row."""
    exp = Experiment.from_row(row)
    lists = store.experiment_lists(exp.name)
    events = store.experiment_events(exp.name, window_hours)
    report = {
        "name": exp.name, "kind": exp.kind, "status": row["status"],
        "description": exp.description,
        "created_at": row["created_at"], "stopped_at": row.get("stopped_at"),
        "control": exp.control, "traffic": exp.traffic,
        "variants_config": exp.to_config()["variants"],
        "attribution_window_hours": window_hours,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "totals": {"readers": len({r["user_id"] for r in lists}), "lists": len(lists),
                   "impressions": int(sum(r["items"] or 0 for r in lists)),
                   "clicks": sum(e["kind"] == "click" for e in events),
                   "reads": sum(e["kind"] == "read" for e in events),
                   "upvotes": sum(e["kind"] == "upvote" for e in events)},
    }
    if exp.kind == "interleave":
        _, ca, cb = interleave_credits(lists, events, exp)
        res = interleaving.compare(ca, cb)
        a, b = exp.variants
        report["interleave"] = {
            "a": a.name, "b": b.name, "strategies": {a.name: a.strategy, b.name: b.strategy},
            "readers": res.readers, "wins": {a.name: res.wins_a, b.name: res.wins_b},
            "ties": res.ties, "credited_clicks": {a.name: res.clicks_a, b.name: res.clicks_b},
            "share_b": res.share_b,
            "share_b_ci": list(res.share_b_ci) if res.share_b_ci else None,
            "delta": res.delta, "p_value": res.p_value,
            "mean_credited_click_diff": res.mean_diff, "paired_t_p_value": res.paired_p_value,
            "significant": res.p_value is not None and res.p_value < ab_stats.ALPHA,
            "preferred": {"a": a.name, "b": b.name}.get(res.preferred or ""),
            "test": "two-sided exact sign test on per-reader wins (ties dropped)",
        }
    else:
        outcomes, volume = ab_stats.cap_volume(reader_outcomes(lists, events))
        report["ab"] = ab_stats.ab_report(outcomes, exp.control,
                                          {v.name: v.weight for v in exp.variants})
        report["ab"]["volume_cap"] = volume
    report["timeline"] = timeline(lists, events, exp)
    return report
