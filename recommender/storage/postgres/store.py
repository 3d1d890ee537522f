"""The PostgreSQL store: connections and writes (connections.py) plus one module per table
family."""
from __future__ import annotations

from recommender.storage.interface import Store
from recommender.storage.postgres.connections import Connections
from recommender.storage.postgres.events import Events
from recommender.storage.postgres.experiments import Experiments
from recommender.storage.postgres.models import ModelRegistry
from recommender.storage.postgres.papers import Papers
from recommender.storage.postgres.served_lists import ServedLists


class PostgresStore(Connections, Papers, Events, ServedLists, Experiments, ModelRegistry, Store):
    """One PostgreSQL database shared by every replica; see the package docstring."""
