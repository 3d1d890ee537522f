"""What a paper record is, checked in one place for the importer (the API checks the same
rules through its pydantic schema)."""
from __future__ import annotations

import re

import numpy as np

from recommender.core.events import InvalidField, check_id, check_no_nul, normalize_ts

MAX_TITLE = 2_000
MAX_ABSTRACT = 100_000


def clean_paper(raw) -> dict:
    """A stored-shape paper from a generic-format object, or InvalidField."""
    if not isinstance(raw, dict):
        raise InvalidField("paper", "each line must be a JSON object")
    paper_id = raw.get("paper_id")
    if isinstance(paper_id, int) and not isinstance(paper_id, bool):
        paper_id = str(paper_id)
    check_id(paper_id, "paper_id")
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        raise InvalidField("title", "must be a non-empty string")
    if len(title) > MAX_TITLE:
        raise InvalidField("title", f"longer than {MAX_TITLE} characters")
    check_no_nul(title, "title")
    abstract = raw.get("abstract") or ""
    if not isinstance(abstract, str):
        raise InvalidField("abstract", "must be a string")
    if len(abstract) > MAX_ABSTRACT:
        raise InvalidField("abstract", f"longer than {MAX_ABSTRACT} characters")
    check_no_nul(abstract, "abstract")
    published = raw.get("published_at")
    published = normalize_ts(published, field="published_at") if published else None
    authors = raw.get("authors") or []
    if not isinstance(authors, list) or not all(isinstance(a, str) for a in authors):
        raise InvalidField("authors", "must be a list of strings")
    for author in authors:
        check_no_nul(author, "authors")
    upvotes = raw.get("upvotes")
    if upvotes is not None and (isinstance(upvotes, bool) or not isinstance(upvotes, int)
                                or upvotes < 0):
        raise InvalidField("upvotes", "must be a non-negative integer")
    known = {"paper_id", "title", "abstract", "published_at", "authors", "upvotes"}
    extra = {k: v for k, v in raw.items() if k not in known}
    return {"paper_id": paper_id, "title": title, "abstract": abstract,
            "published_at": published, "authors": authors, "upvotes": upvotes, "extra": extra}


# Above this a prior upvote count is a data error, not a paper: capped so that float32 sums
# and their logs stay finite (1e39 upvotes, beyond float32, turned every score into NaN).
MAX_PRIOR_UPVOTES = 1e12


def prior_upvotes(values) -> np.ndarray:
    """Catalog upvote counts as the models take them (float64): a count that is missing,
    not a number, negative or not finite counts as none (0); a larger one than
    MAX_PRIOR_UPVOTES as that many."""
    out = np.array([_as_count(v) for v in values], dtype=np.float64) if not hasattr(values, "dtype") \
        else np.asarray(values, dtype=np.float64).copy()
    out[~np.isfinite(out) | (out < 0)] = 0.0
    return np.minimum(out, MAX_PRIOR_UPVOTES)


def _as_count(value) -> float:
    if isinstance(value, bool) or value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0


# arXiv identifiers: new style 2401.12345 (4 or 5 digits after the dot, optional version)
# and old style hep-th/9901001 or math.GT/0309136.
_ARXIV_ID = re.compile(r"(?:\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?")
_WEB_URL = re.compile(r"https?://[^\s\"'<>\\]+", re.IGNORECASE)


def paper_url(paper_id: str, catalog_url: str | None = None) -> str | None:
    """The paper's own page: arXiv's abstract page for an arXiv id, else the catalog's
    `url` when it is a plain http(s) address (anything else, say `javascript:`, is not a
    link anyone should be sent to), else None."""
    if _ARXIV_ID.fullmatch(paper_id):
        return f"https://arxiv.org/abs/{paper_id}"
    if isinstance(catalog_url, str) and _WEB_URL.fullmatch(catalog_url.strip()):
        return catalog_url.strip()
    return None


def paper_card(paper: dict) -> dict:
    """What a front end shows of a stored paper besides its title: link, authors (or how
    many there are, where the catalog knows only that), organisation, date, upvotes."""
    extra = paper.get("extra") or {}
    authors = list(paper.get("authors") or [])
    count = extra.get("author_count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        count = None
    organization = extra.get("organization")
    return {
        "url": paper_url(paper["paper_id"], extra.get("url")),
        "authors": authors,
        "author_count": len(authors) or count,
        "organization": organization if isinstance(organization, str) and organization else None,
        "published_at": paper.get("published_at"),
        "upvotes": paper.get("upvotes"),
    }
