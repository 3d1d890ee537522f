"""Generate the SYNTHETIC demo event log `seeds/demo_events.csv` (and `seeds/DEMO_EVENTS.md`).

The shipped catalog has papers but no readers, so a fresh clone would only ever show plain
trending. This log gives a demo something to personalise: six readers with one clear taste
each, and a crowd with mixed tastes plus a few papers that are "hot" in the last days, so
trending has signal. None of it is real behaviour; every id starts with `demo-`.

Everything is derived from `seeds/papers.jsonl` by keyword matching and a fixed seed, so
`python -m training.demo_events` rewrites the same bytes (a test checks that).
"""
from __future__ import annotations

import argparse
import bisect
import csv
import io
import json
import math
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PAPERS = REPO / "seeds" / "papers.jsonl"
DEFAULT_OUT = REPO / "seeds" / "demo_events.csv"
DEFAULT_DOC = REPO / "seeds" / "DEMO_EVENTS.md"

SEED = 20260421
END = datetime(2026, 4, 21, tzinfo=timezone.utc)  # the seed page's date
DAYS = 14
N_CROWD = 40
HOT_PAPERS = 8  # crowd favourites of the last HOT_DAYS: what "trending" should surface
HOT_DAYS = 3

# Topic -> keyword regexes (word-bounded, case-insensitive); chosen so each topic has enough
# papers in the catalog. The graphs topic is the one most of the seed page belongs to.
TOPICS: dict[str, list[str]] = {
    "diffusion": [r"diffusion", r"text-to-image", r"text-to-video", r"image generation",
                  r"video generation", r"image editing"],
    "agents": [r"agents?", r"agentic", r"tool use", r"tool-use", r"planning", r"web navigation"],
    # Bare "manipulation" would also catch image manipulation, hence the qualified forms.
    "robotics": [r"robots?", r"robotics?", r"mobile manipulation", r"bimanual", r"dexterous",
                 r"embodied", r"locomotion", r"grasp\w*", r"teleoperation"],
    "speech": [r"speech", r"audio", r"music", r"text-to-speech", r"tts", r"voice", r"asr"],
    "3d": [r"3d", r"nerf", r"gaussian splatting", r"mesh(?:es)?", r"point clouds?", r"novel view"],
    "graphs": [r"graphs?", r"gnns?", r"graph transformers?", r"geometric deep learning",
               r"equivariant", r"message-passing"],
}
TOPIC_RE = {t: re.compile(r"\b(?:" + "|".join(kws) + r")\b", re.IGNORECASE)
            for t, kws in TOPICS.items()}
# A title hit counts like three abstract hits: a paper *about* 3D says so in its title.
MIN_SCORE = 3


def topic_scores(paper: dict) -> dict[str, int]:
    return {t: 3 * len(rx.findall(paper["title"])) + len(rx.findall(paper.get("abstract") or ""))
            for t, rx in TOPIC_RE.items()}


def primary_topic(paper: dict) -> str | None:
    """The one topic a paper is clearly about, or None (too weak, or a tie between topics).
    Demo readers only read papers whose primary topic is theirs, so their tastes don't overlap."""
    scores = topic_scores(paper)
    best = max(scores.values())
    top = [t for t, s in scores.items() if s == best]
    return top[0] if best >= MIN_SCORE and len(top) == 1 else None


# Only `random()` is used: Python guarantees its output for a seed across versions, unlike
# choice/sample/shuffle, and the committed file must regenerate byte for byte.
def _index(rng: random.Random, n: int) -> int:
    return min(int(rng.random() * n), n - 1)


def _sample(rng: random.Random, items: list, k: int) -> list:
    pool = list(items)
    return [pool.pop(_index(rng, len(pool))) for _ in range(min(k, len(pool)))]


def _weighted(rng: random.Random, items: list, cum: list[float]):
    return items[min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(items) - 1)]


def _session(rng: random.Random, user: str, paper_id: str, start: datetime,
             p_read: float, p_upvote: float) -> list[tuple]:
    """A reader opens a paper from the list, maybe reads it, and maybe upvotes after reading."""
    t = start
    rows = [(user, paper_id, "click", t)]
    if rng.random() < p_read:
        t += timedelta(seconds=30 + _index(rng, 600))
        rows.append((user, paper_id, "read", t))
        if rng.random() < p_upvote:
            t += timedelta(seconds=60 + _index(rng, 1800))
            rows.append((user, paper_id, "upvote", t))
    return rows


def _when(rng: random.Random, days: int) -> datetime:
    """A second within the last `days` days, leaving an hour so a session ends before END."""
    span = days * 86400 - 3600
    return END - timedelta(days=days) + timedelta(seconds=_index(rng, span))


