"""The command log (jobs), schedules and the record of materialized-view refreshes.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("params", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("cron", sa.Text(), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.Text(), server_default=sa.text("'Asia/Kolkata'"), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("overlap_policy", sa.Text(), server_default=sa.text("'skip'"), nullable=False),
        sa.Column("misfire_policy", sa.Text(), server_default=sa.text("'run_once'"), nullable=False),
        sa.Column("last_fired_for", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("(cron IS NULL) <> (interval_seconds IS NULL)", name="ck_schedules_one_trigger"),
        sa.CheckConstraint("interval_seconds IS NULL OR interval_seconds > 0",
                           name="ck_schedules_interval_positive"),
        sa.CheckConstraint("overlap_policy IN ('skip', 'queue_one')", name="ck_schedules_overlap_policy"),
        sa.CheckConstraint("misfire_policy IN ('run_once', 'skip')", name="ck_schedules_misfire_policy"),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("params", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'queued'"), nullable=False),
        sa.Column("requested_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("idempotency_scope", sa.Text(), server_default=sa.text("'anonymous'"), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("request_hash", sa.Text(), nullable=True),
        sa.Column("schedule_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress", sa.Numeric(5, 2), server_default=sa.text("0"), nullable=False),
        sa.Column("progress_message", sa.Text(), nullable=True),
        sa.Column("result", pg.JSONB(), nullable=True),
        sa.Column("error", pg.JSONB(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default=sa.text("3"), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
                           name="ck_jobs_status"),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="ck_jobs_progress"),
        sa.CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="ck_jobs_attempts"),
        sa.ForeignKeyConstraint(["schedule_id"], ["schedules.id"], name="fk_jobs_schedule_id_schedules",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("uq_jobs_idempotency", "jobs", ["kind", "idempotency_scope", "idempotency_key"],
                    unique=True, postgresql_where=sa.text("idempotency_key IS NOT NULL"))
    op.create_index("ix_jobs_kind_status", "jobs", ["kind", "status"])
    op.create_index("ix_jobs_created_at", "jobs", [sa.text("created_at DESC")])
    op.create_index("ix_jobs_relay", "jobs", ["run_after"],
                    postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.create_index("ix_jobs_schedule", "jobs", ["schedule_id", "status"])
    op.create_table(
        "view_refreshes",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("view_name", sa.Text(), nullable=False),
        sa.Column("job_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("concurrent", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_view_refreshes_job_id_jobs",
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name="pk_view_refreshes"),
    )
    op.create_index("ix_view_refreshes_view_started", "view_refreshes", ["view_name", sa.text("started_at DESC")])
    # The dashboards' refresh, every 5 minutes on the clock (so every scheduler computes the same times).
    op.execute(
        "INSERT INTO schedules (name, kind, params, cron, overlap_policy, misfire_policy) VALUES "
        "('reports.refresh-dashboards', 'reports.refresh', '{}', '*/5 * * * *', 'skip', 'run_once')"
    )


def downgrade() -> None:
    op.drop_table("view_refreshes")
    op.drop_table("jobs")
    op.drop_table("schedules")
