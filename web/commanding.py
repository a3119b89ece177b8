"""Turning a validated request into a job: the one helper every command endpoint calls."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import g, request, url_for
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.models.jobs import Job
from web.audit import line_for, record_with
from web.auth import current_user
from web.errors import BadRequestHeader
from web.extension import Ombaro, caller_changes, db_session

# IETF draft-ietf-httpapi-idempotency-key-header: the value is a Structured Field string; we also
# accept it unquoted. Printable ASCII, at most 255 characters.
_KEY = re.compile(r'^[\x20-\x21\x23-\x7e]{1,255}$')


def idempotency_key() -> str | None:
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _KEY.match(value):
        raise BadRequestHeader("Idempotency-Key", "Idempotency-Key must be 1 to 255 printable ASCII characters")
    return value


def submit(kind: str, params: Mapping[str, Any] | commands.Params
           ) -> tuple[Job | Mapping[str, Any], int, dict[str, str]]:
    """Record the command (and whatever the caller already added to the session) in one
    transaction; the job reaches the broker after commit. Answers 202 with the job (the endpoint's
    response schema dumps it).

    With nothing in the request's session (no transaction begun), the job and the
    request's audit line go to the database as one statement in one round trip (`_submit_alone`);
    a known Idempotency-Key, where that writes nothing, is answered by the session's path below."""
    key = idempotency_key()
    user = current_user()
    # Checked and fingerprinted once (UnknownCommand / InvalidParams before anything is written),
    # whichever path below writes them.
    values = commands.job_values(kind, params, key=key, scope=user.idempotency_scope, requested_by=user.id)
    if _nothing_pending():
        job = _submit_alone(kind, values)
        if job is not None:
            return job, 202, {"Location": url_for("jobs.get_job", job_id=job["id"])}
    session = db_session()
    with session.begin():
        submitted = commands.submit_values(session, values, enqueue=Ombaro.get().enqueue)
        record_with(session, 202)  # the audit line commits with the job: one commit, not two
    headers = {"Location": url_for("jobs.get_job", job_id=submitted.job.id)}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return submitted.job, 202, headers


def _nothing_pending() -> bool:
    """Whether the request's session carries nothing into the job's transaction: none, or none begun
    (an object added begins one; the session's path below refuses to begin inside one, as before)."""
    session: Session | None = g.get("db_session")
    return session is None or not session.in_transaction()


def _submit_alone(kind: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The job as a new row, written with the request's audit line in one transaction of its own
    as the caller (caller_changes: BEGIN, the role and claims, the INSERT with the line and COMMIT as
    one query, one round trip, durable before the 202), then counted and handed to the broker;
    None if the key was known and nothing was written (issue 16, session 7: the Session, its
    BEGIN, the ORM's statements and the separate COMMIT cost a submit more than its Flask request)."""
    line = line_for(202)
    job = commands.insert_job(caller_changes, values, audit_line=line)
    if job is None:
        return None
    g.audit_recorded = line is not None  # committed with the job: record_staff_changes writes none
    ombaro = Ombaro.get()
    commands.submitted(ombaro.engine, job["id"], kind, ombaro.enqueue)
    return job
