"""RabbitMQ as the broker (BROKER_URL=amqp://...), REDIS_URL staying the cache: real workers on a
virtual host of the test's own, quorum queues, publisher confirms, and a worker SIGKILLed mid-job."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.config import load_settings
from tests.deploy import free_port
from tests.deploy.rabbitmq import VirtualHost, unavailable
from tests.helpers import count_jobs, job_row, wait_for_status, wait_until
from tests.services import Process, start_worker
from workers.app import QUEUES, celery_config, enqueuer

if reason := unavailable():
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="module")
def vhost() -> Iterator[VirtualHost]:
    made = VirtualHost()
    yield made
    made.delete()


@pytest.fixture(scope="module")
def amqp_url(vhost: VirtualHost) -> str:
    return vhost.url


def amqp_worker(spawn: Callable[..., Process], name: str, amqp_url: str, **env: str) -> Process:
    return start_worker(spawn, name, env={"BROKER_URL": amqp_url, **env})


def submit(engine: Engine, enqueue: commands.Enqueue, kind: str, params: dict) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        return commands.submit(session, kind, params, enqueue=enqueue).job.id


def relay(engine: Engine, amqp_url: str) -> int:
    """What the scheduler's relay does every few seconds."""
    with Session(engine) as session, session.begin():
        return commands.relay(session, enqueuer(amqp_url), stale_seconds=300)


def test_broker_url_selects_quorum_queues_and_publisher_confirms(service_env: dict[str, str], amqp_url: str) -> None:
    settings = load_settings({**service_env, "BROKER_URL": amqp_url})
    assert settings.broker_url == amqp_url and settings.redis_url == service_env["REDIS_URL"]
    config = celery_config(settings)
    assert config["broker_url"] == amqp_url
    assert config["broker_transport_options"]["confirm_publish"] is True
    assert {q.name: q.queue_arguments["x-queue-type"] for q in config["task_queues"]} == dict.fromkeys(
        QUEUES, "quorum")
    without = {k: v for k, v in service_env.items() if k != "BROKER_URL"}  # (TEST_BROKER_URL sets it)
    redis_config = celery_config(load_settings(without))  # without BROKER_URL: Redis, as before
    assert redis_config["broker_url"] == service_env["REDIS_URL"]
    assert "visibility_timeout" in redis_config["broker_transport_options"]


def test_readiness_checks_rabbitmq_and_redis_each(
        app_factory: Callable[..., Any], amqp_url: str, clean_jobs: None) -> None:
    ready = app_factory(BROKER_URL=amqp_url).test_client().get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}
    dead = app_factory(BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/").test_client().get("/readyz")
    assert dead.status_code == 503
    assert dead.json["checks"] == {"database": "ok", "redis": "ok", "broker": "unreachable"}


def test_jobs_submitted_over_rabbitmq_are_done_once(
        engine: Engine, spawn: Callable[..., Process], amqp_url: str, vhost: VirtualHost, clean_jobs: None) -> None:
    amqp_worker(spawn, "amqp-a", amqp_url)
    amqp_worker(spawn, "amqp-b", amqp_url)
    types = vhost.queue_types()  # beside Celery's own: pidbox queues, celery_delayed_* (unused by us)
    assert {name: types.get(name) for name in QUEUES} == dict.fromkeys(QUEUES, "quorum")

    send = enqueuer(amqp_url)
    ids = [submit(engine, send, "system.ping", {"steps": 1, "pause_seconds": 0.05, "echo": n}) for n in range(20)]
    send(ids[0], "system.ping")  # a duplicate message: the database, not the broker, is the guard
    rows = [wait_for_status(engine, job_id, timeout=60) for job_id in ids]
    assert [(row["status"], row["attempts"]) for row in rows] == [("succeeded", 1)] * len(ids)
    assert [row["result"]["echo"] for row in rows] == list(range(20))


def test_a_message_the_broker_refuses_is_left_for_the_relay(
        engine: Engine, spawn: Callable[..., Process], amqp_url: str, vhost: VirtualHost, clean_jobs: None) -> None:
    """Publisher confirms: RabbitMQ nacks a message it cannot take (here: a queue at its length
    limit); the send raises, so the job is not marked as handed over and the relay sends it again."""
    send = enqueuer(amqp_url)
    vhost.purge("maintenance")  # no worker consumes it during this test
    vhost.set_policy("full", "maintenance", '{"max-length": 1, "overflow": "reject-publish"}')
    try:
        # A quorum queue enforces its limit a message late: it takes one or two, then refuses.
        jobs = [submit(engine, send, "system.ping", {"echo": n}) for n in range(4)]
        handed = [job_row(engine, job)["enqueued_at"] is not None for job in jobs]
    finally:
        vhost.clear_policy("full")
    assert handed[0] and not handed[-1], handed
    assert count_jobs(engine, "status = 'queued' AND enqueued_at IS NULL") == handed.count(False)
    amqp_worker(spawn, "amqp-confirm", amqp_url)
    assert relay(engine, amqp_url) == handed.count(False)
    assert [wait_for_status(engine, job)["status"] for job in jobs] == ["succeeded"] * len(jobs)


def test_job_of_a_worker_killed_mid_job_is_redelivered_and_done_once(
        engine: Engine, spawn: Callable[..., Process], amqp_url: str, clean_jobs: None) -> None:
    lease = {"OMBARO_JOB_LEASE_SECONDS": "3"}
    doomed = amqp_worker(spawn, "amqp-doomed", amqp_url, **lease)
    # Progress every second keeps a live attempt's 3-second lease fresh; only a dead one lets it lapse.
    job_id = submit(engine, enqueuer(amqp_url), "system.ping", {"steps": 6, "pause_seconds": 1})
    wait_until(lambda: job_row(engine, job_id)["progress"] > 0, what="the job to be under way")
    doomed.stop(signal.SIGKILL)  # the whole worker, as the OOM killer or a lost host would

    rescuer = amqp_worker(spawn, "amqp-rescuer", amqp_url, **lease)
    # RabbitMQ requeues the unacknowledged message when the dead worker's connection closes and
    # hands it to the rescuer at once; the job's lease, not the broker, decides when it may run again.
    wait_until(lambda: str(job_id) in rescuer.output(), timeout=30, what="the message to be redelivered")

    def done() -> bool:
        if count_jobs(engine, "id = :id AND status = 'running' AND lease_expires_at < now()", id=str(job_id)):
            relay(engine, amqp_url)  # the scheduler's relay, for a job whose worker stopped reporting
        return job_row(engine, job_id)["status"] in ("succeeded", "failed")

    wait_until(done, timeout=60, interval=0.5, what="the job to be taken over")
    row = job_row(engine, job_id)
    assert row["status"] == "succeeded"
    assert row["attempts"] == 2
