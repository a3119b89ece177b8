"""A failed job's traceback stays in the database and the logs, for operators (the CLI on the owner
connection); the API and the console show the error's type and message only (docs/security.md)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cli.output import job_document
from ombaro import commands
from tests.factories.accounts import client_for, make_account
from tests.factories.console import signed_in
from tests.helpers import job_row

pytestmark = pytest.mark.db


def failed_job(engine: Engine) -> str:
    with Session(engine) as session, session.begin():
        job_id = commands.submit(session, "system.ping", {}, enqueue=lambda *_: None).job.id

    def broken(session: Session, job: Any, progress: Any) -> dict:
        raise RuntimeError("the ping could not reach the moon")

    assert commands.execute(job_id, broken, engine=engine, lease_seconds=60) == "failed"
    return str(job_id)


def test_the_api_shows_the_error_message_and_never_the_traceback(app: Any, engine: Engine, clean_jobs: None) -> None:
    job_id = failed_job(engine)
    stored = job_row(engine, job_id)["error"]
    assert "Traceback" in stored["trace"] and "broken" in stored["trace"]  # kept for operators
    it = client_for(app, make_account(engine, "it_department"))
    shown = it.get(f"/api/v1/jobs/{job_id}")
    assert shown.status_code == 200
    assert shown.json["error"] == {"type": "RuntimeError", "message": "the ping could not reach the moon",
                                   "attempt": 1}
    listed = it.get("/api/v1/jobs?status=failed").json
    assert [j["error"] for j in listed if j["id"] == job_id] == [shown.json["error"]]
    for body in (shown.get_data(as_text=True), json.dumps(listed)):
        assert "Traceback" not in body and "test_job_errors.py" not in body


def test_the_console_shows_the_message_and_the_cli_keeps_the_trace(app: Any, engine: Engine,
                                                                   clean_jobs: None) -> None:
    job_id = failed_job(engine)
    browser = signed_in(app, engine, "it_department")
    page = browser.get(f"/console/jobs/{job_id}").get_data(as_text=True)
    assert "the ping could not reach the moon" in page
    assert "Traceback" not in page and "test_job_errors.py" not in page
    with Session(engine) as session:  # the CLI reads as the owner: `ombaro jobs show --json`
        document = job_document(commands.get_job(session, uuid.UUID(job_id)))
    assert "Traceback" in document["error"]["trace"]
