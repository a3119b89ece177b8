"""ombaro.db.fixed_insert: the one way the domain writes an INSERT ... ON CONFLICT ... RETURNING
that SQLAlchemy can cache (its PostgreSQL insert() has no cache key and was compiled again on every
call, about 1 ms of CPU each; issue 16). Each statement built with it is compiled once and reused,
and keeps what the insert() it replaced did: the conflict target, the bind types, the whole row back."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.orm import Session

from ombaro import attendance, commands
from ombaro.db import fixed_insert
from ombaro.models.jobs import Job
from ombaro.payments import webhooks
from ombaro.payroll import records
from ombaro.settlements import payouts, runs
from tests.factories import payroll as hr
from tests.factories import settlements as money


def test_a_fixed_insert_lists_its_binds_typed_as_their_columns_and_returns_the_whole_row() -> None:
    statement = fixed_insert(Job.__table__, ("kind", "params"), "ON CONFLICT DO NOTHING",
                             computed={"enqueued_at": "now()"})
    sql = str(statement.compile(dialect=postgresql.dialect()))  # params is cast as its column's JSONB
    assert sql.startswith("INSERT INTO jobs (kind, params, enqueued_at) VALUES (%(kind)s, %(params)s::JSONB, now()) "
                          "ON CONFLICT DO NOTHING RETURNING ")
    assert sql.split("RETURNING ")[1].split(", ") == [column.name for column in Job.__table__.c]
    with pytest.raises(KeyError):
        fixed_insert(Job.__table__, ("no_such_column",))


@pytest.fixture
def inserts_seen(engine: Engine) -> Iterator[list[tuple[str, object]]]:
    """(table, cache outcome) of every INSERT ... RETURNING the engine runs meanwhile."""
    seen: list[tuple[str, object]] = []

    def record(_conn: object, _cursor: object, statement: str, _params: object, context: Any, _many: bool) -> None:
        if statement.lstrip().startswith("INSERT INTO ") and " RETURNING " in statement:
            seen.append((statement.split()[2], getattr(context, "cache_hit", None)))

    event.listen(engine, "after_cursor_execute", record)
    yield seen
    event.remove(engine, "after_cursor_execute", record)


def _webhook(session: Session, n: int) -> None:
    tag = secrets.token_hex(6)
    assert webhooks.record_event(session, provider="razorpay", event_id=f"evt_{tag}", event_type="payment.captured",
                                 payload={"n": n}, signed_key=tag) is not None


def _submit(session: Session, n: int) -> None:
    assert commands.submit(session, "system.ping", {}, enqueue=lambda *_: None, key=secrets.token_hex(8)).created


def _check_in(session: Session, n: int) -> None:
    now = dt.datetime.now(dt.UTC)
    employee = hr.new_employee(session.get_bind().engine, joining=now.date() - dt.timedelta(days=30))
    record = attendance.check_in(session, employee, at=now, zone="Asia/Kolkata")
    assert record.employee_id == employee and record.check_in_time == now


def _adjustment(session: Session, n: int) -> None:
    conn = session.connection()
    vendor, creator = money.vendor(conn), money.user(conn)
    made, created = runs.add_adjustment(session, vendor_id=vendor, amount=Decimal("10.00"), reason="goodwill",
                                        created_by=creator, idempotency_key=f"k{n}")
    assert created and made.amount == Decimal("10.00")


def _payout_account(session: Session, n: int) -> None:
    vendor = money.vendor(session.connection())
    assert payouts.set_payout_account(session, vendor_id=vendor, account_id=f"acc_{n}", created_by=None
                                      ).account_id == f"acc_{n}"


def _tax_declaration(session: Session, n: int) -> None:
    today = dt.datetime.now(dt.UTC).date()
    employee = hr.new_employee(session.get_bind().engine, joining=today - dt.timedelta(days=400))
    year = today.year if today.month >= 4 else today.year - 1  # the financial year running now
    declared = records.set_tax_declaration(session, employee_id=employee, financial_year=year, regime="new",
                                           previous_income=Decimal(n), previous_tds=Decimal("0"), created_by=None)
    assert declared.previous_income == Decimal(n)


@pytest.mark.parametrize(("write", "table"), [
    (_webhook, "webhook_events"), (_submit, "jobs"), (_check_in, "attendance_records"),
    (_adjustment, "settlement_adjustments"), (_payout_account, "vendor_payout_accounts"),
    (_tax_declaration, "tax_declarations"),
])
def test_each_fixed_insert_is_compiled_once_and_reused(
    engine: Engine, inserts_seen: list[tuple[str, object]], write: Callable[[Session, int], None], table: str,
) -> None:
    with Session(engine) as session:
        for n in range(3):
            write(session, n)
        session.rollback()
    outcomes = [hit for name, hit in inserts_seen if name == table]
    assert len(outcomes) == 3 and outcomes[1:] == [CacheStats.CACHE_HIT] * 2, outcomes


def test_a_second_check_in_the_same_day_is_refused_and_a_marked_day_becomes_a_worked_day(engine: Engine) -> None:
    """The DO UPDATE ... WHERE check_in_time IS NULL of the check-in, as the insert() it replaced."""
    now = dt.datetime.now(dt.UTC)
    employee = hr.new_employee(engine, joining=now.date() - dt.timedelta(days=30))
    day = now.astimezone(attendance.ZoneInfo("Asia/Kolkata")).date()
    hr.mark(engine, employee, day, "leave")
    with Session(engine) as session, session.begin():
        record = attendance.check_in(session, employee, at=now, zone="Asia/Kolkata", location={"lat": 18.5})
        assert (record.status in ("present", "late"), record.check_in_location, record.updated_at) == (
            True, {"lat": 18.5}, now)
    with Session(engine) as session, session.begin(), pytest.raises(attendance.AttendanceConflict):
        attendance.check_in(session, employee, at=now + dt.timedelta(minutes=5), zone="Asia/Kolkata")


def test_a_payout_account_set_again_replaces_the_first(engine: Engine) -> None:
    with engine.begin() as conn:
        vendor = money.vendor(conn)
    ids: list[uuid.UUID] = []
    for account in ("acc_first", "acc_second"):
        with Session(engine) as session, session.begin():
            ids.append(payouts.set_payout_account(session, vendor_id=vendor, account_id=account, created_by=None).id)
    with Session(engine) as session:
        stored = session.get_one(payouts.VendorPayoutAccount, ids[0])
        assert (ids[0] == ids[1], stored.account_id) == (True, "acc_second")
