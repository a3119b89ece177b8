"""JobSchema's dump (web.plain.PlainDump from the job's columns, issue 16, session 9) against
marshmallow's own dump of the same schema: the same members in the same order with the same
values, so every command endpoint's 202, its replay and GET /api/v1/jobs answer the same bytes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from marshmallow import Schema
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.models.jobs import Job
from web.schemas import JobSchema

# One job per state a job goes through, each with what that state fills in.
STATES: dict[str, str] = {
    "queued": "",
    "running": ", progress = 33.33, progress_message = 'half way', attempts = 1, started_at = now()",
    "succeeded": ", progress = 100, attempts = 2, started_at = now(), finished_at = now(), "
                 "result = '{\"rows\": 3, \"money\": \"12.50\", \"nested\": {\"b\": [1, 2], \"a\": null}}'",
    "failed": ", attempts = 3, started_at = now(), finished_at = now(), "
              "error = '{\"type\": \"Boom\", \"message\": \"it broke\", \"attempt\": 3, \"trace\": \"Traceback ...\"}'",
    "cancelled": ", scheduled_for = now() - interval '1 hour', requested_by = NULL, finished_at = now()",
}


def _jobs(engine: Engine) -> list[uuid.UUID]:
    """A job of every declared kind in every state, with the kind's example params."""
    ids: list[uuid.UUID] = []
    with engine.begin() as conn:
        for kind, command in commands.registry().items():
            for status, filled in STATES.items():
                job_id = conn.execute(text(
                    "INSERT INTO jobs (kind, params, status, requested_by, max_attempts) "
                    "VALUES (:kind, CAST(:params AS jsonb), :status, :by, :attempts) RETURNING id"),
                    {"kind": kind, "params": json.dumps(dict(command.example)), "status": status,
                     "by": uuid.uuid4(), "attempts": command.max_attempts}).scalar_one()
                conn.execute(text(f"UPDATE jobs SET updated_at = now() {filled} WHERE id = :id"), {"id": job_id})
                ids.append(job_id)
    return ids


def _marshmallows(schema: JobSchema, obj: Any, *, many: bool | None = None) -> Any:
    return Schema.dump(schema, obj, many=many)


def _text(dumped: Any) -> str:
    return json.dumps(dumped)  # member order kept: the app's JSON provider does not sort (JSON_SORT_KEYS)


def test_every_kind_in_every_state_dumps_as_marshmallow_does(engine: Engine, clean_jobs: None) -> None:
    ids = _jobs(engine)
    schema = JobSchema()
    with Session(engine) as session:
        jobs = [session.get_one(Job, job_id) for job_id in ids]
        rows = [dict(row) for row in session.execute(
            text("SELECT * FROM jobs WHERE id = ANY(:ids) ORDER BY created_at, id"), {"ids": ids}).mappings()]
        assert len(jobs) == len(rows) == len(commands.registry()) * len(STATES)
        for job in jobs:
            assert _text(schema.dump(job)) == _text(_marshmallows(schema, job)), job.kind
        for row in rows:  # a statement's row (web.commanding's 202) as a mapping of its columns
            assert _text(schema.dump(row)) == _text(_marshmallows(schema, row)), row["kind"]
        assert _text(schema.dump(jobs, many=True)) == _text(_marshmallows(schema, jobs, many=True))
        listing = JobSchema(many=True)
        assert _text(listing.dump(rows)) == _text(_marshmallows(listing, rows))
        failed = next(row for row in rows if row["status"] == "failed")
        assert schema.dump(failed)["error"] == {"type": "Boom", "message": "it broke", "attempt": 3}
        some = JobSchema(only=("status", "error", "id"))
        assert _text(some.dump(failed)) == _text(_marshmallows(some, failed))


@pytest.mark.parametrize("missing", ["result", "created_at"])
def test_a_mapping_without_a_column_dumps_as_marshmallow_does(missing: str) -> None:
    """marshmallow leaves out a member whose value is missing: so does JobSchema (it hands such a
    mapping to marshmallow)."""
    row = {"id": uuid.uuid4(), "kind": "reports.refresh", "status": "queued", "params": {}, "progress": 0,
           "progress_message": None, "result": None, "error": None, "attempts": 0, "max_attempts": 3,
           "requested_by": None, "scheduled_for": None, "created_at": None, "started_at": None,
           "finished_at": None}
    del row[missing]
    schema = JobSchema()
    assert _text(schema.dump(row)) == _text(_marshmallows(schema, row))
    assert missing not in schema.dump(row)
