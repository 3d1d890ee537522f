"""`paperrec prune`: the served-list log has a retention (issue 11, finding 4) that keeps
what experiment reports and attribution need."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from recommender.storage import open_store
from recommender.storage.sqlite import raw
from training.cli import main

NOW = datetime.now(timezone.utc)


def served(store, rid, user, days_ago, experiment=None):
    store.log_served_list(rid, user, "trending", ["p1", "p2"], experiment=experiment,
                          variant="a" if experiment else None,
                          served_at_unix=(NOW - timedelta(days=days_ago)).timestamp())


def ids(store) -> set[str]:
    store.flush()
    return {r[0] for r in raw.query(store.location, "SELECT request_id FROM impressions")}


def test_prune_keeps_experiments_recent_lists_and_lists_attribution_may_need(tmp_path):
    store = open_store(tmp_path / "p.db")
    served(store, "old-plain", "u1", 90)
    served(store, "old-plain-2", "u1", 45)
    served(store, "recent-plain", "u1", 3)
    served(store, "old-exp", "u2", 200, experiment="e")
    served(store, "old-near-exp", "u2", 190)  # u2's experiment list 10 days before it
    served(store, "old-far-from-exp", "u2", 100)
    removed = store.prune_impressions(older_than_days=30)
    assert removed == 3
    assert ids(store) == {"recent-plain", "old-exp", "old-near-exp"}
    assert store.prune_impressions(older_than_days=30) == 0
    store.close()


def test_prune_command(tmp_path, capsys):
    db = tmp_path / "c.db"
    store = open_store(db)
    served(store, "old", "u", 60)
    served(store, "new", "u", 1)
    store.close()
    assert main(["prune", "--db", str(db), "--days", "30"]) == 0
    assert "1 served list" in capsys.readouterr().out
    store = open_store(db)
    assert ids(store) == {"new"}
    store.close()
    assert main(["prune", "--db", str(db), "--days", "5"]) == 2  # below the attribution window
