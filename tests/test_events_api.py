"""POST /events: auth, validation naming field and index, atomic batches, idempotency."""
from __future__ import annotations

import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.core.kinds import KINDS
from tests.helpers import AUTH, make_client

PAPER = "2312.17653"  # in the shipped catalog


def event(**over):
    return {"user_id": "reader-1", "paper_id": PAPER, "kind": "click", **over}


def count_events(client) -> int:
    return client.app.state.store.count("events")


def test_one_event_is_stored_and_counted_in_metrics(client):
    before = count_events(client)
    r = client.post("/events", json=event(), headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json() == {"accepted": 1, "stored": 1, "duplicates": 0}
    assert count_events(client) == before + 1
    assert "paperrec_events_accepted_total 1.0" in client.get("/metrics").text


def test_retry_with_same_idempotency_key_is_stored_once(client):
    before = count_events(client)
    body = [event(idempotency_key="k-1"), event(kind="read", idempotency_key="k-2")]
    assert client.post("/events", json=body, headers=AUTH).json()["stored"] == 2
    again = client.post("/events", json=body, headers=AUTH).json()
    assert again == {"accepted": 2, "stored": 0, "duplicates": 2}
    assert count_events(client) == before + 2


def test_idempotency_keys_belong_to_their_reader(client):
    """Two readers' clients may well pick the same key ("1", a counter): both are stored."""
    before = count_events(client)
    r1 = client.post("/events", json=event(user_id="r-a", idempotency_key="1"), headers=AUTH)
    r2 = client.post("/events", json=event(user_id="r-b", idempotency_key="1"), headers=AUTH)
    assert r1.json()["stored"] == 1 and r2.json() == {"accepted": 1, "stored": 1, "duplicates": 0}
    assert count_events(client) == before + 2


def test_a_key_reused_with_other_content_is_409_naming_the_key(client):
    first = event(user_id="r-c", idempotency_key="k-9")
    assert client.post("/events", json=first, headers=AUTH).status_code == 201
    before = count_events(client)
    for other in ({"paper_id": "2404.03673"}, {"kind": "upvote"}, {"request_id": "list-1"}):
        batch = [event(user_id="r-c", kind="read", idempotency_key="k-10"), {**first, **other}]
        r = client.post("/events", json=batch, headers=AUTH)
        assert r.status_code == 409, r.text
        assert "k-9" in r.text and r.json()["detail"]["loc"] == ["body", 1, "idempotency_key"]
        assert count_events(client) == before  # all or nothing: the good event is not kept
    # the same key twice in one batch with different content is the same conflict
    r = client.post("/events", json=[event(user_id="r-c", idempotency_key="k-11"),
                                     event(user_id="r-c", kind="read", idempotency_key="k-11")],
                    headers=AUTH)
    assert r.status_code == 409 and "k-11" in r.text
    # an honest retry is still a duplicate
    assert client.post("/events", json=first, headers=AUTH).json()["duplicates"] == 1


def test_unknown_paper_names_field_and_index_and_stores_nothing(client):
    before = count_events(client)
    body = [event(), event(), event(paper_id="no-such-paper")]
    r = client.post("/events", json=body, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", 2, "paper_id"]
    assert count_events(client) == before


def test_bad_kind_names_field_and_index(client):
    r = client.post("/events", json=[event(), event(kind="like")], headers=AUTH)
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", 1, "kind"]]


def test_single_event_error_names_the_field(client):
    r = client.post("/events", json=event(ts="yesterday"), headers=AUTH)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "ts"]


def test_a_batch_of_exactly_1000_is_stored_and_1001_is_refused_whole(client):
    before = count_events(client)
    batch = [event(user_id=f"bulk-{i}") for i in range(1000)]
    r = client.post("/events", json=batch, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["stored"] == 1000 and count_events(client) == before + 1000
    r = client.post("/events", json=batch + [event(user_id="bulk-1000")], headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]
    assert count_events(client) == before + 1000


def test_writes_are_refused_when_no_key_is_configured(seeded_db):
    """An empty PAPERREC_API_KEYS accepts no key at all (not every key): 401 without one,
    403 with any, nothing stored; reads still answer."""
    from fastapi.testclient import TestClient
    from recommender.core.settings import Settings
    from service.app import create_app
    with TestClient(create_app(Settings(db=seeded_db, api_keys=""))) as keyless:
        before = count_events(keyless)
        assert keyless.post("/events", json=event()).status_code == 401
        assert keyless.post("/events", json=event(), headers=AUTH).status_code == 403
        assert keyless.post("/events", json=event(), headers={"X-API-Key": ""}).status_code == 401
        assert count_events(keyless) == before
        assert keyless.get("/recommendations", params={"user_id": "x"}).status_code == 200


def test_writes_need_a_valid_key(client):
    before = count_events(client)
    assert client.post("/events", json=event()).status_code == 401
    assert client.post("/events", json=event(), headers={"X-API-Key": "wrong"}).status_code == 403
    assert count_events(client) == before


LIMIT = 1024 * 1024  # PAPERREC_MAX_BODY_BYTES' default
TOO_LARGE = {"detail": f"request body larger than {LIMIT} bytes"}


def body_of(size: int) -> bytes:
    """A valid one-event JSON body of exactly `size` bytes (padded with spaces)."""
    import json
    text = json.dumps(event()).encode()
    return text + b" " * (size - len(text))


def test_a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_413(client):
    headers = {**AUTH, "Content-Type": "application/json"}
    before = count_events(client)
    assert client.post("/events", content=body_of(LIMIT), headers=headers).status_code == 201
    r = client.post("/events", content=body_of(LIMIT + 1), headers=headers)
    assert (r.status_code, r.json()) == (413, TOO_LARGE)
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    assert count_events(client) == before + 1


def test_chunked_bodies_at_and_over_the_limit(client):
    """Without a Content-Length the limit is counted as the body streams."""
    headers = {**AUTH, "Content-Type": "application/json"}

    def chunks(size):
        data = body_of(size)
        for i in range(0, len(data), 32_768):
            yield data[i:i + 32_768]
    assert client.post("/events", content=chunks(LIMIT), headers=headers).status_code == 201
    r = client.post("/events", content=chunks(LIMIT + 1), headers=headers)
    assert (r.status_code, r.json()) == (413, TOO_LARGE)


def test_a_content_length_that_is_not_a_number_is_400(client):
    r = client.post("/events", content=b"{}", headers={**AUTH, "Content-Length": "12x"})
    assert (r.status_code, r.json()) == (400, {"detail": "invalid Content-Length"})


def test_future_and_pre_epoch_timestamps_are_refused(client):
    for ts in ("2999-01-01T00:00:00Z", "1960-01-01T00:00:00Z"):
        r = client.post("/events", json=event(ts=ts), headers=AUTH)
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "ts"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    user_id=st.text(max_size=300),
    kind=st.one_of(st.sampled_from(KINDS), st.text(max_size=12)),
    ts=st.one_of(st.none(), st.text(max_size=30), st.datetimes().map(lambda d: d.isoformat())),
)
def test_any_event_is_either_stored_whole_or_refused_with_422(client, user_id, kind, ts):
    before = count_events(client)
    r = client.post("/events", json=event(user_id=user_id, kind=kind, ts=ts), headers=AUTH)
    assert r.status_code in (201, 422), r.text
    if r.status_code == 201:
        assert count_events(client) == before + 1
        assert client.app.state.store.user_summary(user_id)["events"] >= 1
    else:
        assert count_events(client) == before
        assert r.json()["detail"][0]["loc"][0] == "body"


def test_batches_waiting_for_their_commit_hold_no_worker_thread(seeded_db):
    """More event batches than the server has worker threads wait on a stalled commit, and
    a route that needs a worker thread (GET /trending) still answers: a batch waits for
    its fsync on the event loop, not on a thread. None is acknowledged before its commit."""
    with make_client(seeded_db, worker_threads=2) as client:
        store = client.app.state.store
        before = count_events(client)
        codes: list[int] = []
        answered: list[int] = []

        def post(i: int) -> None:
            r = client.post("/events", json=event(idempotency_key=f"stalled-{i}"), headers=AUTH)
            codes.append(r.status_code)

        posts = [threading.Thread(target=post, args=(i,), daemon=True) for i in range(6)]
        reader = threading.Thread(target=lambda: answered.append(
            client.get("/trending", params={"k": 3}).status_code), daemon=True)
        writer_busy, release = threading.Event(), threading.Event()

        def stall(db):  # the writer thread runs this and takes nothing else until released
            writer_busy.set()
            release.wait(10)

        blocker = threading.Thread(target=store.write, args=(stall,), daemon=True)
        blocker.start()
        assert writer_busy.wait(10)
        for t in posts:
            t.start()
        deadline = time.monotonic() + 5
        while store.pending_writes() < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = store.pending_writes()  # all six wait behind the stalled commit
        reader.start()
        reader.join(5)
        answered_while_stalled, acked_while_stalled = list(answered), list(codes)
        release.set()
        blocker.join(10)
        for t in [*posts, reader]:
            t.join(10)
        assert queued == 6
        assert answered_while_stalled == [200]
        assert acked_while_stalled == []
        assert codes == [201] * 6
        assert count_events(client) == before + 6
