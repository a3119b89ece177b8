"""Payroll arrears (issue 15): the lines a run pays (or recovers) for months already approved when a
compensation change is backdated into them. One row per paying salary record, month it belongs to and
component (an earning, the employee's PF on it, or the employer's EPS/EPF on it); the record's
`allowances.arrears` / `deductions.arrears_recovery` / `deductions.pf_arrears` carry the totals.
Visible exactly when the paying record is (as `salary_record_details`).

Full and final settlement (issue 15): `final_settlements`, one per leaver (seen by the employee, HR,
finance and accounts, as salary records), and two rate kinds as dated data: `gratuity` (Payment of
Gratuity Act s.4: 15 days' wages per year over 26, five years' service with a last year of 240 days,
ceiling Rs 10 lakh from 2010-05-24 and Rs 20 lakh from 2018-03-29) and `separation` (company policy:
earned leave at basic / 26 a day up to 300 days; 30 days' notice, a shortfall at gross / 30 a day).

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls as RLS

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMPONENTS = ("basic", "hra", "transport", "medical", "special", "other", "overtime", "pf", "pf_eps", "pf_epf")
KIND_CHECK = "ck_statutory_rates_ck_statutory_rates_kind"
RATE_KINDS_0018 = ("pf", "esi", "professional_tax", "income_tax", "overtime", "attendance", "wage_deductions")
RATE_KINDS = (*RATE_KINDS_0018, "gratuity", "separation")
GRATUITY = {"days_per_year": "15", "days_per_month": "26", "wage_components": ["basic"], "min_years": "5",
            "last_year_days": "240"}
ROWS: list[tuple[str, str, dict[str, Any], str]] = [
    ("gratuity", "2010-05-24", {**GRATUITY, "ceiling": "1000000"},
     "Payment of Gratuity Act 1972 s.4(2) (15 days' wages per completed year or part over six months, a month "
     "of 26 days), s.4(1) (five years' continuous service), s.2A(2) (240 days in the last year make it a year "
     "of continuous service), s.4(3) ceiling Rs 10 lakh (notification of 24 May 2010)"),
    ("gratuity", "2018-03-29", {**GRATUITY, "ceiling": "2000000"},
     "Payment of Gratuity Act s.4(3) ceiling Rs 20 lakh from 29 March 2018 (notification under the "
     "Payment of Gratuity (Amendment) Act 2018)"),
    ("separation", "2000-01-01",
     {"encashment_components": ["basic"], "encashment_divisor": "26", "encashment_max_days": "300",
      "notice_days": "30", "notice_components": ["basic", "hra", "transport", "medical", "special", "other"],
      "notice_divisor": "30"},
     "Company policy: earned leave encashed at basic (+ DA) / 26 a day, at most 300 days; 30 days' notice, "
     "a shortfall recovered at the monthly gross / 30 a day"),
]
OWN_OR_PAYROLL = [*RLS.own("employee_id", RLS.UID, "SELECT"),
                  RLS.api("manage_hr", "ALL", RLS.role_in("hr_department")),
                  RLS.api("select_finance", "SELECT", RLS.role_in(*RLS.FINANCE))]
POLICIES = [*RLS.everywhere(), RLS.api("select_visible_record", "SELECT",
                                       "EXISTS (SELECT 1 FROM salary_records AS s WHERE s.id = salary_record_id)")]


def upgrade() -> None:
    op.create_table(
        "payroll_arrears",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("salary_record_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("employee_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("for_year", sa.Integer(), nullable=False),
        sa.Column("for_month", sa.Integer(), nullable=False),
        sa.Column("component", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"component IN {COMPONENTS!r}", name="component"),
        sa.CheckConstraint("for_month BETWEEN 1 AND 12", name="for_month"),
        sa.ForeignKeyConstraint(["salary_record_id"], ["salary_records.id"],
                                name="fk_payroll_arrears_salary_record_id_salary_records", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["employee_id"], ["employees.id"], name="fk_payroll_arrears_employee_id_employees",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_payroll_arrears"),
        sa.UniqueConstraint("salary_record_id", "for_year", "for_month", "component",
                            name="uq_payroll_arrears_line"),
    )
    op.create_index("ix_payroll_arrears_employee_month", "payroll_arrears", ["employee_id", "for_year", "for_month"])
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON payroll_arrears TO {RLS.REQUEST_ROLES}")
    op.execute("ALTER TABLE payroll_arrears ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    for policy in POLICIES:
        op.execute(RLS.policy_sql("payroll_arrears", policy))


    op.execute(f"ALTER TABLE statutory_rates DROP CONSTRAINT {KIND_CHECK}, "
               f"ADD CONSTRAINT {KIND_CHECK} CHECK (kind IN {RATE_KINDS!r})")
    for kind, effective_from, data, source in ROWS:
        op.execute(sa.text(
            "INSERT INTO statutory_rates (kind, scope, effective_from, data, source) "
            "VALUES (:kind, 'IN', CAST(:f AS date), CAST(:data AS jsonb), :source) "
            "ON CONFLICT (kind, scope, effective_from) DO NOTHING"
        ).bindparams(kind=kind, f=effective_from, data=json.dumps(data), source=source))
    _final_settlements()


def _final_settlements() -> None:
    money = sa.Numeric(12, 2)
    op.create_table(
        "final_settlements",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("employee_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'computed'"), nullable=False),
        sa.Column("last_working_date", sa.Date(), nullable=False),
        sa.Column("resignation_date", sa.Date(), nullable=True),
        sa.Column("earned_leave_days", sa.Numeric(7, 2), nullable=False),
        sa.Column("service_years", sa.Integer(), nullable=False),
        sa.Column("service_days", sa.Integer(), nullable=False),
        sa.Column("counted_years", sa.Integer(), nullable=False),
        sa.Column("last_wage", money, nullable=False),
        sa.Column("gratuity", money, nullable=False),
        sa.Column("leave_encashment", money, nullable=False),
        sa.Column("notice_shortfall_days", sa.Integer(), nullable=False),
        sa.Column("notice_recovery", money, nullable=False),
        sa.Column("net_amount", money, nullable=False),
        sa.Column("explanation", pg.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("job_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('computed', 'paid')", name="status"),
        sa.CheckConstraint("earned_leave_days >= 0", name="earned_leave_days"),
        sa.ForeignKeyConstraint(["employee_id"], ["employees.id"], name="fk_final_settlements_employee_id_employees",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_final_settlements"),
        sa.UniqueConstraint("employee_id", name="uq_final_settlements_employee_id"),
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON final_settlements TO {RLS.REQUEST_ROLES}")
    op.execute("ALTER TABLE final_settlements ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    for policy in (*RLS.everywhere(), *OWN_OR_PAYROLL):
        op.execute(RLS.policy_sql("final_settlements", policy))


def downgrade() -> None:
    op.drop_table("final_settlements")
    op.execute("DELETE FROM statutory_rates WHERE kind IN ('gratuity', 'separation')")
    op.execute(f"ALTER TABLE statutory_rates DROP CONSTRAINT {KIND_CHECK}, "
               f"ADD CONSTRAINT {KIND_CHECK} CHECK (kind IN {RATE_KINDS_0018!r})")
    op.drop_table("payroll_arrears")
