"""Each command kind reaches its own queue, and only that one."""

from __future__ import annotations

import uuid

import pytest
import redis

from workers.app import _producer, enqueuer, queue_for


def declare_all_queues(redis_url: str) -> None:
    app = _producer(redis_url)
    with app.connection_for_write() as conn:
        for queue in app.amqp.queues.values():
            queue(conn.default_channel).declare()


@pytest.mark.parametrize(("kind", "queue"), [
    ("dispatch.match", "dispatch"), ("settlements.run", "bulk"), ("payroll.run", "bulk"),
    ("campaigns.send_chunk", "bulk"), ("payments.webhook", "bulk"), ("notifications.send", "bulk"),
    ("reports.refresh", "maintenance"), ("locations.prune", "maintenance"),
])
def test_a_message_lands_in_its_kinds_queue_only(redis_url: str, kind: str, queue: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete("dispatch", "bulk", "maintenance")
    declare_all_queues(redis_url)  # as the workers do when they start: every binding exists
    enqueuer(redis_url)(uuid.uuid4(), kind)
    assert queue_for(kind) == queue
    lengths = {name: client.llen(name) for name in ("dispatch", "bulk", "maintenance")}
    assert lengths == {name: int(name == queue) for name in lengths}
    client.delete("dispatch", "bulk", "maintenance")
