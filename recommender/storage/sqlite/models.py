"""The model registry: versions, their status and metrics."""
from __future__ import annotations

import hashlib
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

    def save_model_files(self, version: str, files: dict[str, bytes]) -> None:
        with self.transaction() as db:
            db.conn.execute("DELETE FROM model_files WHERE version = ?", (version,))
            db.conn.executemany(
                "INSERT INTO model_files (version, name, data, sha256) VALUES (?, ?, ?, ?)",
                [(version, name, data, hashlib.sha256(data).hexdigest())
                 for name, data in files.items()])

    def model_files(self, version: str) -> dict[str, bytes]:
        rows = self.db.execute("SELECT name, data, sha256 FROM model_files WHERE version = ?",
                               [version]).fetchall()
        return self._verified_files(version, rows)

    def drop_model_files(self, versions) -> int:
        versions = list(versions)
        with self.transaction() as db:
            return sum(db.conn.execute("DELETE FROM model_files WHERE version = ?", (v,)).rowcount
                       for v in versions)
