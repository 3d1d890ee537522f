"""Reading the generic offline format (recommender/offline/dataset.py)."""
from __future__ import annotations

import gzip
import json

import numpy as np

from recommender.offline.dataset import load_candidates, load_interactions, load_papers


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
