"""Shared fixtures: a real SQLite file or a real PostgreSQL database per test, and the real
app through its test client.

The seeded database (shipped catalog + synthetic demo readers) is built once per session
and backend and copied for each test that wants it (a file copy; CREATE DATABASE ...
TEMPLATE on PostgreSQL), so tests stay independent and fast. The PostgreSQL server is
started once per session from the installed binaries (tests/postgres_server.py)."""
from __future__ import annotations

import shutil
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*httpx2.*")

from recommender.storage import BACKENDS, open_store  # noqa: E402
from recommender.storage.sqlite import raw  # noqa: E402
from tests.helpers import database_name, fresh_location, in_ci, make_client  # noqa: E402
from tests.postgres_server import PostgresServer, find_bindir  # noqa: E402

# In CI a skipped test fails unless marked may_skip_in_ci (tests/ci_guard.py).
pytest_plugins = ["tests.ci_guard"]

MISSING = "PostgreSQL is not installed here (no initdb/pg_ctl)"
_SKIPPED: list[str] = []  # why the PostgreSQL tests were skipped (said once, at the end)


def pytest_sessionstart(session):
    """In CI the PostgreSQL tests must run: without the binaries the run stops at once."""
    if in_ci() and find_bindir() is None:
        pytest.exit(f"CI: the PostgreSQL tests must run, but {MISSING}", returncode=1)


def _no_postgres(why: str):
    """In CI a server that cannot start fails every PostgreSQL test; elsewhere they skip,
    and the summary says why in one line."""
    if in_ci():
        pytest.fail(f"CI: the PostgreSQL tests must run, but {why}", pytrace=False)
    _SKIPPED.append(why)
    pytest.skip(f"PostgreSQL backend: {why}")


def pytest_terminal_summary(terminalreporter):
    if _SKIPPED:
        terminalreporter.write_line(f"PostgreSQL backend tests skipped: {_SKIPPED[0]}",
                                    yellow=True)


@pytest.fixture(scope="session")
def postgres():
    """The tests' own PostgreSQL server (one per session), or a skip / CI failure."""
    bindir = find_bindir()
    if bindir is None:
        _no_postgres(MISSING)
    try:
        server = PostgresServer(bindir)
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported, not raised
        _no_postgres(f"it could not start ({type(exc).__name__}: {exc})"[:500])
    yield server
    server.close()


class _Databases:
    """The databases a test made on the server, dropped when it ends (each is ~8 MB)."""

    def __init__(self, server: PostgresServer, tmp_path):
        self.server, self.tmp_path, self.made = server, tmp_path, []

    def new(self, template: str | None = None, suffix: str = "") -> str:
        name = database_name(self.tmp_path, suffix or str(len(self.made)))
        self.made.append(name)
        return self.server.create_database(name, template=template)

    def drop(self) -> None:
        for name in self.made:
            self.server.drop_database(name)


@pytest.fixture
def pg_databases(request, tmp_path):
    """Make fresh PostgreSQL databases for a test: `pg_databases.new(template=...)`."""
    dbs = _Databases(request.getfixturevalue("postgres"), tmp_path)
    yield dbs
    dbs.drop()
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
    s = open_store(fresh_location(request, request.param, tmp_path))
    yield s
    s.close()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Each backend in turn, for tests that build their own store or app on it."""
    return request.param


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


@pytest.fixture(scope="session")
def seeded_pg_template(postgres):
    """The seeded store as a PostgreSQL template database (built once per session)."""
    name = "seeded_template"
    url = postgres.create_database(name)
    s = open_store(url)
    seed(s, demo=True)
    s.close()
    return name


@pytest.fixture
def seeded(request, backend, tmp_path):
    """A private seeded store of each backend in turn: its location (path or URL)."""
    if backend == "postgresql":
        template = request.getfixturevalue("seeded_pg_template")
        return request.getfixturevalue("pg_databases").new(template=template)
    return request.getfixturevalue("seeded_db")


@pytest.fixture(scope="module", params=BACKENDS)
def module_seeded(request, tmp_path_factory, seeded_db_template):
    """A seeded store of each backend in turn shared by one module's tests (a live server
    they all talk to): its location."""
    tmp = tmp_path_factory.mktemp(f"seeded-{request.param}")
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        name = database_name(tmp)
        yield server.create_database(name, template=request.getfixturevalue("seeded_pg_template"))
        server.drop_database(name)
    else:
        db = tmp / "seeded.db"
        shutil.copy(seeded_db_template, db)
        yield db


@pytest.fixture
def client(seeded):
    """The real app on a seeded store, once per backend."""
    with make_client(seeded) as c:
        yield c


@pytest.fixture
def empty_client(request, backend, tmp_path):
    with make_client(fresh_location(request, backend, tmp_path)) as c:
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
