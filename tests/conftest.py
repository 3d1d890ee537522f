"""Shared fixtures: a real SQLite file per test and the real app through its test client.

The seeded database (shipped catalog + synthetic demo readers) is built once per session
and copied for each test that wants it, so tests stay independent and fast."""
from __future__ import annotations

import shutil
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*httpx2.*")

from recommender.storage import BACKENDS, open_store  # noqa: E402
from recommender.storage.sqlite import raw  # noqa: E402
from tests.helpers import make_client, store_location  # noqa: E402
from training.seeding import seed  # noqa: E402
from training.train_job import train  # noqa: E402


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite store (the default backend) in a file of its own."""
    s = open_store(tmp_path / "test.db")
    yield s
    s.close()


@pytest.fixture(params=BACKENDS)
def backend_store(request, tmp_path):
    """A fresh, empty store of every backend in turn: the storage contract
    (test_storage_contract.py) runs once per backend."""
    s = open_store(store_location(request.param, tmp_path))
    yield s
    s.close()


@pytest.fixture(scope="session")
def seeded_db_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("seeded") / "seeded.db"
    s = open_store(path)
    seed(s, demo=True)
    s.close()
    raw.checkpoint(path)
    return path


@pytest.fixture
def seeded_db(tmp_path, seeded_db_template):
    path = tmp_path / "seeded.db"
    shutil.copy(seeded_db_template, path)
    return path


@pytest.fixture
def client(seeded_db):
    with make_client(seeded_db) as c:
        yield c


@pytest.fixture
def empty_client(tmp_path):
    with make_client(tmp_path / "empty.db") as c:
        yield c


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory, seeded_db_template):
    """A seeded store with one trained, promoted model (trained once per session)."""
    root = tmp_path_factory.mktemp("trained")
    db = root / "db.sqlite"
    shutil.copy(seeded_db_template, db)
    store = open_store(db)
    result = train(store, root / "models", progress=False)
    store.close()
    raw.checkpoint(db)
    return root, result


@pytest.fixture
def trained(tmp_path, trained_template):
    """A private copy of trained_template: (db, models folder, open store, train result);
    model paths in the registry are rewritten to the copy."""
    root, result = trained_template
    shutil.copytree(root, tmp_path / "t")
    db = tmp_path / "t" / "db.sqlite"
    raw.execute(db, "UPDATE models SET path = replace(path, ?, ?)", [str(root), str(tmp_path / "t")])
    store = open_store(db)
    yield db, tmp_path / "t" / "models", store, result
    store.close()
