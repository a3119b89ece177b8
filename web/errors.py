"""Every error leaves as application/problem+json (RFC 9457), mapped here and nowhere else."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from ombaro.attendance import AttendanceConflict, InvalidAttendance, NotOnRolls
from ombaro.bookings import BookingNotFound, BookingRejected, NotACustomer
from ombaro.bookings import InvalidTransition as BookingStateConflict
from ombaro.campaigns.lifecycle import CampaignNotFound, InvalidCampaign, InvalidTransition, SpendExceeded
from ombaro.campaigns.unsubscribe import InvalidToken, TokenUsed
from ombaro.commands import IdempotencyConflict, JobNotFound, JobNotRetryable
from ombaro.dispatch.lifecycle import AssignmentNotFound
from ombaro.identity.accounts import AccountDisabled, AccountExists, InvalidCredentials, NotAllowed
from ombaro.identity.tokens import TokenError
from ombaro.leave import InvalidLeave, LeaveConflict, LeaveNotAllowed, LeaveNotFound
from ombaro.locations import NotATherapist, NotOnTheWay, PingsRejected
from ombaro.payments import InvalidSignature, PaymentConflict, PaymentNotFound, ProviderDown
from ombaro.payroll.errors import PayrollConflict, PayrollForbidden, PayrollInvalid, PayrollNotFound
from ombaro.ratelimit import Limited
from ombaro.schedules import InvalidTrigger, ScheduleBusy, ScheduleNotFound
from ombaro.settlements import InvalidPeriod, InvalidRequest, MissingTdsRate, SettlementNotFound
from ombaro.settlements.payouts import MakerCheckerViolation, SettlementConflict

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

class NotFound(Exception):
    """404 for a domain object the caller cannot see: row-level security makes another tenant's
    row indistinguishable from one that does not exist."""


# Domain errors and the HTTP status each one means.
DOMAIN_STATUS: dict[type[Exception], int] = {
    JobNotFound: 404,
    JobNotRetryable: 409,
    ScheduleNotFound: 404,
    ScheduleBusy: 409,
    InvalidTrigger: 422,
    NotFound: 404,
    IdempotencyConflict: 422,
    AccountExists: 409,
    AccountDisabled: 403,
    NotAllowed: 403,
    InvalidCredentials: 401,
    TokenError: 401,
    # Payments and settlements (docs/settlements.md).
    PaymentNotFound: 404,
    PaymentConflict: 409,
    InvalidSignature: 422,
    ProviderDown: 503,
    SettlementNotFound: 404,
    SettlementConflict: 409,
    MakerCheckerViolation: 403,
    InvalidPeriod: 422,
    InvalidRequest: 422,
    MissingTdsRate: 422,
    # Attendance, leave and payroll (docs/payroll.md).
    NotOnRolls: 404,
    AttendanceConflict: 409,
    InvalidAttendance: 422,
    LeaveNotFound: 404,
    LeaveConflict: 409,
    LeaveNotAllowed: 403,
    InvalidLeave: 422,
    PayrollNotFound: 404,
    PayrollConflict: 409,
    PayrollForbidden: 403,
    PayrollInvalid: 422,
    # Campaigns (docs/campaigns.md).
    CampaignNotFound: 404,
    InvalidCampaign: 422,
    InvalidTransition: 409,
    SpendExceeded: 422,
    InvalidToken: 404,
    TokenUsed: 410,
    # Bookings, dispatch and live locations (docs/dispatch.md).
    BookingNotFound: 404,
    AssignmentNotFound: 404,
    BookingRejected: 422,
    PingsRejected: 422,
    BookingStateConflict: 409,
    NotOnTheWay: 409,
    NotACustomer: 403,
    NotATherapist: 403,
}





class BadRequestHeader(Exception):
    """A request header is malformed; carries the header name for the `errors` object."""

    def __init__(self, header: str, message: str) -> None:
        super().__init__(message)
        self.header = header


def problem(status: int, title: str, detail: str | None = None, *, errors: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "instance": request.path}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _field_errors(exc: HTTPException) -> dict[str, Any] | None:
    """webargs puts marshmallow's messages under the request location: {"json": {"field": [...]}}."""
    messages = getattr(exc, "data", {}).get("messages") if getattr(exc, "data", None) else None
    if not messages:
        return None
    if len(messages) == 1:
        (only,) = messages.values()
        return only if isinstance(only, dict) else {"_body": only}
    return messages


def register_error_handlers(app: Flask) -> None:
    for exc_type, status in DOMAIN_STATUS.items():
        app.register_error_handler(exc_type, _domain_handler(status))

    from web.auth import NotAuthenticated, PermissionDenied

    @app.errorhandler(NotAuthenticated)
    def not_authenticated(exc: NotAuthenticated) -> Response:
        return problem(401, "Unauthorized", str(exc), headers={"WWW-Authenticate": 'Bearer realm="ombaro"'})

    @app.errorhandler(PermissionDenied)
    def denied(exc: PermissionDenied) -> Response:
        return problem(403, "Forbidden", str(exc))

    @app.errorhandler(Limited)
    def limited(exc: Limited) -> Response:
        return problem(429, "Too Many Requests", str(exc), headers={"Retry-After": str(exc.retry_after)})

    @app.errorhandler(BadRequestHeader)
    def bad_header(exc: BadRequestHeader) -> Response:
        return problem(400, "Bad Request", str(exc), errors={exc.header: [str(exc)]})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # Registered after flask-smorest's own handler, so it answers for every route.
        errors = _field_errors(exc)
        detail = exc.description
        if errors and exc.code == 422:
            detail = "The request is not valid; `errors` names each field and what is wrong with it."
        elif errors and exc.code == 400:
            detail = "The request body is not valid JSON."
        data = getattr(exc, "data", None) or {}
        return problem(exc.code or 500, exc.name, detail, errors=errors, headers=data.get("headers"))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "An unexpected error occurred; it has been logged.")


def _domain_handler(status: int):
    title = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
             422: "Unprocessable Content"}.get(status, "Error")

    def handle(exc: Exception) -> Response:
        return problem(status, title, str(exc))

    return handle
