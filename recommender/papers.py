"""What a paper record is, checked in one place for the importer (the API checks the same
rules through its pydantic schema)."""
from __future__ import annotations

from recommender.events import InvalidField, check_id, normalize_ts

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
    abstract = raw.get("abstract") or ""
    if not isinstance(abstract, str):
        raise InvalidField("abstract", "must be a string")
    if len(abstract) > MAX_ABSTRACT:
        raise InvalidField("abstract", f"longer than {MAX_ABSTRACT} characters")
    published = raw.get("published_at")
    published = normalize_ts(published, field="published_at") if published else None
    authors = raw.get("authors") or []
    if not isinstance(authors, list) or not all(isinstance(a, str) for a in authors):
        raise InvalidField("authors", "must be a list of strings")
    upvotes = raw.get("upvotes")
    if upvotes is not None and (isinstance(upvotes, bool) or not isinstance(upvotes, int)
                                or upvotes < 0):
        raise InvalidField("upvotes", "must be a non-negative integer")
    known = {"paper_id", "title", "abstract", "published_at", "authors", "upvotes"}
    extra = {k: v for k, v in raw.items() if k not in known}
    return {"paper_id": paper_id, "title": title, "abstract": abstract,
            "published_at": published, "authors": authors, "upvotes": upvotes, "extra": extra}
