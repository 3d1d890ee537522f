"""The shipped catalog: exact counts and spot checks against the raw sources, the committed
file matching a fresh build, and round-trip properties of the page parser."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from training import seed_catalog as sc

COMMITTED = Path(__file__).resolve().parents[1] / "seeds" / "papers.jsonl"
HAVE_SHARED = sc.DEFAULT_SEED_PAGE.exists() and sc.DEFAULT_HF_JSON.exists()
needs_shared = pytest.mark.skipif(not HAVE_SHARED, reason="../shared raw sources not present")


@pytest.fixture(scope="module")
def sources():
    if not HAVE_SHARED:
        pytest.skip("../shared raw sources not present")
    return sc.load_sources(sc.DEFAULT_SEED_PAGE, sc.DEFAULT_HF_JSON)


def by_title(papers, prefix):
    [hit] = [p for p in papers if p["title"].startswith(prefix)]
    return hit


def test_source_counts(sources):
    page, hf = sources
    assert len(page) == 35
    assert len(hf) == 753
    assert len({p["paper_id"] for p in page}) == 35


def test_one_paper_is_on_both_sources_and_merges_to_its_arxiv_id(sources):
    page, hf = sources
    overlap = {sc.title_key(p["title"]) for p in page} & {sc.title_key(p["title"]) for p in hf}
    assert overlap == {sc.title_key("Graph Mamba: Towards Learning on Graphs with State Space Models")}
    merged = sc.merge_catalogs(hf, page)
    assert len(merged) == 35 + 753 - 1
    assert len({p["paper_id"] for p in merged}) == len(merged)
    assert by_title(merged, "Graph Mamba")["paper_id"] == "2402.08678"
    assert [p["paper_id"] for p in merged] == sorted(p["paper_id"] for p in merged)


def test_page_spot_checks(sources):
    page, _ = sources
    geox = by_title(page, "GeoX: Geometric Problem Solving")
    assert (geox["published_at"], geox["upvotes"], geox["author_count"]) == ("2024-12-16", 2, 15)
    first = page[0]
    assert first["title"].startswith("Low-Dimensional Execution Manifolds")
    # "Feb 10" has no year: the page's own year applies.
    assert (first["published_at"], first["upvotes"], first["author_count"]) == ("2026-02-10", None, 1)
    google = by_title(page, "Deep sequence models tend to memorize")
    assert google["organization"] == "Google" and "author_count" not in google
    assert google["authors"] == [] and google["published_at"] == "2025-10-30"
    assert page[-1]["title"] == "Transformers in Time Series: A Survey"
    assert page[-1]["published_at"] == "2022-02-14"
    assert all(p["abstract"] and "\n" not in p["abstract"] for p in page)


def test_hf_spot_checks(sources):
    _, hf = sources
    papers = {p["paper_id"]: p for p in hf}
    bitnet = papers["2402.17764"]
    assert bitnet["title"] == "The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits"
    assert (bitnet["upvotes"], bitnet["published_at"]) == (553, "2024-02-27")
    # The raw title is wrapped across two lines with an indent.
    assert papers["2312.17681"]["title"] == (
        "FlowVid: Taming Imperfect Optical Flows for Consistent Video-to-Video Synthesis")
    assert len(papers["2403.05530"]["authors"]) == 671
    assert all("\n" not in p["abstract"] and "  " not in p["abstract"] for p in hf)


@needs_shared
def test_committed_catalog_equals_fresh_build(tmp_path):
    out = tmp_path / "papers.jsonl"
    n = sc.build_seed_catalog(sc.DEFAULT_SEED_PAGE, sc.DEFAULT_HF_JSON, out)
    assert n == 787
    assert COMMITTED.read_bytes() == out.read_bytes()


def test_committed_catalog_schema():
    papers = [json.loads(line) for line in COMMITTED.read_text(encoding="utf-8").splitlines()]
    assert papers, "seeds/papers.jsonl is empty"
    core = ["paper_id", "title", "abstract", "published_at", "authors", "upvotes", "source"]
    for p in papers:
        assert list(p)[:7] == core
        assert len(p) == 8 and list(p)[7] in {"url", "author_count", "organization"}
        assert p["published_at"] is None or date.fromisoformat(p["published_at"])
        assert p["upvotes"] is None or isinstance(p["upvotes"], int)
        assert isinstance(p["authors"], list) and all(isinstance(a, str) for a in p["authors"])


# --- parser properties --------------------------------------------------------------------

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# Any printable text, but a line of its own can't be the block separator.
line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=80,
).filter(lambda s: s.strip() and s.strip() != sc.SEPARATOR)


@st.composite
def paper_blocks(draw):
    day = draw(st.dates(min_value=date(1990, 1, 1), max_value=date(2026, 12, 31)))
    show_year = day.year != sc.PAGE_YEAR or draw(st.booleans())
    upvotes = draw(st.none() | st.integers(0, 10_000))
    byline = draw(st.one_of(
        st.integers(1, 3000).map(lambda n: {"author_count": n}),
        st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True).flatmap(
            lambda handle: st.from_regex(r"[A-Z][A-Za-z]{0,12}( [A-Z][A-Za-z]{0,12})?", fullmatch=True)
            .map(lambda name: {"organization": name, "_line": f"{handle} {name}"})),
    ))
    return {
        "title": draw(line_text),
        "abstract_lines": draw(st.lists(line_text, min_size=1, max_size=3)),
        "day": day, "show_year": show_year, "upvotes": upvotes, "byline": byline,
    }


def render(blocks) -> str:
    out = ["new", "", "Daily Papers", "", "byAK and the research community", "", "Apr 21", ""]
    for b in blocks:
        date_line = f"{MONTHS[b['day'].month - 1]} {b['day'].day}"
        if b["show_year"]:
            date_line += f", {b['day'].year}"
        if b["upvotes"] is not None:
            date_line += f" {b['upvotes']}"
        byline = b["byline"].get("_line") or f"  • {b['byline']['author_count']} authors"
        out += [b["title"], "", *b["abstract_lines"], "", byline, sc.SEPARATOR, date_line, ""]
    return "\n".join(out)


@settings(max_examples=150, deadline=None)
@given(st.lists(paper_blocks(), max_size=6))
def test_page_blocks_round_trip(blocks):
    papers = sc.parse_seed_page(render(blocks))
    assert len(papers) == len(blocks)
    for b, p in zip(blocks, papers):
        assert p["title"] == sc.normalise_ws(b["title"])
        assert p["abstract"] == sc.normalise_ws(" ".join(b["abstract_lines"]))
        assert p["published_at"] == b["day"].isoformat()
        assert p["upvotes"] == b["upvotes"]
        assert {k: v for k, v in b["byline"].items() if k != "_line"}.items() <= p.items()
        assert p["paper_id"] == sc.seed_paper_id(b["title"])


@given(st.lists(paper_blocks(), min_size=1, max_size=3), st.integers(0, 2))
def test_page_with_a_missing_date_is_rejected(blocks, which):
    assume(not any(sc.parse_date_line(b["title"]) for b in blocks))
    text = render(blocks).splitlines()
    seps = [i for i, line in enumerate(text) if line == sc.SEPARATOR]
    del text[seps[which % len(seps)] + 1]
    with pytest.raises(ValueError):
        sc.parse_seed_page("\n".join(text))


@given(st.text())
def test_whitespace_normalisation_is_idempotent_and_collapses(s):
    once = sc.normalise_ws(s)
    assert sc.normalise_ws(once) == once
    assert once == once.strip() and "  " not in once and "\n" not in once
    assert once.split() == s.split()


@given(st.text(min_size=1), st.text(alphabet=" \n\t", min_size=1))
def test_seed_id_ignores_wrapping(title, ws):
    assert sc.seed_paper_id(title) == sc.seed_paper_id(title.replace(" ", ws))
