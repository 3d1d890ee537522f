"""Build the catalog the project ships with (`seeds/papers.jsonl`) from the two raw sources.

A fresh clone must run with real papers and no network, so the raw dumps in `../shared` are
turned once into the generic `papers.jsonl` format and the result is committed. Rebuild with
`python -m training.seed_catalog [--out PATH]`; a test checks the committed file still equals a
fresh parse, so a parser change that alters the catalog cannot slip in unnoticed.

Record schema (keys in this order, one JSON object a line, sorted by `paper_id`):
  paper_id, title, abstract, published_at ("YYYY-MM-DD" or null), authors (list of str),
  upvotes (int or null), source, then exactly one of
  - url           (hf-daily-papers records: the arXiv abstract page)
  - author_count  (seed-page records that show "• N authors": the names are not on the page,
                   so `authors` is [] and the count is kept rather than invented)
  - organization  (seed-page records that show an organisation instead of authors)
Whitespace in titles, abstracts and author names is collapsed to single spaces: the arXiv
text carries hard line breaks that would otherwise leak into the UI and the tokenizer.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Iterable, Mapping

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_SEED_PAGE = SHARED / "seeds" / "000_805c4a5a2e780c82.txt"
DEFAULT_HF_JSON = SHARED / "data" / "hf-daily-papers" / "papers_2024-04-08.json"
DEFAULT_OUT = REPO / "seeds" / "papers.jsonl"

# The dump never states its year: its header says only "Apr 21". The page was captured on
# 2026-04-21, and the site omits the year for dates in the current year.
PAGE_YEAR = 2026
SEED_PAGE_SOURCE = "seed-page"
HF_SOURCE = "hf-daily-papers-2024-04-08"

SEPARATOR = "·"  # the page puts this alone on the line between byline and date
_MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
_DATE_LINE = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2})(?:, (?P<year>\d{4}))?(?: (?P<upvotes>\d+))?")
_AUTHOR_COUNT = re.compile(r"•\s*(?P<n>\d+)\s+authors?")


def normalise_ws(text: str) -> str:
    """Collapse every whitespace run to one space (arXiv text is hard-wrapped at ~80 columns)."""
    return " ".join(text.split())


def seed_paper_id(title: str) -> str:
    """The page shows no arXiv id, so the id is derived from the title: stable across rebuilds."""
    return "seed-" + hashlib.sha1(normalise_ws(title).encode("utf-8")).hexdigest()[:12]


def parse_date_line(line: str, year: int = PAGE_YEAR) -> tuple[date, int | None] | None:
    """'Dec 16, 2024 2' -> (2024-12-16, 2); 'Feb 10' -> (year-02-10, None); else None."""
    m = _DATE_LINE.fullmatch(line.strip())
    if not m or m["mon"] not in _MONTHS:
        return None
    try:
        day = date(int(m["year"] or year), _MONTHS[m["mon"]], int(m["day"]))
    except ValueError:
        return None
    return day, (int(m["upvotes"]) if m["upvotes"] is not None else None)


def parse_byline(line: str) -> dict:
    """'• 5 authors' -> {'author_count': 5}; anything else is an organisation.

    The dump renders an organisation as '<handle> <display name>' ('google Google', the avatar's
    alt text then the name); the display name is what a reader sees, so that is kept.
    """
    line = normalise_ws(line)
    m = _AUTHOR_COUNT.fullmatch(line)
    if m:
        return {"author_count": int(m["n"])}
    handle, _, name = line.partition(" ")
    return {"organization": name or handle}


def parse_seed_page(text: str, year: int = PAGE_YEAR) -> list[dict]:
    """Parse the 'daily papers' dump: after a header ending in the page date, blocks of
    title / abstract (one or more lines) / byline / '·' / date [upvotes].

    Blocks are located by their '·' line and must tile the rest of the page exactly; anything
    out of place raises ValueError, because a silently skipped paper would go unnoticed.
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    seps = [i for i, line in enumerate(lines) if line == SEPARATOR]
    if not seps:
        return []
    header_dates = [i for i in range(seps[0]) if parse_date_line(lines[i], year)]
    if not header_dates:
        raise ValueError("seed page: no page date before the first paper")
    cursor = header_dates[0] + 1
    papers = []
    for sep in seps:
        if sep - 1 <= cursor:
            raise ValueError(f"seed page: block ending at line {sep} has no title and byline")
        if sep + 1 >= len(lines) or not (parsed := parse_date_line(lines[sep + 1], year)):
            raise ValueError(f"seed page: no date after separator at line {sep}")
        day, upvotes = parsed
        title = normalise_ws(lines[cursor])
        papers.append({
            "paper_id": seed_paper_id(title),
            "title": title,
            "abstract": normalise_ws(" ".join(lines[cursor + 1:sep - 1])),
            "published_at": day.isoformat(),
            "authors": [],
            "upvotes": upvotes,
            "source": SEED_PAGE_SOURCE,
            **parse_byline(lines[sep - 1]),
        })
        cursor = sep + 2
    if cursor != len(lines):
        raise ValueError(f"seed page: unparsed text after the last paper: {lines[cursor][:60]!r}")
    return papers


