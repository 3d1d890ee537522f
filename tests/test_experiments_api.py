"""The experiments API and its effect on /recommendations, through the real app."""
from __future__ import annotations

import json

import pytest

from tests.helpers import AUTH, make_client

AB = {"name": "pop-vs-content", "control": "pop",
      "variants": [{"name": "pop", "strategy": "popular", "weight": 1},
                   {"name": "con", "strategy": "content", "weight": 1}]}


def create(client, body=AB):
    return client.post("/experiments", json=body, headers=AUTH)


def test_create_list_stop(client):
    r = create(client)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "running" and r.json()["control"] == "pop"
    assert create(client).status_code == 409
    assert [e["name"] for e in client.get("/experiments").json()] == ["pop-vs-content"]
    assert client.get("/experiments", params={"status": "stopped"}).json() == []
    first = client.post("/experiments/pop-vs-content/stop", headers=AUTH).json()
    again = client.post("/experiments/pop-vs-content/stop", headers=AUTH).json()
    assert first["changed"] and not again["changed"]
    assert again["experiment"]["stopped_at"] == first["experiment"]["stopped_at"]
    assert client.get("/experiments", params={"status": "stopped"}).json()[0]["status"] == "stopped"


def test_writes_need_a_key(client):
    assert client.post("/experiments", json=AB).status_code == 401
    assert client.post("/experiments", json=AB, headers={"X-API-Key": "nope"}).status_code == 403
    create(client)
    assert client.post("/experiments/pop-vs-content/stop").status_code == 401


def test_unknown_experiment_is_404(client):
    assert client.get("/experiments/nope/report").status_code == 404
    assert client.get("/experiments/nope").status_code == 404
    assert client.post("/experiments/nope/stop", headers=AUTH).status_code == 404


@pytest.mark.parametrize("patch, loc", [
    ({"variants": [{"name": "a", "strategy": "popular"}, {"name": "a", "strategy": "content"}],
      "control": "a"}, ["body", "variants", 1, "name"]),
    ({"variants": [{"name": "pop", "strategy": "popular"}, {"name": "x", "strategy": "magic"}]},
     ["body", "variants", 1, "strategy"]),
    ({"variants": [{"name": "pop", "strategy": "popular", "weight": 0},
                   {"name": "x", "strategy": "content", "weight": 0}]}, ["body", "variants"]),
    ({"variants": [{"name": "pop", "strategy": "popular", "weight": "heavy"},
                   {"name": "x", "strategy": "content"}]}, ["body", "variants", 0, "weight"]),
    ({"control": "nobody"}, ["body", "control"]),
    ({"kind": "bandit"}, ["body", "kind"]),
    ({"variants": [{"name": "pop", "strategy": "popular", "colour": "red"},
                   {"name": "x", "strategy": "content"}]}, ["body", "variants", 0, "colour"]),
])
def test_bad_configs_are_422_naming_the_field(client, patch, loc):
    r = create(client, {**AB, **patch})
    assert r.status_code == 422, r.text
    assert loc in [e["loc"] for e in r.json()["detail"]], r.json()
    assert client.get("/experiments").json() == []


def test_assignment_is_sticky_and_logged(client, seeded):
    create(client)
    seen = {}
    for _ in range(3):
        for u in [f"reader-{i}" for i in range(40)] + ["demo-diffusion"]:
            j = client.get("/recommendations", params={"user_id": u, "k": 5}).json()
            assert j["experiment"] == "pop-vs-content"
            assert j["strategy"] == {"pop": "popular", "con": "content"}[j["variant"]]
            assert seen.setdefault(u, j["variant"]) == j["variant"]
    assert set(seen.values()) == {"pop", "con"}
    # ... and across a restart of the service
    client.__exit__(None, None, None)
    with make_client(seeded) as again:
        for u, v in list(seen.items())[:10]:
            assert again.get("/recommendations", params={"user_id": u}).json()["variant"] == v


def test_strategy_override_bypasses_the_experiment(client):
    create(client)
    j = client.get("/recommendations", params={"user_id": "demo-diffusion", "strategy": "trending"},
                   headers=AUTH).json()
    assert j["strategy"] == "trending" and j["experiment"] is None and j["variant"] is None


def test_stopped_experiment_assigns_nobody(client):
    create(client)
    client.post("/experiments/pop-vs-content/stop", headers=AUTH)
    j = client.get("/recommendations", params={"user_id": "reader-1"}).json()
    assert j["experiment"] is None and j["variant"] is None


def test_report_counts_attributed_events(client):
    create(client)
    for i in range(30):
        user = f"reader-{i}"
        j = client.get("/recommendations", params={"user_id": user, "k": 5}).json()
        clicks = [{"user_id": user, "paper_id": it["paper_id"], "kind": "click",
                   "request_id": j["request_id"]} for it in j["items"][: i % 3]]
        if clicks:
            assert client.post("/events", json=clicks, headers=AUTH).status_code == 201
    rep = client.get("/experiments/pop-vs-content/report").json()
    assert rep["totals"]["readers"] == 30 and rep["totals"]["lists"] == 30
    assert rep["totals"]["impressions"] == 150
    assert rep["totals"]["clicks"] == sum(i % 3 for i in range(30))
    variants = {v["name"]: v for v in rep["ab"]["variants"]}
    assert variants["pop"]["readers"] + variants["con"]["readers"] == 30
    d = variants["con"]["vs_control"]["click_rate"]
    assert d["p_value"] is not None and d["ci_low"] <= d["diff"] <= d["ci_high"]
    assert rep["ab"]["srm"]["p_value"] is not None
    assert {s["variant"] for s in rep["timeline"]["series"]} == {"pop", "con"}
    page = client.get("/experiments/pop-vs-content")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="timeline-plot"' in page.text and 'data-variant="con"' in page.text


