"""The earned-leave ledger (docs/payroll.md, "Earned leave ledger"): per employee and leave year (a
calendar year), the balance brought forward (at most the policy's carry-forward cap; the rest lapses),
the days accrued (the policy's days for each calendar month employed throughout, each month by the row
in force at its end), the approved earned leave taken (calendar days of approved `earned` requests up
to the day asked), and the closing balance. Company policy as dated data (rate kind `earned_leave`).

One statement for any number of employees: months and leave days by year, then the carry-forward as a
recursive fold over the years. Runs in the caller's session (row-level security applies).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from ombaro.payroll.rates import RateBook

DAYS = Decimal("0.01")  # as final_settlements.earned_leave_days

LEDGER = text("""
WITH RECURSIVE policy AS (
    SELECT * FROM unnest(CAST(:froms AS date[]), CAST(:accruals AS numeric[]), CAST(:caps AS numeric[]))
        AS p(effective_from, accrual, cap)
), emp AS (
    SELECT id, joining_date, least(coalesce(last_working_date, CAST(:on AS date)), CAST(:on AS date)) AS until
    FROM employees WHERE id = ANY(:ids) AND joining_date <= CAST(:on AS date)
), years AS (
    SELECT e.id AS employee_id, y::int AS year, e.joining_date, e.until,
           (SELECT p.cap FROM policy AS p WHERE p.effective_from <= make_date(y::int, 12, 31)
            ORDER BY p.effective_from DESC LIMIT 1) AS cap
    FROM emp AS e, generate_series(extract(year FROM e.joining_date)::int, extract(year FROM e.until)::int) AS y
), accrued AS (  -- a month counts when employed from its first day through its last
    SELECT e.id AS employee_id, extract(year FROM m)::int AS year,
           sum((SELECT p.accrual FROM policy AS p WHERE p.effective_from <= (m + interval '1 month - 1 day')::date
                ORDER BY p.effective_from DESC LIMIT 1)) AS days
    FROM emp AS e, generate_series(date_trunc('month', e.joining_date), date_trunc('month', e.until),
                                   interval '1 month') AS m
    WHERE e.joining_date <= m::date AND e.until >= (m + interval '1 month - 1 day')::date
    GROUP BY 1, 2
), taken AS (
    SELECT l.employee_id, extract(year FROM d)::int AS year, count(*) AS days
    FROM leave_requests AS l JOIN emp AS e ON e.id = l.employee_id,
         generate_series(l.from_date, least(l.to_date, e.until), interval '1 day') AS d
    WHERE l.leave_type = 'earned' AND l.status = 'approved' AND l.from_date <= e.until
    GROUP BY 1, 2
), by_year AS (
    SELECT y.employee_id, y.year, y.cap, coalesce(a.days, 0) AS accrued, coalesce(t.days, 0) AS taken,
           row_number() OVER (PARTITION BY y.employee_id ORDER BY y.year) AS n
    FROM years AS y LEFT JOIN accrued AS a USING (employee_id, year) LEFT JOIN taken AS t USING (employee_id, year)
), ledger AS (
    SELECT employee_id, year, n, cap, CAST(0 AS numeric) AS opening, CAST(0 AS numeric) AS lapsed, accrued, taken,
           accrued - taken AS closing
    FROM by_year WHERE n = 1
    UNION ALL
    SELECT b.employee_id, b.year, b.n, b.cap, least(l.closing, l.cap), greatest(l.closing - l.cap, 0), b.accrued,
           b.taken, least(l.closing, l.cap) + b.accrued - b.taken
    FROM ledger AS l JOIN by_year AS b ON b.employee_id = l.employee_id AND b.n = l.n + 1
)
SELECT employee_id, year, opening, lapsed, accrued, taken, closing FROM ledger ORDER BY employee_id, year
""")


@dataclass(frozen=True)
class LeaveYear:
    year: int
    opening: Decimal  # brought forward, within the cap
    lapsed: Decimal  # beyond the cap at the end of the year before
    accrued: Decimal
    taken: Decimal
    closing: Decimal

    def explain(self) -> dict[str, str | int]:
        return {
            "year": self.year,
            "opening": str(self.opening),
            "lapsed": str(self.lapsed),
            "accrued": str(self.accrued),
            "taken": str(self.taken),
            "closing": str(self.closing),
        }


def ledgers(
    session: Session, employee_ids: list[uuid.UUID], on: dt.date, book: RateBook | None = None
) -> dict[uuid.UUID, list[LeaveYear]]:
    """Each employee's earned-leave years up to `on` (or the last working day, if earlier); the last
    year's `closing` is the balance. An employee not yet joined has no years."""
    book = book or RateBook.load(session)
    rows = book.earned_leave_history(on)
    found: dict[uuid.UUID, list[LeaveYear]] = defaultdict(list)
    for row in session.execute(
        LEDGER,
        {
            "ids": employee_ids,
            "on": on,
            "froms": [r.effective_from for r in rows],
            "accruals": [r.accrual_per_month for r in rows],
            "caps": [r.carry_forward_max for r in rows],
        },
    ):
        found[row.employee_id].append(
            LeaveYear(
                row.year,
                *(Decimal(v).quantize(DAYS) for v in (row.opening, row.lapsed, row.accrued, row.taken, row.closing)),
            )
        )
    return dict(found)


def balance(years: list[LeaveYear]) -> Decimal:
    return years[-1].closing if years else Decimal(0)
