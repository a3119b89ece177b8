"""Prometheus metrics shared by every process (web, workers, scheduler) through Redis.

The processes are separate and may run on separate hosts, so a counter kept in one process's
memory would be invisible at the web's /metrics. Each recording is instead one pipelined round
trip to Redis (HINCRBYFLOAT on a hash per metric, field = the label values); a collector turns the
hashes into metric families when /metrics is scraped (docs/observability.md).

Recording is best effort: a Redis failure never fails the caller. It is logged at debug and
recording pauses for a few seconds, so a dead Redis costs one timeout, not one per request.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

log = logging.getLogger(__name__)

PREFIX = "ombaro:metrics"
HEARTBEATS_KEY = "ombaro:scheduler:heartbeats"  # hash: instance -> {"ts": epoch seconds, "role": ...}
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.05, 0.25, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
PAUSE_AFTER_FAILURE = 5.0  # seconds without recording after Redis failed
MAX_LABEL = 100


@dataclass(frozen=True)
class Definition:
    name: str  # a counter's without `_total` (the exposition adds it)
    type: Literal["counter", "histogram"]
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @property
    def key(self) -> str:
        return f"{PREFIX}:{self.name}"


HTTP_REQUESTS = Definition("ombaro_http_requests", "counter",
                           "HTTP requests answered, by Flask endpoint (never the raw path), method and status.",
                           ("endpoint", "method", "status"))
HTTP_DURATION = Definition("ombaro_http_request_duration_seconds", "histogram",
                           "Time to answer an HTTP request, by Flask endpoint, method and status.",
                           ("endpoint", "method", "status"), HTTP_BUCKETS)
JOBS_SUBMITTED = Definition("ombaro_jobs_submitted", "counter",
                            "Jobs recorded (committed) by kind: API commands and scheduler firings.", ("kind",))
JOBS_SUCCEEDED = Definition("ombaro_jobs_succeeded", "counter", "Job attempts that succeeded, by kind.", ("kind",))
JOBS_FAILED = Definition("ombaro_jobs_failed", "counter", "Jobs that failed for good, by kind.", ("kind",))
JOBS_RETRIED = Definition("ombaro_jobs_retried", "counter",
                          "Job attempts that failed transiently and were queued again with a back-off, by kind.",
                          ("kind",))
JOB_DURATION = Definition("ombaro_job_duration_seconds", "histogram",
                          "Duration of one job attempt (claim to recorded outcome), by kind and outcome.",
                          ("kind", "outcome"), JOB_BUCKETS)
SCHEDULER_FIRINGS = Definition("ombaro_scheduler_firings", "counter",
                               "Schedule firings, by schedule and outcome (submitted, duplicate, skipped-overlap).",
                               ("schedule", "outcome"))
SCHEDULER_MISFIRES = Definition("ombaro_scheduler_misfires", "counter",
                                "Scheduled times not fired on time, by schedule and reason (missed: later than "
                                "the grace and dropped; caught_up: fired after downtime; skipped: missed during "
                                "downtime and not fired, misfire policy skip).", ("schedule", "reason"))
PROVIDER_CALLS = Definition("ombaro_provider_calls", "counter",
                            "Requests made to an external provider (razorpay, sendgrid, twilio_*, fcm, outbox).",
                            ("provider",))
PROVIDER_ERRORS = Definition("ombaro_provider_errors", "counter",
                             "Provider requests that did not succeed, by provider and reason "
                             "(throttled: 429; unavailable: 5xx, timeout, connection; rejected: other 4xx).",
                             ("provider", "reason"))
RATE_LIMIT_WAITS = Definition("ombaro_rate_limit_waits", "counter",
                              "Times a rate limit made someone wait: API requests answered 429 (limiter api:...) "
                              "and provider token-bucket waits (limiter provider:...).", ("limiter",))
RATE_LIMIT_WAIT_SECONDS = Definition("ombaro_rate_limit_wait_seconds", "counter",
                                     "Seconds of waiting imposed by rate limits (Retry-After told to API callers, "
                                     "token-bucket waits of workers).", ("limiter",))
WEBHOOK_EVENTS_OVERDUE = Definition("ombaro_webhook_events_overdue", "counter",
                                    "Webhook events flagged overdue: still parked after the age limit, their entity "
                                    "(order, payment, transfer) never seen here (docs/reliability.md).",
                                    ("provider", "event_type"))

DEFINITIONS = (HTTP_REQUESTS, HTTP_DURATION, JOBS_SUBMITTED, JOBS_SUCCEEDED, JOBS_FAILED, JOBS_RETRIED, JOB_DURATION,
               SCHEDULER_FIRINGS, SCHEDULER_MISFIRES, PROVIDER_CALLS, PROVIDER_ERRORS, RATE_LIMIT_WAITS,
               RATE_LIMIT_WAIT_SECONDS, WEBHOOK_EVENTS_OVERDUE)


class _Store:
    """The process's Redis client for metrics; created lazily from the settings, replaceable."""

    def __init__(self) -> None:
        self.client: redis.Redis | None = None
        self.url: str | None = None
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def get(self) -> redis.Redis | None:
        if self.client is None:
            with self.lock:
                if self.client is None:
                    from ombaro.config import load_settings

                    try:
                        configure(load_settings().redis_url)
                    except Exception as exc:
                        log.debug("metrics: no Redis configured: %s", exc)
                        return None
        return self.client


