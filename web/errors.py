"""Every error leaves as application/problem+json (RFC 9457), mapped here and nowhere else."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import psycopg
import redis
from flask import Flask, Response, json, request
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ombaro.attendance import AttendanceConflict, InvalidAttendance, NotOnRolls
from ombaro.bookings import BookingNotFound, BookingRejected, NotACustomer
from ombaro.bookings import InvalidTransition as BookingStateConflict
from ombaro.campaigns.lifecycle import CampaignNotFound, InvalidCampaign, InvalidTransition, SpendExceeded
from ombaro.campaigns.unsubscribe import InvalidToken, TokenUsed
from ombaro.commands import IdempotencyConflict, InvalidParams, JobNotFound, JobNotRetryable, UnknownCommand
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
from web.sanitize import RefusedInput

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
    UnknownCommand: 422,
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





# How long a client should wait before trying again when the database or Redis cannot be reached.
RETRY_AFTER_SECONDS = 5
# "Key (vendor_id)=(…) is not present in table …", "Key (a, b)=(…) already exists."
_KEY_COLUMNS = re.compile(r"^Key \((.+?)\)=")


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
    messages: dict[str, Any] | None = (getattr(exc, "data", {}).get("messages") if getattr(exc, "data", None)
                                       else None)
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

    @app.errorhandler(InvalidParams)
    def invalid_params(exc: InvalidParams) -> Response:
        # The command registry refused the params (ombaro/commands.py): the same shape as a schema's 422.
        return problem(422, "Unprocessable Content",
                       "The request is not valid; `errors` names each field and what is wrong with it.",
                       errors=exc.errors)

    @app.errorhandler(BadRequestHeader)
    def bad_header(exc: BadRequestHeader) -> Response:
        return problem(400, "Bad Request", str(exc), errors={exc.header: [str(exc)]})

    @app.errorhandler(RefusedInput)
    def refused_input(exc: RefusedInput) -> Response:
        return problem(400, "Bad Request", f"{exc.where}: {exc}", errors={exc.where: [str(exc)]})

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
        headers = dict(data.get("headers") or {})
        retry_after = getattr(exc, "retry_after", None)  # werkzeug's 429 and 503 carry one
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return problem(exc.code or 500, exc.name, detail, errors=errors, headers=headers)

    @app.errorhandler(sa_exc.IntegrityError)
    def integrity_error(exc: sa_exc.IntegrityError) -> Response:
        return _integrity_problem(exc.orig)

    @app.errorhandler(sa_exc.DataError)
    def data_error(exc: sa_exc.DataError) -> Response:
        # Values the schemas let through but the column refuses (a number beyond numeric(10,2), a
        # string longer than varchar(n)): the caller's input, so a 422, and the transaction is gone.
        diag = getattr(exc.orig, "diag", None)
        field = getattr(diag, "column_name", None) or "_body"
        message = getattr(diag, "message_primary", None) or "a value is out of range for where it is stored"
        log.warning("data error on %s %s: %s", request.method, request.path, message)
        return problem(422, "Unprocessable Content", "A value does not fit where it is stored.",
                       errors={field: [message]})

    @app.errorhandler(sa_exc.ProgrammingError)
    def programming_error(exc: sa_exc.ProgrammingError) -> Response:
        if getattr(exc.orig, "sqlstate", None) == "42501":  # a row-level security policy refused the write
            return problem(403, "Forbidden", "You may not write this row.")
        return unexpected(exc)

    def unavailable(exc: Exception) -> Response:
        log.warning("service unavailable on %s %s: %s", request.method, request.path, exc)
        return problem(503, "Service Unavailable", "A service this request needs cannot be reached; try again shortly.",
                       headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    # Connection refused, server gone, pool exhausted, statement cancelled or a deadlock: the same
    # request can succeed later (like /readyz's 503), so 503 with Retry-After, never a 500.
    for outage in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                   sa_exc.DisconnectionError, psycopg.OperationalError, psycopg.InterfaceError,
                   redis.ConnectionError, redis.TimeoutError):
        app.register_error_handler(outage, unavailable)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "An unexpected error occurred; it has been logged.")


def _integrity_problem(orig: BaseException | None) -> Response:
    """One mapping of PostgreSQL's integrity errors for every endpoint: a reference to a row that
    does not exist is a 404 when the path named it and a 422 when the body did; a duplicate is a
    409; a check or not-null violation is a 422. The transaction is rolled back: nothing changed."""
    state = getattr(orig, "sqlstate", None)
    diag = getattr(orig, "diag", None)
    detail_text = getattr(diag, "message_detail", None) or ""
    columns = _constraint_columns(diag)
    if state == "23503":
        if "still referenced" in detail_text:
            return problem(409, "Conflict", "Other records still refer to this one.",
                           errors={columns: ["still in use"]})
        # Under row-level security PostgreSQL leaves the value out of the detail; a path parameter
        # of the column's name (…/payout-accounts/<vendor_id>) is then what the reference came from.
        path = {name: str(value) for name, value in (request.view_args or {}).items()}
        value = detail_text.split(")=(", 1)[1].split(")", 1)[0] if ")=(" in detail_text else None
        if columns in path or (value is not None and value in path.values()):
            return problem(404, "Not Found", f"No such {columns.removesuffix('_id')}.",
                           errors={columns: ["does not exist"]})
        return problem(422, "Unprocessable Content", f"{columns} refers to something that does not exist.",
                       errors={columns: ["does not exist"]})
    if state in ("23505", "23P01"):
        return problem(409, "Conflict", f"A record with this {columns} already exists.",
                       errors={columns: ["already exists"]})
    if state == "23502":
        return problem(422, "Unprocessable Content", f"{columns} is required.", errors={columns: ["is required"]})
    return problem(422, "Unprocessable Content", f"The value of {columns} breaks a rule.",
                   errors={columns: [f"breaks the rule {getattr(diag, 'constraint_name', None) or state}"]})


def _constraint_columns(diag: Any) -> str:
    """The column(s) an integrity error is about, for the `errors` object: from the error's detail
    ("Key (vendor_id)=(…)"), its column, else the constraint's columns in the catalog (the detail
    is withheld where row-level security applies); `_body` when none can be told."""
    found = _KEY_COLUMNS.match(getattr(diag, "message_detail", None) or "")
    if found:
        return found.group(1)
    if getattr(diag, "column_name", None):
        return str(diag.column_name)
    constraint, table, schema = (getattr(diag, name, None) for name in ("constraint_name", "table_name", "schema_name"))
    if not constraint or not table:
        return "_body"
    from web.extension import Ombaro

    try:
        with Ombaro.get().engine.connect() as conn:
            names = conn.execute(text(
                "SELECT a.attname FROM pg_constraint c "
                "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
                "WHERE c.conname = :constraint "
                "AND c.conrelid = to_regclass(format('%I.%I', CAST(:schema AS text), CAST(:table AS text))) "
                "ORDER BY array_position(c.conkey, a.attnum)"),
                {"constraint": constraint, "schema": schema or "public", "table": table}).scalars().all()
    except sa_exc.SQLAlchemyError:
        log.warning("could not look up the columns of constraint %s", constraint, exc_info=True)
        names = []
    return ", ".join(names) or str(constraint)


def _domain_handler(status: int) -> Callable[[Exception], Response]:
    title = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
             422: "Unprocessable Content"}.get(status, "Error")

    def handle(exc: Exception) -> Response:
        return problem(status, title, str(exc))

    return handle
