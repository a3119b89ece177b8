"""Arrears (docs/payroll.md, "Arrears"): the approved months a backdated compensation change reaches,
what was paid for each so far, and the lines a run records for them. The figures themselves are the
calculation's (`calculation.arrears_due`, by the same blocks as a month's pay).

A month is looked at when its record is approved (processed or paid) and a structure in force by its
end was set after the record was first written. What was paid for it is its record's lines plus the
arrears recorded for it by other months' records (not held ones), so arrears once recorded are not
paid again, and a recovery deferred by the deduction limit is found again next month.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ombaro.payroll.calculation import ARREARS_EARNINGS, ApprovedMonth, Payslip, Period

APPROVED = text("""
SELECT r.employee_id, r.year, r.month, r.basic_salary, r.allowances, r.overtime_amount, r.bonus, r.deductions,
       coalesce(d.employer_contributions, '{}'::jsonb) AS employer
FROM salary_records AS r
LEFT JOIN salary_record_details AS d ON d.salary_record_id = r.id
WHERE r.employee_id = ANY(:ids) AND r.status IN ('processed', 'paid') AND r.year * 12 + r.month - 1 < :before_index
  AND EXISTS (SELECT 1 FROM compensation_structures AS c
              WHERE c.employee_id = r.employee_id AND c.updated_at > r.created_at
                AND c.effective_from < make_date(r.year, r.month, 1) + interval '1 month')
ORDER BY r.employee_id, r.year, r.month
""")

RECORDED = text("""
SELECT a.employee_id, a.for_year, a.for_month, a.component, sum(a.amount) AS amount
FROM payroll_arrears AS a JOIN salary_records AS r ON r.id = a.salary_record_id
WHERE a.employee_id = ANY(:ids) AND r.status <> 'hold' AND NOT (r.year = :year AND r.month = :month)
GROUP BY a.employee_id, a.for_year, a.for_month, a.component
""")

_LINES = "jsonb_to_recordset(CAST(:rows AS jsonb)) AS n(employee_id uuid, for_year int, for_month int, " \
         "component text, amount numeric)"

# This month's records (pending, or held by the deduction limit) keep exactly the lines just computed;
# unchanged lines are not rewritten. Run only when the batch's employees have lines at all (ANY_LINES):
# its planner, knowing nothing yet of the month being written, reads the month's records through
# idx_salary_records_period and compares each with the batch's ids (15-55 ms a batch of 500 at
# 10,000 employees, linear in the month's records: quadratic over a run) to delete nothing.
DELETE_STALE = text(f"""
DELETE FROM payroll_arrears AS a USING salary_records AS r
WHERE a.salary_record_id = r.id AND r.employee_id = ANY(:ids) AND r.year = :year AND r.month = :month
  AND r.status IN ('pending', 'hold')
  AND NOT EXISTS (SELECT 1 FROM {_LINES}
                  WHERE n.employee_id = r.employee_id AND n.for_year = a.for_year AND n.for_month = a.for_month
                    AND n.component = a.component AND n.amount = a.amount)
""")
# A line's employee is its record's (UPSERT_LINES writes both from the same row), so no line of these
# employees means no line of their records.
ANY_LINES = text("SELECT EXISTS (SELECT 1 FROM payroll_arrears WHERE employee_id = ANY(:ids))")
UPSERT_LINES = text(f"""
INSERT INTO payroll_arrears (salary_record_id, employee_id, for_year, for_month, component, amount)
SELECT r.id, n.employee_id, n.for_year, n.for_month, n.component, n.amount
FROM {_LINES}
JOIN salary_records AS r ON r.employee_id = n.employee_id AND r.year = :year AND r.month = :month
                        AND r.status IN ('pending', 'hold')
ORDER BY r.id, n.for_year, n.for_month, n.component
ON CONFLICT (salary_record_id, for_year, for_month, component) DO UPDATE SET amount = EXCLUDED.amount
WHERE payroll_arrears.amount IS DISTINCT FROM EXCLUDED.amount
""")


def id_array(ids: Iterable[uuid.UUID]) -> str:
    """Ids as one PostgreSQL array literal, for `= ANY(:ids)` in the batch's text statements (the
    server reads the untyped literal as the column's array type). psycopg dumps a list of UUIDs
    element by element, testing each for quoting (0.3 s of CPU in a 10,000-employee run, the same
    500 ids dumped once per statement); the batch builds this string once."""
    return "{" + ",".join(map(str, ids)) + "}"


def _paid(row: Any) -> dict[str, Decimal]:
    allowances: dict[str, Any] = row.allowances or {}
    deductions: dict[str, Any] = row.deductions or {}
    employer: dict[str, Any] = row.employer or {}
    paid = {c: Decimal(str(allowances.get(c, "0"))) for c in ARREARS_EARNINGS}
    paid.update(basic=row.basic_salary, overtime=row.overtime_amount or Decimal(0),
                pf=Decimal(str(deductions.get("pf", "0"))), pf_eps=Decimal(str(employer.get("pf_eps", "0"))),
                pf_epf=Decimal(str(employer.get("pf_epf", "0"))))
    return paid


def approved_months(session: Session, period: Period,
                    ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[ApprovedMonth, ...]]:
    """Per employee, the approved months before `period` a backdated change may reach, with what has
    been paid for each so far. Two statements; employees without such a month are left out."""
    rows = session.execute(APPROVED, {"ids": id_array(ids), "before_index": period.index}).all()
    if not rows:
        return {}
    recorded: dict[tuple[uuid.UUID, int, int], dict[str, Decimal]] = defaultdict(dict)
    for line in session.execute(RECORDED, {"ids": id_array({r.employee_id for r in rows}), "year": period.year,
                                           "month": period.month}):
        recorded[(line.employee_id, line.for_year, line.for_month)][line.component] = line.amount
    months: dict[uuid.UUID, list[ApprovedMonth]] = defaultdict(list)
    for row in rows:
        paid = _paid(row)
        for component, amount in recorded.get((row.employee_id, row.year, row.month), {}).items():
            paid[component] = paid.get(component, Decimal(0)) + amount
        incentive = Decimal(str((row.allowances or {}).get("incentive", "0")))
        months[row.employee_id].append(ApprovedMonth(Period(row.year, row.month), paid, incentive,
                                                     row.bonus or Decimal(0)))
    return {e: tuple(m) for e, m in months.items()}


def write_lines(session: Session, period: Period, payslips: Sequence[Payslip]) -> None:
    """Record the arrears lines of this month's computed records (and drop lines no longer due)."""
    ids = [p.employee_id for p in payslips]
    if not ids:
        return
    rows = json.dumps([{"employee_id": str(p.employee_id), "for_year": a.period.year, "for_month": a.period.month,
                        "component": a.component, "amount": str(a.amount)} for p in payslips for a in p.arrears])
    params = {"ids": id_array(ids), "year": period.year, "month": period.month, "rows": rows}
    if session.execute(ANY_LINES, {"ids": params["ids"]}).scalar_one():
        session.execute(DELETE_STALE, params)
    if any(p.arrears for p in payslips):
        session.execute(UPSERT_LINES, params)