def parse_hf_papers(data: Mapping[str, Mapping]) -> list[dict]:
    """The HF snapshot is keyed by arXiv id; its timestamps are UTC, the date part is kept."""
    papers = []
    for arxiv_id, rec in data.items():
        published = rec.get("publication_date")
        papers.append({
            "paper_id": str(arxiv_id),
            "title": normalise_ws(rec["title"]),
            "abstract": normalise_ws(rec.get("abstract") or ""),
            "published_at": date.fromisoformat(published[:10]).isoformat() if published else None,
            "authors": [normalise_ws(a) for a in rec.get("authors") or []],
            "upvotes": int(rec["upvotes"]) if rec.get("upvotes") is not None else None,
            "source": HF_SOURCE,
            "url": rec.get("url"),
        })
    return papers


def title_key(title: str) -> str:
    return normalise_ws(title).casefold()


def merge_catalogs(*sources: Iterable[dict]) -> list[dict]:
    """Union of the sources, earlier sources winning, sorted by paper_id.

    A paper is a duplicate if its id or its (case/whitespace-insensitive) title was already
    taken: the page's title-hash ids cannot collide with arXiv ids, so the title is the only
    way to notice the same paper listed by both sources.
    """
    ids: set[str] = set()
    titles: set[str] = set()
    merged = []
    for source in sources:
        for paper in source:
            key = title_key(paper["title"])
            if paper["paper_id"] in ids or key in titles:
                continue
            ids.add(paper["paper_id"])
            titles.add(key)
            merged.append(paper)
    return sorted(merged, key=lambda p: p["paper_id"])


def load_sources(seed_page: Path, hf_json: Path) -> tuple[list[dict], list[dict]]:
    page = parse_seed_page(Path(seed_page).read_text(encoding="utf-8"))
    hf = parse_hf_papers(json.loads(Path(hf_json).read_text(encoding="utf-8")))
    return page, hf


def write_jsonl(papers: list[dict], out: Path) -> None:
    """Write then rename, so a reader never sees a half-written catalog."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for paper in papers:
            fh.write(json.dumps(paper, ensure_ascii=False) + "\n")
    os.replace(tmp, out)


def build_seed_catalog(seed_page: Path = DEFAULT_SEED_PAGE, hf_json: Path = DEFAULT_HF_JSON,
                       out: Path = DEFAULT_OUT) -> int:
    """Parse both sources, merge (arXiv records win: canonical id, full author names), write;
    returns the number of papers written."""
    page, hf = load_sources(seed_page, hf_json)
    papers = merge_catalogs(hf, page)
    write_jsonl(papers, out)
    return len(papers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-page", type=Path, default=DEFAULT_SEED_PAGE)
    parser.add_argument("--hf-json", type=Path, default=DEFAULT_HF_JSON)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    n = build_seed_catalog(args.seed_page, args.hf_json, args.out)
    print(f"wrote {n} papers to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
