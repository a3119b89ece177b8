"""Schedules: periodic commands kept as rows of `schedules` (seeded by migrations). A firing is a
command whose idempotency key is the schedule's name and the scheduled time, so however many
schedulers fire it, one job results."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.models.jobs import Job, Schedule

log = logging.getLogger(__name__)

SCHEDULER_SCOPE = "scheduler"


@dataclass(frozen=True)
class Firing:
    schedule: str
    scheduled_for: dt.datetime
    outcome: str  # 'submitted', 'duplicate' (another scheduler got there first), 'skipped-overlap'
    job_id: str | None = None


def firing_key(name: str, scheduled_for: dt.datetime) -> str:
    return f"{name}@{scheduled_for.astimezone(dt.UTC).isoformat()}"


def enabled_schedules(session: Session) -> list[Schedule]:
    return list(session.scalars(select(Schedule).where(Schedule.enabled).order_by(Schedule.name)))


def fire(session: Session, schedule: Schedule, scheduled_for: dt.datetime, *,
         enqueue: commands.Enqueue) -> Firing:
    """Submit the command for one firing, following the schedule's overlap policy."""
    scheduled_for = scheduled_for.astimezone(dt.UTC)
    key = firing_key(schedule.name, scheduled_for)
    already = session.scalar(select(Job.id).where(
        Job.kind == schedule.kind, Job.idempotency_scope == SCHEDULER_SCOPE, Job.idempotency_key == key))
    if already is not None:
        return Firing(schedule.name, scheduled_for, "duplicate", str(already))
    blocking = ("queued", "running") if schedule.overlap_policy == "skip" else ("queued",)
    if session.scalar(select(exists().where(Job.schedule_id == schedule.id, Job.status.in_(blocking)))):
        log.info("schedule %s at %s skipped: its previous run is still %s", schedule.name, scheduled_for,
                 " or ".join(blocking))
        _mark_fired(session, schedule, scheduled_for)
        return Firing(schedule.name, scheduled_for, "skipped-overlap")
    submitted = commands.submit(session, schedule.kind, dict(schedule.params), enqueue=enqueue, key=key,
                                scope=SCHEDULER_SCOPE, schedule_id=schedule.id, scheduled_for=scheduled_for)
    _mark_fired(session, schedule, scheduled_for)
    outcome = "submitted" if submitted.created else "duplicate"
    return Firing(schedule.name, scheduled_for, outcome, str(submitted.job.id))


def _mark_fired(session: Session, schedule: Schedule, scheduled_for: dt.datetime) -> None:
    session.execute(
        update(Schedule)
        .where(Schedule.id == schedule.id)
        .where((Schedule.last_fired_for.is_(None)) | (Schedule.last_fired_for < scheduled_for))
        .values(last_fired_for=scheduled_for)
    )
