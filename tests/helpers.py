"""What tests share besides fixtures (those are in conftest.py): the API key and a client
of the real app, the real server as a subprocess or a thread, and a small synthetic
catalog for the model's tests. Test modules import from here, never from each other."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from fastapi.testclient import TestClient

from recommender.core.settings import Settings
from recommender.model.hybrid import HybridConfig
from service.app import create_app

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key"
AUTH = {"X-API-Key": API_KEY}


def in_ci() -> bool:
    """CI sets CI=true (.ci/run's environment); there every test must run."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def store_location(backend: str, tmp_path: Path, postgres=None) -> str | Path:
    """Where a test's fresh store of `backend` lives (storage.BACKENDS): a file in the
    test's folder, or a new database on the tests' PostgreSQL server (`postgres`, the
    conftest fixture of that name), named after the folder."""
    if backend == "sqlite":
        return tmp_path / "store.db"
    if backend == "postgresql":
        return postgres.create_database(database_name(tmp_path))
    raise ValueError(f"no test location for backend {backend!r}")


def fresh_location(request, backend: str, tmp_path: Path) -> str | Path:
    """A new, empty store location of `backend` for the requesting test (a PostgreSQL one
    through the `pg_databases` fixture, dropped when the test ends)."""
    if backend == "postgresql":
        return request.getfixturevalue("pg_databases").new()
    return store_location(backend, tmp_path)


def database_name(tmp_path: Path, suffix: str = "") -> str:
    """A PostgreSQL database name unique to a test (its tmp folder is)."""
    import hashlib

    digest = hashlib.sha1(str(tmp_path).encode()).hexdigest()[:12]
    return f"t_{digest}{suffix}"


def raw_query(location, sql: str, params=()) -> list[tuple]:
    """The rows of one read straight from a store's database, behind the service's back,
    on either backend (`?` placeholders)."""
    from recommender.storage import raw

    return raw.query(location, sql, params)


def make_client(db_path, **settings) -> TestClient:
    """The real app on `db_path` through its test client (use it as a context manager)."""
    app = create_app(Settings(db=db_path, api_keys=f"{API_KEY},other-key", **settings))
    return TestClient(app)


def wait_for_version(client, version, timeout=15.0) -> dict:
    """/health once the service serves model `version`."""
    deadline = time.monotonic() + timeout
    health = None
    while time.monotonic() < deadline:
        health = client.get("/health").json()
        if health["model_version"] == version:
            return health
        time.sleep(0.2)
    raise AssertionError(f"service never switched to {version}: {health}")


# -- a synthetic catalog: readers with topical tastes ----------------------------------------

TOPICS = {
    "graphs": "graph network node edge community clustering spectral random walk",
    "genes": "gene expression protein sequence genome transcription regulatory cell",
    "vision": "image convolutional pixel segmentation detection camera visual scene",
    "language": "language text word translation parsing corpus sentence semantic",
}


def synthetic(n_papers=80, n_users=160, seed=0):
    """(texts, titles, users, items, topic per paper): each reader reads papers of one or
    two topics."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    topic = rng.integers(0, len(names), n_papers)
    titles, texts = [], []
    for i in range(n_papers):
        words = TOPICS[names[topic[i]]].split()
        w = rng.choice(words, 6)
        titles.append(f"{w[0]} {w[1]} study {i}")
        texts.append(f"{titles[-1]} {' '.join(rng.choice(words, 12))}")
    users, items = [], []
    for u in range(n_users):
        likes = rng.choice(len(names), 1 + (u % 2), replace=False)
        pool = np.nonzero(np.isin(topic, likes))[0]
        for i in rng.choice(pool, min(len(pool), int(rng.integers(2, 12))), replace=False):
            users.append(u)
            items.append(int(i))
    return texts, titles, np.asarray(users), np.asarray(items), topic


# A small fit that still carves a validation slice on the synthetic catalog.
CONFIG = HybridConfig(seed=0, min_val_positives=10, max_val_users=300, content_dim=16, pool_per_feature=20)


def write_split(root: Path, split: str, topic, rng, train: list, test: list, topics: list[str]) -> None:
    """A split in the layout `benchmarks.quality.split_files` reads: papers.jsonl.gz under
    `root` (paper i of topic[i]: a title and an abstract of its topic's words) and the
    split's gzipped train and test events (rows [user, paper, kind, ts])."""
    import csv
    import gzip
    import json
    with gzip.open(root / "papers.jsonl.gz", "wt") as fh:
        for i, t in enumerate(topic):
            words = topics[t].split()
            fh.write(json.dumps({"paper_id": f"p{i}", "title": f"{words[i % 4]} study {i}",
                                 "abstract": " ".join(rng.choice(words, 10))}) + "\n")
    (root / split).mkdir()
    for name, rows in (("train.csv.gz", train), ("test.csv.gz", test)):
        with gzip.open(root / split / name, "wt", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["user_id", "paper_id", "kind", "ts"])
            w.writerows(rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, db: Path | str, api_keys: str, log: Path, port: int | None = None,
                 env: dict | None = None, startup_timeout: float = 60.0,
                 prefix: list[str] | None = None):
        """`db`: an SQLite file or a PostgreSQL URL; `prefix`: a command the server runs
        under (e.g. setpriv dropping capabilities)."""
        self.db = db if "://" in str(db) else Path(db)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log)
        models = (Path(log).parent if "://" in str(db) else Path(db).parent) / "models"
        full_env = {**os.environ, "PAPERREC_DB": str(db), "PAPERREC_API_KEYS": api_keys,
                    "PAPERREC_MODEL_DIR": str(models), **(env or {})}
        self._log_file = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "uvicorn", "service.app:app_from_env", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
             "--no-access-log"],
            cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=self._log_file,
        )
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server not up in {startup_timeout} s: {self.log_text()[-3000:]}")
            time.sleep(0.1)

    def log_text(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed by the process."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log_file.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()

    def __enter__(self) -> "LiveServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def uvicorn_in_thread(app, startup_timeout: float = 30.0):
    """The app under real uvicorn on 127.0.0.1 in this process (a thread): for the browser
    tests, which need a real socket but no process to kill. Yields the base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