_store = _Store()


def configure(redis_url: str) -> None:
    """Record into the Redis at `redis_url` (each process calls this at start; lazily otherwise)."""
    if _store.url == redis_url and _store.client is not None:
        return
    _store.client = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=0.5)
    _store.url = redis_url
    _store.paused_until = 0.0


def _labels(definition: Definition, values: Sequence[object]) -> list[str]:
    if len(values) != len(definition.labels):
        raise ValueError(f"{definition.name} takes labels {definition.labels}, got {values!r}")
    return [str(v)[:MAX_LABEL] for v in values]


def _field(parts: list[str]) -> str:
    return _field_text(tuple(parts))


@functools.lru_cache(maxsize=4096)
def _field_text(parts: tuple[str, ...]) -> str:
    """A hash field's name: the labels' JSON, kept for the few label sets a process records again
    and again (bounded: labels name endpoints, statuses, buckets, kinds; issue 16, session 9: five
    `json.dumps` a request)."""
    return json.dumps(parts, separators=(",", ":"))


# While held (a web request, between its first and last hook), what is recorded is kept here and
# written to Redis in one round trip when released: a command submission recorded two (the
# submitted-jobs counter and the request's own figures).
_held: contextvars.ContextVar[list[tuple[str, str, float]] | None] = contextvars.ContextVar(
    "ombaro.metrics.held", default=None)


def hold() -> contextvars.Token[list[tuple[str, str, float]] | None]:
    """Keep what this context records until `release`."""
    return _held.set([])


def release(token: contextvars.Token[list[tuple[str, str, float]] | None], *, deferred: bool = False) -> None:
    """Write what was kept since `hold`, in one round trip, and stop keeping; `deferred`: add it to
    this process's pending sums instead, written within FLUSH_SECONDS (the web requests')."""
    held = _held.get()
    _held.reset(token)
    if held:
        if deferred:
            _pending.add(held)
        else:
            _send(held)


# The web process's requests are many and small: each one's figures are summed here per hash
# field and written in one round trip at most every FLUSH_SECONDS (by the request that finds them
# due, else by a flusher thread), and before this process serves a scrape; so one Redis round trip
# serves hundreds of requests (docs/observability.md). The totals are the same; another process's
# scrape sees them up to FLUSH_SECONDS late, and a process killed outright loses at most that long.
FLUSH_SECONDS = 0.5