def test_interleaved_lists_remember_their_sources(client):
    r = create(client, {"name": "il", "kind": "interleave", "control": "pop",
                        "variants": [{"name": "pop", "strategy": "popular"},
                                     {"name": "con", "strategy": "content"}]})
    assert r.status_code == 201
    j = client.get("/recommendations", params={"user_id": "demo-diffusion", "k": 10}).json()
    assert j["experiment"] == "il" and j["variant"] == "interleaved"
    assert j["strategy"] == "interleave(popular,content)"
    ids = [i["paper_id"] for i in j["items"]]
    assert len(ids) == len(set(ids)) == 10
    store = client.app.state.store
    imp = store.get_impression(j["request_id"])
    assert imp["paper_ids"] == ids and set(imp["sources"]) <= {"pop", "con"}
    assert abs(imp["sources"].count("pop") - imp["sources"].count("con")) <= 1
    client.post("/events", headers=AUTH, json=[
        {"user_id": "demo-diffusion", "paper_id": ids[0], "kind": "click", "request_id": j["request_id"]}])
    rep = client.get("/experiments/il/report").json()["interleave"]
    assert rep["credited_clicks"][imp["sources"][0]] == 1 and rep["readers"] == 1
    assert "Sign test" in client.get("/experiments/il").text


def test_cli_creates_experiments_from_a_file(seeded_db, tmp_path, capsys):
    from training.cli import main
    path = tmp_path / "exp.json"
    path.write_text(json.dumps([AB, {**AB, "name": "second"}]))
    assert main(["experiments", "create", str(path), "--db", str(seeded_db)]) == 0
    assert main(["experiments", "create", str(path), "--db", str(seeded_db)]) == 0  # unchanged
    assert "unchanged pop-vs-content" in capsys.readouterr().out
    path.write_text(json.dumps({**AB, "control": "con"}))
    assert main(["experiments", "create", str(path), "--db", str(seeded_db)]) == 2
    path.write_text(json.dumps({**AB, "name": "bad", "variants": [
        {"name": "a", "strategy": "popular"}, {"name": "b", "strategy": "magic"}]}))
    assert main(["experiments", "create", str(path), "--db", str(seeded_db)]) == 2
    assert "variants.1.strategy" in capsys.readouterr().err
    assert main(["experiments", "stop", "second", "--db", str(seeded_db)]) == 0
    with make_client(seeded_db) as c:
        assert {e["name"]: e["status"] for e in c.get("/experiments").json()} == {
            "pop-vs-content": "running", "second": "stopped"}


def test_the_assignment_salt_is_secret_and_matters(client):
    r = create(client, {**AB, "name": "salted"})
    assert r.status_code == 201
    store = client.app.state.store
    salt = store.get_experiment("salted")["config"]["salt"]
    assert len(salt) >= 32
    bodies = [r.text, client.get("/experiments").text,
              client.get("/experiments/salted/report").text, client.get("/experiments/salted").text]
    assert not any(salt in b for b in bodies)
    # a client cannot choose the salt
    r = create(client, {**AB, "name": "chosen", "salt": "x"})
    assert r.status_code == 422
    # the public hash of (experiment, user) no longer predicts the variant
    from recommender.experiments.assignment import assign_variant
    from recommender.experiments.config import Experiment
    exp = Experiment.from_row(store.get_experiment("salted"))
    public = Experiment(exp.name, exp.variants, exp.control)
    users = [f"u{i}" for i in range(400)]
    same = sum(assign_variant(exp, u) == assign_variant(public, u) for u in users)
    assert 120 < same < 280  # about half agree by chance, as for any independent split
    served = {u: client.get("/recommendations", params={"user_id": u}).json()["variant"]
              for u in users[:40]}
    assert served == {u: assign_variant(exp, u).name for u in users[:40]}


def test_a_reader_in_two_experiments_joins_the_older_one(client):
    """Precedence is age, not name: 'zz-older' is created first, so with both at full
    traffic every reader's list is zz-older's (a store listing them newest first, or by
    name, sends them to aa-newer); once it stops, readers move to aa-newer."""
    older = {**AB, "name": "zz-older"}
    newer = {**AB, "name": "aa-newer", "variants": [{"name": "pop", "strategy": "trending"},
                                                    {"name": "con", "strategy": "trending"}]}
    assert create(client, older).status_code == 201
    assert create(client, newer).status_code == 201
    assert [e["name"] for e in client.get("/experiments").json()] == ["zz-older", "aa-newer"]
    readers = [f"reader-{i}" for i in range(10)]
    joined = [client.get("/recommendations", params={"user_id": u, "k": 3}).json()["experiment"]
              for u in readers]
    assert joined == ["zz-older"] * 10
    assert client.post("/experiments/zz-older/stop", headers=AUTH).status_code == 200
    joined = [client.get("/recommendations", params={"user_id": u, "k": 3}).json()["experiment"]
              for u in readers]
    assert joined == ["aa-newer"] * 10
