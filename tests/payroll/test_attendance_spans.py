"""A batch's attendance as the run loads it: loss-of-pay weights and overtime hours summed in SQL per
span of days lying within one part of the month (one structure, within employment), not every
day's value; and the payslip computed from those sums is the one every day's values give."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal as D

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from ombaro.payroll import runs
from ombaro.payroll.calculation import Payslip, Period, compute_or_reason
from ombaro.payroll.rates import RateBook
from tests.factories.payroll import add_leave, add_structure, mark, new_employee

MARCH = Period(2026, 3)


def day(n: int) -> dt.date:
    return dt.date(2026, 3, n)


def test_attendance_is_summed_per_span_and_pays_what_every_day_would(engine: Engine) -> None:
    # Joins on the 5th, a raise from the 15th, leaves on the 25th; days marked before and after too.
    employee = new_employee(engine, joining=day(5), last_day=day(25))
    add_structure(engine, employee, dt.date(2025, 1, 1), basic="30000", hra="12000")
    add_structure(engine, employee, day(15), basic="33000", hra="13200")
    add_leave(engine, employee, day(20), day(20), leave_type="unpaid")
    marks = {2: ("absent", None), 3: ("present", "10.00"), 6: ("absent", None), 7: ("half_day", "4.50"),
             10: ("present", "9.50"), 16: ("absent", None), 17: ("present", "10.25"), 18: ("late", "8.50"),
             20: ("leave", None), 26: ("absent", None), 27: ("present", "11.00")}
    for n, (status, hours) in marks.items():
        mark(engine, employee, day(n), status, hours)

    with Session(engine) as session, session.begin():
        book = RateBook.load(session)
        loaded = runs.load_batch(session, MARCH, [employee], book).employees[0]
    standard = book.overtime(MARCH.start).standard_hours_per_day

    # Four spans: before joining, the first structure, the raise, after leaving; keyed by their first day.
    assert loaded.lop == {day(2): D("1.0"), day(6): D("1.5"), day(16): D("2.0"), day(26): D("1.0")}
    every_day_ot = {day(n): D(h) - standard for n, (s, h) in marks.items()
                    if s in ("present", "late") and h is not None and D(h) > standard}
    assert loaded.overtime == {
        day(2): every_day_ot[day(3)], day(6): every_day_ot[day(10)],
        day(16): every_day_ot[day(17)] + every_day_ot[day(18)], day(26): every_day_ot[day(27)]}

    every_day_lop = {day(2): D("1.0"), day(6): D("1.0"), day(7): D("0.5"), day(16): D("1.0"), day(20): D("1.0"),
                     day(26): D("1.0")}
    by_span = compute_or_reason(loaded, MARCH, book)
    by_day = compute_or_reason(replace(loaded, lop=every_day_lop, overtime=every_day_ot), MARCH, book)
    assert isinstance(by_span, Payslip) and isinstance(by_day, Payslip)
    assert by_span.record_values() == by_day.record_values()
    assert by_span.explanation == by_day.explanation
    assert (by_span.paid_days, by_span.lop_days) == (by_day.paid_days, by_day.lop_days)


def test_a_batch_loads_in_seven_statements_and_keeps_final_records(engine: Engine) -> None:
    # The employees and their final records of the month come in one statement, not two.
    paid, pending = (new_employee(engine, joining=dt.date(2025, 1, 1)) for _ in range(2))
    for employee in (paid, pending):
        add_structure(engine, employee, dt.date(2025, 1, 1), basic="30000")
        mark(engine, employee, day(3), "present", "9.00")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO salary_records (employee_id, year, month, status, basic_salary, gross_salary, "
            "total_deductions, net_salary) VALUES (%(e)s, 2026, 3, 'paid', 1, 1, 0, 1)", {"e": paid})
    statements: list[str] = []
    with Session(engine) as session, session.begin():
        book = RateBook.load(session)
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", lambda *args: statements.append(args[2]))
        loaded = runs.load_batch(session, MARCH, [paid, pending], book)
    assert loaded.kept == {paid: "paid"}
    assert [e.employee_id for e in loaded.employees] == [pending]
    assert len(loaded.employees[0].overtime) == 1
    assert len(statements) == 7, statements