class _Pending:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sums: dict[tuple[str, str], float] = {}
        self.flushed = time.monotonic()
        self.flusher_pid = 0  # the process whose flusher thread runs (a forked child starts its own)

    def add(self, commands: Iterable[tuple[str, str, float]]) -> None:
        with self.lock:
            sums = self.sums
            for key, field, amount in commands:
                sums[(key, field)] = sums.get((key, field), 0.0) + amount
            due = time.monotonic() - self.flushed >= FLUSH_SECONDS
            if self.flusher_pid != os.getpid():
                self.flusher_pid = os.getpid()
                threading.Thread(target=self._run, name="metrics-flusher", daemon=True).start()
        if due:
            self.flush()

    def flush(self) -> None:
        """Write the pending sums now (one round trip; nothing when there are none)."""
        with self.lock:
            taken, self.sums, self.flushed = self.sums, {}, time.monotonic()
        if taken:
            _write([(key, field, amount) for (key, field), amount in taken.items()])

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            if time.monotonic() - self.flushed >= FLUSH_SECONDS:
                self.flush()


_pending = _Pending()
atexit.register(_pending.flush)


def flush_pending() -> None:
    """Write this process's deferred figures now (before a scrape: it then sees its own at once)."""
    _pending.flush()


def _send(commands: Iterable[tuple[str, str, float]]) -> None:
    held = _held.get()
    if held is not None:
        held.extend(commands)
        return
    _write(commands)


def _write(commands: Iterable[tuple[str, str, float]]) -> None:
    if time.monotonic() < _store.paused_until:
        return
    client = _store.get()
    if client is None:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for key, field, amount in commands:
                pipe.hincrbyfloat(key, field, amount)
            pipe.execute()
    except Exception as exc:  # best effort: metrics never fail the work they measure
        _store.paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        log.debug("metrics: recording failed, paused for %ss: %s", PAUSE_AFTER_FAILURE, exc)


def inc(definition: Definition, *labels: object, by: float = 1.0) -> None:
    assert definition.type == "counter", definition.name
    _send([(definition.key, _field(_labels(definition, labels)), by)])


def observe(definition: Definition, value: float, *labels: object) -> None:
    """One observation: its bucket (not cumulative: summed at scrape time), the sum and the count."""
    _send(_observation(definition, value, labels))


def _observation(definition: Definition, value: float, labels: Sequence[object]) -> list[tuple[str, str, float]]:
    assert definition.type == "histogram", definition.name
    parts = _labels(definition, labels)
    bucket = next((f"{b:g}" for b in definition.buckets if value <= b), "+Inf")
    return [(definition.key, _field([*parts, bucket]), 1), (definition.key, _field([*parts, "sum"]), value),
            (definition.key, _field([*parts, "count"]), 1)]


def http_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    """One answered request: its count and its duration, in one round trip to Redis."""
    labels = (endpoint, method, str(status))
    _send([(HTTP_REQUESTS.key, _field(_labels(HTTP_REQUESTS, labels)), 1.0),
           *_observation(HTTP_DURATION, seconds, labels)])


# ---- what the domain calls ------------------------------------------------------------------------


def provider_call(provider: str, error: str | None = None) -> None:
    """One request to a provider; `error` is None, 'throttled', 'unavailable' or 'rejected'."""
    commands = [(PROVIDER_CALLS.key, _field([provider]), 1.0)]
    if error:
        commands.append((PROVIDER_ERRORS.key, _field([provider, error]), 1.0))
    _send(commands)


def provider_calls(provider: str, calls: int, errors: Mapping[str, int]) -> None:
    """`calls` requests to a provider, `errors` of them failed (error -> count): one round trip to
    Redis for a whole batch (a campaign makes thousands of calls a second)."""
    commands = [(PROVIDER_CALLS.key, _field([provider]), float(calls))]
    commands += [(PROVIDER_ERRORS.key, _field([provider, error]), float(n)) for error, n in errors.items() if n]
    if calls:
        _send(commands)


def rate_limit_wait(limiter: str, seconds: float) -> None:
    _send([(RATE_LIMIT_WAITS.key, _field([limiter]), 1.0),
           (RATE_LIMIT_WAIT_SECONDS.key, _field([limiter]), max(0.0, seconds))])


