"""Shared fixtures: a real SQLite file per test and the real app through its test client.

The seeded database (shipped catalog + synthetic demo readers) is built once per session
and copied for each test that wants it, so tests stay independent and fast."""
from __future__ import annotations

import shutil
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*httpx2.*")

from fastapi.testclient import TestClient  # noqa: E402

from recommender.storage import open_store  # noqa: E402
from service.app import create_app  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402
from training.seed_cmd import seed  # noqa: E402

API_KEY = "test-key"
AUTH = {"X-API-Key": API_KEY}


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "test.db")
    yield s
    s.close()


@pytest.fixture(scope="session")
def seeded_db_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("seeded") / "seeded.db"
    s = open_store(path)
    seed(s, demo=True)
    s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    return path


@pytest.fixture
def seeded_db(tmp_path, seeded_db_template):
    path = tmp_path / "seeded.db"
    shutil.copy(seeded_db_template, path)
    return path


def make_client(db_path, **settings):
    app = create_app(Settings(db=db_path, api_keys=f"{API_KEY},other-key", **settings))
    return TestClient(app)


@pytest.fixture
def client(seeded_db):
    with make_client(seeded_db) as c:
        yield c


@pytest.fixture
def empty_client(tmp_path):
    with make_client(tmp_path / "empty.db") as c:
        yield c
