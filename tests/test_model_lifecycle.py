"""Train, promote, serve, swap, roll back, and survive broken model files."""
from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from recommender.offline.dataset import Interactions
from recommender.model.artifacts import ARRAYS_FILE, MANIFEST_FILE, sha256_of
from recommender.storage import EventRow
from tests.helpers import AUTH, make_client, wait_for_version
from training.cli import main
from training.promotion import TOLERANCE
from training.train_job import history_before, recent_slice, train, unseen_by


def test_first_model_is_promoted_with_a_full_manifest(trained):
    db, models, store, result = trained
    assert result.promoted and result.reason == "no model was serving"
    manifest = json.loads((models / result.version / MANIFEST_FILE).read_text())
    assert manifest["data"]["papers"] == 787 and manifest["data"]["events"] > 800
    assert manifest["checksums"][ARRAYS_FILE] == sha256_of(models / result.version / ARRAYS_FILE)
    assert set(manifest["metrics"]["holdout"]) >= {"ndcg@20", "recall@20", "hitrate@20"}
    assert store.active_model()["version"] == result.version
    # the promoted model is the checked candidate brought up to date on every event
    stats = manifest["stats"]
    assert stats["n_events"] == manifest["data"]["events"]
    assert stats["refit"]["from_events"] < stats["n_events"]


def test_service_serves_the_model_and_swaps_without_restart(trained):
    db, models, store, first = trained
    with make_client(db, model_dir=models) as client:
        body = client.get("/recommendations", params={"user_id": "demo-agents"}).json()
        assert body["model_version"] == first.version and body["strategy"] == "hybrid"
        second = train(store, models, force=True, progress=False)
        wait_for_version(client, second.version)
        body = client.get("/recommendations", params={"user_id": "demo-agents"}).json()
        assert body["model_version"] == second.version
        assert main(["models", "rollback", "--db", str(db)]) == 0
        wait_for_version(client, first.version)


def add_new_reads(store, n_readers: int = 30):
    """Reads newer than anything the serving model saw, by readers it knows."""
    users = sorted({e["user_id"] for e in store.iter_events()})[:n_readers]
    papers = [p["paper_id"] for p in store.iter_papers()]
    now = datetime.now(timezone.utc).isoformat()
    store.add_events([EventRow(u, papers[(7 * n) % len(papers)], "read", now, idempotency_key=f"new-{u}")
                      for n, u in enumerate(users)])


def test_the_serving_model_is_judged_only_on_events_it_has_not_seen(trained):
    db, models, store, first = trained
    again = train(store, models, progress=False)  # no new events: nothing fair to judge on
    assert not again.promoted and not again.metrics and again.comparison.readers == 0
    assert "too few readers to judge: 0 < 30" in again.reason
    assert store.active_model()["version"] == first.version
    add_new_reads(store)
    third = train(store, models, progress=False, min_readers=10)
    assert third.active_metrics and 0 < third.active_metrics["users"] <= 30
    assert third.metrics["users"] == third.active_metrics["users"] == third.comparison.readers


