"""The command log over HTTP: one job, or a filtered list."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint

from ombaro import commands
from web.auth import requires
from web.extension import db_session
from web.schemas import JobQuerySchema, JobSchema

blp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs", description="Commands and their progress")


@blp.get("/<uuid:job_id>")
@requires("jobs", "read")
@blp.response(200, JobSchema)
def get_job(job_id: uuid.UUID) -> Any:
    """A job's status, progress, result or error (the caller's own; staff see all)."""
    return commands.get_job(db_session(), job_id)


@blp.get("")
@requires("jobs", "read")
@blp.arguments(JobQuerySchema, location="query", as_kwargs=True)
@blp.response(200, JobSchema(many=True))
def list_jobs(kind: list[str], status: list[str], before: Any, limit: int) -> Any:
    """Newest first; filter by kind and status (each may repeat), page with `before`."""
    return commands.list_jobs(db_session(), kinds=kind, statuses=status, before=before, limit=limit)
