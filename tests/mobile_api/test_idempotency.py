"""Flaky networks: retries (sequential, concurrent, after a lost answer) and the offline batch."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from gridcity.database import make_session_factory
from gridcity.errors import GridCityError
from mobile_api import idempotency
from tests.mobile_api.conftest import a_report, count, media_files, photo, post_report


def _one_submission_stored(db: sa.Engine, n_photos: int = 1) -> None:
    assert count(db, "case") == 1
    assert count(db, "case_event") == 1
    assert count(db, "attachment") == n_photos and count(db, "event_attachment") == n_photos
    assert count(db, "idempotency_record") == 1


def test_a_retry_after_a_lost_answer_returns_the_first_result_and_stores_nothing_new(client, orgdata, db, settings):
    h = orgdata.headers("inspector")
    pics = [photo(1), photo(2)]
    first = post_report(client, h, "retry-1", a_report(), photos=pics)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    files = sorted(media_files(settings.media_dir))
    # The phone never saw the answer and sends the very same submission again.
    second = post_report(client, h, "retry-1", a_report(), photos=pics)
    assert second.status_code == 201 and second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    _one_submission_stored(db, n_photos=2)
    assert sorted(media_files(settings.media_dir)) == files


def test_the_same_key_with_a_different_payload_is_refused(client, orgdata, db):
    h = orgdata.headers("inspector")
    assert post_report(client, h, "reuse", a_report(), photos=[photo(1)]).status_code == 201
    r = post_report(client, h, "reuse", a_report(description="另一处"), photos=[photo(1)])
    assert r.status_code == 409 and r.json()["detail"][0]["type"] == "idempotency.key_reused"
    r = post_report(client, h, "reuse", a_report(), photos=[photo(3)])  # other photo
    assert r.status_code == 409 and r.json()["detail"][0]["type"] == "idempotency.key_reused"
    r = client.post(
        "/mobile/v1/tracks",
        json={"points": [{"at": "2020-01-01T00:00:00Z", "lon": 1, "lat": 1}]},
        headers={**h, "Idempotency-Key": "reuse"},
    )
    assert r.status_code == 409 and r.json()["detail"][0]["type"] == "idempotency.key_reused"
    assert count(db, "case") == 1


def test_keys_are_per_user(client, orgdata, db):
    r1 = post_report(client, orgdata.headers("inspector"), "same-key", a_report(), photos=[photo(1)])
    r2 = post_report(client, orgdata.headers("inspector2"), "same-key", a_report(), photos=[photo(2)])
    assert r1.status_code == r2.status_code == 201 and r1.json()["case_id"] != r2.json()["case_id"]


def test_a_refused_submission_keeps_no_key_so_the_corrected_retry_works(client, orgdata, db):
    h = orgdata.headers("inspector")
    r = post_report(client, h, "fix-me", a_report(), photos=[photo(1), b"not a photo"])
    assert r.status_code == 415
    assert count(db, "idempotency_record") == 0
    r = post_report(client, h, "fix-me", a_report(), photos=[photo(1), photo(2)])
    assert r.status_code == 201
    _one_submission_stored(db, n_photos=2)


def test_concurrent_retries_with_the_same_key_create_exactly_one_case(app, orgdata, db, settings):
    h = orgdata.headers("inspector")
    pics = [photo(10, size=(1600, 1200)), photo(11, size=(1600, 1200))]
    n = 4
    barrier = threading.Barrier(n)
    results: list[Any] = []
    lock = threading.Lock()

    def send() -> None:
        with TestClient(app) as c:
            barrier.wait(timeout=60)
            r = post_report(c, h, "concurrent-1", a_report(), photos=pics)
            with lock:
                results.append((r.status_code, r.json(), r.headers.get("idempotent-replayed")))

    threads = [threading.Thread(target=send) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == n, results
    # Every caller got the first result (or was told to retry while it was still running).
    ok = [body for status, body, _ in results if status == 201]
    assert ok and all(body == ok[0] for body in ok), results
    assert all(
        status == 201 or body["detail"][0]["type"] == "idempotency.in_progress" for status, body, _ in results
    ), results
    assert sum(1 for status, _, replayed in results if status == 201 and replayed is None) == 1
    _one_submission_stored(db, n_photos=2)
    # Original + thumbnail per photo (the display rendition is made on its first request).
    assert len(media_files(settings.media_dir)) == 4


def test_a_second_caller_waits_for_the_first_and_gets_its_result(db, orgdata):
    """Service level: B starts while A is inside its work; B never runs its own work."""
    factory = make_session_factory(db)
    uid = orgdata.ids["inspector"]
    h = idempotency.request_hash("x", {"a": 1})
    in_work = threading.Event()
    release = threading.Event()
    b_ran = []

    def a() -> None:
        def work() -> tuple[int, Any]:
            in_work.set()
            release.wait(5)
            return 201, {"who": "a"}

        with factory() as s, s.begin():
            idempotency.run(s, user_id=uid, key="wait-1", kind="x", req_hash=h, work=work)

    ta = threading.Thread(target=a)
    ta.start()
    assert in_work.wait(10)
    out: list[Any] = []

    def b() -> None:
        with factory() as s, s.begin():
            out.append(
                idempotency.run(
                    s,
                    user_id=uid,
                    key="wait-1",
                    kind="x",
                    req_hash=h,
                    work=lambda: (b_ran.append(1), (201, {"who": "b"}))[1],
                )
            )

    tb = threading.Thread(target=b)
    tb.start()
    release.set()
    ta.join()
    tb.join()
    assert b_ran == [] and out[0].body == {"who": "a"} and out[0].replayed and out[0].status_code == 201
    assert count(db, "idempotency_record") == 1


def test_postgres_tells_a_second_caller_that_waits_too_long_to_retry(db, orgdata, backend):
    if backend != "postgis":
        pytest.skip("SQLite serialises whole transactions with BEGIN IMMEDIATE; no in-flight key is ever seen")
    factory = make_session_factory(db)
    uid = orgdata.ids["inspector"]
    h = idempotency.request_hash("x", {"a": 1})
    holder = factory()
    holder.begin()
    try:
        idempotency._claim(holder, user_id=uid, key="slow-1", kind="x", req_hash=h, wait_seconds=1)
        with factory() as s, s.begin():
            with pytest.raises(idempotency.InProgress):
                idempotency.run(
                    s, user_id=uid, key="slow-1", kind="x", req_hash=h, work=lambda: (201, {}), wait_seconds=0.2
                )
            # The session is still usable after the refused claim.
            assert s.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        holder.rollback()
        holder.close()
    assert count(db, "idempotency_record") == 0


def test_a_key_met_again_inside_its_own_transaction_is_in_progress(db, orgdata):
    factory = make_session_factory(db)
    uid = orgdata.ids["inspector"]
    h = idempotency.request_hash("x", {})

    def nested() -> tuple[int, Any]:
        with pytest.raises(GridCityError) as exc:
            idempotency.run(s, user_id=uid, key="self-1", kind="x", req_hash=h, work=lambda: (201, {}))
        assert exc.value.code == "idempotency.in_progress"
        return 201, {"ok": True}

    with factory() as s, s.begin():
        out = idempotency.run(s, user_id=uid, key="self-1", kind="x", req_hash=h, work=nested)
    assert out.body == {"ok": True}


# ---- photos and the offline batch ----------------------------------------------------------------------------


def _upload(client: TestClient, h: dict[str, str], key: str, pics: list[bytes]) -> list[int]:
    r = client.post(
        "/mobile/v1/photos",
        files=[("photos", (f"{i}.jpg", p, "image/jpeg")) for i, p in enumerate(pics)],
        headers={**h, "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    return [p["id"] for p in r.json()["photos"]]


def test_photo_uploads_are_idempotent(client, orgdata, db):
    h = orgdata.headers("inspector")
    ids = _upload(client, h, "ph-1", [photo(1), photo(2)])
    assert _upload(client, h, "ph-1", [photo(1), photo(2)]) == ids
    assert count(db, "attachment") == 2


def _batch(client: TestClient, h: dict[str, str], key: str, items: list[dict[str, Any]]) -> Any:
    return client.post("/mobile/v1/batch", json={"items": items}, headers={**h, "Idempotency-Key": key})


def test_an_offline_batch_accepts_and_refuses_each_item_on_its_own(client, orgdata, db):
    h = orgdata.headers("inspector")
    ids = _upload(client, h, "ph-b", [photo(1), photo(2), photo(3)])
    items = [
        {"key": "q-1", "kind": "report", "report": a_report(), "photo_ids": [ids[0]]},
        {"key": "q-2", "kind": "report", "report": a_report(class_code="C9999"), "photo_ids": [ids[1]]},
        {"key": "q-3", "kind": "report", "report": a_report(description="第二处"), "photo_ids": [ids[2]]},
        {"key": "q-4", "kind": "report", "report": {"class_code": "C0101"}, "photo_ids": [ids[2]]},  # malformed
        {"key": "q-5", "kind": "report", "report": a_report(), "photo_ids": [999999]},  # unknown photo
        {"kind": "report", "report": a_report(), "photo_ids": [ids[0]]},  # no key
        {"key": "q-1", "kind": "report", "report": a_report(), "photo_ids": [ids[0]]},  # repeated in the batch
        "not an object",
    ]
    r = _batch(client, h, "batch-1", items)
    assert r.status_code == 200, r.text
    out = r.json()["items"]
    assert [i["status"] for i in out] == [201, 422, 201, 422, 422, 400, 201, 422]
    assert out[1]["error"]["type"] == "class.unknown"
    assert out[1]["error"]["loc"] == ["body", "items", 1, "report", "class_code"]
    assert out[3]["error"]["loc"][:3] == ["body", "items", 3] and out[3]["error"]["type"] == "missing"
    assert out[4]["error"]["type"] == "attachment.unknown"
    assert out[5]["error"]["type"] == "idempotency.missing_key"
    assert out[6]["replayed"] is True and out[6]["result"] == out[0]["result"]
    assert count(db, "case") == 2 and count(db, "case_event") == 2
    numbers = {out[0]["result"]["number"], out[2]["result"]["number"]}
    assert len(numbers) == 2

    # The phone did not get the answer and sends its queue again under a new batch key: nothing new.
    again = _batch(client, h, "batch-2", items).json()["items"]
    assert [i["status"] for i in again] == [201, 422, 201, 422, 422, 400, 201, 422]
    assert again[0]["replayed"] and again[0]["result"] == out[0]["result"]
    assert again[2]["result"] == out[2]["result"]
    # Same batch key: the stored answer as a whole.
    assert _batch(client, h, "batch-1", items).json() == r.json()
    assert count(db, "case") == 2


def test_a_report_first_tried_directly_is_recognised_when_resent_from_the_queue(client, orgdata, db):
    h = orgdata.headers("inspector")
    pic = photo(5)
    first = post_report(client, h, "both-ways", a_report(), photos=[pic])
    assert first.status_code == 201
    # The phone thought it failed, uploaded the photo separately and queued the report.
    ids = _upload(client, h, "ph-both", [pic])
    out = _batch(
        client, h, "batch-both", [{"key": "both-ways", "kind": "report", "report": a_report(), "photo_ids": ids}]
    ).json()["items"]
    assert out[0]["status"] == 201 and out[0]["replayed"] and out[0]["result"] == first.json()
    assert count(db, "case") == 1


def test_batch_items_cannot_use_another_users_photos(client, orgdata, db):
    ids = _upload(client, orgdata.headers("inspector2"), "ph-o", [photo(1)])
    out = _batch(
        client,
        orgdata.headers("inspector"),
        "b-o",
        [{"key": "o-1", "kind": "report", "report": a_report(), "photo_ids": ids}],
    ).json()["items"]
    assert out[0]["status"] == 422 and out[0]["error"]["type"] == "attachment.unknown"
    assert count(db, "case") == 0


def test_a_batch_can_carry_results_and_tracks(client, orgdata, db):
    from tests.casework.helpers import to_status

    case = to_status(client, orgdata, "checking")
    h = orgdata.headers("inspector")
    ids = _upload(client, h, "ph-r", [photo(7)])
    items = [
        {
            "key": "r-1",
            "kind": "result",
            "case_id": case["id"],
            "photo_ids": ids,
            "result": {"outcome": "pass", "lon": case["lon"], "lat": case["lat"]},
        },
        {
            "key": "t-1",
            "kind": "tracks",
            "tracks": {"points": [{"at": "2030-01-01T00:00:00+08:00", "lon": case["lon"], "lat": case["lat"]}]},
        },
        {"key": "r-2", "kind": "result", "photo_ids": ids},
    ]
    out = _batch(client, h, "b-rt", items).json()["items"]
    assert out[0]["status"] == 200 and out[0]["result"]["status"] == "checked"
    assert out[1]["status"] == 200 and out[1]["result"]["refused"][0]["type"] == "track.future_time"
    assert out[2]["status"] == 422 and out[2]["error"]["type"] == "mobile.item_incomplete"


def test_old_keys_are_forgotten_by_the_purge(client, orgdata, db):
    import datetime as dt

    from mobile_api.maintenance import purge_idempotency_records

    h = orgdata.headers("inspector")
    assert post_report(client, h, "old-key", a_report(), photos=[photo(1)]).status_code == 201
    factory = make_session_factory(db)
    with factory() as s, s.begin():
        assert purge_idempotency_records(s) == 0
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    with factory() as s, s.begin():
        assert purge_idempotency_records(s, now=later) == 1
    assert count(db, "idempotency_record") == 0 and count(db, "case") == 1
