"""Turning a validated request into a job: the one helper every command endpoint calls."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import request, url_for

from ombaro import commands
from ombaro.models.jobs import Job
from web.audit import record_with
from web.auth import current_user
from web.errors import BadRequestHeader
from web.extension import Ombaro, db_session

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


def submit(kind: str, params: Mapping[str, Any] | commands.Params) -> tuple[Job, int, dict[str, str]]:
    """Record the command (and whatever the caller already added to the session) in one
    transaction; the job reaches the broker after commit. Answers 202 with the job (the endpoint's
    response schema dumps it)."""
    key = idempotency_key()
    user = current_user()
    session = db_session()
    with session.begin():
        submitted = commands.submit(session, kind, params, enqueue=Ombaro.get().enqueue, key=key,
                                    scope=user.idempotency_scope, requested_by=user.id)
        record_with(session, 202)  # the audit line commits with the job: one commit, not two
    headers = {"Location": url_for("jobs.get_job", job_id=submitted.job.id)}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return submitted.job, 202, headers
