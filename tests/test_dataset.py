"""Reading the generic offline format (recommender/offline/dataset.py)."""
from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.core.papers import MAX_PRIOR_UPVOTES
from recommender.model.popularity import Popularity
from recommender.offline.dataset import DataFileError, load_candidates, load_interactions, load_papers


def test_papers_in_file_order_first_of_a_repeated_id(tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"paper_id": 7, "title": "Seven", "abstract": "a", "published_at": "2024-01-01", "upvotes": 3},
        {"paper_id": "b", "title": "Bee", "upvotes": "lots"},
        {"paper_id": "7", "title": "Seven again"}]) + "\n\n")
    papers = load_papers(path)
    assert papers.ids == ["7", "b"] and papers.titles == ["Seven", "Bee"] and len(papers) == 2
    assert papers.index == {"7": 0, "b": 1} and papers.abstracts == ["a", ""]
    assert papers.upvotes.tolist() == [3.0, 0.0] and np.isnan(papers.published_ts[1])
    assert papers.published_ts[0] == 1704067200.0


def test_interactions_share_reader_indices_and_drop_unknown_papers_and_lone_undos(tmp_path):
    papers_path = tmp_path / "papers.jsonl.gz"
    with gzip.open(papers_path, "wt") as fh:
        fh.write("\n".join(json.dumps({"paper_id": p, "title": p}) for p in ("x", "y")))
    papers = load_papers(papers_path)
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("user_id,paper_id,kind,ts\nu,x,upvote,2024-01-02\nv,zz,read,\n"
                     "v,y,Read,\nu,y,remove_upvote,2024-01-01\n")
    test.write_text("user_id,paper_id,kind,ts\nw,x,,\nu,y,read,\n")
    users: dict[str, int] = {}
    tr = load_interactions(train, papers, users)
    te = load_interactions(test, papers, users)
    # zz is unknown; u's remove_upvote of y comes before any upvote of y: it takes nothing back
    assert tr.dropped == 1 and len(tr) == 2 and tr.kinds.tolist() == ["upvote", "read"]
    assert tr.user_ids == ["u", "v"] and te.user_ids == ["u", "v", "w"]
    assert te.users.tolist() == [2, 0] and te.kinds.tolist() == ["read", "read"] and te.n_users == 3
    assert np.isnan(te.ts).all()


def test_candidates_are_known_ids_once(tmp_path):
    papers_path = tmp_path / "papers.jsonl"
    papers_path.write_text("\n".join(json.dumps({"paper_id": p, "title": p}) for p in "abc"))
    cand = tmp_path / "candidates.txt"
    cand.write_text("c\na\nnope\n\nc\n")
    assert load_candidates(cand, load_papers(papers_path)).tolist() == [0, 2]


def _papers(tmp_path, ids="abc"):
    path = tmp_path / "papers.jsonl"
    path.write_text("\n".join(json.dumps({"paper_id": p, "title": p}) for p in ids))
    return load_papers(path)


def test_a_byte_order_mark_and_a_loosely_written_header_are_read(tmp_path):
    """Spreadsheet exports start with a BOM; hand-made files write ' Paper_ID' and 'a, b'."""
    papers = _papers(tmp_path)
    path = tmp_path / "train.csv"
    path.write_bytes("\ufeffUser_ID, Paper_ID ,KIND,ts\r\nu1, b, read,\r\nu2,c,upvote,2024-01-01\r\n".encode())
    tr = load_interactions(path, papers)
    assert tr.user_ids == ["u1", "u2"] and tr.items.tolist() == [1, 2] and tr.kinds.tolist() == ["read", "upvote"]
    path.write_bytes(b'user_id,paper_id,kind,ts\ru1,b,read,\ru2,"c",upvote,\r')  # old Mac line ends
    assert load_interactions(path, papers).items.tolist() == [1, 2]
    (tmp_path / "papers2.jsonl").write_bytes("\ufeff".encode() + json.dumps({"paper_id": "z"}).encode())
    assert load_papers(tmp_path / "papers2.jsonl").ids == ["z"]
    cand = tmp_path / "candidates.txt"
    cand.write_bytes("\ufeffa\n c \n".encode())
    assert load_candidates(cand, papers).tolist() == [0, 2]


@pytest.mark.parametrize("content, expected", [
    (b"user_id;paper_id;kind;ts\nu;a;read;\n", "line 1: header: missing column(s) user_id, paper_id"),
    (b"u,a,read,\n", "line 1: header: missing column(s) user_id, paper_id"),
    (b"reader,paper_id\nu,a\n", "line 1: header: missing column(s) user_id;"),
    (b"user_id,paper_id\nu,a\nv,caf\xe9\n", "line 3: not UTF-8 text"),
])
def test_an_events_file_in_another_shape_is_rejected_naming_the_line(tmp_path, content, expected):
    path = tmp_path / "train.csv"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=re.escape(expected)) as err:
        load_interactions(path, _papers(tmp_path))
    assert str(err.value).startswith("train.csv line")


@pytest.mark.parametrize("line, expected", [
    ('{"paper_id": "x", "title": "t"', "line 2: not valid JSON"),
    ('["x", "t"]', "line 2: each line must be one JSON object"),
    ('{"title": "no id"}', "line 2: paper_id: missing"),
])
def test_a_papers_file_with_a_bad_line_is_rejected_naming_it(tmp_path, line, expected):
    path = tmp_path / "papers.jsonl"
    path.write_text(json.dumps({"paper_id": "a", "title": "fine"}) + "\n" + line + "\n")
    with pytest.raises(DataFileError, match=re.escape(expected)):
        load_papers(path)


def test_upvotes_that_are_not_a_count_count_as_none_and_huge_ones_stay_finite(tmp_path):
    path = tmp_path / "papers.jsonl"
    values = [5, float("nan"), "Infinity", 1e39, -3, "lots", True, None, 10**400, 2.5]
    path.write_text("\n".join(json.dumps({"paper_id": str(i), "title": "t", "upvotes": v})
                              for i, v in enumerate(values)))
    up = load_papers(path).upvotes
    assert up.dtype == np.float32 and np.isfinite(up).all()
    assert up.tolist() == [5.0, 0.0, 0.0, np.float32(MAX_PRIOR_UPVOTES), 0.0, 0.0, 0.0, 0.0, 0.0, 2.5]
    titled = tmp_path / "titled.jsonl"
    titled.write_text('{"paper_id": 1, "title": 1984, "abstract": ["a", "list"]}\n{"paper_id": 2, "title": null}\n')
    assert load_papers(titled).titles == ["1984", ""] and load_papers(titled).abstracts == ["", ""]
    assert np.isfinite(Popularity.fit(sp.csr_matrix((3, 3), dtype=np.float32), sp.csr_matrix((3, 2)),
                                      np.ones(3), np.array([np.inf, np.nan, 1e39])).observed).all()


def test_a_candidates_file_naming_no_known_paper_is_rejected(tmp_path):
    papers = _papers(tmp_path)
    cand = tmp_path / "candidates.txt"
    for text in ("", "\n\n", "nope\nother\n"):
        cand.write_text(text)
        with pytest.raises(DataFileError, match="candidates.txt: no paper_id of the papers file"):
            load_candidates(cand, papers)
