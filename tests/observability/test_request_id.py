"""The request id: accepted from X-Request-ID when sane, echoed, stored with the job, carried by every
JSON log line of the job in the worker; and the JSON log format itself."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from sqlalchemy import Engine

from ombaro import logs
from tests.helpers import job_row, wait_for_status, wait_until
from tests.services import Process, start_worker


def test_sane_request_id_is_echoed_and_a_bad_one_replaced(anon_client: Any) -> None:
    given = anon_client.get("/healthz", headers={"X-Request-ID": "abc-123.DEF:9"})
    assert given.headers["X-Request-ID"] == "abc-123.DEF:9"
    for bad in ("has space", "x" * 200, "quote\"d", ""):
        replaced = anon_client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert replaced != bad and logs.sane_request_id(replaced) == replaced
    # Refused by authentication before any view runs: still carries an id.
    refused = anon_client.get("/api/v1/jobs", headers={"Authorization": "Bearer nonsense", "X-Request-ID": "r-401"})
    assert refused.status_code == 401 and refused.headers["X-Request-ID"] == "r-401"


def json_lines(process: Process) -> list[dict[str, Any]]:
    return [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]


def test_request_id_follows_the_command_into_the_worker_log(
    client: Any, engine: Engine, spawn: Any, clean_jobs: None,
) -> None:
    worker = start_worker(spawn, env={"OMBARO_LOG_FORMAT": "json"})
    response = client.post("/api/v1/reports/refresh", json={"views": ["dashboard_stats"]},
                           headers={"X-Request-ID": "req-follow-7"})
    job_id = response.json["id"]
    assert wait_for_status(engine, job_id)["status"] == "succeeded"
    assert job_row(engine, job_id)["request_id"] == "req-follow-7"

    def job_lines() -> list[dict[str, Any]] | None:
        lines = [e for e in json_lines(worker) if e.get("request_id") == "req-follow-7"]
        # Celery writes its own line after the task returns: wait for it rather than race it.
        return lines if any(e["logger"] == "celery.app.trace" for e in lines) else None

    lines = wait_until(job_lines, timeout=10, what="the job's log lines, Celery's own included")
    assert all(e["job_id"] == job_id and e["kind"] == "reports.refresh" and e["process"] == "worker" for e in lines)
    assert any("attempt 1 succeeded" in e["message"] for e in lines)
    assert any(e["logger"] == "celery.app.trace" and "succeeded" in e["message"] for e in lines)  # Celery's own
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    # Lines outside any job carry no request id.
    assert any(e.get("request_id") is None and "ready." in e["message"] for e in json_lines(worker))


def test_json_formatter_one_object_per_line_with_context_and_masked_exception() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("test"))
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("tests.observability.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.context(request="r-1", job="j-1", kind="system.ping"):
            try:
                raise RuntimeError("token Bearer abc.def.secret\nsecond line")
            except RuntimeError:
                logger.exception("it broke: %s", "here")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "it broke: here" and first["level"] == "ERROR"
    assert (first["request_id"], first["job_id"], first["kind"], first["process"]) == ("r-1", "j-1", "system.ping",
                                                                                         "test")
    assert "RuntimeError" in first["exc_info"] and "abc.def.secret" not in first["exc_info"]
    assert "request_id" not in second and second["message"] == "outside"
