"""The one table of event kinds: what each kind weighs for the model, for trending and for a
reader's content profile, whether it makes a paper seen or hides it, and what it undoes.

Every rule about kinds is read from here: the confidence matrix (model/confidence.py),
trending (serving/trending.py), profiles (serving/reader_history.py), which papers leave a
reader's lists (serving/live.py, and the model's own `seen` for offline evaluation), what
the undo rule takes back (core/events.py), the verbs of the reasons (core/reasons.py) and
which kinds an experiment credits to a list (storage).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    model: float  # confidence weight for the collaborative model, relative to an upvote
    trending: float  # weight in trending's time-decayed counts
    profile: float  # weight in a reader's content profile
    seen: bool  # the paper leaves the reader's lists unless they ask for seen papers too
    hides: bool  # the paper leaves the reader's lists, whatever they ask
    undoes: str | None = None  # takes back the reader's latest earlier event of this kind on the paper
    erases: bool = False  # ...and both are gone, as if neither had happened
    verb: str | None = None  # "similar to … you <verb>"; a kind with a verb shows interest


TABLE: tuple[Kind, ...] = (
    # An impression alone says nothing: the served list itself is the impression.
    Kind("impression", model=0.0, trending=0.0, profile=0.0, seen=False, hides=False),
    Kind("click", model=0.25, trending=1.0, profile=1.0, seen=True, hides=False, verb="opened"),
    Kind("read", model=0.5, trending=2.0, profile=2.0, seen=True, hides=False, verb="read"),
    Kind("upvote", model=1.0, trending=4.0, profile=3.0, seen=True, hides=False, verb="upvoted"),
    # Takes back the reader's own upvote: for the model and the profile a signal of its own
    # (the pair weighs about nothing), for trending the pair is gone; the paper stays seen
    # through its upvote. One with no upvote to take back is stored but counts nowhere.
    Kind("remove_upvote", model=-1.0, trending=0.0, profile=-3.0, seen=False, hides=False,
         undoes="upvote"),
    # 'Not for me': the reader's interest in the paper is cancelled and it never comes back.
    Kind("dismiss", model=-2.0, trending=0.0, profile=-1.0, seen=True, hides=True),
    # The page's undo of a dismissal: both events are gone, the paper is back in the lists.
    # (Its model weight cancels a dismiss exactly; the undo rule removes both first.)
    Kind("remove_dismiss", model=2.0, trending=0.0, profile=0.0, seen=False, hides=False,
         undoes="dismiss", erases=True),
)

BY_NAME: dict[str, Kind] = {k.name: k for k in TABLE}
KINDS: tuple[str, ...] = tuple(k.name for k in TABLE)
# Offline data sets may name kinds of their own: those count as a read.
UNKNOWN_AS = "read"

MODEL_WEIGHTS: dict[str, float] = {k.name: k.model for k in TABLE}
TRENDING_WEIGHTS: dict[str, float] = {k.name: k.trending for k in TABLE}
PROFILE_WEIGHTS: dict[str, float] = {k.name: k.profile for k in TABLE}
SEEN_KINDS = frozenset(k.name for k in TABLE if k.seen)
HIDING_KINDS = frozenset(k.name for k in TABLE if k.hides)
UNDO_KINDS = frozenset(k.name for k in TABLE if k.undoes)
# Kinds that show interest in a paper (clicks, reads, upvotes), strongest last.
INTEREST_KINDS: tuple[str, ...] = tuple(k.name for k in TABLE if k.verb)
VERBS: dict[str, str] = {k.name: k.verb for k in TABLE if k.verb}


def kind_of(name: str) -> Kind:
    """The row of a kind; a kind this table does not know (offline data) reads as a read."""
    return BY_NAME.get(str(name).lower()) or BY_NAME[UNKNOWN_AS]


def strongest_interest(history) -> dict[int, str]:
    """Paper -> the strongest kind of interest (click < read < upvote) a history
    [(paper, kind, ...)] shows in it: what a "similar to … you <verb>" reason names."""
    strength = {kind: n for n, kind in enumerate(INTEREST_KINDS, start=1)}
    out: dict[int, str] = {}
    for item in history or []:
        kind = str(item[1]).lower() if len(item) > 1 else UNKNOWN_AS
        if strength.get(kind, 0) > strength.get(out.get(int(item[0]), ""), 0):
            out[int(item[0])] = kind
    return out
