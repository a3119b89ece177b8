"""The Celery app: queues, routing and the reliability settings, each with its reason.

Results live in `jobs`, not in a Celery result backend. The database is the guard against
duplicates and losses (docs/pitfalls.md): a task may be delivered twice, and `commands.execute`
makes the second delivery a no-op; a job whose message is lost is handed over again by the relay.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import replace
from functools import lru_cache
from typing import Any

import redis
from celery import Celery, signals
from kombu import Exchange, Queue
from redis.backoff import NoBackoff
from redis.retry import Retry

from ombaro import commands, logs, metrics
from ombaro.commands import Enqueue
from ombaro.config import Settings, load_settings

QUEUES = commands.QUEUES
REQUEST_ID_HEADER = "ombaro_request_id"  # a message header: the request id of the command behind the job


def routes() -> dict[str, str]:
    """Which queue each command kind goes to, from the command registry (ombaro/commands.py).
    Latency-sensitive dispatch never waits behind a payroll run; maintenance never competes with either."""
    return {kind: command.queue for kind, command in commands.registry().items()}


# The hard limit of any task; the visibility timeout must exceed it so that a message is never
# redelivered while its first delivery is still legitimately running.
TASK_TIME_LIMIT = 3600
VISIBILITY_TIMEOUT = 2 * TASK_TIME_LIMIT


def queue_for(kind: str) -> str:
    """The declared queue of `kind`; a kind no capability declares is refused (UnknownCommand)."""
    return commands.queue_of(kind)


BROKER_CONNECT_TIMEOUT = 2  # seconds: a request never hangs on a dead broker (the relay sends later)
# RabbitMQ: how long a publish waits for the broker's confirm before the job is left to the relay.
CONFIRM_TIMEOUT_SECONDS = 5


def broker_options(settings: Settings) -> dict[str, Any]:
    """What differs between the two brokers (docs/deploying.md, "Which broker")."""
    if settings.broker_is_amqp:
        # Quorum queues (replicated by Raft over the RabbitMQ cluster, durable, unacknowledged
        # messages requeued when a consumer's connection dies) and publisher confirms: a send
        # returns only once the broker holds the message, else it raises and the relay resends.
        queue_arguments = {"x-queue-type": "quorum"}
        return {
            "broker_transport_options": {"confirm_publish": True},
            "task_queues": [Queue(name, Exchange(name, type="direct"), routing_key=name, durable=True,
                                  queue_arguments=queue_arguments) for name in QUEUES],
            "worker_detect_quorum_queues": True,  # per-consumer prefetch: quorum queues have no global QoS
        }
    return {
        "broker_transport_options": {
            "visibility_timeout": VISIBILITY_TIMEOUT,
            # Fail fast when Redis is down: the request answers 202 and the relay enqueues later.
            "socket_connect_timeout": 2,
            "socket_timeout": 10,
            "retry_on_timeout": True,
            "health_check_interval": 30,
        },
        # One direct exchange per queue: a message routed to `dispatch` can only land in `dispatch`.
        "task_queues": [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        **broker_options(settings),
        "result_backend": None,
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        # Acknowledge after the task returns, and also when the worker process is killed (OOM,
        # SIGKILL): the message comes back and the job's lease decides whether it runs again.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Long tasks: one message reserved per process, so a slow job never hoards others.
        "worker_prefetch_multiplier": 1,
        "task_time_limit": TASK_TIME_LIMIT,
        "task_soft_time_limit": TASK_TIME_LIMIT - 60,
        "task_default_queue": "bulk",
        "task_create_missing_queues": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": BROKER_CONNECT_TIMEOUT,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "enable_utc": True,
        "timezone": "UTC",
    }


def task_modules() -> list[str]:
    """The module that registers the tasks: one generic task per declared command kind."""
    return ["workers.tasks"]


# The worker's app (`celery -A workers worker`). Its configuration is read lazily, when first
# needed, not at import time.
celery = Celery("ombaro", include=task_modules())
celery.add_defaults(lambda: celery_config(load_settings()))


@signals.setup_logging.connect
def configure_logging(loglevel: str | int | None = None, **_: Any) -> None:
    """Our log format instead of Celery's (a receiver of this signal stops Celery configuring its
    own): every line of a job carries its request id, job id and kind (docs/observability.md)."""
    settings = load_settings()
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else (loglevel or settings.log_level)
    logs.configure(level=str(level).upper(), fmt=settings.log_format, process="worker")
    metrics.configure(settings.redis_url)


_job_contexts: dict[str, AbstractContextManager[None]] = {}


@signals.task_prerun.connect
def enter_job_context(task_id: str | None = None, task: Any = None, args: Any = None, **_: Any) -> None:
    """Celery's own lines about a task (its outcome, its errors) carry the job's ids too; the request
    id comes with the message (`enqueue` adds it) and `commands.execute` confirms it from the job row."""
    if task_id is None or task is None:
        return
    rid = logs.sane_request_id(getattr(task.request, REQUEST_ID_HEADER, None))
    context = logs.context(request=rid, job=str(args[0]) if args else None, kind=task.name)
    context.__enter__()
    _job_contexts[task_id] = context


@signals.task_postrun.connect
def exit_job_context(task_id: str | None = None, **_: Any) -> None:
    context = _job_contexts.pop(task_id or "", None)
    if context is not None:
        context.__exit__(None, None, None)


@lru_cache(maxsize=4)
def _producer(broker_url: str) -> Celery:
    app = Celery("ombaro-producer")
    app.conf.update(celery_config(replace(load_settings(), broker_url=broker_url)))
    return app


# After a failed send, an enqueuer does not try the broker again for this long: while it is down
# every command is still accepted at once (the relay hands it over once the broker is back), instead
# of each request waiting out a connection attempt. Per enqueuer: the web app's and the relay's are
# apart, so the relay's next tick is never refused because a request failed a moment before.
BROKER_BACKOFF_SECONDS = 3.0


class BrokerUnavailable(ConnectionError):
    """The broker failed a moment ago; not tried again yet."""


class RedisPublisher:
    """Publishes a job's task message to a Redis broker with one LPUSH, the message Celery's
    `send_task` would write (protocol 2, kombu's Redis envelope; tests/commands/test_routing.py
    compares the two), without its per-call overhead: Celery's routing and signals, and kombu's
    producer and channel, which built a new Redis client on every publish (about 1 ms of CPU of
    the ~6 ms a submit cost its web worker). One client and its connection pool per publisher.

    Only for a plain `redis://` or `redis+socket://` broker with our transport options: any other
    broker goes through `send_task`."""

    def __init__(self, broker_url: str, app: Celery) -> None:
        options = app.conf.broker_transport_options
        url = "unix://" + broker_url.removeprefix("redis+socket://") if broker_url.startswith("redis+socket://") \
            else broker_url
        # One retry, on a connection error only: a pooled connection closed by a Redis restart is
        # replaced at once; a broker that is down fails within the connect timeout (then the relay).
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=options["socket_connect_timeout"], socket_timeout=options["socket_timeout"],
            health_check_interval=options["health_check_interval"],
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
        self._origin = f"gen{os.getpid()}@{socket.gethostname()}"  # what Celery's anon_nodename() says
        self._reply_to = str(uuid.uuid4())  # Celery's per-app oid; nothing replies (no result backend)

    @staticmethod
    def usable(broker_url: str, app: Celery) -> bool:
        options = app.conf.broker_transport_options
        return (broker_url.startswith(("redis://", "redis+socket://")) and "global_keyprefix" not in options
                and not app.conf.broker_use_ssl
                and all(name in options for name in ("socket_connect_timeout", "socket_timeout",
                                                     "health_check_interval")))

    def message(self, job_id: uuid.UUID, kind: str, queue: str, request_id: str | None) -> bytes:
        task_id = str(uuid.uuid4())
        args = [str(job_id)]
        body = json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
        headers: dict[str, object] = {
            "lang": "py", "task": kind, "id": task_id, "shadow": None, "eta": None, "expires": None, "group": None,
            "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id, "parent_id": None,
            "argsrepr": repr(args), "kwargsrepr": "{}", "origin": self._origin, "ignore_result": None,
            "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {}}
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        return json.dumps({
            "body": base64.b64encode(body.encode()).decode(), "content-encoding": "utf-8",
            "content-type": "application/json", "headers": headers,
            "properties": {"correlation_id": task_id, "reply_to": self._reply_to, "delivery_mode": 2,
                           "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                           "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())}}).encode()

    def __call__(self, job_id: uuid.UUID, kind: str, request_id: str | None) -> None:
        queue = queue_for(kind)  # priority 0: the queue's own list (kombu's priority lists are `<queue>\x06\x16<n>`)
        self._client.lpush(queue, self.message(job_id, kind, queue, request_id))


def enqueuer(broker_url: str) -> Enqueue:
    """An `Enqueue` for the broker at `broker_url` (Settings.broker_url: BROKER_URL, else REDIS_URL;
    the web app and the scheduler hold one).

    No retries: if the broker is down the job stays in PostgreSQL and the relay hands it over later,
    so an HTTP request never hangs on the broker."""
    app = _producer(broker_url)
    # None: no confirm asked for (Celery's default); RabbitMQ with publisher confirms waits for one.
    confirm_timeout = CONFIRM_TIMEOUT_SECONDS if app.conf.broker_transport_options.get("confirm_publish") else None

    publish = RedisPublisher(broker_url, app) if RedisPublisher.usable(broker_url, app) else None

    down_until = 0.0

    def enqueue(job_id: uuid.UUID, kind: str) -> None:
        nonlocal down_until
        if time.monotonic() < down_until:
            raise BrokerUnavailable(f"the broker failed less than {BROKER_BACKOFF_SECONDS:g}s ago")
        rid = logs.request_id.get()
        try:
            if publish is not None:
                publish(job_id, kind, rid)
            else:
                app.send_task(kind, args=[str(job_id)], queue=queue_for(kind), retry=False,
                              headers={REQUEST_ID_HEADER: rid} if rid else None, confirm_timeout=confirm_timeout)
        except Exception:
            down_until = time.monotonic() + BROKER_BACKOFF_SECONDS
            raise

    return enqueue


def broker_reachable(broker_url: str) -> None:
    """Connect to the broker once, within the connection timeout; raise if it cannot be reached
    (/readyz, when the broker is not the Redis it already pings)."""
    with _producer(broker_url).connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_CONNECT_TIMEOUT)


def enqueue(job_id: uuid.UUID, kind: str) -> None:
    """Hand a job to the configured broker (BROKER_URL, else REDIS_URL or the embedded Redis)."""
    enqueuer(load_settings().broker_url)(job_id, kind)
