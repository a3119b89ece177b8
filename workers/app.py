"""The Celery app: queues, routing and the reliability settings, each with its reason.

Results live in `jobs`, not in a Celery result backend. The database is the guard against
duplicates and losses (pitfalls.md): a task may be delivered twice, and `commands.execute`
makes the second delivery a no-op; a job whose message is lost is handed over again by the relay.
"""

from __future__ import annotations

import pkgutil
import uuid
from dataclasses import replace
from functools import lru_cache
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from ombaro.commands import Enqueue
from ombaro.config import Settings, load_settings

QUEUES = ("dispatch", "bulk", "maintenance")

# Which queue a command kind goes to, by the kind's prefix. Latency-sensitive dispatch never
# waits behind a payroll run; maintenance never competes with either.
ROUTES: dict[str, str] = {
    "dispatch.": "dispatch",
    "settlements.": "bulk",
    "payroll.": "bulk",
    "campaigns.": "bulk",
    "payments.": "bulk",
    "notifications.": "bulk",
    "reports.": "maintenance",
    "locations.": "maintenance",
    "system.": "maintenance",
}

# The hard limit of any task; the visibility timeout must exceed it so that a message is never
# redelivered while its first delivery is still legitimately running.
TASK_TIME_LIMIT = 3600
VISIBILITY_TIMEOUT = 2 * TASK_TIME_LIMIT


def queue_for(kind: str) -> str:
    for prefix, queue in ROUTES.items():
        if kind.startswith(prefix):
            return queue
    return "bulk"


def celery_config(settings: Settings) -> dict[str, Any]:
    transport = {
        "visibility_timeout": VISIBILITY_TIMEOUT,
        # Fail fast when Redis is down: the request answers 202 and the relay enqueues later.
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
        "retry_on_timeout": True,
        "health_check_interval": 30,
    }
    return {
        "broker_url": settings.redis_url,
        "broker_transport_options": transport,
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
        # One direct exchange per queue: a message routed to `dispatch` can only land in `dispatch`.
        "task_queues": [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        "task_default_queue": "bulk",
        "task_create_missing_queues": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 2,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "enable_utc": True,
        "timezone": "UTC",
    }


def task_modules() -> list[str]:
    """Every module of workers/tasks/: one per capability."""
    import workers.tasks as package

    return [f"{package.__name__}.{module.name}" for module in pkgutil.iter_modules(package.__path__)]


# The worker's app (`celery -A workers worker`). Its configuration is read lazily, when first
# needed, not at import time.
celery = Celery("ombaro", include=task_modules())
celery.add_defaults(lambda: celery_config(load_settings()))


@lru_cache(maxsize=4)
def _producer(redis_url: str) -> Celery:
    app = Celery("ombaro-producer")
    app.conf.update(celery_config(replace(load_settings(), redis_url=redis_url)))
    return app


def enqueuer(redis_url: str) -> Enqueue:
    """An `Enqueue` for the broker at `redis_url` (the web app and the scheduler hold one).

    No retries: if Redis is down the job stays in PostgreSQL and the relay hands it over later,
    so an HTTP request never hangs on the broker."""
    app = _producer(redis_url)

    def enqueue(job_id: uuid.UUID, kind: str) -> None:
        app.send_task(kind, args=[str(job_id)], queue=queue_for(kind), retry=False)

    return enqueue


def enqueue(job_id: uuid.UUID, kind: str) -> None:
    """Hand a job to the configured broker (REDIS_URL or the embedded Redis)."""
    enqueuer(load_settings().redis_url)(job_id, kind)
