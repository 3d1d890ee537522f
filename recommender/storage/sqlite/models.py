"""The model registry: versions, their status and metrics."""
from __future__ import annotations

import json

from recommender.core.times import utcnow_iso


class ModelRegistry:
    def register_model(self, version: str, path: str, params: dict, metrics: dict,
                       status: str = "candidate") -> None:
        with self.transaction() as db:
            db.conn.execute(
                """
                INSERT INTO models (version, status, created_at, path, params, metrics)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
                (version, status, utcnow_iso(), path, json.dumps(params, sort_keys=True),
                 json.dumps(metrics, sort_keys=True)),
            )

    def set_model_status(self, version: str, status: str) -> None:
        """Promoting demotes the previous active model to 'retired' in the same transaction,
        so there is never zero or two active models."""
        with self.transaction() as db:
            if status == "active":
                db.conn.execute(
                    "UPDATE models SET status = 'retired', retired_at = ? WHERE status = 'active'",
                    (utcnow_iso(),),
                )
                db.conn.execute(
                    "UPDATE models SET status = 'active', promoted_at = ? WHERE version = ?",
                    (utcnow_iso(), version),
                )
            else:
                db.conn.execute("UPDATE models SET status = ? WHERE version = ?", (status, version))

    def list_models(self) -> list[dict]:
        rows = list(self.db.query("SELECT * FROM models ORDER BY created_at"))
        for r in rows:
            r["params"] = json.loads(r["params"] or "{}")
            r["metrics"] = json.loads(r["metrics"] or "{}")
        return rows
