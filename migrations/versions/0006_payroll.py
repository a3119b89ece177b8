"""Payroll: compensation structures, statutory rates and policies as effective-dated data (seeded
with the figures in docs/payroll.md), the holiday calendar (2026's fixed-date holidays), HR's
monthly adjustments, payroll runs and their failures, the lines behind each salary record, the
monthly schedule, and row-level security for all of it.

Also narrows `salary_records`: migration 0003 let directors read every salary; its `select_finance`
policy is replaced by one for finance and accounts only (the employee, HR and the super admin keep
theirs). Downgrade puts 0003's policy back.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls as RLS

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


api, own, role_in, everywhere = RLS.api, RLS.own, RLS.role_in, RLS.everywhere
UID, AUTHENTICATED = RLS.UID, RLS.AUTHENTICATED
FINANCE = ("finance_department", "accounts_department")
HR = ("hr_department",)

NEW_TABLES = ("compensation_structures", "statutory_rates", "holidays", "payroll_adjustments", "payroll_runs",
              "payroll_failures", "salary_record_details")

# Pay is seen by the employee it belongs to, HR, finance/accounts and the super admin (everywhere()).
NEW_POLICIES: dict[str, list[Any]] = {
    "compensation_structures": [*own("employee_id", UID, "SELECT"), api("manage_hr", "ALL", role_in(*HR)),
                                api("select_finance", "SELECT", role_in(*FINANCE))],
    "statutory_rates": [api("select_authenticated", "SELECT", AUTHENTICATED), api("manage_hr", "ALL", role_in(*HR))],
    "holidays": [api("select_authenticated", "SELECT", AUTHENTICATED), api("manage_hr", "ALL", role_in(*HR))],
    "payroll_adjustments": [*own("employee_id", UID, "SELECT"), api("manage_hr", "ALL", role_in(*HR)),
                            api("select_finance", "SELECT", role_in(*FINANCE))],
    "payroll_runs": [api("manage_hr", "ALL", role_in(*HR)), api("select_finance", "SELECT", role_in(*FINANCE))],
    "payroll_failures": [api("manage_hr", "ALL", role_in(*HR)), api("select_finance", "SELECT", role_in(*FINANCE))],
    # A record's lines are visible exactly when the record is (salary_records' own policies decide).
    "salary_record_details": [api("select_visible_record", "SELECT",
                                  "EXISTS (SELECT 1 FROM salary_records AS s WHERE s.id = salary_record_id)")],
}

# salary_records: 0003's select_finance (finance, accounts and directors) becomes finance and accounts only.
SALARY_FINANCE_0003 = api("select_finance", "SELECT", role_in(*FINANCE, "directors"))
SALARY_FINANCE_0006 = api("select_finance", "SELECT", role_in(*FINANCE))

SCHEDULE = {"name": "payroll.monthly-run", "kind": "payroll.run", "cron": "0 20 last * *"}

# --- seeded data (sources and doubts: docs/payroll.md, "Statutory data") ---------------------------

PT_MH_MEN = [{"over": "0", "amount": "0"}, {"over": "7500", "amount": "175"},
             {"over": "10000", "amount": "200", "february": "300"}]
PT_MH_WOMEN = [{"over": "0", "amount": "0"}, {"over": "25000", "amount": "200", "february": "300"}]
# Karnataka: "Rs 25,000 and more"; salaries are in paise, so over 24,999.99 is at least 25,000.
PT_KA_2023 = [{"over": "0", "amount": "0"}, {"over": "24999.99", "amount": "200"}]
PT_KA_2025 = [{"over": "0", "amount": "0"}, {"over": "24999.99", "amount": "200", "february": "300"}]
PT_TN = [{"over": "0", "amount": "0"}, {"over": "21000", "amount": "180"}, {"over": "30000", "amount": "425"},
         {"over": "45000", "amount": "930"}, {"over": "60000", "amount": "1025"}, {"over": "75000", "amount": "1250"}]
PT_WB = [{"over": "0", "amount": "0"}, {"over": "10000", "amount": "110"}, {"over": "15000", "amount": "130"},
         {"over": "25000", "amount": "150"}, {"over": "40000", "amount": "200"}]

SURCHARGE = [{"over": "5000000", "rate": "10"}, {"over": "10000000", "rate": "15"}, {"over": "20000000", "rate": "25"}]
NEW_REGIME_2024 = [{"over": "0", "rate": "0"}, {"over": "300000", "rate": "5"}, {"over": "700000", "rate": "10"},
                   {"over": "1000000", "rate": "15"}, {"over": "1200000", "rate": "20"},
                   {"over": "1500000", "rate": "30"}]
NEW_REGIME_2025 = [{"over": "0", "rate": "0"}, {"over": "400000", "rate": "5"}, {"over": "800000", "rate": "10"},
                   {"over": "1200000", "rate": "15"}, {"over": "1600000", "rate": "20"},
                   {"over": "2000000", "rate": "25"}, {"over": "2400000", "rate": "30"}]


def _income_tax(year: str, slabs: list[dict[str, str]], rebate_upto: str, rebate_max: str) -> dict[str, Any]:
    return {"financial_year": year, "standard_deduction": "75000", "slabs": slabs,
            "rebate": {"income_upto": rebate_upto, "max": rebate_max, "marginal_relief": True},
            "surcharge": SURCHARGE, "cess_rate": "4", "rounding": "rupee"}


# (kind, scope, effective_from, data, source)
STATUTORY_RATES: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("pf", "IN", "2014-09-01",
     {"employee_rate": "12", "employer_rate": "12", "eps_rate": "8.33", "wage_ceiling": "15000", "rounding": "rupee"},
     "EPF Scheme 1952, para 2(f) wage ceiling Rs 15,000 from 2014-09-01; contributions 12%"),
    ("esi", "IN", "2019-07-01",
     {"employee_rate": "0.75", "employer_rate": "3.25", "wage_threshold": "21000", "rounding": "rupee_up",
      "contribution_periods_start": [4, 10]},
     "ESI: rates 0.75%/3.25% from 2019-07-01, coverage up to Rs 21,000 from 2017-01-01; "
     "contributions rounded to the next higher rupee"),
    ("professional_tax", "MH", "2023-04-01", {"period": "monthly", "slabs": PT_MH_MEN, "slabs_female": PT_MH_WOMEN},
     "Maharashtra Profession Tax Act, Schedule I entry 1, as amended from 2023-04-01"),
    ("professional_tax", "KA", "2023-04-01", {"period": "monthly", "slabs": PT_KA_2023},
     "Karnataka Tax on Professions Act 1976, Schedule entry 1, as amended from 2023-04-01"),
    ("professional_tax", "KA", "2025-04-01", {"period": "monthly", "slabs": PT_KA_2025},
     "Karnataka Act 33 of 2025: Rs 200 a month, Rs 300 in February, from 2025-04-01"),
    ("professional_tax", "TN", "2024-10-01",
     {"period": "half_yearly", "half_years_start": [4, 10], "deduct_in_months": [9, 3], "slabs": PT_TN},
     "Greater Chennai Corporation, council resolution 574/2024: half-yearly slabs from the second half of 2024-25"),
    ("professional_tax", "WB", "2024-04-01", {"period": "monthly", "slabs": PT_WB},
     "West Bengal State Tax on Professions Act 1979, Schedule entry 1 (in force before 2024-04-01 as well)"),
    ("income_tax", "new", "2024-04-01", _income_tax("2024-25", NEW_REGIME_2024, "700000", "25000"),
     "Section 115BAC as amended by the Finance (No. 2) Act 2024; s.87A rebate; 4% cess"),
    ("income_tax", "new", "2025-04-01", _income_tax("2025-26", NEW_REGIME_2025, "1200000", "60000"),
     "Section 115BAC as amended by the Finance Act 2025; s.87A rebate up to Rs 60,000; 4% cess"),
    ("income_tax", "new", "2026-04-01", _income_tax("2026-27", NEW_REGIME_2025, "1200000", "60000"),
     "Union Budget 2026-27 kept the FY 2025-26 slabs, rebate and standard deduction"),
    ("overtime", "IN", "2024-04-01",
     {"standard_hours_per_day": "8", "multiplier": "2", "basis": ["basic"], "days_per_month": "26"},
     "Company policy: twice the ordinary hourly rate (Factories Act s.59), ordinary rate = basic / 26 / 8"),
    ("attendance", "IN", "2024-04-01",
     {"day_start": "09:30", "grace_minutes": 15, "half_day_below_hours": "4", "weekly_offs": [6]},
     "Company policy: late after 09:45, a day under 4 hours is a half day, Sunday is the weekly off"),
]

HOLIDAYS_2026 = [("2026-01-26", "Republic Day", "national"), ("2026-08-15", "Independence Day", "national"),
                 ("2026-10-02", "Mahatma Gandhi's Birthday", "national"), ("2026-12-25", "Christmas Day", "gazetted")]


def _create_tables() -> None:
    def uuid_id() -> sa.Column:
        return sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False)

    def stamps(*, updated: bool = True) -> list[sa.Column]:
        columns = [sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                             nullable=False)]
        if updated:
            columns.append(sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                                     nullable=False))
        return columns

    def money(name: str, default: str | None = None) -> sa.Column:
        return sa.Column(name, sa.Numeric(10, 2), server_default=sa.text(default) if default else None,
                         nullable=False)

    op.create_table(
        "compensation_structures",
        uuid_id(),
        sa.Column("employee_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        money("basic"), money("hra", "0"), money("transport", "0"), money("medical", "0"), money("special", "0"),
        money("other", "0"),
        sa.Column("pf_applicable", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("esi_applicable", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("pt_state", sa.Text(), nullable=True),
        sa.Column("overtime_eligible", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_by", pg.UUID(as_uuid=True), nullable=True),
        *stamps(),
        sa.CheckConstraint("basic >= 0 AND hra >= 0 AND transport >= 0 AND medical >= 0 AND special >= 0 "
                           "AND other >= 0", name="ck_compensation_structures_amounts_not_negative"),
        sa.CheckConstraint("pt_state ~ '^[A-Z]{2}$'", name="ck_compensation_structures_pt_state"),
        sa.ForeignKeyConstraint(["employee_id"], ["employees.id"],
                                name="fk_compensation_structures_employee_id_employees", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_compensation_structures"),
        sa.UniqueConstraint("employee_id", "effective_from",
                            name="uq_compensation_structures_employee_id_effective_from"),
    )
    op.create_table(
        "statutory_rates",
        uuid_id(),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), server_default=sa.text("'IN'"), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("data", pg.JSONB(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        *stamps(),
        sa.CheckConstraint("kind IN ('pf', 'esi', 'professional_tax', 'income_tax', 'overtime', 'attendance')",
                           name="ck_statutory_rates_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_statutory_rates"),
        sa.UniqueConstraint("kind", "scope", "effective_from", name="uq_statutory_rates_kind_scope_effective_from"),
    )
    op.create_table(
        "holidays",
        uuid_id(),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), server_default=sa.text("'gazetted'"), nullable=False),
        *stamps(updated=False),
        sa.CheckConstraint("kind IN ('national', 'gazetted', 'company')", name="ck_holidays_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_holidays"),
        sa.UniqueConstraint("date", name="uq_holidays_date"),
    )
    op.create_table(
        "payroll_adjustments",
        uuid_id(),
        sa.Column("employee_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        money("amount"),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", pg.UUID(as_uuid=True), nullable=True),
        *stamps(),
        sa.CheckConstraint("kind IN ('bonus', 'loan_emi', 'salary_advance')", name="ck_payroll_adjustments_kind"),
        sa.CheckConstraint("month BETWEEN 1 AND 12", name="ck_payroll_adjustments_month"),
        sa.CheckConstraint("amount > 0", name="ck_payroll_adjustments_amount_positive"),
        sa.ForeignKeyConstraint(["employee_id"], ["employees.id"], name="fk_payroll_adjustments_employee_id_employees",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_payroll_adjustments"),
    )
    op.create_index("ix_payroll_adjustments_period", "payroll_adjustments", ["year", "month", "employee_id"])
    op.create_index("ix_payroll_adjustments_employee", "payroll_adjustments", ["employee_id"])
    op.create_table(
        "payroll_runs",
        uuid_id(),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'computing'"), nullable=False),
        sa.Column("generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("batches_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("batches_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("employees", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("job_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("requested_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("preflight", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("summary", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("bank_files", pg.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("approved_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        *stamps(),
        sa.CheckConstraint("month BETWEEN 1 AND 12", name="ck_payroll_runs_month"),
        sa.CheckConstraint("status IN ('computing', 'computed', 'approved')", name="ck_payroll_runs_status"),
        sa.PrimaryKeyConstraint("id", name="pk_payroll_runs"),
        sa.UniqueConstraint("year", "month", name="uq_payroll_runs_year_month"),
    )
    op.create_table(
        "payroll_failures",
        uuid_id(),
        sa.Column("run_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("employee_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("employee_code", sa.Text(), nullable=True),
        sa.Column("employee_name", sa.Text(), nullable=True),
        sa.Column("error_type", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["payroll_runs.id"], name="fk_payroll_failures_run_id_payroll_runs",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["employee_id"], ["employees.id"], name="fk_payroll_failures_employee_id_employees",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_payroll_failures"),
        sa.UniqueConstraint("run_id", "employee_id", name="uq_payroll_failures_run_id_employee_id"),
    )
    op.create_index("ix_payroll_failures_employee", "payroll_failures", ["employee_id"])
    op.create_table(
        "salary_record_details",
        uuid_id(),
        sa.Column("salary_record_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("run_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("employee_code", sa.Text(), nullable=False),
        sa.Column("employee_name", sa.Text(), nullable=False),
        sa.Column("department", sa.Text(), nullable=True),
        sa.Column("designation", sa.Text(), nullable=True),
        sa.Column("days_in_month", sa.Integer(), nullable=False),
        sa.Column("paid_days", sa.Numeric(5, 2), nullable=False),
        sa.Column("lop_days", sa.Numeric(5, 2), nullable=False),
        sa.Column("explanation", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("employer_contributions", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["salary_record_id"], ["salary_records.id"],
                                name="fk_salary_record_details_salary_record_id_salary_records", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["payroll_runs.id"], name="fk_salary_record_details_run_id_payroll_runs",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_salary_record_details"),
        sa.UniqueConstraint("salary_record_id", name="uq_salary_record_details_salary_record_id"),
    )


def _seed() -> None:
    for kind, scope, effective_from, data, source in STATUTORY_RATES:
        op.execute(sa.text(
            "INSERT INTO statutory_rates (kind, scope, effective_from, data, source) "
            "VALUES (:kind, :scope, CAST(:effective_from AS date), CAST(:data AS jsonb), :source)"
        ).bindparams(kind=kind, scope=scope, effective_from=effective_from, data=json.dumps(data), source=source))
    for date, name, kind in HOLIDAYS_2026:
        op.execute(sa.text("INSERT INTO holidays (date, name, kind) VALUES (CAST(:date AS date), :name, :kind)")
                   .bindparams(date=date, name=name, kind=kind))
    # The last day of every month at 20:00 platform time. APScheduler's cron reads day "last" (the
    # beat builds CronTrigger from the five crontab fields; crontab's "L" is not understood).
    op.execute(sa.text(
        "INSERT INTO schedules (name, kind, params, cron, overlap_policy, misfire_policy) "
        "VALUES (:name, :kind, '{}', :cron, 'skip', 'run_once') ON CONFLICT (name) DO NOTHING"
    ).bindparams(**SCHEDULE))


def upgrade() -> None:
    _create_tables()
    _seed()
    for table in NEW_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {RLS.REQUEST_ROLES}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    for table, policies in NEW_POLICIES.items():
        for policy in (*everywhere(), *policies):
            op.execute(RLS.policy_sql(table, policy))
    op.execute(f"DROP POLICY {SALARY_FINANCE_0003.name} ON salary_records")
    op.execute(RLS.policy_sql("salary_records", SALARY_FINANCE_0006))


def downgrade() -> None:
    op.execute(f"DROP POLICY {SALARY_FINANCE_0006.name} ON salary_records")
    op.execute(RLS.policy_sql("salary_records", SALARY_FINANCE_0003))
    op.execute(sa.text("DELETE FROM schedules WHERE name = :name").bindparams(name=SCHEDULE["name"]))
    # Dropping a table drops its policies, grants and indexes with it; children before parents.
    for table in ("salary_record_details", "payroll_failures", "payroll_runs", "payroll_adjustments", "holidays",
                  "statutory_rates", "compensation_structures"):
        op.drop_table(table)
