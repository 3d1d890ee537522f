"""The papers table: upserts with a change number, lookups, and the catalog's poll."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence

from psycopg import sql as pgsql

from recommender.core.times import utcnow_iso
from recommender.storage.interface import PAPER_FIELDS, TABLES, complete_paper
from recommender.storage.postgres.schema import LOCK_CLASS, PAPERS_FEED_LOCK

_COLUMNS = "paper_id, title, abstract, published_at, authors, upvotes, extra, added_at"


class Papers:
    def upsert_papers(self, papers: Sequence[dict]) -> int:
        """Insert or update papers by id; returns how many rows changed (see the
        interface). The papers' change-feed lock is taken first, so a partial update reads
        and writes a paper no other writer is changing, and change numbers follow commit
        order (schema.py)."""
        now = utcnow_iso()
        changed = 0
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, PAPERS_FEED_LOCK))
            partial = [p["paper_id"] for p in papers if not PAPER_FIELDS <= p.keys()]
            stored = {}
            if partial:
                cur.execute(f"SELECT {_COLUMNS} FROM papers WHERE paper_id = ANY(%s)", (partial,))
                stored = {r["paper_id"]: self._paper_from_row(r) for r in cur.fetchall()}
            for p in papers:
                p = complete_paper(p, stored.get(p["paper_id"]))
                cur.execute(
                    """
                    INSERT INTO papers (paper_id, title, abstract, published_at, authors,
                                        upvotes, extra, added_at, changed)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, nextval('papers_changed_seq'))
                    ON CONFLICT (paper_id) DO UPDATE SET
                        title = excluded.title, abstract = excluded.abstract,
                        published_at = excluded.published_at, authors = excluded.authors,
                        upvotes = excluded.upvotes, extra = excluded.extra,
                        changed = nextval('papers_changed_seq')
                    WHERE (papers.title, papers.abstract, papers.published_at, papers.authors,
                           papers.upvotes, papers.extra)
                          IS DISTINCT FROM
                          (excluded.title, excluded.abstract, excluded.published_at,
                           excluded.authors, excluded.upvotes, excluded.extra)
                    """,
                    (p["paper_id"], p["title"], p.get("abstract") or "", p.get("published_at"),
                     json.dumps(p.get("authors") or [], ensure_ascii=False), p.get("upvotes"),
                     json.dumps(p.get("extra") or {}, ensure_ascii=False, sort_keys=True), now))
                changed += cur.rowcount
        return changed

    @staticmethod
    def _paper_from_row(row: dict) -> dict:
        row = dict(row)
        row.pop("changed", None)
        row.pop("seq", None)
        row["authors"] = json.loads(row.get("authors") or "[]")
        row["extra"] = json.loads(row.get("extra") or "{}")
        return row

    def get_paper(self, paper_id: str) -> dict | None:
        rows = self.query(f"SELECT {_COLUMNS} FROM papers WHERE paper_id = %s", (paper_id,))
        return self._paper_from_row(rows[0]) if rows else None

    def get_papers(self, paper_ids: Sequence[str]) -> dict[str, dict]:
        ids = list(dict.fromkeys(paper_ids))
        if not ids:
            return {}
        rows = self.query(f"SELECT {_COLUMNS} FROM papers WHERE paper_id = ANY(%s)", (ids,))
        return {r["paper_id"]: self._paper_from_row(r) for r in rows}

    def iter_papers(self) -> Iterator[dict]:
        for row in self.query(f"SELECT {_COLUMNS} FROM papers ORDER BY seq"):
            yield self._paper_from_row(row)

    def papers_since(self, changed: int) -> list[tuple[int, dict]]:
        """(change number, paper) of every paper added or updated after `changed`, in the
        order the papers were first added (`seq`)."""
        rows = self.query(f"SELECT {_COLUMNS}, changed FROM papers WHERE changed > %s "
                          "ORDER BY seq", (changed,))
        return [(r["changed"], self._paper_from_row(r)) for r in rows]

    def existing_paper_ids(self, paper_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(paper_ids))
        if not ids:
            return set()
        return {r[0] for r in self.query("SELECT paper_id FROM papers WHERE paper_id = ANY(%s)",
                                         (ids,), tuples=True)}

    def count(self, table: str) -> int:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        row = self.query_one(pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier(table)))
        return int(row[0])
