"""The experiments table, and the report's attribution of events to served lists (the rule
is the SQLite backend's: recommender/storage/sqlite/experiments.py)."""
from __future__ import annotations

import json

from recommender.core.times import utcnow_iso
from recommender.storage.interface import ATTRIBUTED_KINDS

_COLUMNS = "name, kind, config, control, status, created_at, stopped_at"


class Experiments:
    def save_experiment(self, name: str, kind: str, config: dict, control: str | None) -> None:
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO experiments (name, kind, config, control, status, created_at) "
                "VALUES (%s, %s, %s, %s, 'running', %s)",
                (name, kind, json.dumps(config, sort_keys=True), control, utcnow_iso()))
        self.experiments_changed += 1

    def stop_experiment(self, name: str) -> bool:
        with self.transaction() as cur:
            cur.execute("UPDATE experiments SET status = 'stopped', stopped_at = %s "
                        "WHERE name = %s AND status = 'running'", (utcnow_iso(), name))
            stopped = cur.rowcount > 0
        self.experiments_changed += 1
        return stopped

    def list_experiments(self, status: str | None = None) -> list[dict]:
        sql, params = f"SELECT {_COLUMNS} FROM experiments", []
        if status:
            sql += " WHERE status = %s"
            params.append(status)
        rows = self.query(sql + " ORDER BY created_at, name", params)
        for r in rows:
            r["config"] = json.loads(r["config"])
        return rows

    def get_experiment(self, name: str) -> dict | None:
        rows = self.query(f"SELECT {_COLUMNS} FROM experiments WHERE name = %s", (name,))
        if not rows:
            return None
        rows[0]["config"] = json.loads(rows[0]["config"])
        return rows[0]

    def experiment_lists(self, name: str) -> list[dict]:
        self.flush()
        return self.query(
            "SELECT request_id, user_id, variant, served_at, "
            "jsonb_array_length(paper_ids::jsonb) AS items "
            "FROM impressions WHERE experiment = %s ORDER BY served_at, request_id", (name,))

    def experiment_events(self, name: str, window_hours: float = 24.0) -> list[dict]:
        self.flush()
        return self.query(
            """
            WITH imp AS (
                SELECT request_id, user_id FROM impressions WHERE experiment = %(name)s
            ),
            direct AS (
                SELECT e.id, e.kind, e.ts, e.paper_id, e.request_id AS list_id
                FROM events e JOIN imp ON imp.request_id = e.request_id
                                      AND imp.user_id = e.user_id
                WHERE e.kind = ANY(%(kinds)s)
            ),
            loose AS (
                SELECT e.id, e.kind, e.ts, e.paper_id,
                       (SELECT i2.request_id FROM impressions i2
                        WHERE i2.user_id = e.user_id
                          AND i2.served_at <= e.ts
                          AND i2.served_at::timestamptz
                              >= e.ts::timestamptz - make_interval(secs => %(window)s * 3600)
                          AND i2.paper_ids::jsonb ? e.paper_id
                        ORDER BY i2.served_at DESC, i2.seq DESC LIMIT 1) AS list_id
                FROM events e LEFT JOIN impressions x ON x.request_id = e.request_id
                                                    AND x.user_id = e.user_id
                WHERE x.request_id IS NULL AND e.kind = ANY(%(kinds)s)
                  AND e.user_id IN (SELECT user_id FROM imp)
            ),
            attributed AS (
                SELECT * FROM (
                    SELECT u.*, row_number() OVER (PARTITION BY u.list_id, u.paper_id, u.kind
                                                   ORDER BY u.ts, u.id) AS nth
                    FROM (SELECT * FROM direct UNION ALL SELECT * FROM loose) u
                    WHERE u.list_id IS NOT NULL) numbered
                WHERE nth = 1
            )
            SELECT a.id AS event_id, a.kind, a.ts, a.paper_id, i.request_id, i.user_id,
                   i.variant, i.served_at,
                   (SELECT (j.ord - 1)::integer
                    FROM jsonb_array_elements_text(i.paper_ids::jsonb) WITH ORDINALITY j(value, ord)
                    WHERE j.value = a.paper_id ORDER BY j.ord LIMIT 1) AS position,
                   i.sources
            FROM attributed a JOIN impressions i ON i.request_id = a.list_id
            WHERE i.experiment = %(name)s
            ORDER BY a.ts, a.id
            """,
            {"name": name, "window": float(window_hours), "kinds": list(ATTRIBUTED_KINDS)})
