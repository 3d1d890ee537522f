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
    p.add_argument("--no-access-log", action="store_true", help="no line per request")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if args.workers < 1:
        print("error: --workers must be at least 1")
        return 2
    options = {"factory": True, "host": args.host, "port": args.port,
               "log_level": args.log_level, "access_log": not args.no_access_log}
    if args.workers == 1:
        uvicorn.run(APP, **options)
        return 0
    config = uvicorn.Config(APP, workers=args.workers, **options)
    listener = config.bind_socket()
    # uvicorn binds the shared socket with protocol number 0; accepted connections inherit
    # it, and asyncio then leaves Nagle's algorithm on: every keep-alive response after the
    # first waited ~40 ms for the client's delayed ACK (measured: 21 requests/s for one
    # client with --workers 2, 1,100 with one worker). Re-wrapped as TCP, every worker's
    # connections get TCP_NODELAY.
    if listener.family in (socket.AF_INET, socket.AF_INET6):
        listener = socket.socket(listener.family, listener.type, socket.IPPROTO_TCP,
                                 fileno=listener.detach())
    Multiprocess(config, sockets=[listener]).run()
    return 0


APP = "service.app:app_from_env"
