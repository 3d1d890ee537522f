"""Importing the generic format into the store: all or nothing, line numbers on errors.

Why validate everything before writing: an import that stops half-way leaves a catalog
nobody can reason about. Either every row is good (or `skip_invalid` was asked for) and
all good rows go in one transaction, or nothing is written.
"""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from recommender.core.events import InvalidField, check_id, check_kind, normalize_ts
from recommender.core.papers import clean_paper
from recommender.offline.dataset import DataFileError, event_header, text_lines
from recommender.storage import EventRow, Store


@dataclass
class ImportReport:
    rows: int = 0
    stored: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def reasons(self) -> Counter:
        return Counter(reason.split(":")[0] for _, reason in self.errors)


class ImportRejected(Exception):
    def __init__(self, report: ImportReport):
        self.report = report
        first = "; ".join(f"line {n}: {why}" for n, why in report.errors[:5])
        super().__init__(f"{len(report.errors)} invalid row(s), nothing imported ({first})")


def import_papers(store: Store, path: Path, skip_invalid: bool = False) -> ImportReport:
    report = ImportReport()
    good: dict[str, dict] = {}
    try:
        for lineno, line in text_lines(path):
            if not line.strip():
                continue
            report.rows += 1
            try:
                paper = clean_paper(json.loads(line))
            except json.JSONDecodeError as exc:
                report.errors.append((lineno, f"json: {exc.msg}"))
                continue
            except InvalidField as exc:
                report.errors.append((lineno, str(exc)))
                continue
            if paper["paper_id"] in good:
                report.errors.append((lineno, f"paper_id: duplicate {paper['paper_id']!r} in file"))
                continue
            good[paper["paper_id"]] = paper
    except DataFileError as exc:  # a line that is not UTF-8: nothing after it can be trusted
        report.errors.append((exc.line, exc.problem))
        raise ImportRejected(report) from None
    if report.errors and not skip_invalid:
        raise ImportRejected(report)
    report.stored = store.upsert_papers(list(good.values()))
    report.unchanged = len(good) - report.stored
    return report


def import_key(user_id: str, paper_id: str, kind: str, ts: str) -> str:
    """Idempotency key of an imported row: the row's own content, so importing the same
    file again stores nothing new."""
    digest = hashlib.sha256("\x1f".join((user_id, paper_id, kind, ts)).encode()).hexdigest()
    return f"import:{digest[:32]}"


def import_events(store: Store, path: Path, skip_invalid: bool = False) -> ImportReport:
    report = ImportReport()
    now = datetime.now(timezone.utc)
    parsed: list[tuple[int, EventRow]] = []
    reader = csv.DictReader(line for _, line in text_lines(path))
    try:
        reader.fieldnames = event_header(path, reader.fieldnames)
        for row in reader:
            lineno = reader.line_num
            report.rows += 1
            try:
                user = check_id(row.get("user_id"), "user_id")
                paper = check_id(row.get("paper_id"), "paper_id")
                kind = check_kind(row.get("kind"))
                raw_ts = (row.get("ts") or "").strip()
                ts = normalize_ts(raw_ts or None, now=now)
            except InvalidField as exc:
                report.errors.append((lineno, str(exc)))
                continue
            parsed.append((lineno, EventRow(user, paper, kind, ts, None,
                                            import_key(user, paper, kind, raw_ts))))
    except DataFileError as exc:  # the header, or a line that is not UTF-8
        report.errors.append((exc.line, exc.problem))
        raise ImportRejected(report) from None
    known = store.existing_paper_ids(e.paper_id for _, e in parsed)
    good = []
    for lineno, event in parsed:
        if event.paper_id in known:
            good.append(event)
        else:
            report.errors.append((lineno, f"paper_id: unknown paper {event.paper_id!r}"))
    report.errors.sort()
    if report.errors and not skip_invalid:
        raise ImportRejected(report)
    report.stored, report.unchanged = store.add_events(good)
    return report
