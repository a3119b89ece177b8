"""Employees, compensation structures and attendance for the payroll tests, made with plain SQL."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from decimal import Decimal

from sqlalchemy import Engine, text


def new_employee(engine: Engine, *, joining: dt.date, last_day: dt.date | None = None, gender: str = "male",
                 name: str = "Test Employee", department: str = "operations") -> uuid.UUID:
    tag = secrets.token_hex(5)
    with engine.begin() as conn:
        user_id = conn.execute(text(
            "INSERT INTO auth.users (email, encrypted_password) VALUES (:email, 'x') RETURNING id"),
            {"email": f"payroll.{tag}@example.test"}).scalar_one()
        conn.execute(text(
            "INSERT INTO employees (id, employee_code, name, email, mobile, gender, department, designation, "
            "joining_date, last_working_date) VALUES (:id, :code, :name, :email, '+919800000000', :gender, :dept, "
            "'Executive', :joining, :last_day)"),
            {"id": user_id, "code": f"PT{tag.upper()}", "name": name, "email": f"payroll.{tag}@example.test",
             "gender": gender, "dept": department, "joining": joining, "last_day": last_day})
    return user_id


def add_structure(engine: Engine, employee_id: uuid.UUID, effective_from: dt.date, *, basic: str, hra: str = "0",
                  transport: str = "0", medical: str = "0", special: str = "0", other: str = "0",
                  pf: bool = True, esi: bool = True, pt_state: str | None = None, overtime: bool = True) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO compensation_structures (employee_id, effective_from, basic, hra, transport, medical, "
            "special, other, pf_applicable, esi_applicable, pt_state, overtime_eligible) VALUES (:e, :f, :basic, "
            ":hra, :transport, :medical, :special, :other, :pf, :esi, :pt, :ot)"),
            {"e": employee_id, "f": effective_from, "basic": Decimal(basic), "hra": Decimal(hra),
             "transport": Decimal(transport), "medical": Decimal(medical), "special": Decimal(special),
             "other": Decimal(other), "pf": pf, "esi": esi, "pt": pt_state, "ot": overtime})


def mark(engine: Engine, employee_id: uuid.UUID, day: dt.date, status: str, hours: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO attendance_records (employee_id, date, status, work_hours) VALUES (:e, :d, :s, :h) "
            "ON CONFLICT (employee_id, date) DO UPDATE SET status = EXCLUDED.status, work_hours = EXCLUDED.work_hours"),
            {"e": employee_id, "d": day, "s": status, "h": Decimal(hours) if hours else None})


def add_leave(engine: Engine, employee_id: uuid.UUID, from_date: dt.date, to_date: dt.date, *,
              leave_type: str = "earned", status: str = "approved") -> None:
    """A leave request as HR left it (the leave ledger reads approved earned leave)."""
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO leave_requests (employee_id, leave_type, from_date, to_date, reason, status) "
            "VALUES (:e, :t, :f, :to, 'test', :s)"),
            {"e": employee_id, "t": leave_type, "f": from_date, "to": to_date, "s": status})
