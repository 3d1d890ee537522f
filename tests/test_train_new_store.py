"""`paperrec train` on a store that is just starting: no papers at all is refused with a
message that says what to do (it was a traceback); a catalog with no reader events yet
trains a model that serves lists, from the papers' words and the catalog's upvotes (the
item graph crashed on a matrix with no reading)."""
from __future__ import annotations

import json

from recommender.storage import open_store
from tests.helpers import AUTH, make_client, wait_for_version
from training.cli import main

PAPERS = [
    {"paper_id": f"p{i}", "title": title, "abstract": abstract, "upvotes": up}
    for i, (title, abstract, up) in enumerate([
        ("Graph neural networks for community detection", "node embeddings spectral clustering graphs", 40),
        ("Message passing on large graphs", "graph neural network node edge aggregation", 5),
        ("Protein folding with attention", "protein structure sequence genome folding", 30),
        ("Gene expression atlases", "gene expression cell transcription protein", 2),
        ("Diffusion models for images", "image generation diffusion pixel denoising", 60),
        ("Segmentation of street scenes", "image segmentation camera scene pixel", 8),
    ])
]


def test_a_store_without_papers_is_refused_with_what_to_do(tmp_path, capsys):
    db, models = tmp_path / "db.sqlite", tmp_path / "models"
    assert main(["train", "--db", str(db), "--model-dir", str(models), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no papers" in err and "paperrec seed" in err and "Traceback" not in err
    store = open_store(db)
    try:
        assert store.active_model() is None and store.list_models() == []
    finally:
        store.close()
    assert not models.exists() or not any(models.iterdir())


def test_a_catalog_without_reader_events_trains_a_model_that_serves(tmp_path, capsys):
    db, models = tmp_path / "db.sqlite", tmp_path / "models"
    file = tmp_path / "papers.jsonl"
    file.write_text("".join(json.dumps(p) + "\n" for p in PAPERS))
    assert main(["import", "papers", str(file), "--db", str(db)]) == 0
    assert main(["train", "--db", str(db), "--model-dir", str(models), "--quiet"]) == 0
    assert "promoted" in capsys.readouterr().out
    store = open_store(db)
    try:
        version = store.active_model()["version"]
    finally:
        store.close()
    with make_client(db, model_dir=models) as client:
        wait_for_version(client, version)
        unknown = client.get("/recommendations", params={"user_id": "nobody-yet", "k": 3})
        assert unknown.status_code == 200
        assert [i["paper_id"] for i in unknown.json()["items"]] == ["p4", "p0", "p2"]  # the upvotes
        event = {"user_id": "first-reader", "paper_id": "p0", "kind": "upvote"}
        assert client.post("/events", json=event, headers=AUTH).status_code in (200, 201, 202)
        body = client.get("/recommendations", params={"user_id": "first-reader", "k": 2}).json()
        assert body["model_version"] == version
        assert [i["paper_id"] for i in body["items"]][0] == "p1"  # the other graph paper, by its words
