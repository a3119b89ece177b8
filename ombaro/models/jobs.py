"""The command log (jobs), the scheduler's table (schedules) and the record of view refreshes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Index, Integer, Numeric, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class Job(Base):
    """One command: what was asked, by whom, and what became of it."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts"),
        # The guard behind Idempotency-Key and scheduler firings: one job per (kind, caller, key).
        Index("uq_jobs_idempotency", "kind", "idempotency_scope", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("ix_jobs_kind_status", "kind", "status"),
        Index("ix_jobs_created_at", text("created_at DESC")),
        # The relay's scan: jobs waiting to be (re)handed to the broker.
        Index("ix_jobs_relay", "run_after", postgresql_where=text("status IN ('queued', 'running')")),
        Index("ix_jobs_schedule", "schedule_id", "status"),
        Index("ix_jobs_requested_by", "requested_by", text("created_at DESC")),  # "my jobs" (migration 0003)
        # The latest jobs of one kind: the job log lists per visible kind (commands.list_jobs, 0009).
        Index("ix_jobs_kind_created", "kind", text("created_at DESC"), text("id DESC")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    kind: Mapped[str]
    params: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(server_default=text("'queued'"))
    requested_by: Mapped[uuid.UUID | None]
    idempotency_scope: Mapped[str] = mapped_column(server_default=text("'anonymous'"))
    idempotency_key: Mapped[str | None]
    request_hash: Mapped[str | None]
    request_id: Mapped[str | None]  # the X-Request-ID of the submitting request (or the firing's): logs join on it
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("schedules.id", ondelete="SET NULL"))
    scheduled_for: Mapped[dt.datetime | None]
    progress: Mapped[float] = mapped_column(Numeric(5, 2, asdecimal=False), server_default=text("0"))
    progress_message: Mapped[str | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    run_after: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    enqueued_at: Mapped[dt.datetime | None]
    lease_expires_at: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class Schedule(Base):
    """A periodic command. A firing is a job whose idempotency key is (schedule, scheduled time)."""

    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint("(cron IS NULL) <> (interval_seconds IS NULL)", name="one_trigger"),
        CheckConstraint("interval_seconds IS NULL OR interval_seconds > 0", name="interval_positive"),
        CheckConstraint("overlap_policy IN ('skip', 'queue_one')", name="overlap_policy"),
        CheckConstraint("misfire_policy IN ('run_once', 'skip')", name="misfire_policy"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(unique=True)
    kind: Mapped[str]
    params: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    cron: Mapped[str | None]
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(server_default=text("'Asia/Kolkata'"))
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    overlap_policy: Mapped[str] = mapped_column(server_default=text("'skip'"))
    misfire_policy: Mapped[str] = mapped_column(server_default=text("'run_once'"))
    last_fired_for: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class ViewRefresh(Base):
    """One refresh of one materialized view: how fresh the dashboards are, and how long it took."""

    __tablename__ = "view_refreshes"
    __table_args__ = (Index("ix_view_refreshes_view_started", "view_name", text("started_at DESC")),
                      Index("ix_view_refreshes_job_id", "job_id"))  # the jobs' deletes set it NULL (0022)

    id: Mapped[uuid.UUID] = uuid_pk()
    view_name: Mapped[str]
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    concurrent: Mapped[bool]
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int] = mapped_column(Integer)


class RetentionPolicy(Base):
    """How long finished rows of a table (for `jobs`, of a kind and outcome) are kept, and why
    (migration 0022, docs/retention.md). `keep_for` NULL keeps them for ever; rows no policy covers
    are kept. The audit log can never be named."""

    __tablename__ = "retention_policies"
    __table_args__ = (
        CheckConstraint("table_name <> 'audit_log'", name="never_audit_log"),
        CheckConstraint("table_name IN ('jobs', 'view_refreshes')", name="known_table"),
        CheckConstraint("status IN ('succeeded', 'failed', 'cancelled', '*')", name="status"),
        CheckConstraint(r"kind ~ '^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_]+)$'", name="kind"),
        CheckConstraint("table_name = 'jobs' OR (kind = '*' AND status = '*')", name="kind_of_jobs_only"),
        CheckConstraint("keep_for IS NULL OR keep_for >= interval '1 day'", name="keep_for"),
        CheckConstraint("length(btrim(reason)) > 0", name="reason"),
        UniqueConstraint("table_name", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(always=True), primary_key=True)
    table_name: Mapped[str]
    kind: Mapped[str] = mapped_column(server_default=text("'*'"))
    status: Mapped[str] = mapped_column(server_default=text("'*'"))
    keep_for: Mapped[dt.timedelta | None]
    reason: Mapped[str]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
