"""The PostgreSQL schema, as append-only migrations numbered like SQLite's.

Migration N here makes the same tables, columns and constraints as migration N of
recommender/storage/sqlite/schema.py, so a store is at "version N" on either backend and
`paperrec db migrate` means the same on both. A released migration is never edited.

What PostgreSQL needs beyond SQLite:
- Every text column is `COLLATE "C"`: ids and ISO-8601 times then sort and compare byte by
  byte, as in SQLite, whatever the database's locale (a range on reader ids, ORDER BY
  paper_id, `ts <= until` all mean the same on both).
- Change numbers in commit order. The live recommenders of every replica follow events by
  id and papers by `changed` (a change feed). A sequence hands out numbers at insert time,
  not at commit, so a transaction holding id 10 could commit after one holding id 11: a
  poller that saw 11 would skip 10 for good. A statement trigger takes a transaction-level
  advisory lock before any row of the table is written: writers of one table commit one
  after another, and PostgreSQL makes a commit visible before it releases the lock, so a
  number is only ever handed out after every smaller one is visible. Any writer (psql, an
  old replica) goes through the trigger. Group commit keeps this cheap: one lock turn per
  batch of requests.
- Impressions have no rowid: `seq` keeps their insertion order.
"""
from __future__ import annotations

# Advisory lock keys (classid, objid): one per change feed, one for migrations.
LOCK_CLASS = 0x7061  # "pa"
EVENTS_FEED_LOCK, PAPERS_FEED_LOCK, MIGRATION_LOCK = 1, 2, 3

_FEED_LOCK_FUNCTION = f"""
CREATE OR REPLACE FUNCTION paperrec_feed_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_CLASS}, TG_ARGV[0]::integer);
    RETURN NULL;
END $$
"""

M001_INITIAL = [
    """CREATE TABLE papers (
        paper_id text COLLATE "C" PRIMARY KEY,
        title text COLLATE "C" NOT NULL,
        abstract text COLLATE "C",
        published_at text COLLATE "C",
        authors text COLLATE "C",
        upvotes bigint,
        extra text COLLATE "C",
        added_at text COLLATE "C" NOT NULL,
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE)""",
    """CREATE TABLE events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        user_id text COLLATE "C" NOT NULL,
        paper_id text COLLATE "C" NOT NULL REFERENCES papers (paper_id),
        kind text COLLATE "C" NOT NULL,
        ts text COLLATE "C" NOT NULL,
        request_id text COLLATE "C",
        idempotency_key text COLLATE "C",
        received_at text COLLATE "C" NOT NULL)""",
    "CREATE UNIQUE INDEX idx_events_idempotency_key ON events (idempotency_key)",
    "CREATE INDEX idx_events_user_id_ts ON events (user_id, ts)",
    "CREATE INDEX idx_events_paper_id ON events (paper_id)",
    "CREATE INDEX idx_events_ts ON events (ts)",
    "CREATE INDEX idx_events_request_id ON events (request_id)",
    """CREATE TABLE impressions (
        request_id text COLLATE "C" PRIMARY KEY,
        user_id text COLLATE "C" NOT NULL,
        experiment text COLLATE "C",
        variant text COLLATE "C",
        strategy text COLLATE "C" NOT NULL,
        model_version text COLLATE "C",
        paper_ids text COLLATE "C" NOT NULL,
        sources text COLLATE "C",
        served_at text COLLATE "C" NOT NULL,
        seq bigint GENERATED ALWAYS AS IDENTITY)""",
    "CREATE INDEX idx_impressions_user_id_served_at ON impressions (user_id, served_at)",
    "CREATE INDEX idx_impressions_experiment_variant ON impressions (experiment, variant)",
    """CREATE TABLE experiments (
        name text COLLATE "C" PRIMARY KEY,
        kind text COLLATE "C" NOT NULL,
        config text COLLATE "C" NOT NULL,
        control text COLLATE "C",
        status text COLLATE "C" NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        stopped_at text COLLATE "C")""",
    """CREATE TABLE models (
        version text COLLATE "C" PRIMARY KEY,
        status text COLLATE "C" NOT NULL,
        created_at text COLLATE "C" NOT NULL,
        path text COLLATE "C" NOT NULL,
        params text COLLATE "C",
        metrics text COLLATE "C",
        promoted_at text COLLATE "C",
        retired_at text COLLATE "C")""",
    _FEED_LOCK_FUNCTION,
    f"""CREATE TRIGGER events_feed_order BEFORE INSERT ON events
        FOR EACH STATEMENT EXECUTE FUNCTION paperrec_feed_lock('{EVENTS_FEED_LOCK}')""",
]

M002_PAPER_CHANGES = [
    "CREATE SEQUENCE papers_changed_seq",
    "ALTER TABLE papers ADD COLUMN changed bigint",
    "UPDATE papers SET changed = seq",
    "SELECT setval('papers_changed_seq', (SELECT coalesce(max(seq), 0) + 1 FROM papers), false)",
    "CREATE INDEX idx_papers_changed ON papers (changed)",
    f"""CREATE TRIGGER papers_feed_order BEFORE INSERT OR UPDATE ON papers
        FOR EACH STATEMENT EXECUTE FUNCTION paperrec_feed_lock('{PAPERS_FEED_LOCK}')""",
]

M003_READER_SCOPED_KEYS = [
    "DROP INDEX IF EXISTS idx_events_idempotency_key",
    "CREATE UNIQUE INDEX idx_events_user_id_idempotency_key ON events (user_id, idempotency_key)",
]

M004_STORE_PROBE = [
    "CREATE TABLE store_probe (id integer PRIMARY KEY, at text COLLATE \"C\" NOT NULL)",
]

M005_MODEL_FILES = [
    """CREATE TABLE model_files (
        version text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        data bytea NOT NULL,
        sha256 text COLLATE "C" NOT NULL,
        PRIMARY KEY (version, name))""",
]

MIGRATIONS = [M001_INITIAL, M002_PAPER_CHANGES, M003_READER_SCOPED_KEYS, M004_STORE_PROBE,
              M005_MODEL_FILES]
