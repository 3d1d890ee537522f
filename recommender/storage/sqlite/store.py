"""The SQLite store: connections and writes (connections.py) plus one module per table
family."""
from __future__ import annotations

from recommender.storage.interface import Store
from recommender.storage.sqlite.connections import Connections
from recommender.storage.sqlite.events import Events
from recommender.storage.sqlite.experiments import Experiments
from recommender.storage.sqlite.models import ModelRegistry
from recommender.storage.sqlite.papers import Papers
from recommender.storage.sqlite.served_lists import ServedLists


class SQLiteStore(Connections, Papers, Events, ServedLists, Experiments, ModelRegistry, Store):
    """One SQLite file, WAL mode, `synchronous=FULL`; see the package docstring."""
