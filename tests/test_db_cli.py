"""`paperrec db migrate` and `--db` URLs: the CLI reaches either backend by location."""
from __future__ import annotations

from recommender.storage import open_store
from recommender.storage.sqlite.schema import MIGRATIONS
from tests.helpers import fresh_location
from training.cli import main


def test_db_migrate_reports_the_schema_version_on_either_backend(request, backend, tmp_path, capsys):
    location = fresh_location(request, backend, tmp_path)
    assert main(["db", "migrate", "--db", str(location)]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith(f"schema version {len(MIGRATIONS)}"), out
    assert main(["db", "migrate", "--db", str(location)]) == 0  # again: nothing to do
    store = open_store(location)
    try:
        assert store.count("papers") == 0 and store.schema_version == len(MIGRATIONS)
    finally:
        store.close()


def test_a_url_never_shows_its_password(request, tmp_path):
    url = request.getfixturevalue("pg_databases").new()
    with_password = url.replace("postgres@", "postgres:s3cret@")
    store = open_store(with_password)  # trust authentication ignores the password
    try:
        assert "s3cret" not in store.location and ":***@" in store.location
    finally:
        store.close()


def test_sqlite_urls_name_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///relative.db")
    store.close()
    assert (tmp_path / "relative.db").exists()
    store = open_store(f"sqlite:///{tmp_path}/absolute.db")  # sqlite:////abs/path
    store.close()
    assert (tmp_path / "absolute.db").exists()
