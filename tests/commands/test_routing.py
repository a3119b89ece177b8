"""Each command kind reaches its own queue, and only that one; a kind nobody declares reaches none."""

from __future__ import annotations

import base64
import importlib
import json
import uuid

import pytest
import redis

from ombaro import commands
from workers.app import _producer, celery, enqueuer, queue_for, routes, task_modules

# Every declared kind and its queue, written out: a new kind (or a kind moved to another queue) must
# be added here on purpose.
EXPECTED_QUEUES = {
    "campaigns.reconcile": "bulk",
    "campaigns.send_chunk": "bulk",
    "campaigns.start": "bulk",
    "campaigns.start_due": "bulk",
    "dispatch.batch": "dispatch",
    "dispatch.booking": "dispatch",
    "locations.prune": "maintenance",
    "notifications.dispatch": "bulk",
    "notifications.reminders": "bulk",
    "payments.refund": "bulk",
    "payments.webhook": "bulk",
    "payroll.compute_batch": "bulk",
    "payroll.final_settlement": "bulk",
    "payroll.run": "bulk",
    "reports.refresh": "maintenance",
    "settlements.payout": "bulk",
    "settlements.reconcile": "bulk",
    "settlements.run": "bulk",
    "settlements.run_batch": "bulk",
    "system.ping": "maintenance",
    "system.housekeeping": "maintenance",
}


def declare_all_queues(redis_url: str) -> None:
    app = _producer(redis_url)
    with app.connection_for_write() as conn:
        for queue in app.amqp.queues.values():
            queue(conn.default_channel).declare()


def queue_lengths(client: redis.Redis) -> dict[str, int]:
    return {name: client.llen(name) for name in commands.QUEUES}


def test_every_declared_kind_with_its_queue_and_a_task_of_its_name() -> None:
    assert routes() == EXPECTED_QUEUES
    for module in task_modules():  # what `celery -A workers worker` imports
        importlib.import_module(module)
    registered = {name for name in celery.tasks if not name.startswith("celery.")}
    assert registered == set(EXPECTED_QUEUES)


@pytest.mark.parametrize(("kind", "queue"), sorted(EXPECTED_QUEUES.items()))
def test_a_message_lands_in_its_kinds_queue_only(redis_url: str, kind: str, queue: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(*commands.QUEUES)
    declare_all_queues(redis_url)  # as the workers do when they start: every binding exists
    enqueuer(redis_url)(uuid.uuid4(), kind)
    assert queue_for(kind) == queue
    assert queue_lengths(client) == {name: int(name == queue) for name in commands.QUEUES}
    client.delete(*commands.QUEUES)


@pytest.mark.parametrize("kind", ["dispatch.match", "settlements.someday", "nothing"])
def test_a_kind_nobody_declares_is_routed_nowhere(redis_url: str, kind: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(*commands.QUEUES)
    declare_all_queues(redis_url)
    with pytest.raises(commands.UnknownCommand):
        queue_for(kind)
    with pytest.raises(commands.UnknownCommand):
        enqueuer(redis_url)(uuid.uuid4(), kind)
    assert queue_lengths(client) == dict.fromkeys(commands.QUEUES, 0)


def test_the_direct_redis_publish_writes_the_message_celery_would(redis_url: str) -> None:
    # The enqueuer writes the task message itself (one LPUSH, workers.app.RedisPublisher) rather than
    # through Celery's send_task: the two messages must differ only in their fresh ids.
    from ombaro import logs

    client = redis.Redis.from_url(redis_url)
    client.delete(*commands.QUEUES)
    job_id = uuid.uuid4()
    token = logs.request_id.set("req-1")
    try:
        _producer(redis_url).send_task("system.ping", args=[str(job_id)], queue="maintenance", retry=False,
                                       headers={"ombaro_request_id": "req-1"})
        enqueuer(redis_url)(job_id, "system.ping")
    finally:
        logs.request_id.reset(token)
    celerys, ours = (json.loads(raw) for raw in reversed(client.lrange("maintenance", 0, -1)))
    client.delete(*commands.QUEUES)

    def fresh_ids_masked(message: dict) -> dict:
        headers, properties = message["headers"], message["properties"]
        assert headers["root_id"] == headers["id"] == properties["correlation_id"]
        for name in ("id", "root_id", "origin"):
            headers[name] = "*"
        for name in ("correlation_id", "reply_to", "delivery_tag"):
            properties[name] = "*"
        message["body"] = json.loads(base64.b64decode(message["body"]))
        return message

    assert fresh_ids_masked(ours) == fresh_ids_masked(celerys)
    assert ours["body"][0] == [str(job_id)] and ours["headers"]["ombaro_request_id"] == "req-1"
