"""The served-list log (table `impressions`): one row per list served, and its retention."""
from __future__ import annotations

import json
import time
from collections.abc import Sequence

from recommender.core.times import DAY_S, to_iso, utcnow_iso
from recommender.storage.interface import MAX_ATTRIBUTION_DAYS, decoded_impression

_INSERT = """
    INSERT INTO impressions (request_id, user_id, experiment, variant, strategy, model_version,
                             paper_ids, sources, served_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


class ServedLists:
    def get_impression(self, request_id: str) -> dict | None:
        self.flush()
        rows = self.query("SELECT request_id, user_id, experiment, variant, strategy, "
                          "model_version, paper_ids, sources, served_at FROM impressions "
                          "WHERE request_id = %s", (request_id,))
        if not rows:
            return None
        return decoded_impression(rows[0])

    def log_served_list(self, request_id: str, user_id: str, strategy: str,
                        paper_ids: Sequence[str], model_version: str | None = None,
                        experiment: str | None = None, variant: str | None = None,
                        sources: Sequence[str] | None = None,
                        served_at_unix: float | None = None) -> None:
        """Queued for the next group commit without waiting (see writer.py)."""
        served_at = utcnow_iso() if served_at_unix is None else to_iso(served_at_unix)
        self.insert_unacknowledged(_INSERT, (
            request_id, user_id, experiment, variant, strategy, model_version,
            json.dumps(list(paper_ids)), json.dumps(list(sources)) if sources is not None else None,
            served_at))

    def served_to(self, user_id: str, since: str | None = None, until: str | None = None,
                  limit: int = 100) -> list[dict]:
        """Not flushed first: read on a request's path (see Store.served_to)."""
        sql = "SELECT served_at, paper_ids FROM impressions WHERE user_id = %s"
        params: list = [user_id]
        if since is not None:
            sql += " AND served_at > %s"
            params.append(since)
        if until is not None:
            sql += " AND served_at <= %s"
            params.append(until)
        sql += " ORDER BY served_at DESC LIMIT %s"
        params.append(int(limit))
        rows = self.query(sql, params, tuples=True)
        # one parse for all the lists (a request reads up to 100)
        ids = json.loads("[" + ",".join(r[1] for r in rows) + "]")
        return [{"served_at": r[0], "paper_ids": p} for r, p in zip(rows, ids)]

    def prune_impressions(self, older_than_days: float) -> int:
        """The SQLite backend's rule (recommender/storage/sqlite/served_lists.py)."""
        if older_than_days < MAX_ATTRIBUTION_DAYS:
            raise ValueError(f"keep at least {MAX_ATTRIBUTION_DAYS:g} days (the longest "
                             "attribution window)")
        self.flush()
        cutoff_iso = to_iso(time.time() - older_than_days * DAY_S)
        with self.transaction() as cur:
            cur.execute(
                """
                DELETE FROM impressions
                WHERE experiment IS NULL AND served_at < %(cutoff)s
                  AND NOT EXISTS (
                      SELECT 1 FROM impressions x
                      WHERE x.user_id = impressions.user_id AND x.experiment IS NOT NULL
                        AND abs(extract(epoch FROM x.served_at::timestamptz
                                                   - impressions.served_at::timestamptz))
                            <= %(window)s * 86400)
                """,
                {"cutoff": cutoff_iso, "window": MAX_ATTRIBUTION_DAYS})
            return cur.rowcount
