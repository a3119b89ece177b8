"""A batch's attendance as the run loads it: loss-of-pay weights and overtime hours summed in SQL per
span of days lying within one part of the month (one structure, within employment), not every
day's value; and the payslip computed from those sums is the one every day's values give."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal as D
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, Row, text
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


def test_a_batch_loads_in_seven_statements_and_keeps_final_records(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # The employees and their final records of the month come in one statement, not two. Counted at
    # the driver (every psycopg cursor's `execute`), not by SQLAlchemy's cursor events: five of the
    # seven go in one psycopg pipeline on the session's connection, which those events do not see.
    paid, pending = (new_employee(engine, joining=dt.date(2025, 1, 1)) for _ in range(2))
    for employee in (paid, pending):
        add_structure(engine, employee, dt.date(2025, 1, 1), basic="30000")
        mark(engine, employee, day(3), "present", "9.00")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO salary_records (employee_id, year, month, status, basic_salary, gross_salary, "
            "total_deductions, net_salary) VALUES (%(e)s, 2026, 3, 'paid', 1, 1, 0, 1)", {"e": paid})
    statements: list[object] = []
    execute = psycopg.Cursor.execute

    def counted(self: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> psycopg.Cursor[Any]:
        statements.append(query)
        return execute(self, query, *args, **kwargs)

    with Session(engine) as session, session.begin():
        book = RateBook.load(session)
        session.connection()
        monkeypatch.setattr(psycopg.Cursor, "execute", counted)
        loaded = runs.load_batch(session, MARCH, [paid, pending], book)
        monkeypatch.undo()
    assert loaded.kept == {paid: "paid"}
    assert [e.employee_id for e in loaded.employees] == [pending]
    assert len(loaded.employees[0].overtime) == 1
    assert len(statements) == 7, statements


# The statement as it was before session 8 (every attendance row joined to its employee and to the
# structure in force, grouped by five keys): the reference the faster one must match to the digit.
JOINED_PER_ROW = text("""
WITH structures AS (
    SELECT employee_id, effective_from,
           lead(effective_from) OVER (PARTITION BY employee_id ORDER BY effective_from) AS until
    FROM compensation_structures WHERE employee_id = ANY(:ids)
)
SELECT s.employee_id,
       coalesce(array_agg(s.day) FILTER (WHERE s.lop > 0), '{}') AS lop_dates,
       coalesce(array_agg(s.lop) FILTER (WHERE s.lop > 0), '{}') AS lop_weights,
       coalesce(array_agg(s.day) FILTER (WHERE s.ot > 0), '{}') AS ot_dates,
       coalesce(array_agg(s.ot) FILTER (WHERE s.ot > 0), '{}') AS ot_hours
FROM (
    SELECT a.employee_id, min(a.date) AS day, sum(a.lop) FILTER (WHERE a.lop > 0) AS lop,
           sum(a.ot) FILTER (WHERE a.ot > 0) AS ot
    FROM (
        SELECT r.employee_id, r.date, c.effective_from AS structure_from,
               r.date < e.joining_date AS before_joining, r.date > e.last_working_date AS after_leaving,
               CASE r.status
                   WHEN 'absent' THEN 1.0
                   WHEN 'half_day' THEN 0.5
                   WHEN 'leave' THEN CASE WHEN EXISTS (
                       SELECT 1 FROM leave_requests AS l
                       WHERE l.employee_id = r.employee_id AND l.status = 'approved' AND l.leave_type = 'unpaid'
                         AND r.date BETWEEN l.from_date AND l.to_date) THEN 1.0 ELSE 0 END
                   ELSE 0
               END AS lop,
               CASE WHEN r.status IN ('present', 'late', 'work_from_home')
                    THEN greatest(coalesce(r.work_hours, 0) - :standard_hours, 0) ELSE 0 END AS ot
        FROM attendance_records AS r
        JOIN employees AS e ON e.id = r.employee_id
        LEFT JOIN structures AS c ON c.employee_id = r.employee_id AND r.date >= c.effective_from
                                 AND (c.until IS NULL OR r.date < c.until)
        WHERE r.employee_id = ANY(:ids) AND e.id = ANY(:ids) AND r.date BETWEEN :start AND :end
    ) AS a
    GROUP BY a.employee_id, date_trunc('month', a.date::timestamp), a.structure_from, a.before_joining, a.after_leaving
) AS s
GROUP BY s.employee_id
""")


def _spans(rows: Sequence[Row[Any]]) -> dict[uuid.UUID, tuple[dict[dt.date, str], dict[dt.date, str]]]:
    """Each employee's spans as {first day: the sum's decimal text}, for weights and hours (the order
    of the arrays' elements is not part of the answer)."""
    return {r.employee_id: ({d: str(v) for d, v in zip(r.lop_dates, r.lop_weights, strict=True)},
                            {d: str(v) for d, v in zip(r.ot_dates, r.ot_hours, strict=True)}) for r in rows}


def test_spans_by_start_days_are_the_spans_of_the_per_row_join_to_the_digit(engine: Engine) -> None:
    # Over February and March (the arrears path's window crosses months): a joiner with a raise, a
    # leaver, days before the first structure, one structure only, a paid and an unpaid leave, a day
    # of exactly the standard hours, an employee with no structure at all, none marked at all.
    joiner = new_employee(engine, joining=dt.date(2026, 2, 10))
    add_structure(engine, joiner, dt.date(2026, 2, 10), basic="30000")
    add_structure(engine, joiner, day(15), basic="33000")
    leaver = new_employee(engine, joining=dt.date(2024, 1, 1), last_day=day(20))
    add_structure(engine, leaver, dt.date(2024, 1, 1), basic="40000")
    late_structure = new_employee(engine, joining=dt.date(2025, 1, 1))
    add_structure(engine, late_structure, dt.date(2026, 2, 20), basic="25000")
    unstructured = new_employee(engine, joining=dt.date(2025, 1, 1))
    unmarked = new_employee(engine, joining=dt.date(2025, 1, 1))
    add_structure(engine, unmarked, dt.date(2025, 1, 1), basic="25000")
    add_leave(engine, leaver, day(3), day(4), leave_type="unpaid")
    add_leave(engine, leaver, day(5), day(5), leave_type="casual")
    statuses = ("present", "late", "absent", "half_day", "work_from_home", "leave", "holiday")
    hours = ("10.25", "8.00", "9.50", "7.75", "11.00")
    for n, when in enumerate([dt.date(2026, 2, d) for d in range(1, 29)] + [day(d) for d in range(1, 32)]):
        for k, employee in enumerate((joiner, leaver, late_structure, unstructured)):
            status = statuses[(n + k) % len(statuses)]
            mark(engine, employee, when, status, hours[(n * 3 + k) % len(hours)] if status != "absent" else None)
    ids = [joiner, leaver, late_structure, unstructured, unmarked]
    params = {"ids": ids, "start": dt.date(2026, 2, 1), "end": MARCH.end, "standard_hours": D("8.00")}

    with Session(engine) as session, session.begin():
        runs.no_jit(session)
        expected = _spans(session.execute(JOINED_PER_ROW, params).all())
        got = _spans(session.execute(runs.ATTENDANCE, params).all())
    assert got == expected
    assert len(expected[joiner][1]) >= 3 and len(expected[leaver][0]) >= 3  # months and structures split
