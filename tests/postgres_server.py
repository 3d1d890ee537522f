"""A real PostgreSQL server for the tests, started from the installed binaries.

Why our own and not a shared one: the tests must not depend on (or touch) a database
someone else runs, and some of them stop the server on purpose. `initdb` makes a cluster
in a temporary folder, the server listens on 127.0.0.1 on a free port (no unix socket),
with trust authentication for the loopback only and fsync on (the durability tests need
what a production server does). PostgreSQL refuses to run as root: as root the cluster
belongs to the `postgres` system user and every server command runs as that user.

Where no PostgreSQL binaries exist, `find_bindir()` returns None and the PostgreSQL tests
skip with one line; in CI (`CI=true`) they fail instead (tests/conftest.py).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from recommender.storage.postgres import raw
from tests.helpers import free_port

SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The folder of initdb/pg_ctl: $PAPERREC_PG_BINDIR when set (and only it), else
    Debian's layout (newest version first), else the PATH."""
    given = os.environ.get("PAPERREC_PG_BINDIR")
    if given:
        ok = (Path(given) / "initdb").is_file() and (Path(given) / "pg_ctl").is_file()
        return Path(given) if ok else None
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                         reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    return None


class PostgresServer:
    """One cluster in a temporary folder: start(), stop(mode), url(database), create/drop
    databases. Use it as a context manager; the folder is removed at the end."""

    def __init__(self, bindir: Path, settings: dict | None = None):
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="paperrec-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # The server refuses root; the folder is handed to the postgres account.
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and no 'postgres' user to run PostgreSQL as")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                  "--no-instructions", "-E", "UTF8", "--locale", "C")
        conf = {"listen_addresses": "'127.0.0.1'", "port": str(self.port),
                "unix_socket_directories": "''", "max_connections": "200",
                "shared_buffers": "64MB", "fsync": "on", "synchronous_commit": "on",
                "logging_collector": "off", **(settings or {})}
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write("\n# paperrec tests\n")
            for k, v in conf.items():
                fh.write(f"{k} = {v}\n")
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self._as_user, str(self.bindir / tool), *args], check=check,
                              capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
                  "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                raw.query(self.url("postgres"), "SELECT 1")
                return
            except raw.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """`mode` immediate: the server quits without a checkpoint, as a crash would (the
        next start recovers from the WAL)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop",
                  check=False)

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (a copy of `template` when given); returns its URL."""
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        raw.execute(self.url("postgres"), sql, autocommit=True)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        raw.execute(self.url("postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                    autocommit=True)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
