"""Liveness, readiness and metrics, for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ombaro import diagnostics, metrics
from web.auth import public
from web.extension import Ombaro
from workers.app import broker_reachable

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)
# A scheduler heartbeat (written every few seconds by every beat process) older than this is stale.
SCHEDULER_STALE_SECONDS = 30


@bp.get("/healthz")
@public
def healthz() -> Response:
    """The process is up; checks nothing else."""
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz() -> tuple[Response, int]:
    """Database and broker reachable: 200, otherwise 503 naming what failed (no stack traces).

    The scheduler is reported beside the checks, not among them: an API instance that can serve
    must stay in rotation when the scheduler is down (docs/observability.md); its staleness is
    alerted on through `ombaro_scheduler_heartbeat_age_seconds` and shown here."""
    ombaro = Ombaro.get()
    checks: dict[str, str] = {}
    try:
        diagnostics.check_database(ombaro.engine)
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("readiness: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    scheduler: dict[str, object] = {"status": "unknown"}
    # Redis is the broker unless BROKER_URL names RabbitMQ; then both are checked, each by name.
    amqp = ombaro.settings.broker_is_amqp
    redis_check = "redis" if amqp else "broker"
    try:
        client = redis.Redis.from_url(ombaro.settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
            checks[redis_check] = "ok"
            scheduler = scheduler_status(client)
        finally:
            client.close()
    except Exception as exc:
        log.warning("readiness: %s unreachable: %s", redis_check, exc)
        checks[redis_check] = "unreachable"
    if amqp:
        try:
            broker_reachable(ombaro.settings.broker_url)
            checks["broker"] = "ok"
        except Exception as exc:
            log.warning("readiness: broker unreachable: %s", exc)
            checks["broker"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return (jsonify(status="ready" if ready else "unavailable", checks=checks, scheduler=scheduler),
            200 if ready else 503)


def scheduler_status(client: redis.Redis) -> dict[str, object]:
    """`ok` when the leader's heartbeat is fresh, `stale` when it is old (or only standbys beat),
    `absent` when no scheduler has beaten in the last hour."""
    beats = metrics.scheduler_heartbeats(client)
    if not beats:
        return {"status": "absent"}
    leaders = [b["age_seconds"] for b in beats.values() if b.get("role") == "leader"]
    newest = min(b["age_seconds"] for b in beats.values())
    age = min(leaders) if leaders else newest
    fresh = bool(leaders) and age <= SCHEDULER_STALE_SECONDS
    return {"status": "ok" if fresh else "stale", "age_seconds": age, "leader": bool(leaders),
            "instances": sum(1 for b in beats.values() if b["age_seconds"] <= SCHEDULER_STALE_SECONDS)}


@bp.get("/metrics")
@public
def prometheus_metrics() -> Response:
    """Prometheus text exposition. Unauthenticated like /healthz, for scrapers on the internal network;
    its labels are endpoint names, job kinds, schedule, queue and provider names: no personal data."""
    metrics.flush_pending()  # this process's own requests so far, not FLUSH_SECONDS late
    body = generate_latest(current_app.extensions["ombaro.metrics"])
    return Response(body, mimetype=None, headers={"Content-Type": CONTENT_TYPE_LATEST})
