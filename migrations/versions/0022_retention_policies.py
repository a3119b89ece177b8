"""Retention as data (issue 16, "Cost as the months pass"; docs/retention.md):

- `retention_policies`: per table and, for `jobs`, per kind (`settlements.run`, `settlements.*`
  or `*`) and outcome (`succeeded`, `failed`, `cancelled` or `*`), how long a finished row is kept
  (`keep_for`, NULL = for ever) and why. A kind no policy names is kept. The audit log can never
  be named (a CHECK), nor any table the housekeeping job does not know.
- the seeded policies: money and pay jobs (settlements, payroll, payments) for 9 years (the law's
  8 financial years before the current one, from any day of a year), routine
  jobs 30-90 days when they succeeded and 180 days otherwise, view refreshes 90 days;
- `system.housekeeping`, scheduled nightly at 02:30 IST, enforces them in bounded batches;
- indexes for the references to a job the deletes must check (`view_refreshes.job_id`, whose
  ON DELETE SET NULL otherwise scans the table per deleted job, and `webhook_events.job_id`).

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations import rls as RLS

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# s.128(5): the 8 financial years before the current one, so a record from the first day of a year
# may be needed 9 years later; r.6F(5): 6 years from the end of the assessment year (about 8).
LAW = ("books of account and vouchers: 8 financial years before the current one (Companies Act 2013 s.128(5)) "
       "and 6 years from the end of the assessment year (Income-tax Act 1961 s.44AA, Income-tax Rules r.6F(5)); "
       "9 years from the job's end covers both for any date in a year")
ROUTINE = "routine operation: kept while it helps to diagnose a fault"
FAILED = "a failure: kept longer, for the investigation and the trend"

# (table, kind, status, keep_for or None for ever, reason)
POLICIES: list[tuple[str, str, str, str | None, str]] = [
    ("jobs", "settlements.*", "*", "9 years", LAW),
    ("jobs", "payroll.*", "*", "9 years", LAW),
    ("jobs", "payments.*", "*", "9 years", LAW),
    ("jobs", "system.ping", "succeeded", "30 days", ROUTINE),
    ("jobs", "system.ping", "*", "180 days", FAILED),
    ("jobs", "system.housekeeping", "succeeded", "90 days", ROUTINE),
    ("jobs", "system.housekeeping", "*", "180 days", FAILED),
    ("jobs", "locations.prune", "succeeded", "30 days", ROUTINE),
    ("jobs", "locations.prune", "*", "180 days", FAILED),
    ("jobs", "reports.refresh", "succeeded", "30 days", ROUTINE),
    ("jobs", "reports.refresh", "*", "180 days", FAILED),
    ("jobs", "notifications.*", "succeeded", "30 days", ROUTINE),
    ("jobs", "notifications.*", "*", "180 days", FAILED),
    ("jobs", "dispatch.*", "succeeded", "90 days", ROUTINE + "; a booking's own rows record its assignment"),
    ("jobs", "dispatch.*", "*", "180 days", FAILED),
    ("jobs", "campaigns.*", "succeeded", "90 days", ROUTINE + "; each message's delivery row stays"),
    ("jobs", "campaigns.*", "*", "180 days", FAILED),
    ("view_refreshes", "*", "*", "90 days", ROUTINE + "; the latest refresh of each view is always kept"),
]

TABLES = ("jobs", "view_refreshes")


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("id", sa.Integer(), sa.Identity(always=True), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), server_default=sa.text("'*'"), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'*'"), nullable=False),
        sa.Column("keep_for", sa.Interval(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("table_name <> 'audit_log'", name="never_audit_log"),
        sa.CheckConstraint(f"table_name IN {TABLES!r}", name="known_table"),
        sa.CheckConstraint("status IN ('succeeded', 'failed', 'cancelled', '*')", name="status"),
        sa.CheckConstraint(r"kind ~ '^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_]+)$'", name="kind"),
        sa.CheckConstraint("table_name = 'jobs' OR (kind = '*' AND status = '*')",
                           name="kind_of_jobs_only"),
        sa.CheckConstraint("keep_for IS NULL OR keep_for >= interval '1 day'", name="keep_for"),
        sa.CheckConstraint("length(btrim(reason)) > 0", name="reason"),
        sa.PrimaryKeyConstraint("id", name="pk_retention_policies"),
        sa.UniqueConstraint("table_name", "kind", "status", name="uq_retention_policies_table_name_kind_status"),
    )
    op.execute(f"GRANT SELECT ON retention_policies TO {RLS.REQUEST_ROLES}")
    op.execute("ALTER TABLE retention_policies ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    for policy in [*RLS.everywhere(), RLS.api("select_it", "SELECT", RLS.role_in("it_department"))]:
        op.execute(RLS.policy_sql("retention_policies", policy))
    for table, kind, status, keep_for, reason in POLICIES:
        op.execute(sa.text(
            "INSERT INTO retention_policies (table_name, kind, status, keep_for, reason) "
            "VALUES (:table, :kind, :status, CAST(:keep_for AS interval), :reason)"
        ).bindparams(table=table, kind=kind, status=status, keep_for=keep_for, reason=reason))

    op.create_index("ix_view_refreshes_job_id", "view_refreshes", ["job_id"])
    op.create_index("ix_webhook_events_job_id", "webhook_events", ["job_id"],
                    postgresql_where=sa.text("job_id IS NOT NULL"))
    # Nightly in the platform's zone, when the hot paths are quiet.
    op.execute(
        "INSERT INTO schedules (name, kind, params, cron, overlap_policy, misfire_policy) VALUES "
        "('system.housekeeping-nightly', 'system.housekeeping', '{}', '30 2 * * *', 'skip', 'run_once') "
        "ON CONFLICT (name) DO NOTHING"
    )


def downgrade() -> None:
    op.execute("DELETE FROM schedules WHERE name = 'system.housekeeping-nightly'")
    op.drop_index("ix_webhook_events_job_id", table_name="webhook_events")
    op.drop_index("ix_view_refreshes_job_id", table_name="view_refreshes")
    op.drop_table("retention_policies")
