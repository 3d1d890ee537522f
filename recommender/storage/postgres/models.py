"""The model registry: versions, their status and metrics, and each version's files."""
from __future__ import annotations

import hashlib
import json

from recommender.core.times import utcnow_iso

_COLUMNS = "version, status, created_at, path, params, metrics, promoted_at, retired_at"


class ModelRegistry:
    def register_model(self, version: str, path: str, params: dict, metrics: dict,
                       status: str = "candidate") -> None:
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO models (version, status, created_at, path, params, metrics) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (version, status, utcnow_iso(), path, json.dumps(params, sort_keys=True),
                 json.dumps(metrics, sort_keys=True)))

    def set_model_status(self, version: str, status: str) -> None:
        """Promoting retires the previous active model in the same transaction."""
        with self.transaction() as cur:
            if status == "active":
                cur.execute("UPDATE models SET status = 'retired', retired_at = %s "
                            "WHERE status = 'active'", (utcnow_iso(),))
                cur.execute("UPDATE models SET status = 'active', promoted_at = %s "
                            "WHERE version = %s", (utcnow_iso(), version))
            else:
                cur.execute("UPDATE models SET status = %s WHERE version = %s", (status, version))

    def list_models(self) -> list[dict]:
        rows = self.query(f"SELECT {_COLUMNS} FROM models ORDER BY created_at")
        for r in rows:
            r["params"] = json.loads(r["params"] or "{}")
            r["metrics"] = json.loads(r["metrics"] or "{}")
        return rows

    def save_model_files(self, version: str, files: dict[str, bytes]) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM model_files WHERE version = %s", (version,))
            for name, data in files.items():
                cur.execute("INSERT INTO model_files (version, name, data, sha256) "
                            "VALUES (%s, %s, %s, %s)",
                            (version, name, data, hashlib.sha256(data).hexdigest()))

    def model_files(self, version: str) -> dict[str, bytes]:
        rows = self.query("SELECT name, data, sha256 FROM model_files WHERE version = %s",
                          (version,))
        return self._verified_files(version, rows)

    def drop_model_files(self, versions) -> int:
        versions = list(versions)
        if not versions:
            return 0
        with self.transaction() as cur:
            cur.execute("DELETE FROM model_files WHERE version = ANY(%s)", (versions,))
            return cur.rowcount
