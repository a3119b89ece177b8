"""The baselines for bench/api.py, each a bare Flask route answering the same JSON shape as a
submitted command:

- `create_app`: no authentication, validation, database or broker behind it (the issue's floor);
- `create_writing_app`: the same work's floor. Per request the bearer token is verified (the
  engine's `verify_access_token`: signature, expiry, issuer, audience), the job and its audit line
  are written by the engine's own one statement (`commands._SUBMIT_AUDITED`) on the thread's own
  connection in autocommit (committed, synchronously, before the answer), and the task message goes
  to Redis by the engine's own publisher (one LPUSH). No role or claims (it writes as the connecting
  user), no params schema, idempotency look-up, metrics, request id or Flask hooks: what any engine
  writing these rows and publishing this message must pay, and nothing more."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from typing import Any

from flask import Flask, jsonify, request
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql


def _answer(job_id: uuid.UUID, created_at: str, requested_by: str | None) -> Any:
    body = {"attempts": 0, "created_at": created_at, "error": None,
            "finished_at": None, "id": str(job_id), "kind": "reports.refresh", "max_attempts": 3,
            "params": {}, "progress": 0.0, "progress_message": None, "requested_by": requested_by, "result": None,
            "scheduled_for": None, "started_at": None, "status": "queued"}
    return jsonify(body), 202, {"Location": f"/api/v1/jobs/{job_id}"}


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/v1/reports/refresh")
    def refresh() -> Any:
        return _answer(uuid.uuid4(), dt.datetime.now(dt.UTC).isoformat(), None)

    return app


def create_writing_app() -> Flask:
    import psycopg

    from ombaro import audit, commands
    from ombaro.config import load_settings
    from ombaro.identity.tokens import verify_access_token
    from workers.app import enqueuer

    settings = load_settings()
    statement = str(commands._SUBMIT_AUDITED.compile(dialect=postgresql.dialect(paramstyle="pyformat")))
    conninfo = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    enqueue = enqueuer(settings.broker_url)
    local = threading.local()
    app = Flask(__name__)

    @app.post("/api/v1/reports/refresh")
    def refresh() -> Any:
        claims = verify_access_token(settings, request.headers["Authorization"].removeprefix("Bearer "))
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(conninfo, autocommit=True)
        key = request.headers.get("Idempotency-Key")
        request_id = uuid.uuid4().hex
        values: dict[str, Any] = {
            "kind": "reports.refresh", "params": Jsonb({}), "requested_by": claims.user_id,
            "idempotency_scope": f"user:{claims.user_id}", "idempotency_key": key,
            "request_hash": hashlib.sha256(b"reports.refresh{}").hexdigest(), "schedule_id": None,
            "scheduled_for": None, "max_attempts": 3, "request_id": request_id}
        line = audit.values(actor_id=claims.user_id, actor_role=claims.role, method="POST", path=request.path,
                            endpoint="reports.refresh", status=202, ip=request.remote_addr,
                            user_agent=request.user_agent.string, request_id=request_id, details={})
        values |= {f"line_{name}": Jsonb(value) if name == "details" else value for name, value in line.items()}
        row = conn.execute(statement, values).fetchone()
        assert row is not None
        job = dict(zip(commands._JOB_COLUMNS, row, strict=True))
        enqueue(job["id"], "reports.refresh")
        return _answer(job["id"], job["created_at"].isoformat(), str(claims.user_id))

    return app
