"""after_request: every state-changing request by a staff role goes to the audit log."""

from __future__ import annotations

import logging

from flask import Response, g, request

from ombaro import audit
from ombaro.access.roles import STAFF_ROLES
from web.extension import Ombaro

log = logging.getLogger(__name__)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def record_staff_changes(response: Response) -> Response:
    user = g.get("user")
    if user is None or not user.is_authenticated or user.role not in STAFF_ROLES or request.method in SAFE_METHODS:
        return response
    try:
        audit.record(Ombaro.get().engine, actor_id=user.id, actor_role=user.role, method=request.method,
                     path=request.path, endpoint=request.endpoint, status=response.status_code,
                     ip=request.remote_addr, user_agent=request.user_agent.string,
                     request_id=request.headers.get("X-Request-Id"),
                     details={"query": request.args.to_dict(flat=False)} if request.args else {})
    except Exception:  # the change itself is done; a lost audit line is logged loudly, not hidden
        log.exception("could not write the audit log for %s %s", request.method, request.path)
    return response