def job_finished(kind: str, outcome: str, seconds: float) -> None:
    """An attempt's outcome as `commands.execute` reports it ('skipped' is not counted)."""
    counter = {"succeeded": JOBS_SUCCEEDED, "failed": JOBS_FAILED, "retrying": JOBS_RETRIED}.get(outcome)
    if counter is None:
        return
    parts = [kind, outcome]
    bucket = next((f"{b:g}" for b in JOB_DURATION.buckets if seconds <= b), "+Inf")
    _send([(counter.key, _field([kind]), 1.0), (JOB_DURATION.key, _field([*parts, bucket]), 1.0),
           (JOB_DURATION.key, _field([*parts, "sum"]), seconds), (JOB_DURATION.key, _field([*parts, "count"]), 1.0)])


# ---- scheduler heartbeat ----------------------------------------------------------------------------


def scheduler_heartbeat(instance: str, role: str) -> None:
    """A scheduler process (leader or standby) says it is alive; best effort like the metrics."""
    client = _store.get()
    if client is None:
        return
    try:
        client.hset(HEARTBEATS_KEY, instance, json.dumps({"ts": time.time(), "role": role}))
    except Exception as exc:
        log.debug("scheduler heartbeat not recorded: %s", exc)


def scheduler_heartbeats(client: redis.Redis, *, forget_after: float = 3600) -> dict[str, dict[str, Any]]:
    """instance -> {"ts", "role", "age_seconds"}; entries silent for `forget_after` are removed."""
    now = time.time()
    beats: dict[str, dict[str, Any]] = {}
    # A synchronous client answers a dict (redis-py's annotation covers its asyncio client too).
    entries = cast(dict[bytes | str, bytes | str], client.hgetall(HEARTBEATS_KEY))
    for raw_instance, raw in entries.items():
        instance = raw_instance.decode() if isinstance(raw_instance, bytes) else str(raw_instance)
        try:
            beat = json.loads(raw)
            age = max(0.0, now - float(beat["ts"]))
        except (ValueError, KeyError, TypeError):
            age = forget_after + 1
            beat = {}
        if age > forget_after:
            client.hdel(HEARTBEATS_KEY, instance)
            continue
        beats[instance] = {**beat, "age_seconds": round(age, 1)}
    return beats


# ---- scrape side ----------------------------------------------------------------------------------


class RedisCollector:
    """A prometheus_client collector: every definition's hash, read in one round trip at scrape."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ombaro_metrics_store_up", "1 when the metrics in Redis could be read.")
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for definition in DEFINITIONS:
                    pipe.hgetall(definition.key)
                hashes = pipe.execute()
        except Exception as exc:
            log.warning("metrics: Redis unreadable at scrape: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for definition, data in zip(DEFINITIONS, hashes, strict=True):
            fields = [(json.loads(k), float(v)) for k, v in data.items()]
            yield _counter(definition, fields) if definition.type == "counter" else _histogram(definition, fields)


def _counter(definition: Definition, fields: list[tuple[list[str], float]]) -> Metric:
    family = CounterMetricFamily(definition.name, definition.help, labels=definition.labels)
    for labels, value in sorted(fields):
        family.add_metric(labels, value)
    return family


def _histogram(definition: Definition, fields: list[tuple[list[str], float]]) -> Metric:
    family = HistogramMetricFamily(definition.name, definition.help, labels=definition.labels)
    series: dict[tuple[str, ...], dict[str, float]] = {}
    for parts, value in fields:
        *labels, suffix = parts
        series.setdefault(tuple(labels), {})[suffix] = value
    for key, values in sorted(series.items()):
        cumulative, buckets = 0.0, []
        for bound in definition.buckets:
            cumulative += values.get(f"{bound:g}", 0.0)
            buckets.append((f"{bound:g}", cumulative))
        buckets.append(("+Inf", values.get("count", cumulative + values.get("+Inf", 0.0))))
        family.add_metric(list(key), buckets=buckets, sum_value=values.get("sum", 0.0))
    return family
