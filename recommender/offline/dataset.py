"""Reading the generic offline format into index arrays.

`papers.jsonl`: one JSON object a line with `paper_id`, `title`, `abstract` and optionally
`published_at`, `upvotes`. `interactions.csv`: header `user_id,paper_id,kind,ts` (kind
read|click|upvote|..., ts ISO-8601 or empty). Paper ids are mapped to row indices in file
order; user ids to indices in order of first appearance. Interactions with unknown papers are
dropped (counted in `Interactions.dropped`), and so are undos with nothing to take back (the
undo rule of core/events.py, as for the store's events).

Files are UTF-8, with or without a byte-order mark (spreadsheet exports write one); the
CSV header's names are read without case or surrounding spaces. A file that cannot be read
as this format raises `DataFileError` naming the file, the line and the field, never a
KeyError from deep inside.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recommender.core.events import undo_mask
from recommender.core.papers import prior_upvotes
from recommender.core.times import to_unix

EVENT_COLUMNS = ("user_id", "paper_id", "kind", "ts")
REQUIRED_EVENT_COLUMNS = EVENT_COLUMNS[:2]


class DataFileError(ValueError):
    """A data file that is not the generic format: the message names the file, the line
    (where there is one) and what is wrong."""

    def __init__(self, path, line: int | None, problem: str):
        self.line, self.problem = line, problem
        where = f"{Path(path).name}" + (f" line {line}" if line is not None else "")
        super().__init__(f"{where}: {problem}")


def text_lines(path):
    """(line number, text) of a data file: UTF-8 decoded a line at a time, so a line that is
    not UTF-8 is named by its number; a leading byte-order mark dropped; gzip by suffix."""
    path = Path(path)
    lineno = 0
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
        for chunk in fh:
            for raw in chunk.splitlines(keepends=True):  # "\r" alone ends a line too
                lineno += 1
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataFileError(path, lineno, f"not UTF-8 text ({exc.reason})") from None


def event_header(path, fieldnames) -> list[str]:
    """The CSV header's names, trimmed and lower-cased; DataFileError when user_id or
    paper_id is missing (a header in other words, a `;` or tab separated file, no header)."""
    names = [str(n or "").strip().lower() for n in (fieldnames or [])]
    missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in names]
    if missing:
        found = ",".join(fieldnames or []) or "nothing"
        raise DataFileError(path, 1, f"header: missing column(s) {', '.join(missing)}; expected a "
                                     f"comma-separated header {','.join(EVENT_COLUMNS)}, found {found!r}")
    return names


@dataclass
class Papers:
    ids: list[str]
    titles: list[str]
    abstracts: list[str]
    published_ts: np.ndarray  # float64 unix seconds, NaN when unknown
    upvotes: np.ndarray  # float32 prior upvotes (0 when unknown)
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if not self.index:
            self.index = {pid: i for i, pid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


def load_papers(path) -> Papers:
    """Papers in file order; a paper_id seen before is skipped (the first line wins). A
    title or abstract that is not text counts as empty, upvotes as `prior_upvotes` says."""
    ids, titles, abstracts, pub, up = [], [], [], [], []
    seen: set[str] = set()
    for lineno, line in text_lines(path):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(path, lineno, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataFileError(path, lineno, "each line must be one JSON object")
        if obj.get("paper_id") is None or str(obj["paper_id"]) == "":
            raise DataFileError(path, lineno, "paper_id: missing")
        pid = str(obj["paper_id"])
        if pid in seen:
            continue
        seen.add(pid)
        ids.append(pid)
        titles.append(_text(obj.get("title")))
        abstracts.append(_text(obj.get("abstract")))
        pub.append(to_unix(obj.get("published_at")))
        up.append(obj.get("upvotes"))
    return Papers(ids, titles, abstracts, np.asarray(pub, dtype=np.float64),
                  prior_upvotes(up).astype(np.float32))


def _text(value) -> str:
    """A title or abstract as text: a number as written (a film called 1984), anything else
    that is not a string (null, a list) as none."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


@dataclass
class Interactions:
    user_ids: list[str]  # index -> external id
    users: np.ndarray  # int32 user index per event
    items: np.ndarray  # int32 paper index per event
    kinds: np.ndarray  # str per event
    ts: np.ndarray  # float64 unix seconds (NaN when unknown)
    dropped: int = 0

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


def load_interactions(path, papers: Papers, user_index: dict[str, int] | None = None) -> Interactions:
    """Read events; `user_index` (extended in place) lets train and test share user indices."""
    user_index = {} if user_index is None else user_index
    users, items, kinds, ts = [], [], [], []
    dropped = 0
    reader = csv.DictReader(line for _, line in text_lines(path))
    reader.fieldnames = event_header(path, reader.fieldnames)
    for row in reader:
        pid = row.get("paper_id")
        # as written, else without surrounding spaces ("u1, 42, read" from a hand-made file)
        item = papers.index.get(pid, papers.index.get(pid.strip())) if pid is not None else None
        if item is None:
            dropped += 1
            continue
        uid = str(row["user_id"])
        u = user_index.setdefault(uid, len(user_index))
        users.append(u)
        items.append(item)
        kinds.append((row.get("kind") or "read").strip().lower())
        ts.append(to_unix(row.get("ts")))
    user_ids = [None] * len(user_index)
    for uid, u in user_index.items():
        user_ids[u] = uid
    users, items = np.asarray(users, dtype=np.int32), np.asarray(items, dtype=np.int32)
    kinds, ts = np.asarray(kinds, dtype=object), np.asarray(ts, dtype=np.float64)
    # the undo rule (core/events.undo_mask) in time order; rows keep the file's order
    order = np.argsort(np.where(np.isnan(ts), np.inf, ts), kind="stable")
    keep = np.ones(len(users), dtype=bool)
    keep[order] = undo_mask(users[order], items[order], kinds[order])
    return Interactions(user_ids, users[keep], items[keep], kinds[keep], ts[keep], dropped)


def load_candidates(path, papers: Papers) -> np.ndarray:
    """Paper indices of a candidates file (one paper_id a line, as written, else with its
    surrounding spaces trimmed); ids not in the papers are left out. DataFileError when no
    line names a known paper: ranking among nothing would score every reader 0."""
    out, lines = [], 0
    for _, line in text_lines(path):
        pid = line.rstrip("\r\n")
        if not pid.strip():
            continue
        lines += 1
        item = papers.index.get(pid, papers.index.get(pid.strip()))
        if item is not None:
            out.append(item)
    if not out:
        raise DataFileError(path, None, f"no paper_id of the papers file among its {lines} line(s)")
    return np.unique(np.asarray(out, dtype=np.int64))
