"""`paperrec serve`: run the API with uvicorn (one process; SQLite is the shared state)."""
from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API", description="Serve the HTTP API "
                       "with uvicorn. Configuration comes from PAPERREC_* variables.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run("service.app:app_from_env", factory=True, host=args.host, port=args.port,
                log_level=args.log_level)
    return 0
