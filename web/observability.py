"""Per request: the request id (X-Request-ID in, echoed out, in every log line) and the HTTP
metrics; and the collectors behind GET /metrics (docs/observability.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import redis
from flask import Flask, Response
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from ombaro import logs, metrics
from web.extension import request_globals, this_request
from workers.app import QUEUES

log = logging.getLogger("web.requests")
HEADER = "X-Request-ID"
# kombu's Redis transport keeps a queue's messages in one list per priority step: `<queue>` for
# priority 0 and `<queue>\x06\x16<step>` for the others (kombu.transport.redis, PRIORITY_STEPS).
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEPARATOR = "\x06\x16"


def queue_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


def begin_request() -> None:
    """The first step of every request (web.before_request), so that even a request refused by
    the sanitation or by authentication has its id."""
    here = request_globals()
    here.request_started = time.perf_counter()
    rid = logs.sane_request_id(this_request().headers.get(HEADER)) or logs.new_request_id()
    here.request_id = rid
    here.request_id_token = logs.request_id.set(rid)
    here.metrics_token = metrics.hold()  # added to the process's pending sums when the request ends


def end_request(response: Response) -> Response:
    """after_request (also runs for error responses): echo the id, count and time the request."""
    here = request_globals()
    rid = here.get("request_id")
    if rid:
        response.headers[HEADER] = rid
    started = here.get("request_started")
    if started is not None:
        seconds = time.perf_counter() - started
        req = this_request()
        # The url rule's endpoint name: bounded cardinality, and no ids or personal data from the path.
        endpoint = req.url_rule.endpoint if req.url_rule is not None else "unmatched"
        metrics.http_request(endpoint, req.method, response.status_code, seconds)
        log.info("%s %s %s %.1fms", req.method, endpoint, response.status_code, seconds * 1000)
    return response


def reset_context(_exc: BaseException | None = None) -> None:
    here = request_globals()
    held = here.pop("metrics_token", None)
    if held is not None:
        try:
            metrics.release(held, deferred=True)  # summed in-process, written within FLUSH_SECONDS
        except ValueError:  # set in another context (cannot happen under Flask's request handling)
            log.warning("metrics held in another context were not written")
    token = here.pop("request_id_token", None)
    if token is not None:
        try:
            logs.request_id.reset(token)
        except ValueError:  # set in another context (cannot happen under Flask's request handling)
            logs.request_id.set(None)


class QueueCollector:
    """Queue depth and scheduler heartbeat age, read from Redis at scrape time."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("ombaro_queue_depth",
                                  "Messages waiting in a Celery queue (all priority lists), read at scrape time.",
                                  labels=["queue"])
        age = GaugeMetricFamily("ombaro_scheduler_heartbeat_age_seconds",
                                "Seconds since the newest heartbeat of a scheduler, by role (leader, standby).",
                                labels=["role"])
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    for key in queue_keys(queue):
                        pipe.llen(key)
                lengths = pipe.execute()
            beats = metrics.scheduler_heartbeats(self.client)
        except Exception as exc:
            log.warning("metrics: Redis unreadable at scrape: %s", exc)
            return
        steps = len(PRIORITY_STEPS)
        for n, queue in enumerate(QUEUES):
            depth.add_metric([queue], sum(lengths[n * steps:(n + 1) * steps]))
        yield depth
        newest: dict[str, float] = {}
        for beat in beats.values():
            role = str(beat.get("role", "unknown"))
            newest[role] = min(newest.get(role, float("inf")), float(beat["age_seconds"]))
        for role, seconds in sorted(newest.items()):
            age.add_metric([role], seconds)
        yield age


def registry_for(client: redis.Redis) -> CollectorRegistry:
    """A registry of the app's own (not prometheus_client's global one: no per-process metrics,
    which would differ between gunicorn workers, and no double registration across apps in tests)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.RedisCollector(client))
    registry.register(QueueCollector(client))
    return registry


def init_app(app: Flask, redis_url: str) -> None:
    """The metrics and the hooks that end a request; begin_request runs from web.before_request."""
    metrics.configure(redis_url)
    app.after_request(end_request)
    app.teardown_request(reset_context)
    app.extensions["ombaro.metrics"] = registry_for(
        redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2))
