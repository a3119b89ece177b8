"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from web.auth import public
from web.extension import Ombaro

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
@public
def healthz() -> Response:
    """The process is up; checks nothing else."""
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz() -> tuple[Response, int]:
    """Database and broker reachable: 200, otherwise 503 naming what failed (no stack traces)."""
    ombaro = Ombaro.get()
    checks: dict[str, str] = {}
    try:
        with ombaro.engine.connect() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 2000"))
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("readiness: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    try:
        client = redis.Redis.from_url(ombaro.settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
        checks["broker"] = "ok"
    except Exception as exc:
        log.warning("readiness: broker unreachable: %s", exc)
        checks["broker"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503
