"""The real server as a subprocess: `uvicorn service.app:app_from_env --factory` on
127.0.0.1 and a free port, for tests that need a process to kill or a live OpenAPI schema."""
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

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, db: Path, api_keys: str, log: Path, port: int | None = None,
                 env: dict | None = None, startup_timeout: float = 60.0,
                 prefix: list[str] | None = None):
        """`prefix`: a command the server runs under (e.g. setpriv dropping capabilities)."""
        self.db = Path(db)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log)
        full_env = {**os.environ, "PAPERREC_DB": str(db), "PAPERREC_API_KEYS": api_keys,
                    "PAPERREC_MODEL_DIR": str(Path(db).parent / "models"), **(env or {})}
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
