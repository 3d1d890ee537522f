"""Where the CLI finds things: the same PAPERREC_* variables as the service."""
from __future__ import annotations

from pathlib import Path

from recommender.core.settings import Settings


def db_path() -> Path:
    return Settings().db
