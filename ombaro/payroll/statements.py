"""The year's income-tax figures per employee from the salary actually paid (docs/payroll.md, "Tax
statements"): Form 16 Part B (section 203; salary, the previous employer's income from Form 12B,
standard deduction, tax, rebate, surcharge, cess, TDS) and the quarterly figures of Form 24Q's
Annexure I (amount paid and TDS deducted per quarter).

Only `paid` records count (TDS is deducted when salary is paid). One statement reads the year's
records by employee and quarter; the tax is the regime row's formula, as the monthly TDS uses it.
Runs in the caller's session: row-level security decides whose records are seen (HR, finance).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any, TypedDict

from sqlalchemy import text
from sqlalchemy.orm import Session

from ombaro.money import round_money
from ombaro.payroll.calculation import Period
from ombaro.payroll.rates import RateBook

QUARTERS = (1, 2, 3, 4)  # April-June, July-September, October-December, January-March

PAID = text("""
SELECT s.employee_id,
       max(d.employee_code) AS employee_code, max(d.employee_name) AS employee_name,
       CASE WHEN s.month BETWEEN 4 AND 6 THEN 1 WHEN s.month BETWEEN 7 AND 9 THEN 2
            WHEN s.month BETWEEN 10 AND 12 THEN 3 ELSE 4 END AS quarter,
       sum(s.gross_salary) AS paid, sum(coalesce((s.deductions ->> 'tds')::numeric, 0)) AS tds
FROM salary_records AS s LEFT JOIN salary_record_details AS d ON d.salary_record_id = s.id
WHERE s.status = 'paid' AND s.year * 12 + s.month BETWEEN :first AND :last
GROUP BY s.employee_id, quarter
ORDER BY s.employee_id, quarter
""")

DECLARED = text("""
SELECT employee_id, regime, previous_income, previous_tds FROM tax_declarations WHERE financial_year = :year
""")


class Form16PartB(TypedDict):
    regime: str
    salary_paid: str
    previous_employer_income: str
    gross_total: str
    standard_deduction: str
    total_income: str
    tax_on_total_income: str
    rebate_87a: str
    surcharge: str
    cess: str
    tax_payable: str
    tds_by_this_employer: str
    tds_by_previous_employer: str
    balance: str


class Form24QQuarter(TypedDict):
    quarter: int
    amount_paid: str
    tds_deducted: str


class EmployeeStatement(TypedDict):
    employee_id: str
    employee_code: str | None
    employee_name: str | None
    form16_part_b: Form16PartB
    form24q: list[Form24QQuarter]


def _s(value: Decimal) -> str:
    return str(round_money(value))


def tax_statements(session: Session, financial_year: int, book: RateBook | None = None) -> dict[str, Any]:
    """Form 16 Part B and the 24Q quarters for every employee paid in the financial year starting in
    April of `financial_year`."""
    book = book or RateBook.load(session)
    april = Period(financial_year, 4)
    bounds = {"first": april.year * 12 + 4, "last": (april.year + 1) * 12 + 3}
    quarters: dict[uuid.UUID, dict[int, tuple[Decimal, Decimal]]] = defaultdict(dict)
    names: dict[uuid.UUID, tuple[str | None, str | None]] = {}
    for row in session.execute(PAID, bounds):
        quarters[row.employee_id][row.quarter] = (row.paid, row.tds)
        names[row.employee_id] = (row.employee_code, row.employee_name)
    declared = {row.employee_id: row for row in session.execute(DECLARED, {"year": financial_year})}
    employees: list[EmployeeStatement] = []
    for employee_id, by_quarter in quarters.items():
        declaration = declared.get(employee_id)
        regime = book.income_tax(april.start, declaration.regime if declaration else "new")
        salary = sum((paid for paid, _ in by_quarter.values()), Decimal(0))
        previous_income = declaration.previous_income if declaration else Decimal(0)
        previous_tds = declaration.previous_tds if declaration else Decimal(0)
        deducted = sum((tds for _, tds in by_quarter.values()), Decimal(0))
        working = regime.annual_tax(salary + previous_income - regime.standard_deduction)
        tax = round_money(working.total, regime.rounding)
        employees.append({
            "employee_id": str(employee_id), "employee_code": names[employee_id][0],
            "employee_name": names[employee_id][1],
            "form16_part_b": {
                "regime": regime.regime, "salary_paid": _s(salary), "previous_employer_income": _s(previous_income),
                "gross_total": _s(salary + previous_income), "standard_deduction": _s(regime.standard_deduction),
                "total_income": _s(working.taxable), "tax_on_total_income": _s(working.slab_tax),
                "rebate_87a": _s(working.rebate), "surcharge": _s(working.surcharge), "cess": _s(working.cess),
                "tax_payable": _s(tax), "tds_by_this_employer": _s(deducted),
                "tds_by_previous_employer": _s(previous_tds),
                "balance": _s(tax - deducted - previous_tds),  # positive: still payable; negative: refundable
            },
            "form24q": [{"quarter": q, "amount_paid": _s(by_quarter.get(q, (Decimal(0), Decimal(0)))[0]),
                         "tds_deducted": _s(by_quarter.get(q, (Decimal(0), Decimal(0)))[1])} for q in QUARTERS],
        })
    employees.sort(key=lambda e: (e["employee_code"] or "", e["employee_id"]))
    return {"financial_year": f"{financial_year}-{(financial_year + 1) % 100:02d}", "employees": employees,
            "totals": {"amount_paid": _s(sum((Decimal(e["form16_part_b"]["salary_paid"]) for e in employees),
                                             Decimal(0))),
                       "tds_deducted": _s(sum((Decimal(e["form16_part_b"]["tds_by_this_employer"])
                                               for e in employees), Decimal(0)))}}
