"""Every reason string a list item carries, worded in one place.

The model (model/hybrid.py), the strategies (serving/strategies.py) and search and similar
papers (serving/search.py) pick which reason applies; the words are here, so the same
reason reads the same wherever it comes from.
"""
from __future__ import annotations

from collections.abc import Sequence

from recommender.core.kinds import VERBS

LIKE_YOU = "popular with readers like you"
PROFILE = "matches your reading profile"
SEARCH_FALLBACK = "matches your search"
CLOSE_IN_TOPIC = "close in topic"
TITLE_CHARS = 60


def short_title(title: str | None, n: int = TITLE_CHARS) -> str:
    title = " ".join((title or "").split())
    return title if len(title) <= n else title[: n - 1] + "…"


def similar_to(title: str | None, kind: str) -> str:
    """The item is close in text to a paper the reader acted on with `kind`."""
    return f"similar to \"{short_title(title)}\" you {VERBS.get(kind, VERBS['read'])}"


def trending(terms: Sequence[str], word: str = "trending") -> str:
    """A trending (or, `word="popular"`, all-time popular) item, by its topic's terms."""
    return f"{word} in {', '.join(terms)}" if terms else f"{word} now"


def published(age_days: float) -> str:
    """A paper whose recency placed it (the blend's freshness signal), by its age."""
    days = int(max(age_days, 0.0))
    if days == 0:
        return "new: published today"
    return f"new: published {'yesterday' if days == 1 else f'{days} days ago'}"


def _quoted(words: Sequence[str]) -> str:
    return ", ".join(f"\u201c{w}\u201d" for w in words)


def search_match(words: Sequence[str], in_title: bool, personal: bool) -> str:
    """A search result: which query words it contains, and where."""
    where = "title and abstract" if in_title else "abstract"
    reason = f"{where} match {_quoted(words)}" if words else SEARCH_FALLBACK
    return reason + ("; close to what you read" if personal else "")


def similar_paper(shared_words: Sequence[str], co_readers: int = 0) -> str:
    """A paper similar to another: the words both weigh most, and (when readership is what
    placed it) how many of the paper's readers also read it."""
    text = f"shares {_quoted(shared_words)}" if shared_words else CLOSE_IN_TOPIC
    if co_readers > 0:
        who = "reader" if co_readers == 1 else "readers"
        return f"{co_readers} {who} of this paper also read it; {text}"
    return text
