"""The served-list log (table `impressions`): one row per list served, and its retention."""
from __future__ import annotations

import json
import time
from collections.abc import Sequence

from recommender.core.times import DAY_S, to_iso, utcnow_iso
from recommender.storage.interface import MAX_ATTRIBUTION_DAYS, decoded_impression


class ServedLists:
    def get_impression(self, request_id: str) -> dict | None:
        self.flush()
        rows = list(self.db.query("SELECT * FROM impressions WHERE request_id = ?", [request_id]))
        if not rows:
            return None
        return decoded_impression(rows[0])

    def log_served_list(
        self,
        request_id: str,
        user_id: str,
        strategy: str,
        paper_ids: Sequence[str],
        model_version: str | None = None,
        experiment: str | None = None,
        variant: str | None = None,
        sources: Sequence[str] | None = None,
        served_at_unix: float | None = None,
    ) -> None:
        """A list ranked 'as of' a time is logged at that time, so a replay (the reader
        simulator) keeps one clock for lists and events and the attribution window
        compares like with like."""
        served_at = utcnow_iso() if served_at_unix is None else to_iso(served_at_unix)
        # On the path of every GET, and nobody acknowledges it: queued for the next group
        # commit without waiting for it (see recommender/storage/sqlite/__init__.py).
        self.insert_unacknowledged(
            """
            INSERT INTO impressions (request_id, user_id, experiment, variant, strategy,
                                     model_version, paper_ids, sources, served_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (request_id, user_id, experiment, variant, strategy, model_version,
             json.dumps(list(paper_ids)),
             json.dumps(list(sources)) if sources is not None else None, served_at))

    def served_to(self, user_id: str, since: str | None = None, until: str | None = None,
                  limit: int = 100) -> list[dict]:
        sql = "SELECT served_at, paper_ids FROM impressions WHERE user_id = ?"
        params: list = [user_id]
        if since is not None:
            sql += " AND served_at > ?"
            params.append(since)
        if until is not None:
            sql += " AND served_at <= ?"
            params.append(until)
        sql += " ORDER BY served_at DESC LIMIT ?"
        params.append(int(limit))
        rows = self.db.execute(sql, params).fetchall()
        # one parse for all the lists: ~6 us a list instead of ~30 (a request reads up to 100)
        ids = json.loads("[" + ",".join(r[1] for r in rows) + "]")
        return [{"served_at": r[0], "paper_ids": p} for r, p in zip(rows, ids)]

    def prune_impressions(self, older_than_days: float) -> int:
        """Delete served lists older than `older_than_days` that no report can need; returns
        how many. Kept whatever their age: every list of an experiment (its report counts
        them, and reports of stopped experiments stay), and every list of a reader with an
        experiment list served within MAX_ATTRIBUTION_DAYS of it (an event without a
        request_id goes to the reader's latest list showing the paper, of any experiment or
        none: removing the newer plain list would move it onto the experiment's)."""
        if older_than_days < MAX_ATTRIBUTION_DAYS:
            raise ValueError(f"keep at least {MAX_ATTRIBUTION_DAYS:g} days (the longest "
                             "attribution window)")
        self.flush()
        cutoff_iso = to_iso(time.time() - older_than_days * DAY_S)
        with self.transaction() as db:
            cur = db.conn.execute(
                """
                DELETE FROM impressions
                WHERE experiment IS NULL AND served_at < :cutoff
                  AND NOT EXISTS (
                      SELECT 1 FROM impressions x
                      WHERE x.user_id = impressions.user_id AND x.experiment IS NOT NULL
                        AND abs(julianday(x.served_at) - julianday(impressions.served_at))
                            <= :window)
                """,
                {"cutoff": cutoff_iso, "window": MAX_ATTRIBUTION_DAYS})
            return cur.rowcount
