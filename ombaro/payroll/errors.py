"""Payroll's domain errors; the API maps each family to an HTTP status (web/errors.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError


class PayrollError(Exception):
    """Base of the errors below."""


class PayrollNotFound(PayrollError):
    """404: the run, record or payslip does not exist or the caller may not see it."""


class PayrollConflict(PayrollError):
    """409: the request contradicts the state of the month (computing, already paid, ...)."""


class PayrollInvalid(PayrollError):
    """422: the data given cannot be used (a rate that does not parse, a month out of range)."""


class RunNotFound(PayrollNotFound):
    pass


class RecordNotFound(PayrollNotFound):
    pass


class RunInProgress(PayrollConflict):
    pass


class RunHasFailures(PayrollConflict):
    pass


class NothingToPay(PayrollConflict):
    pass


class NotHoldable(PayrollConflict):
    pass


class PayrollForbidden(PayrollError):
    """403: the caller's role holds the permission but the database's policies refuse the rows."""


@contextmanager
def refused_by_policy(what: str) -> Iterator[None]:
    """Row-level security refusing a write (SQLSTATE 42501) is a 403 saying what, not a 500."""
    try:
        yield
    except StaleDataError as exc:  # an UPDATE the policies filtered down to no row
        raise PayrollForbidden(f"your role may not {what}") from exc
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "42501":
            raise PayrollForbidden(f"your role may not {what}") from exc
        raise
