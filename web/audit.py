"""after_request: every state-changing request by a staff role goes to the audit log, and so does
every refused one (401 or 403) by anyone signed in, or by anyone at all on the endpoints that
administer accounts and permissions, with what was asked and why it was refused."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, g, request
from sqlalchemy.orm import Session

from ombaro import audit
from ombaro.access.roles import STAFF_ROLES
from web.extension import Ombaro, request_globals, this_request

log = logging.getLogger(__name__)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSED = frozenset({401, 403})
# Refusals here are audited even without a valid token (someone probing account administration).
ADMINISTRATION = ("/api/v1/users", "/api/v1/access")


def audit_target(**about: str) -> None:
    """What the request acts on (target account, role, status), for its audit line."""
    g.setdefault("audit_target", {}).update(about)


def _should_record(user: Any, status: int) -> bool:
    req = this_request()
    if req.method in SAFE_METHODS:
        return False
    signed_in = user is not None and user.is_authenticated
    if signed_in and user.role in STAFF_ROLES:
        return True
    return status in REFUSED and (signed_in or req.path.startswith(ADMINISTRATION))


def _line(user: Any, status: int, response: Response | None = None) -> dict[str, Any]:
    req = this_request()
    details: dict[str, Any] = {}
    if req.args:
        details["query"] = req.args.to_dict(flat=False)
    if target := g.get("audit_target"):
        details["target"] = target
    if response is not None and status in REFUSED:
        problem = response.get_json(silent=True) if response.is_json else None
        details["refused"] = str((problem or {}).get("detail") or response.status)[:500]
    signed_in = user is not None and user.is_authenticated
    return {"actor_id": user.id if signed_in else None, "actor_role": user.role if signed_in else None,
            "method": req.method, "path": req.path, "endpoint": req.endpoint, "status": status,
            "ip": req.remote_addr, "user_agent": req.user_agent.string,
            "request_id": req.headers.get("X-Request-Id"), "details": details}


def record_with(session: Session, status: int) -> None:
    """Write this request's audit line in the caller's transaction, as if it answered `status`
    (a command's 202), so that it commits with the change; record_staff_changes then writes none."""
    user = g.get("user")
    if _should_record(user, status):
        audit.append(session, **_line(user, status))
        g.audit_recorded = True


def line_for(status: int) -> dict[str, Any] | None:
    """This request's audit line as it is stored (ombaro.audit.values) if it answers `status`, or
    None if such a request gets none: for a statement that writes it with the change (a command's
    202, web.commanding). The caller marks it written (`g.audit_recorded`) once that committed."""
    user = g.get("user")
    return audit.values(**_line(user, status)) if _should_record(user, status) else None


def record_staff_changes(response: Response) -> Response:
    here = request_globals()
    user = here.get("user")
    if here.get("audit_recorded") or not _should_record(user, response.status_code):
        return response
    try:
        audit.record(Ombaro.get().engine, **_line(user, response.status_code, response))
    except Exception:  # the change itself is done; a lost audit line is logged loudly, not hidden
        log.exception("could not write the audit log for %s %s", request.method, request.path)
    return response
