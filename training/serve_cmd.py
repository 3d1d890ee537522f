"""`paperrec serve`: run the API with uvicorn, in one process or several (--workers).

Every worker is a replica: its own live recommender and model in memory, the store shared.
Several workers suit PostgreSQL (PAPERREC_DB=postgresql://...), where they follow each
other's writes through the change feed; on SQLite they share one file on one machine."""
from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API", description="Serve the HTTP API "
                       "with uvicorn. Configuration comes from PAPERREC_* variables.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--workers", type=int, default=1,
                   help="API processes behind the one port (replicas; default 1)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    if args.workers < 1:
        print("error: --workers must be at least 1")
        return 2
    uvicorn.run("service.app:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level)
    return 0
