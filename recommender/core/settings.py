"""Configuration from the environment (PAPERREC_*), read once at app start."""
from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Fewest readers the nightly job judges a candidate on (training/train_job.py explains why).
PROMOTION_MIN_READERS = 30


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAPERREC_")

    # An SQLite file (a path, or sqlite:///path) or a PostgreSQL URL
    # (postgresql://user:password@host:port/database): recommender.storage.open_store.
    db: str | Path = PROJECT_ROOT / "data" / "paperrec.db"
    model_dir: Path = PROJECT_ROOT / "data" / "models"
    # Comma-separated; empty means every write is refused.
    api_keys: str = ""
    max_body_bytes: int = 1024 * 1024
    trending_half_life_days: float = 7.0
    # Threads serving sync routes at once (see service/app.py); measured best at 8 here.
    worker_threads: int = 8
    # How long a reader's model-ranked list may be served again while nothing it was ranked
    # from changed (LiveRecommender._kept_model_list); 0 ranks every request afresh.
    list_ttl_s: float = 60.0
    # Signs the reader page's session cookie. Empty: a random key per process (sessions end
    # with a restart). Several replicas behind one address must share one.
    session_secret: str = ""
    # At most this many items (list entries) kept over all readers' kept lists: ~150 bytes
    # an item with its reason, so the default is ~30 MB (10,000 readers at k=20).
    kept_list_items: int = 200_000
    # `paperrec prune` keeps served lists this long (at least 30: the attribution window).
    impression_retention_days: float = 30.0
    # How long a thread may hold the GIL while another waits for it (Python's default is 5).
    # A 1,000-paper POST is seconds of Python (encoding, the catalog's vocabulary refit when
    # it doubles); every time a read hands the GIL back it waited up to this long to get it
    # again. Measured in process on 2 busy cores, reads during five such POSTs: p99 64.5 ms
    # and max 1,313 ms at 5 ms, p99 26.6 ms and max 101 ms at 1 ms.
    gil_switch_ms: float = 1.0

    # The nightly job judges a candidate against the serving model only on at least this
    # many readers; with fewer it keeps the serving model (training/train_job.py).
    promotion_min_readers: int = PROMOTION_MIN_READERS

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())
