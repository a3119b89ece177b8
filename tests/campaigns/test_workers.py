"""Real Celery workers against the local provider server: a 429 storm slows a campaign down without
losing or doubling a message, and a worker killed between the provider's acceptance and its own
bookkeeping causes no second send when its chunk is delivered again."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro.campaigns import reconcile, sending
from ombaro.messaging import Runtime
from tests.campaigns.helpers import Relay, deliveries, execute, submit
from tests.campaigns.provider_server import ProviderServer
from tests.factories.campaigns import a_city, add_campaign, add_customers
from tests.helpers import wait_until
from tests.services import Process, start_worker
from workers.app import enqueuer

pytestmark = pytest.mark.db


def campaign_status(engine: Engine, campaign_id: Any) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign_id}).scalar_one()


def start(rt: Runtime, campaign_id: Any, camp_redis_url: str, chunk_size: int) -> None:
    with Session(rt.engine) as session, session.begin():
        sending.submit_start(session, enqueuer(camp_redis_url), campaign_id, key="go", chunk_size=chunk_size)


def test_429_storm_slows_the_campaign_down_and_it_completes_without_loss_or_doubles(
    spawn: Callable[..., Process], messaging_env: dict[str, str], rt: Runtime, server: ProviderServer,
    camp_redis_url: str,
) -> None:
    city = a_city()
    people = add_customers(rt.engine, 240, city=city)
    campaign = add_campaign(rt.engine, city=city)
    env = {**messaging_env, "OMBARO_PROVIDER_RATES": "sendgrid=50,twilio_sms=200,outbox=1000",
           "OMBARO_PROVIDER_CONCURRENCY": "4"}
    start_worker(spawn, "storm", concurrency=2, env=env)  # two processes share the chunks and the bucket
    # Twilio answers 429 (Retry-After: 1) to everything for 2.5 s, SendGrid to its first 3 requests.
    server.add_fault("twilio", "status", status=429, retry_after=1, count=None, window=2.5)
    server.add_fault("sendgrid", "status", status=429, retry_after=1, count=3)
    began = time.monotonic()
    with Relay(rt.engine, camp_redis_url):
        start(rt, campaign, camp_redis_url, chunk_size=40)
        wait_until(lambda: campaign_status(rt.engine, campaign) == "completed", timeout=90,
                   what="the campaign to complete")
    elapsed = time.monotonic() - began
    rows = deliveries(rt.engine, campaign)
    assert len(rows) == 480 and {d["status"] for d in rows} == {"sent"}
    assert {m.to for m in server.accepted("twilio")} == {p.mobile for p in people}
    assert {m.to for m in server.accepted("sendgrid")} == {p.email for p in people}
    assert len(server.accepted("twilio")) == len(server.accepted("sendgrid")) == 240  # none doubled
    assert server.duplicates() == {}
    refused = server.responses[("twilio", 429)]
    # Backed off: every worker paused for each Retry-After rather than hammering the storm.
    assert 0 < refused <= 40, refused
    assert elapsed >= 2.5


def test_chunk_redelivered_after_a_kill_between_provider_call_and_update_sends_no_duplicate(
    spawn: Callable[..., Process], messaging_env: dict[str, str], rt: Runtime, server: ProviderServer,
    camp_redis_url: str, camp_engine: Engine,
) -> None:
    city = a_city()
    people = add_customers(rt.engine, 30, city=city)
    campaign = add_campaign(rt.engine, city=city, ctype="sms", content={"sms": {"body": "Hello $first_name"}})
    env = {**messaging_env, "OMBARO_PROVIDER_CONCURRENCY": "1", "OMBARO_JOB_LEASE_SECONDS": "3",
           "OMBARO_PROVIDER_TIMEOUT_SECONDS": "30"}
    # Ten answered, then one accepted by Twilio whose answer never comes back to the worker.
    server.add_fault("twilio", "delay", seconds=0, count=10)
    server.add_fault("twilio", "hold", accept=True, count=1, seconds=60)
    first = start_worker(spawn, "doomed", concurrency=1, env=env)
    start(rt, campaign, camp_redis_url, chunk_size=1000)
    wait_until(lambda: server.holding == 1, timeout=60, what="the held request")
    wait_until(lambda: sum(d["status"] == "sending" for d in deliveries(rt.engine, campaign)) == 8, timeout=30,
               what="the next batch claimed while this one is sent")
    first.stop(signal.SIGKILL)  # between Twilio's acceptance and the deliveries' update
    # The worker's batch in flight (4 with one thread): two answered, one held, one never sent; and
    # the next batch, claimed while that one was being sent, not sent at all.
    rows = deliveries(rt.engine, campaign)
    assert Counter(d["status"] for d in rows) == {"sent": 8, "sending": 8, "pending": 14}
    in_flight = {d["id"] for d in rows if d["status"] == "sending"}
    assert len(server.accepted("twilio")) == 11
    with camp_engine.connect() as conn:
        chunk = conn.execute(text("SELECT id, status, attempts FROM jobs WHERE kind = 'campaigns.send_chunk' "
                                  "AND idempotency_scope = :s"), {"s": sending.scope(campaign)}).one()
    assert (chunk.status, chunk.attempts) == ("running", 1)

    start_worker(spawn, "rescuer", concurrency=1, env={**env, "OMBARO_JOB_LEASE_SECONDS": "60"})
    with Relay(rt.engine, camp_redis_url):  # hands the job over again once its lease has expired
        wait_until(lambda: _job(camp_engine, chunk.id) == "succeeded", timeout=60,
                   what="the chunk to be delivered again and finish")
    with camp_engine.connect() as conn:
        assert conn.execute(text("SELECT attempts FROM jobs WHERE id = :id"), {"id": chunk.id}).scalar_one() == 2
    # The redelivered chunk sent the 14 pending ones and nothing it had claimed before.
    assert len(server.accepted("twilio")) == 25 and server.duplicates() == {}
    assert {d["id"] for d in deliveries(rt.engine, campaign) if d["status"] == "sending"} == in_flight

    # Reconciliation: Twilio has three of the eight (found, not resent); five never reached it.
    resend: list[Any] = []
    outcome = reconcile.reconcile(rt, stale_after=0, grace=0, submit_chunk=lambda kind, params, scope: resend.append(
        submit(rt, kind, params, key="resend", scope=scope)))
    assert (outcome["found"], outcome["resend"]) == (3, 5)
    for job in resend:
        assert execute(rt, job) == "succeeded"
    assert len(server.accepted("twilio")) == 30 and server.duplicates() == {}
    assert {m.to for m in server.accepted("twilio")} == {p.mobile for p in people}
    final = deliveries(rt.engine, campaign)
    assert {d["status"] for d in final} == {"sent"}
    sids = {m.to: m.sid for m in server.accepted("twilio")}
    mobiles = {p.id: p.mobile for p in people}
    assert all(d["provider_message_id"] == sids[mobiles[d["user_id"]]] for d in final)
    execute(rt, submit(rt, "campaigns.start_due", {}, key=f"tick-{campaign}"))
    assert campaign_status(rt.engine, campaign) == "completed"


def _job(engine: Engine, job_id: Any) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id}).scalar_one()
