"""Who may read pay, decided by the database: a request transaction as `ombaro_api` with the caller's
claims sees a salary record only as its employee, HR, finance/accounts or the super admin: never as
a director, the staff department or anyone else (migration 0006 narrowed 0003's policy)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from ombaro.access.roles import ROLES
from tests.factories.payroll import add_structure, new_employee
from tests.payroll.helpers import Driver

PAY_READERS = {"hr_department", "finance_department", "accounts_department", "super_admin"}
PAY_TABLES = ("salary_records", "salary_record_details", "compensation_structures", "payroll_adjustments",
              "tax_declarations", "payroll_arrears", "final_settlements")


@contextmanager
def acting(engine: Engine, claims: dict[str, Any] | None, role: str = "ombaro_api") -> Iterator[Connection]:
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            conn.execute(text(f"SET LOCAL ROLE {role}"))
            conn.execute(text("SELECT set_config('request.jwt.claims', :c, true)"),
                         {"c": json.dumps(claims) if claims else ""})
            yield conn
        finally:
            transaction.rollback()


@pytest.fixture(scope="module")
def paid(engine: Engine) -> uuid.UUID:
    employee = new_employee(engine, joining=dt.date(2025, 4, 1))
    add_structure(engine, employee, dt.date(2025, 4, 1), basic="40000", hra="16000")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO payroll_adjustments (employee_id, year, month, kind, amount) "
                          "VALUES (:e, 2029, 3, 'bonus', 5000)"), {"e": employee})
        conn.execute(text("INSERT INTO tax_declarations (employee_id, financial_year, regime, previous_income) "
                          "VALUES (:e, 2028, 'old', 250000)"), {"e": employee})
    Driver(engine).run(2029, 3, employee_ids=[employee])
    with engine.begin() as conn:  # an arrears line on the record and a settlement (migration 0021)
        conn.execute(text("INSERT INTO payroll_arrears (salary_record_id, employee_id, for_year, for_month, component, "
                          "amount) SELECT id, employee_id, 2029, 2, 'basic', 100 FROM salary_records "
                          "WHERE employee_id = :e AND year = 2029 AND month = 3"), {"e": employee})
        conn.execute(text(
            "INSERT INTO final_settlements (employee_id, last_working_date, earned_leave_days, service_years, "
            "service_days, counted_years, last_wage, gratuity, leave_encashment, notice_shortfall_days, "
            "notice_recovery, net_amount) VALUES (:e, '2029-03-31', 0, 4, 0, 4, 40000, 0, 0, 0, 0, 0)"),
            {"e": employee})
    return employee


def visible(conn: Connection, table: str, employee: uuid.UUID) -> int:
    column = "employee_id" if table != "salary_record_details" else \
        "(SELECT s.employee_id FROM salary_records AS s WHERE s.id = salary_record_id)"
    return conn.execute(text(f"SELECT count(*) FROM {table} WHERE {column} = :e"), {"e": employee}).scalar_one()


def test_pay_is_read_only_by_the_employee_hr_finance_and_the_super_admin(engine: Engine, paid: uuid.UUID) -> None:
    seen: dict[str, set[str]] = {table: set() for table in PAY_TABLES}
    for role in ROLES:
        with acting(engine, {"sub": str(uuid.uuid4()), "role": role}) as conn:
            for table in PAY_TABLES:
                if visible(conn, table, paid):
                    seen[table].add(role)
    assert seen == {table: PAY_READERS for table in PAY_TABLES}
    assert "directors" not in seen["salary_records"] and "staff_department" not in seen["salary_records"]


def test_the_employee_reads_their_own_pay_and_nobody_elses(engine: Engine, paid: uuid.UUID) -> None:
    with acting(engine, {"sub": str(paid), "role": "employee"}) as conn:
        assert all(visible(conn, table, paid) for table in PAY_TABLES)
        assert conn.execute(text("SELECT count(*) FROM salary_records WHERE employee_id <> :e"),
                            {"e": paid}).scalar_one() == 0
    other = new_employee(engine, joining=dt.date(2025, 4, 1))
    with acting(engine, {"sub": str(other), "role": "staff_department"}) as conn:
        assert not any(visible(conn, table, paid) for table in PAY_TABLES)


def test_only_hr_may_change_a_salary_record(engine: Engine, paid: uuid.UUID) -> None:
    change = text("UPDATE salary_records SET notes = 'changed' WHERE employee_id = :e")
    for role, sub in (("finance_department", uuid.uuid4()), ("accounts_department", uuid.uuid4()),
                      ("employee", paid), ("directors", uuid.uuid4())):
        with acting(engine, {"sub": str(sub), "role": role}) as conn:
            assert conn.execute(change, {"e": paid}).rowcount == 0, role
    with acting(engine, {"sub": str(uuid.uuid4()), "role": "hr_department"}) as conn:
        assert conn.execute(change, {"e": paid}).rowcount == 1


def test_workers_see_every_salary_and_anonymous_requests_none(engine: Engine, paid: uuid.UUID) -> None:
    with acting(engine, {"role": "worker"}, role="ombaro_worker") as conn:
        assert all(visible(conn, table, paid) for table in PAY_TABLES)
    with acting(engine, None) as conn:
        for table in (*PAY_TABLES, "payroll_runs", "payroll_failures"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0


def test_only_hr_and_the_super_admin_may_declare_an_employees_tax(engine: Engine, paid: uuid.UUID) -> None:
    """The regime and Form 12B figures decide TDS: the employee reads theirs and changes nothing."""
    change = text("UPDATE tax_declarations SET regime = 'new' WHERE employee_id = :e")
    insert = text("INSERT INTO tax_declarations (employee_id, financial_year) VALUES (:e, 2029)")
    for role in sorted(set(ROLES) - {"hr_department", "super_admin"}):
        sub = paid if role == "employee" else uuid.uuid4()
        with acting(engine, {"sub": str(sub), "role": role}) as conn:
            assert conn.execute(change, {"e": paid}).rowcount == 0, role
        with acting(engine, {"sub": str(sub), "role": role}) as conn, pytest.raises(Exception, match="row-level"):
            conn.execute(insert, {"e": paid})
    for role in ("hr_department", "super_admin"):
        with acting(engine, {"sub": str(uuid.uuid4()), "role": role}) as conn:
            assert conn.execute(change, {"e": paid}).rowcount == 1, role
            conn.execute(insert, {"e": paid})
