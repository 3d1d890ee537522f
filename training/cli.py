"""The `paperrec` console script: one entry point, one module per command.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func` (called with the parsed args; its return value is the exit code). Keeping commands
in their own modules keeps this file a table of contents.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = [
    "training.db_cmd",
    "training.seed_cmd",
    "training.import_cmd",
    "training.serve_cmd",
    "training.train_cmd",
    "training.models_cmd",
    "training.evaluate_cmd",
    "training.experiments_cmd",
    "training.simulate_cmd",
    "training.prune_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paperrec",
        description="paperrec: personalised 'trending for you' recommendations for research papers.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