def test_too_few_readers_keep_the_serving_model_and_say_so(trained, capsys):
    """The issue's case: a decision taken on 3 readers. Now it says so and keeps the
    serving model; --force still promotes."""
    db, models, store, first = trained
    add_new_reads(store, n_readers=3)
    result = train(store, models, progress=False)
    assert not result.promoted and result.comparison.readers == 3
    assert "too few readers to judge: 3 < 30" in result.reason
    assert store.active_model()["version"] == first.version
    c = result.comparison
    assert c.low <= c.diff <= c.high and c.diff == pytest.approx(c.candidate - c.serving)
    forced = train(store, models, progress=False, force=True)
    assert forced.promoted and store.active_model()["version"] == forced.version
    # the registry keeps each version's figures, and `models list` shows them
    assert main(["models", "list", "--db", str(db)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "too few readers to judge: 3 < 30" in lines[result.version]
    assert f"{c.diff:+.4f} [{c.low:+.4f}, {c.high:+.4f}]" in lines[result.version]
    status, readers = lines[result.version].split()[1], lines[result.version].split()[3]
    assert (status, readers) == ("rejected", "3")
    assert "no model was serving" in lines[first.version] and "forced" in lines[forced.version]


def test_a_worse_model_is_not_promoted(trained, monkeypatch):
    db, models, store, first = trained
    import training.train_job as job
    real = job._holdout
    calls = []

    def candidate_worse(model, past, recent):
        users, per = real(model, past, recent)
        calls.append(per["ndcg"])
        return (users, {**per, "ndcg": per["ndcg"] - 0.5}) if len(calls) == 1 else (users, per)

    monkeypatch.setattr(job, "_holdout", candidate_worse)
    add_new_reads(store)
    result = train(store, models, progress=False, min_readers=10)
    assert not result.promoted and "surely worse" in result.reason
    ours, theirs = calls
    assert result.comparison.diff == pytest.approx(float(np.mean(ours - 0.5 - theirs)))
    assert result.comparison.high <= float(np.max(ours - 0.5 - theirs)) < -TOLERANCE
    assert store.active_model()["version"] == first.version


@pytest.mark.parametrize("damage", ["truncate", "bad_json", "wrong_shapes", "missing"])
def test_broken_model_files_leave_the_service_up_and_degraded(trained, damage):
    db, models, store, first = trained
    folder = models / first.version
    if damage == "truncate":
        data = (folder / ARRAYS_FILE).read_bytes()
        (folder / ARRAYS_FILE).write_bytes(data[: len(data) // 3])
    elif damage == "bad_json":
        (folder / MANIFEST_FILE).write_text('{"format": ')
    elif damage == "wrong_shapes":
        with np.load(folder / ARRAYS_FILE) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["V"] = arrays["V"][:-5]
        np.savez(folder / ARRAYS_FILE, **arrays)
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        manifest["checksums"][ARRAYS_FILE] = sha256_of(folder / ARRAYS_FILE)
        manifest["arrays"]["V"]["shape"][0] -= 5
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    else:  # on this machine and in the registry
        shutil.rmtree(folder)
        store.drop_model_files([first.version])
    with make_client(db, model_dir=models) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded" and first.version in health["reasons"][0]
        body = client.get("/recommendations", params={"user_id": "demo-agents", "k": 5})
        assert body.status_code == 200 and body.json()["strategy"] == "content"
        assert len(body.json()["items"]) == 5


def test_a_replica_without_the_folder_loads_the_registrys_copy(trained):
    """Another machine has no model folder: it loads the files the registry keeps, checked
    by their checksums; a stored file that was changed is refused, not served."""
    db, models, store, first = trained
    shutil.rmtree(models / first.version)
    with make_client(db, model_dir=models) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["model_version"] == first.version
    files = store.model_files(first.version)
    store.save_model_files(first.version, {**files, ARRAYS_FILE: files[ARRAYS_FILE][:-100]})
    with make_client(db, model_dir=models) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded" and "checksum" in health["reasons"][0]


def test_broken_new_model_keeps_the_last_good_one_serving(trained):
    db, models, store, first = trained
    with make_client(db, model_dir=models) as client:
        second = train(store, models, force=True, progress=False)
        store.set_model_status(first.version, "active")
        wait_for_version(client, first.version)
        (models / second.version / MANIFEST_FILE).write_text("[]")
        store.set_model_status(second.version, "active")
        deadline = time.monotonic() + 10
        while client.get("/health").json()["status"] != "degraded" and time.monotonic() < deadline:
            time.sleep(0.2)
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["model_version"] == first.version
        assert f"serving {first.version}" in health["reasons"][0]


def test_new_paper_near_a_readers_upvotes_appears_without_retrain(trained):
    db, models, store, first = trained
    with make_client(db, model_dir=models) as client:
        paper = {"paper_id": "fresh-speech", "title": "Zero-shot speech synthesis and voice "
                 "cloning with neural audio codec language models",
                 "abstract": "We present a text-to-speech model for speech and audio: zero-shot "
                             "voice cloning, speaker similarity, audio codec tokens, speech quality."}
        assert client.post("/papers", json=paper, headers=AUTH).status_code == 201
        body = client.get("/recommendations", params={"user_id": "demo-speech", "k": 10}).json()
        assert body["model_version"] == first.version
        assert "fresh-speech" in [i["paper_id"] for i in body["items"]]
        other = client.get("/recommendations", params={"user_id": "demo-graphs", "k": 10}).json()
        assert "fresh-speech" not in [i["paper_id"] for i in other["items"]]


def test_upvotes_on_one_topic_move_the_next_list_without_retrain(trained):
    """Four upvotes on robotics papers bring robotics papers into a diffusion reader's next
    list (at least two of twenty more), before any retrain. (The demo store's 46 readers
    cannot tell a time decay from chance, so the model keeps every event at full weight and
    four upvotes move a long history less than when a decay was picked on noise: it was
    0.0 -> 0.15+ then, 0.0 -> 0.10 now.)"""
    db, models, store, first = trained
    papers = {p["paper_id"]: p for p in store.iter_papers()}
    robot = [pid for pid, p in papers.items() if "robot" in (p["title"] + p["abstract"]).lower()]

    def robot_share(body):
        return sum(i["paper_id"] in robot for i in body["items"]) / len(body["items"])

    with make_client(db, model_dir=models) as client:
        before = client.get("/recommendations", params={"user_id": "demo-diffusion", "k": 20}).json()
        for pid in robot[:4]:
            client.post("/events", json={"user_id": "demo-diffusion", "paper_id": pid,
                                         "kind": "upvote"}, headers=AUTH)
        after = client.get("/recommendations", params={"user_id": "demo-diffusion", "k": 20}).json()
        assert after["model_version"] == first.version
        assert robot_share(after) >= robot_share(before) + 0.1, (robot_share(before), robot_share(after))


def _rewrite_consistently(folder, change_arrays=None, change_manifest=None):
    """Damage a model so that it still agrees with its own manifest: shapes and checksum
    updated to match, as a buggy trainer (not a torn write) would leave it."""
    with np.load(folder / ARRAYS_FILE) as npz:
        arrays = {k: npz[k] for k in npz.files}
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    if change_arrays:
        change_arrays(arrays)
        np.savez(folder / ARRAYS_FILE, **arrays)
        manifest["arrays"] = {n: {"shape": list(a.shape), "dtype": str(a.dtype)}
                              for n, a in arrays.items()}
        manifest["checksums"][ARRAYS_FILE] = sha256_of(folder / ARRAYS_FILE)
    if change_manifest:
        change_manifest(manifest)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


def _fewer_factor_columns(arrays):
    arrays["cf_item_factors"] = np.ascontiguousarray(arrays["cf_item_factors"][:, :-4])


DAMAGE = {
    "blend_weights_cut": lambda a: a.update(blend_weights=a["blend_weights"][:3]),
    "pop_observed_cut": lambda a: a.update(pop_observed=a["pop_observed"][:5]),
    "fewer_factor_columns": _fewer_factor_columns,
    "nan_factors": lambda a: a["cf_effective_factors"].__setitem__((0, 0), np.nan),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_arrays_that_fit_the_manifest_but_not_each_other_are_refused(trained, damage):
    db, models, store, first = trained
    _rewrite_consistently(models / first.version, change_arrays=DAMAGE[damage])
    with make_client(db, model_dir=models) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded" and first.version in health["reasons"][0], health
        assert health["model_version"] is None
        for user in ("demo-agents", "demo-diffusion", "someone-new"):
            body = client.get("/recommendations", params={"user_id": user, "k": 5})
            assert body.status_code == 200, body.text
            assert len(body.json()["items"]) == 5


@pytest.mark.parametrize("field,value", [("checksums", None), ("arrays", None),
                                         ("checksums", []), ("arrays", {"V": None})])
def test_a_manifest_with_null_sections_is_refused_and_startup_goes_on(trained, field, value):
    db, models, store, first = trained
    _rewrite_consistently(models / first.version,
                          change_manifest=lambda m: m.__setitem__(field, value))
    with make_client(db, model_dir=models) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded" and first.version in health["reasons"][0]
        assert client.get("/recommendations", params={"user_id": "demo-agents"}).status_code == 200


def test_rolling_back_to_the_model_already_serving_clears_degraded(trained):
    db, models, store, first = trained
    with make_client(db, model_dir=models) as client:
        second = train(store, models, force=True, progress=False)
        store.set_model_status(first.version, "active")
        wait_for_version(client, first.version)
        (models / second.version / MANIFEST_FILE).write_text("[]")
        store.set_model_status(second.version, "active")
        deadline = time.monotonic() + 10
        while client.get("/health").json()["status"] != "degraded" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get("/health").json()["status"] == "degraded"
        assert main(["models", "rollback", "--db", str(db)]) == 0
        assert store.active_model()["version"] == first.version
        deadline = time.monotonic() + 10
        while client.get("/health").json()["status"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.2)
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["model_version"] == first.version, health


def test_both_models_rank_from_every_event_the_serving_model_saw():
    """The judged events are those newer than the serving model's data; everything before
    them -- the past slice and the part of the recent slice the serving model was fitted
    on -- is the readers' history (profile and seen papers) for both models."""
    events = Interactions(["a", "b"], np.arange(10) % 2, np.arange(10), np.full(10, "read", object),
                          np.arange(10, dtype=np.float64))
    past, recent = recent_slice(events, fraction=0.5)
    assert past.items.tolist() == [0, 1, 2, 3, 4] and recent.items.tolist() == [5, 6, 7, 8, 9]
    judged = unseen_by(recent, trained_until=7.0)
    assert judged.items.tolist() == [8, 9]
    assert history_before(events, past, 7.0).items.tolist() == list(range(8))
    assert history_before(events, past, None) is past  # nothing serving (or no times): the past slice
