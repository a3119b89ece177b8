"""/metrics: counters recorded by any process (here the test process, a real worker, the scheduler
code) are visible at the web's /metrics, read from Redis at scrape time."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from beat.scheduler import Beat
from ombaro import commands, diagnostics, logs
from ombaro.messaging import TokenBucket
from ombaro.models.jobs import Schedule
from ombaro.providers import ProviderUnavailable
from ombaro.schedules import INTERVAL_ANCHOR
from tests.factories.accounts import PASSWORD
from tests.helpers import job_row, wait_for_status
from tests.observability.scrape import metric, scrape, value
from tests.payments.fixtures import provider, razorpay, razorpay_server  # noqa: F401 (fixtures)
from tests.services import Process
from web.observability import queue_keys
from workers.app import _producer


def test_request_counts_and_latency_move_by_endpoint_not_path(client: Any) -> None:
    before = scrape(client)
    job_id = uuid.uuid4()
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 404
    after = scrape(client)

    ok = {"endpoint": "health.healthz", "method": "GET", "status": "200"}
    assert value(after, "ombaro_http_requests_total", **ok) == value(before, "ombaro_http_requests_total", **ok) + 3
    assert (value(after, "ombaro_http_request_duration_seconds_count", **ok)
            == value(before, "ombaro_http_request_duration_seconds_count", **ok) + 3)
    assert value(after, "ombaro_http_request_duration_seconds_bucket", le="+Inf", **ok) >= 3
    missing = {"endpoint": "jobs.get_job", "method": "GET", "status": "404"}
    assert value(after, "ombaro_http_requests_total", **missing) == value(before, "ombaro_http_requests_total",
                                                                          **missing) + 1
    assert str(job_id) not in client.get("/metrics").get_data(as_text=True)  # endpoint names, never paths


def test_metrics_endpoint_is_public_like_healthz(anon_client: Any) -> None:
    response = anon_client.get("/metrics")
    assert response.status_code == 200
    assert "ombaro_queue_depth" in response.get_data(as_text=True)


def test_command_through_api_and_worker_counts_submitted_succeeded_and_duration(
    client: Any, engine: Engine, worker: Process,
) -> None:
    kind = "reports.refresh"
    before = scrape(client)
    response = client.post("/api/v1/reports/refresh", json={"views": ["dashboard_stats"]})
    assert response.status_code == 202
    assert wait_for_status(engine, response.json["id"])["status"] == "succeeded"
    after = scrape(client)
    for name, labels in (("ombaro_jobs_submitted_total", {"kind": kind}),
                         ("ombaro_jobs_succeeded_total", {"kind": kind}),
                         ("ombaro_job_duration_seconds_count", {"kind": kind, "outcome": "succeeded"})):
        assert value(after, name, **labels) == value(before, name, **labels) + 1, name
    assert (value(after, "ombaro_job_duration_seconds_sum", kind=kind, outcome="succeeded")
            > value(before, "ombaro_job_duration_seconds_sum", kind=kind, outcome="succeeded"))


def _ping_job(engine: Engine, params: dict[str, Any]) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        return commands.submit(session, "system.ping", params, enqueue=lambda *_: None).job.id


def _run_ping(engine: Engine, job_id: uuid.UUID) -> str:
    def handler(session: Session, job: Any, progress: commands.Progress) -> dict[str, Any]:
        return diagnostics.ping(session, job.params, progress=progress)

    return commands.execute(job_id, handler, engine=engine, lease_seconds=60)


def test_failing_and_retried_jobs_are_counted(client: Any, engine: Engine, clean_jobs: None) -> None:
    before = scrape(client)
    assert _run_ping(engine, _ping_job(engine, {"fail": "permanent"})) == "failed"
    assert _run_ping(engine, _ping_job(engine, {"fail": "transient"})) == "retrying"
    after = scrape(client)
    for name, labels in (("ombaro_jobs_submitted_total", {"kind": "system.ping"}),
                         ("ombaro_jobs_failed_total", {"kind": "system.ping"}),
                         ("ombaro_jobs_retried_total", {"kind": "system.ping"}),
                         ("ombaro_job_duration_seconds_count", {"kind": "system.ping", "outcome": "failed"})):
        expected = 2 if name == "ombaro_jobs_submitted_total" else 1
        assert value(after, name, **labels) == value(before, name, **labels) + expected, name
    assert value(after, "ombaro_jobs_succeeded_total", kind="system.ping") == value(
        before, "ombaro_jobs_succeeded_total", kind="system.ping")


def test_queue_depth_counts_messages_waiting_with_no_worker(client: Any, redis_url: str) -> None:
    broker = redis.Redis.from_url(redis_url)
    broker.delete(*queue_keys("maintenance"))
    producer = _producer(redis_url)
    try:
        for _ in range(3):
            producer.send_task("system.ping", args=[str(uuid.uuid4())], queue="maintenance", retry=False)
        # A prioritised message lands in another list of the same queue (kombu's priority steps).
        producer.send_task("system.ping", args=[str(uuid.uuid4())], queue="maintenance", priority=9, retry=False)
        assert broker.llen("maintenance\x06\x169") == 1
        assert metric(client, "ombaro_queue_depth", queue="maintenance") == 4
        assert metric(client, "ombaro_queue_depth", queue="dispatch") == 0
    finally:
        broker.delete(*queue_keys("maintenance"))
    assert metric(client, "ombaro_queue_depth", queue="maintenance") == 0


def _schedule(engine: Engine, name: str, **values: Any) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        session.execute(text("UPDATE schedules SET enabled = false"))
        schedule = Schedule(name=name, kind="system.ping", params={}, **values)
        session.add(schedule)
        session.flush()
        return schedule.id


def _hour_slot_before(engine: Engine, hours: int) -> dt.datetime:
    """The hourly interval slot `hours` before the one now falls in, on the database's clock: a test
    that hands the scheduler explicit times away from the real one cannot land inside the grace."""
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
    hour = dt.timedelta(hours=1)
    return INTERVAL_ANCHOR + hour * ((now - INTERVAL_ANCHOR) // hour - hours)


def test_scheduler_firings_and_misfires_are_counted(client: Any, engine: Engine, clean_jobs: None) -> None:
    name = f"obs.hourly-{secrets.token_hex(3)}"
    schedule_id = _schedule(engine, name, interval_seconds=3600, misfire_policy="run_once")
    beat = Beat(engine, lambda *_: None, leader_lock=False)
    slot = _hour_slot_before(engine, 3)
    on_time = slot + dt.timedelta(seconds=5)
    before = scrape(client)

    firing = beat.fire(schedule_id, now=on_time)
    assert firing is not None and firing.outcome == "submitted"
    assert beat.fire(schedule_id, now=on_time + dt.timedelta(minutes=30)) is None  # later than the grace
    with engine.begin() as conn:  # the first firing's job finished; then the scheduler was down for two hours
        conn.execute(text("UPDATE jobs SET status = 'succeeded' WHERE schedule_id = :id"), {"id": schedule_id})
    fired = beat.catch_up(now=slot + dt.timedelta(hours=2, minutes=30))
    assert [(f.outcome, f.scheduled_for) for f in fired] == [("submitted", slot + dt.timedelta(hours=2))]
    after = scrape(client)

    def moved(name_: str, **labels: str) -> float:
        return value(after, name_, **labels) - value(before, name_, **labels)

    assert moved("ombaro_scheduler_firings_total", schedule=name, outcome="submitted") == 2
    assert moved("ombaro_scheduler_misfires_total", schedule=name, reason="missed") == 1
    assert moved("ombaro_scheduler_misfires_total", schedule=name, reason="caught_up") == 1
    # Each firing's job carries a request id of its own.
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT request_id FROM jobs WHERE schedule_id = :id"), {"id": schedule_id}).all()
    assert len(ids) == 2 and all(r.request_id for r in ids) and ids[0].request_id != ids[1].request_id


def test_missed_time_of_a_skip_schedule_is_a_misfire(client: Any, engine: Engine, clean_jobs: None) -> None:
    name = f"obs.skip-{secrets.token_hex(3)}"
    slot = _hour_slot_before(engine, 3)
    _schedule(engine, name, interval_seconds=3600, misfire_policy="skip", last_fired_for=slot)
    before = metric(client, "ombaro_scheduler_misfires_total", schedule=name, reason="skipped")
    # Up again half-way between two slots, two slots after the last one fired.
    assert Beat(engine, lambda *_: None, leader_lock=False).catch_up(now=slot + dt.timedelta(hours=2, minutes=30)) == []
    assert metric(client, "ombaro_scheduler_misfires_total", schedule=name, reason="skipped") == before + 1


def test_provider_calls_and_errors_are_counted_with_the_request_id_sent(
    client: Any, provider: Any, razorpay: Any,  # noqa: F811 (fixtures imported above)
) -> None:
    before = scrape(client)
    with logs.context(request="req-provider-1"):
        provider.create_order(amount_paise=1000, receipt="obs-1", notes={})
        razorpay.mode = "5xx"
        with pytest.raises(ProviderUnavailable):
            provider.create_order(amount_paise=1000, receipt="obs-2", notes={})
        razorpay.mode = "429"
        with pytest.raises(ProviderUnavailable):
            provider.create_order(amount_paise=1000, receipt="obs-3", notes={})
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("ombaro_provider_calls_total", provider="razorpay") == 3
    assert moved("ombaro_provider_errors_total", provider="razorpay", reason="unavailable") == 1
    assert moved("ombaro_provider_errors_total", provider="razorpay", reason="throttled") == 1
    assert [h.get("x-request-id") for h in razorpay.request_headers[-3:]] == ["req-provider-1"] * 3


def test_rate_limited_login_and_provider_bucket_waits_are_counted(app_factory: Any) -> None:
    # Only the per-account limit can bite: other tests' logins from this address do not matter.
    app = app_factory(OMBARO_LOGIN_LIMIT_PER_ACCOUNT="1", OMBARO_LOGIN_LIMIT_PER_ADDRESS="1000000")
    client = app.test_client()
    email = f"nobody.{secrets.token_hex(4)}@example.test"  # counted before the account is looked up
    before = scrape(client)
    statuses = [client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code
                for _ in range(2)]
    assert statuses == [401, 429]
    bucket = TokenBucket(app.extensions["ombaro"].redis, {"obs_provider": 0.5}, prefix=f"obs:{secrets.token_hex(3)}")
    assert bucket.take("obs_provider", 1)[0] == 1
    assert bucket.take("obs_provider", 1)[0] == 0  # empty: the caller must wait
    after = scrape(client)

    api = {"limiter": "api:login:account"}
    assert value(after, "ombaro_rate_limit_waits_total", **api) == value(before, "ombaro_rate_limit_waits_total",
                                                                          **api) + 1
    assert value(after, "ombaro_rate_limit_wait_seconds_total", **api) > value(
        before, "ombaro_rate_limit_wait_seconds_total", **api)
    assert (value(after, "ombaro_rate_limit_waits_total", limiter="provider:obs_provider")
            == value(before, "ombaro_rate_limit_waits_total", limiter="provider:obs_provider") + 1)
    assert email not in client.get("/metrics").get_data(as_text=True)  # no personal data in labels


def test_job_row_keeps_the_submitting_request_id(client: Any, engine: Engine, clean_jobs: None) -> None:
    response = client.post("/api/v1/reports/refresh", json={}, headers={"X-Request-ID": "req-row-42"})
    assert response.status_code == 202
    assert response.headers["X-Request-ID"] == "req-row-42"
    assert job_row(engine, response.json["id"])["request_id"] == "req-row-42"