def generate(papers: list[dict], seed: int = SEED) -> tuple[list[tuple], dict]:
    """Return (rows sorted by ts, summary for the README)."""
    rng = random.Random(seed)
    papers = sorted(papers, key=lambda p: p["paper_id"])
    pools = {t: [] for t in TOPICS}
    for p in papers:
        if (t := primary_topic(p)) is not None:
            pools[t].append(p["paper_id"])
    rows: list[tuple] = []
    summary = {"pools": {t: len(ids) for t, ids in pools.items()}, "demo": {}}

    for topic, pool in pools.items():
        user, target, events = f"demo-{topic}", 10 + _index(rng, 9), []
        for pid in _sample(rng, pool, len(pool)):  # sessions until 10-18 (+2) events
            if len(events) >= target:
                break
            events += _session(rng, user, pid, _when(rng, DAYS), p_read=0.8, p_upvote=0.45)
        rows += events
        summary["demo"][user] = topic

    # The crowd: two favourite topics each, plus a popularity-weighted look at the rest of the
    # catalog (prior upvotes, damped), plus the week's hot papers near the end of the window.
    ids = [p["paper_id"] for p in papers]
    cum, total = [], 0.0
    for p in papers:
        total += 1.0 + math.log1p(p.get("upvotes") or 0)
        cum.append(total)
    hot = sorted(_sample(rng, [pid for pool in pools.values() for pid in pool], HOT_PAPERS))
    topics = list(TOPICS)
    for i in range(1, N_CROWD + 1):
        user = f"demo-crowd-{i:02d}"
        likes = _sample(rng, topics, 2)
        chosen: set[str] = set()
        for _ in range(4 + _index(rng, 7)):
            if rng.random() < 0.6:
                pool = pools[likes[_index(rng, 2)]]
                chosen.add(pool[_index(rng, len(pool))])
            else:
                chosen.add(_weighted(rng, ids, cum))
        for pid in sorted(chosen):
            rows += _session(rng, user, pid, _when(rng, DAYS), p_read=0.6, p_upvote=0.2)
        for pid in hot:
            if rng.random() < 0.4 and pid not in chosen:
                rows += _session(rng, user, pid, _when(rng, HOT_DAYS), p_read=0.7, p_upvote=0.35)
    summary["hot"] = hot
    rows.sort(key=lambda r: (r[3], r[0], r[1], r[2]))
    return rows, summary


def to_csv(rows: list[tuple]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["user_id", "paper_id", "kind", "ts"])
    for user, pid, kind, ts in rows:
        w.writerow([user, pid, kind, ts.strftime("%Y-%m-%dT%H:%M:%SZ")])
    return buf.getvalue()


def to_markdown(rows: list[tuple], summary: dict) -> str:
    per_user: dict[str, int] = {}
    for r in rows:
        per_user[r[0]] = per_user.get(r[0], 0) + 1
    lines = [
        "# demo_events.csv — SYNTHETIC event log",
        "",
        "**Not real user behaviour.** `demo_events.csv` is generated by",
        "`python -m training.demo_events` from `seeds/papers.jsonl` so that a fresh clone has",
        "readers to personalise for. Every user id starts with `demo-`.",
        "",
        "How it is made (deterministic, seed %d):" % SEED,
        "- Each paper gets a primary topic by keyword matching on title + abstract (a title hit",
        "  counts 3, an abstract hit 1; at least %d, no ties); keywords are in" % MIN_SCORE,
        "  `training/demo_events.py:TOPICS`.",
        "- One demo reader per topic opens papers of that topic only until it has 10-20 events;",
        "  each click is followed by a read with probability 0.8 and, after a read, an upvote",
        "  with probability 0.45.",
        "- %d crowd readers (`demo-crowd-01`…) each like two random topics: 4-10 papers drawn" % N_CROWD,
        "  60% from those topics and 40% from the whole catalog weighted by 1 + log1p(upvotes).",
        "  They also engage (p=0.4 each) with %d hot papers in the last %d days." % (HOT_PAPERS, HOT_DAYS),
        "- Timestamps are UTC, spread over the %d days before %s." % (DAYS, END.date().isoformat()),
        "- Columns: `user_id,paper_id,kind,ts`; kind is click, read or upvote.",
        "",
        "| reader | topic | papers in topic | events |",
        "|---|---|---|---|",
    ]
    for user, topic in summary["demo"].items():
        lines.append(f"| `{user}` | {topic} | {summary['pools'][topic]} | {per_user.get(user, 0)} |")
    crowd = sum(n for u, n in per_user.items() if u.startswith("demo-crowd-"))
    lines += [
        f"| `demo-crowd-01`…`demo-crowd-{N_CROWD:02d}` | mixed | | {crowd} |",
        "",
        f"Total: {len(rows)} events. Hot papers: " + ", ".join(f"`{p}`" for p in summary["hot"]) + ".",
        "",
    ]
    return "\n".join(lines)


def load_papers(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def build_demo_events(papers: Path = DEFAULT_PAPERS, out: Path = DEFAULT_OUT,
                      doc: Path | None = DEFAULT_DOC) -> int:
    rows, summary = generate(load_papers(papers))
    Path(out).write_text(to_csv(rows), encoding="utf-8", newline="")
    if doc is not None:
        Path(doc).write_text(to_markdown(rows, summary), encoding="utf-8", newline="")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=Path, default=DEFAULT_PAPERS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    args = parser.parse_args(argv)
    n = build_demo_events(args.papers, args.out, args.doc)
    print(f"wrote {n} synthetic events to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
