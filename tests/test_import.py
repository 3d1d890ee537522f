"""`paperrec import`: all-or-nothing, line numbers, --skip-invalid, re-import is a no-op."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.events import InvalidField
from recommender.core.papers import clean_paper
from training.cli import main


def write_papers(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_events(path, lines):
    path.write_text("user_id,paper_id,kind,ts\n" + "".join(line + "\n" for line in lines))
    return path


PAPERS = [{"paper_id": "a", "title": "Alpha", "abstract": "first"},
          {"paper_id": "b", "title": "Beta", "abstract": "second", "upvotes": 4}]


def run(*args) -> int:
    return main([str(a) for a in args])


def test_papers_then_events_and_reimport_changes_nothing(tmp_path, capsys):
    db = tmp_path / "x.db"
    papers = write_papers(tmp_path / "p.jsonl", PAPERS)
    events = write_events(tmp_path / "e.csv", ["u1,a,read,2026-01-02T03:04:05Z", "u1,b,upvote,",
                                              "u2,a,click,2026-01-01"])
    assert run("import", "papers", papers, "--db", db) == 0
    assert run("import", "events", events, "--db", db) == 0
    out = capsys.readouterr().out
    assert "2 stored" in out and "3 stored" in out
    assert run("import", "papers", papers, "--db", db) == 0
    assert run("import", "events", events, "--db", db) == 0
    out = capsys.readouterr().out
    assert "0 stored, 2 already present" in out and "0 stored, 3 already present" in out
    from recommender.storage import open_store
    s = open_store(db)
    assert s.count("papers") == 2 and s.count("events") == 3


def test_bad_rows_reject_the_whole_file_with_line_numbers(tmp_path, capsys):
    db = tmp_path / "x.db"
    run("import", "papers", write_papers(tmp_path / "p.jsonl", PAPERS), "--db", db)
    events = write_events(tmp_path / "e.csv", ["u1,a,read,", "u1,zzz,read,", "u1,b,like,",
                                              "u2,b,click,2026-13-01"])
    assert run("import", "events", events, "--db", db) == 1
    err = capsys.readouterr().err
    assert "e.csv:3: paper_id: unknown paper 'zzz'" in err
    assert "e.csv:4: kind:" in err and "e.csv:5: ts:" in err
    assert "nothing imported" in err
    from recommender.storage import open_store
    assert open_store(db).count("events") == 0


def test_skip_invalid_imports_good_rows_and_says_why(tmp_path, capsys):
    db = tmp_path / "x.db"
    rows = PAPERS + [{"paper_id": "c"}, {"paper_id": "d", "title": "Delta", "upvotes": "many"}]
    path = write_papers(tmp_path / "p.jsonl", rows)
    with path.open("a") as fh:
        fh.write("{not json\n")
    assert run("import", "papers", path, "--db", db, "--skip-invalid") == 0
    out = capsys.readouterr().out
    assert "2 stored" in out and "3 skipped" in out
    assert "skipped line 3: title" in out and "skipped line 4: upvotes" in out
    assert "skipped line 5: json" in out


def test_missing_file_and_help(tmp_path, capsys):
    assert run("import", "papers", tmp_path / "nope.jsonl", "--db", tmp_path / "x.db") == 2
    for argv in (["--help"], ["import", "--help"], ["import", "events", "--help"], ["seed", "--help"],
                 ["serve", "--help"]):
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code == 0
        assert "usage: paperrec" in capsys.readouterr().out


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["paper_id", "title", "abstract", "upvotes", "authors",
                                        "published_at", "other"]),
                       st.one_of(st.none(), st.text(max_size=40), st.integers(-5, 10**6),
                                 st.lists(st.text(max_size=5), max_size=3))))
def test_clean_paper_accepts_or_names_a_field(raw):
    try:
        paper = clean_paper(raw)
    except InvalidField as exc:
        assert exc.field in {"paper", "paper_id", "title", "abstract", "upvotes", "authors",
                             "published_at"}
    else:
        assert paper["title"].strip() and paper["paper_id"].strip()
        assert paper["upvotes"] is None or paper["upvotes"] >= 0


def test_seed_run_twice_stores_everything_once(tmp_path, capsys):
    """`paperrec seed` (what `make run` does every time) on a store it already seeded
    adds nothing: the same 787 papers and 824 demo events, nothing new the second time."""
    from recommender.storage import open_store
    db = tmp_path / "twice.db"
    assert run("seed", "--db", db) == 0
    assert capsys.readouterr().out == (f"seeded {db}: 787 papers (787 new or changed), "
                                       "824 synthetic demo events (824 new)\n")
    assert run("seed", "--db", db) == 0
    assert capsys.readouterr().out == (f"seeded {db}: 787 papers (0 new or changed), "
                                       "824 synthetic demo events (0 new)\n")
    store = open_store(db)
    try:
        assert (store.count("papers"), store.count("events")) == (787, 824)
    finally:
        store.close()
