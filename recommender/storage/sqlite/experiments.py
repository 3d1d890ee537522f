"""The experiments table, and the report's attribution of events to served lists."""
from __future__ import annotations

import json

from recommender.core.times import utcnow_iso
from recommender.storage.interface import ATTRIBUTED_KINDS


class Experiments:
    def save_experiment(self, name: str, kind: str, config: dict, control: str | None) -> None:
        with self.transaction() as db:
            db.conn.execute(
                """
                INSERT INTO experiments (name, kind, config, control, status, created_at)
                VALUES (?, ?, ?, ?, 'running', ?)
                """,
                (name, kind, json.dumps(config, sort_keys=True), control, utcnow_iso()),
            )
        self.experiments_changed += 1

    def stop_experiment(self, name: str) -> bool:
        """Returns whether the experiment was running (stopping a stopped one is a no-op)."""
        with self.transaction() as db:
            cur = db.conn.execute(
                "UPDATE experiments SET status = 'stopped', stopped_at = ? "
                "WHERE name = ? AND status = 'running'",
                (utcnow_iso(), name),
            )
        self.experiments_changed += 1
        return cur.rowcount > 0

    def list_experiments(self, status: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM experiments", []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        rows = list(self.db.query(sql + " ORDER BY created_at, name", params))
        for r in rows:
            r["config"] = json.loads(r["config"])
        return rows

    def get_experiment(self, name: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM experiments WHERE name = ?", [name]))
        if not rows:
            return None
        rows[0]["config"] = json.loads(rows[0]["config"])
        return rows[0]

    def experiment_lists(self, name: str) -> list[dict]:
        """Every list served under an experiment: who, which variant, how many items, when."""
        self.flush()
        return list(self.db.query(
            """
            SELECT request_id, user_id, variant, served_at,
                   json_array_length(paper_ids) AS items
            FROM impressions WHERE experiment = ? ORDER BY served_at, request_id
            """,
            [name],
        ))

    def experiment_events(self, name: str, window_hours: float = 24.0) -> list[dict]:
        """Events attributed to the experiment's lists, with the list's variant, the slot's
        position and (interleaving) the variant that filled the slot.

        Attribution: an event whose request_id names a list of this reader is credited to
        that list. An event without one (or with a request_id no list has) is credited to
        the reader's latest list - of any experiment or none - that showed the paper within
        `window_hours` before the event; it counts here only if that list is this
        experiment's. Only clicks, reads and upvotes are attributed, and each at most once
        per (list, paper, kind): a repeat is not a second click."""
        self.flush()
        kinds = {f"k{n}": k for n, k in enumerate(ATTRIBUTED_KINDS)}
        marks = ",".join(f":{p}" for p in kinds)
        return list(self.db.query(
            f"""
            WITH imp AS (
                SELECT request_id, user_id FROM impressions WHERE experiment = :name
            ),
            direct AS (
                SELECT e.id, e.kind, e.ts, e.paper_id, e.request_id AS list_id
                FROM events e JOIN imp ON imp.request_id = e.request_id
                                      AND imp.user_id = e.user_id
                WHERE e.kind IN ({marks})
            ),
            loose AS (
                SELECT e.id, e.kind, e.ts, e.paper_id,
                       (SELECT i2.request_id FROM impressions i2
                        WHERE i2.user_id = e.user_id
                          AND i2.served_at <= e.ts
                          AND julianday(i2.served_at) >= julianday(e.ts) - :window / 24.0
                          AND EXISTS (SELECT 1 FROM json_each(i2.paper_ids) j
                                      WHERE j.value = e.paper_id)
                        ORDER BY i2.served_at DESC, i2.rowid DESC LIMIT 1) AS list_id
                FROM events e LEFT JOIN impressions x ON x.request_id = e.request_id
                                                    AND x.user_id = e.user_id
                WHERE x.request_id IS NULL AND e.kind IN ({marks})
                  AND e.user_id IN (SELECT user_id FROM imp)
            ),
            attributed AS (
                -- one event per (list, paper, kind): the same click sent again (200 times
                -- with the list's request_id) is still one click on that list
                SELECT * FROM (
                    SELECT u.*, row_number() OVER (PARTITION BY u.list_id, u.paper_id, u.kind
                                                   ORDER BY u.ts, u.id) AS nth
                    FROM (SELECT * FROM direct UNION ALL SELECT * FROM loose) u
                    WHERE u.list_id IS NOT NULL)
                WHERE nth = 1
            )
            SELECT a.id AS event_id, a.kind, a.ts, a.paper_id, i.request_id, i.user_id,
                   i.variant, i.served_at,
                   (SELECT CAST(j.key AS INTEGER) FROM json_each(i.paper_ids) j
                    WHERE j.value = a.paper_id ORDER BY j.key LIMIT 1) AS position,
                   i.sources
            FROM attributed a JOIN impressions i ON i.request_id = a.list_id
            WHERE i.experiment = :name
            ORDER BY a.ts, a.id
            """,
            {"name": name, "window": float(window_hours), **kinds},
        ))
