"""The year's income-tax figures per employee from the salary actually paid (docs/payroll.md, "Tax
statements"): Form 16 Part B (section 203; salary, the previous employer's income from Form 12B,
standard deduction, tax, rebate, surcharge, cess, TDS) and the quarterly figures of Form 24Q's
Annexure I (amount paid and TDS deducted per quarter).

Only `paid` records count (TDS is deducted when salary is paid). A paid full and final settlement
counts in the quarter of its payment date: its gratuity and leave encashment are salary under s.17(1),
less their exempt parts (s.10(10), s.10(10AA)), and its TDS is the year's with the months'. One
statement reads the year's records and settlements by employee and quarter; the tax is the regime
row's formula, as the monthly TDS uses it. Runs in the caller's session: row-level security decides
whose records are seen (HR, finance).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any, TypedDict

from sqlalchemy import text
from sqlalchemy.orm import Session

from ombaro.money import round_money
from ombaro.payroll.calculation import Period
from ombaro.payroll.rates import RateBook

ZERO = Decimal(0)
QUARTERS = (1, 2, 3, 4)  # April-June, July-September, October-December, January-March

PAID = text("""
WITH paid AS (
    SELECT s.employee_id, d.employee_code, d.employee_name, s.month, s.gross_salary AS paid,
           coalesce((s.deductions ->> 'tds')::numeric, 0) AS tds,
           0 AS settlement, 0 AS gratuity_exempt, 0 AS encashment_exempt
    FROM salary_records AS s LEFT JOIN salary_record_details AS d ON d.salary_record_id = s.id
    WHERE s.status = 'paid' AND s.year * 12 + s.month BETWEEN :first AND :last
    UNION ALL
    SELECT f.employee_id, f.explanation -> 'employee' ->> 'code', f.explanation -> 'employee' ->> 'name',
           extract(month FROM f.payment_date)::int, f.gratuity + f.leave_encashment, f.tds,
           f.gratuity + f.leave_encashment, f.gratuity_exempt, f.encashment_exempt
    FROM final_settlements AS f
    WHERE f.status = 'paid' AND f.payment_date BETWEEN :april AND :march
)
SELECT employee_id, max(employee_code) AS employee_code, max(employee_name) AS employee_name,
       CASE WHEN month BETWEEN 4 AND 6 THEN 1 WHEN month BETWEEN 7 AND 9 THEN 2
            WHEN month BETWEEN 10 AND 12 THEN 3 ELSE 4 END AS quarter,
       sum(paid) AS paid, sum(tds) AS tds, sum(settlement) AS settlement,
       sum(gratuity_exempt) AS gratuity_exempt, sum(encashment_exempt) AS encashment_exempt
FROM paid
GROUP BY employee_id, quarter
ORDER BY employee_id, quarter
""")

DECLARED = text("""
SELECT employee_id, regime, previous_income, previous_tds FROM tax_declarations WHERE financial_year = :year
""")


class Form16PartB(TypedDict):
    regime: str
    salary_paid: str  # s.17(1): the months' gross and a settlement's gratuity and leave encashment
    final_settlement_paid: str  # of which gratuity and leave encashment
    exempt_gratuity_s10_10: str
    exempt_leave_encashment_s10_10aa: str
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
    # 31 March as a date, not a payroll Period: the year 2100-01 ends in 2101, past the last payroll month.
    bounds: dict[str, object] = {"first": april.year * 12 + 4, "last": (april.year + 1) * 12 + 3,
                                 "april": april.start, "march": dt.date(april.year + 1, 3, 31)}
    quarters: dict[uuid.UUID, dict[int, tuple[Decimal, Decimal]]] = defaultdict(dict)
    exempt: dict[uuid.UUID, tuple[Decimal, Decimal, Decimal]] = defaultdict(lambda: (ZERO, ZERO, ZERO))
    names: dict[uuid.UUID, tuple[str | None, str | None]] = {}
    for row in session.execute(PAID, bounds):
        quarters[row.employee_id][row.quarter] = (row.paid, row.tds)
        settled, gratuity, encashment = exempt[row.employee_id]
        exempt[row.employee_id] = (settled + row.settlement, gratuity + row.gratuity_exempt,
                                   encashment + row.encashment_exempt)
        names[row.employee_id] = (row.employee_code, row.employee_name)
    declared = {row.employee_id: row for row in session.execute(DECLARED, {"year": financial_year})}
    employees: list[EmployeeStatement] = []
    for employee_id, by_quarter in quarters.items():
        declaration = declared.get(employee_id)
        regime = book.income_tax(april.start, declaration.regime if declaration else "new")
        salary = sum((paid for paid, _ in by_quarter.values()), ZERO)
        settled, gratuity_exempt, encashment_exempt = exempt[employee_id]
        previous_income = declaration.previous_income if declaration else ZERO
        previous_tds = declaration.previous_tds if declaration else ZERO
        deducted = sum((tds for _, tds in by_quarter.values()), ZERO)
        gross_total = salary - gratuity_exempt - encashment_exempt + previous_income
        working = regime.annual_tax(gross_total - regime.standard_deduction)
        tax = round_money(working.total, regime.rounding)
        employees.append({
            "employee_id": str(employee_id), "employee_code": names[employee_id][0],
            "employee_name": names[employee_id][1],
            "form16_part_b": {
                "regime": regime.regime, "salary_paid": _s(salary), "final_settlement_paid": _s(settled),
                "exempt_gratuity_s10_10": _s(gratuity_exempt),
                "exempt_leave_encashment_s10_10aa": _s(encashment_exempt),
                "previous_employer_income": _s(previous_income),
                "gross_total": _s(gross_total), "standard_deduction": _s(regime.standard_deduction),
                "total_income": _s(working.taxable), "tax_on_total_income": _s(working.slab_tax),
                "rebate_87a": _s(working.rebate), "surcharge": _s(working.surcharge), "cess": _s(working.cess),
                "tax_payable": _s(tax), "tds_by_this_employer": _s(deducted),
                "tds_by_previous_employer": _s(previous_tds),
                "balance": _s(tax - deducted - previous_tds),  # positive: still payable; negative: refundable
            },
            "form24q": [{"quarter": q, "amount_paid": _s(by_quarter.get(q, (ZERO, ZERO))[0]),
                         "tds_deducted": _s(by_quarter.get(q, (ZERO, ZERO))[1])} for q in QUARTERS],
        })
    employees.sort(key=lambda e: (e["employee_code"] or "", e["employee_id"]))
    return {"financial_year": f"{financial_year}-{(financial_year + 1) % 100:02d}", "employees": employees,
            "totals": {"amount_paid": _s(sum((Decimal(e["form16_part_b"]["salary_paid"]) for e in employees),
                                             Decimal(0))),
                       "tds_deducted": _s(sum((Decimal(e["form16_part_b"]["tds_by_this_employer"])
                                               for e in employees), Decimal(0)))}}
