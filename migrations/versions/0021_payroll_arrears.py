"""Payroll arrears (issue 15): the lines a run pays (or recovers) for months already approved when a
compensation change is backdated into them. One row per paying salary record, month it belongs to and
component (an earning, the employee's PF on it, or the employer's EPS/EPF on it); the record's
`allowances.arrears` / `deductions.arrears_recovery` / `deductions.pf_arrears` carry the totals.
Visible exactly when the paying record is (as `salary_record_details`).

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls as RLS

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMPONENTS = ("basic", "hra", "transport", "medical", "special", "other", "overtime", "pf", "pf_eps", "pf_epf")
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


def downgrade() -> None:
    op.drop_table("payroll_arrears")
