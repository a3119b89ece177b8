"""The command log over HTTP: one job, or a filtered list."""

from __future__ import annotations

import uuid
from typing import Any

from ombaro import commands
from ombaro.access.permissions import job_permission
from web.auth import PermissionDenied, current_user, requires
from web.extension import Ombaro, db_session
from web.sanitize import Blueprint
from web.schemas import JobQuerySchema, JobSchema

blp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs", description="Commands and their progress")


@blp.get("/<uuid:job_id>")
@requires("jobs", "read")
@blp.response(200, JobSchema)
def get_job(job_id: uuid.UUID) -> Any:
    """A job's status, progress, result or error message: the caller's own jobs, and staff see the
    jobs of every kind they may start (docs/security.md)."""
    return commands.get_job(db_session(), job_id)


@blp.get("")
@requires("jobs", "read")
@blp.arguments(JobQuerySchema, location="query", as_kwargs=True)
@blp.response(200, JobSchema(many=True))
def list_jobs(kind: list[str], status: list[str], before: Any, limit: int) -> Any:
    """Newest first; filter by kind and status (each may repeat), page with `before`."""
    return commands.list_jobs(db_session(), kinds=kind, statuses=status, before=before, limit=limit)


@blp.post("/<uuid:job_id>/retry")
@requires("jobs", "read")
@blp.response(202, JobSchema)
def retry_job(job_id: uuid.UUID) -> Any:
    """Run a failed or cancelled job again (409 otherwise). Allowed to a role that may start that
    kind of job (finance re-runs a settlement, IT a location prune); a job the caller cannot see
    is a 404."""
    session = db_session()
    with session.begin():
        kind = commands.get_job(session, job_id).kind  # 404 unless the caller can see it
        allowed = commands.may_run(session, kind)
    if not allowed:
        module, action = job_permission(kind)
        raise PermissionDenied(f"a {current_user().role} may not re-run {kind} jobs ({module}:{action})")
    # The request role may read jobs but not rewrite them: the service session makes the change.
    with Ombaro.get().sessions() as service, service.begin():
        job = commands.retry(service, job_id, enqueue=Ombaro.get().enqueue)
    return job, 202
