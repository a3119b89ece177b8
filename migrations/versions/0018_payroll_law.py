"""Payroll as the law computes it (issue 15, docs/payroll.md "Statutory data"):

- `tax_declarations`: per employee and financial year, the income-tax regime chosen and the income
  and TDS before this payroll (Form 12B), with row-level security like compensation's;
- rate kind `wage_deductions` (Payment of Wages Act s.7(3) limits) and adjustment kinds `incentive`
  (a monthly incentive: a wage) and `cooperative_dues` (a deduction, raising the s.7(3) limit);
- rows: PF's wage definition from 2019-03-01 (the Supreme Court's Vivekananda Vidyamandir ruling of
  28 February 2019) and from 2025-11-21 (Code on Social Security 2020 s.2(88)); the old regime's
  income-tax slabs (FY 2024-25 to 2026-27); the s.7(3) limits;
- two corrections to rows 0006 seeded, which claimed a statute they did not implement: the overtime
  policy's ordinary rate of wages (Factories Act s.59(2): basic plus allowances, not basic alone),
  and ESI's exemption of the employee's share at an average daily wage up to Rs 176 (from the same
  2019-07-01 notification as the row's rates). Only rows still as seeded are changed.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls as RLS

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


FINANCE = ("finance_department", "accounts_department")
POLICIES = [*RLS.everywhere(), *RLS.own("employee_id", RLS.UID, "SELECT"),
            RLS.api("manage_hr", "ALL", RLS.role_in("hr_department")),
            RLS.api("select_finance", "SELECT", RLS.role_in(*FINANCE))]

RATE_KINDS_0006 = ("pf", "esi", "professional_tax", "income_tax", "overtime", "attendance")
RATE_KINDS = (*RATE_KINDS_0006, "wage_deductions")
ADJUSTMENT_KINDS_0006 = ("bonus", "loan_emi", "salary_advance")
ADJUSTMENT_KINDS = ("bonus", "incentive", "loan_emi", "salary_advance", "cooperative_dues")

# The names 0006's checks got (the metadata's naming convention prefixed the names it was given).
KIND_CHECKS = ("ck_statutory_rates_ck_statutory_rates_kind", "ck_payroll_adjustments_ck_payroll_adjustments_kind")

PF_BASE = {"employee_rate": "12", "employer_rate": "12", "eps_rate": "8.33", "wage_ceiling": "15000",
           "rounding": "rupee", "cap_wages": True}
OLD_REGIME = [{"over": "0", "rate": "0"}, {"over": "250000", "rate": "5"}, {"over": "500000", "rate": "20"},
              {"over": "1000000", "rate": "30"}]
OLD_SURCHARGE = [{"over": "5000000", "rate": "10"}, {"over": "10000000", "rate": "15"},
                 {"over": "20000000", "rate": "25"}, {"over": "50000000", "rate": "37"}]


def _old_regime(year: str) -> dict[str, Any]:
    return {"financial_year": year, "standard_deduction": "50000", "slabs": OLD_REGIME,
            "rebate": {"income_upto": "500000", "max": "12500", "marginal_relief": False},
            "surcharge": OLD_SURCHARGE, "cess_rate": "4", "rounding": "rupee"}


# (kind, scope, effective_from, data, source)
ROWS: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("pf", "IN", "2019-03-01",
     {**PF_BASE, "wage_definition": "components", "wage_components": ["basic", "special"]},
     "EPF Act s.2(b), s.6 as read in Regional PF Commissioner (II) West Bengal v. Vivekananda Vidyamandir "
     "(Supreme Court, 28 February 2019): allowances paid universally, necessarily and ordinarily to all "
     "employees (here: special allowance) are basic wages; HRA, conveyance and medical are not. From the first "
     "wage month after the ruling"),
    ("pf", "IN", "2025-11-21",
     {**PF_BASE, "wage_definition": "code_2020", "excluded_components": ["hra", "transport", "medical"],
      "excluded_limit_percent": "50"},
     "Code on Social Security 2020 s.2(88) 'wages', in force from 21 November 2025: all remuneration except "
     "HRA, conveyance, special expenses, overtime and bonus; what those exceed 50% of all remuneration by counts "
     "as wages. A wage month takes the definition in force on its first day: December 2025 is the first"),
    ("income_tax", "old", "2024-04-01", _old_regime("2024-25"),
     "Income-tax Act 1961 First Schedule (old regime, individual under 60), Finance (No. 2) Act 2024; "
     "s.16(ia) standard deduction Rs 50,000; s.87A rebate up to Rs 12,500 up to Rs 5 lakh; 4% cess"),
    ("income_tax", "old", "2025-04-01", _old_regime("2025-26"),
     "Finance Act 2025: old-regime slabs, standard deduction and s.87A unchanged"),
    ("income_tax", "old", "2026-04-01", _old_regime("2026-27"),
     "Budget 2026-27: old-regime slabs unchanged (check against the Income-tax Act 2025 schedule)"),
    ("wage_deductions", "IN", "2000-01-01", {"limit_percent": "50", "limit_percent_with_cooperative": "75"},
     "Payment of Wages Act 1936 s.7(3): deductions at most 50% of the wages, 75% where they include payments "
     "to co-operative societies (long in force; the row starts before any month the engine can pay)"),
]

OVERTIME_0006 = {"standard_hours_per_day": "8", "multiplier": "2", "basis": ["basic"], "days_per_month": "26"}
OVERTIME_SOURCE_0006 = ("Company policy: twice the ordinary hourly rate (Factories Act s.59), "
                        "ordinary rate = basic / 26 / 8")
OVERTIME_0018 = {**OVERTIME_0006, "basis": ["basic", "hra", "transport", "medical", "special", "other"]}
OVERTIME_SOURCE_0018 = ("Factories Act 1948 s.59: twice the ordinary rate of wages, which s.59(2) defines as basic "
                        "wages plus allowances (not bonus or overtime); hourly = monthly / 26 / 8 (company policy)")
ESI_EXEMPTION = {"employee_exempt_daily_wage_upto": "176"}


def _set_row(kind: str, effective_from: str, old: dict[str, Any], new: dict[str, Any], source: str) -> None:
    op.execute(sa.text(
        "UPDATE statutory_rates SET data = CAST(:new AS jsonb), source = :source, updated_at = now() "
        "WHERE kind = :kind AND scope = 'IN' AND effective_from = CAST(:f AS date) AND data = CAST(:old AS jsonb)"
    ).bindparams(new=json.dumps(new), old=json.dumps(old), source=source, kind=kind, f=effective_from))


def upgrade() -> None:
    for table, name, kinds in (("statutory_rates", KIND_CHECKS[0], RATE_KINDS),
                               ("payroll_adjustments", KIND_CHECKS[1], ADJUSTMENT_KINDS)):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}, ADD CONSTRAINT {name} CHECK (kind IN {kinds!r})")

    op.create_table(
        "tax_declarations",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("employee_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("financial_year", sa.Integer(), nullable=False),
        sa.Column("regime", sa.Text(), server_default=sa.text("'new'"), nullable=False),
        sa.Column("previous_income", sa.Numeric(12, 2), server_default=sa.text("0"), nullable=False),
        sa.Column("previous_tds", sa.Numeric(12, 2), server_default=sa.text("0"), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("regime IN ('new', 'old')", name="regime"),
        sa.CheckConstraint("previous_income >= 0 AND previous_tds >= 0",
                           name="amounts_not_negative"),
        sa.ForeignKeyConstraint(["employee_id"], ["employees.id"], name="fk_tax_declarations_employee_id_employees",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_tax_declarations"),
        sa.UniqueConstraint("employee_id", "financial_year", name="uq_tax_declarations_employee_id_financial_year"),
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tax_declarations TO {RLS.REQUEST_ROLES}")
    op.execute("ALTER TABLE tax_declarations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    for policy in POLICIES:
        op.execute(RLS.policy_sql("tax_declarations", policy))

    for kind, scope, effective_from, data, source in ROWS:
        op.execute(sa.text(
            "INSERT INTO statutory_rates (kind, scope, effective_from, data, source) "
            "VALUES (:kind, :scope, CAST(:f AS date), CAST(:data AS jsonb), :source) "
            "ON CONFLICT (kind, scope, effective_from) DO NOTHING"
        ).bindparams(kind=kind, scope=scope, f=effective_from, data=json.dumps(data), source=source))
    _set_row("overtime", "2024-04-01", OVERTIME_0006, OVERTIME_0018, OVERTIME_SOURCE_0018)
    op.execute(sa.text(
        "UPDATE statutory_rates SET data = data || CAST(:extra AS jsonb), updated_at = now(), "
        "source = source || '; employee''s share exempt at an average daily wage up to Rs 176 (ESI (Central) "
        "Rules r.51 as amended from 2019-07-01)' "
        "WHERE kind = 'esi' AND scope = 'IN' AND effective_from = DATE '2019-07-01' "
        "AND NOT data ? 'employee_exempt_daily_wage_upto'").bindparams(extra=json.dumps(ESI_EXEMPTION)))


def downgrade() -> None:
    op.execute("UPDATE statutory_rates SET data = data - 'employee_exempt_daily_wage_upto', "
               "source = split_part(source, '; employee''s share exempt', 1) "
               "WHERE kind = 'esi' AND scope = 'IN' AND effective_from = DATE '2019-07-01'")
    _set_row("overtime", "2024-04-01", OVERTIME_0018, OVERTIME_0006, OVERTIME_SOURCE_0006)
    for kind, scope, effective_from, _, _ in ROWS:
        op.execute(sa.text("DELETE FROM statutory_rates WHERE kind = :kind AND scope = :scope AND effective_from = "
                           "CAST(:f AS date)").bindparams(kind=kind, scope=scope, f=effective_from))
    op.execute("DELETE FROM statutory_rates WHERE kind = 'wage_deductions'")
    op.execute("DELETE FROM payroll_adjustments WHERE kind IN ('incentive', 'cooperative_dues')")
    op.drop_table("tax_declarations")
    for table, name, kinds in (("statutory_rates", KIND_CHECKS[0], RATE_KINDS_0006),
                               ("payroll_adjustments", KIND_CHECKS[1], ADJUSTMENT_KINDS_0006)):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}, ADD CONSTRAINT {name} CHECK (kind IN {kinds!r})")
