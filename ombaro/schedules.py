"""Schedules: periodic commands kept as rows of `schedules` (seeded by migrations). A firing is a
command whose idempotency key is the schedule's name and the scheduled time, so however many
schedulers fire it, one job results."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.models.jobs import Job, Schedule

log = logging.getLogger(__name__)

SCHEDULER_SCOPE = "scheduler"
INTERVAL_ANCHOR = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # interval firings align across processes


class ScheduleError(Exception):
    """An operator's change to a schedule that cannot be made."""


class ScheduleNotFound(ScheduleError):
    pass


class InvalidTrigger(ScheduleError):
    """422: the cron expression or interval does not parse."""


class ScheduleBusy(ScheduleError):
    """409: run now refused because the previous run is still going and overlap is not allowed."""


@dataclass(frozen=True)
class Firing:
    schedule: str
    scheduled_for: dt.datetime
    outcome: str  # 'submitted', 'duplicate' (another scheduler got there first), 'skipped-overlap'
    job_id: str | None = None


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def crontab_days(field: str) -> str:
    """APScheduler 3 numbers weekdays from Monday=0, crontab from Sunday=0: `0 2 * * 1` must mean
    Monday. Numbers become names (steps after '/' stay numbers) so both read the same."""
    def convert(part: str) -> str:
        base, slash, step = part.partition("/")
        return re.sub(r"\d+", lambda m: _CRON_DAYS[int(m.group())], base) + slash + step

    return ",".join(convert(part) for part in field.split(","))


def trigger_for(schedule: Schedule) -> BaseTrigger:
    """A new trigger for the schedule (the scheduler's own, one per job it adds)."""
    return _build_trigger(schedule.cron, schedule.interval_seconds, schedule.timezone)


def _build_trigger(cron: str | None, interval_seconds: int | None, timezone: str) -> BaseTrigger:
    if cron:
        minute, hour, day, month, day_of_week = cron.split()
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_days(day_of_week),
                           timezone=timezone)
    assert interval_seconds is not None
    return IntervalTrigger(seconds=interval_seconds, start_date=INTERVAL_ANCHOR, timezone=dt.UTC)


# Building a CronTrigger parses its five fields (~0.1 ms); the schedules listing asks every schedule's
# next firing on every read. A trigger only answers `get_next_fire_time` from its arguments (it keeps
# no state between calls), so one per trigger definition serves every read; bounded, as operators
# edit triggers.
_shared_trigger = functools.lru_cache(maxsize=256)(_build_trigger)


def shared_trigger(schedule: Schedule) -> BaseTrigger:
    """The schedule's trigger for reading fire times only, shared by every read of the same
    cron (or interval) and time zone; never handed to a scheduler."""
    return _shared_trigger(schedule.cron, schedule.interval_seconds, schedule.timezone)


def latest_fire_time(schedule: Schedule, *, after: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The last time at or before `now` and after `after` that the schedule was due, if any."""
    if schedule.interval_seconds:
        step = dt.timedelta(seconds=schedule.interval_seconds)
        due = INTERVAL_ANCHOR + step * ((now - INTERVAL_ANCHOR) // step)
        return due if due > after else None
    trigger = shared_trigger(schedule)
    last: dt.datetime | None = None
    candidate = trigger.get_next_fire_time(None, after + dt.timedelta(microseconds=1))
    while candidate is not None and candidate <= now:
        last = candidate
        candidate = trigger.get_next_fire_time(last, last + dt.timedelta(microseconds=1))
    return last


def next_fire_time(schedule: Schedule, now: dt.datetime | None = None) -> dt.datetime | None:
    """When an enabled schedule fires next (None when disabled)."""
    if not schedule.enabled:
        return None
    now = now or dt.datetime.now(dt.UTC)
    fires_at: dt.datetime | None = shared_trigger(schedule).get_next_fire_time(None, now)
    return fires_at


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


# ---- operators' changes (console, API, CLI) -------------------------------------------------------


def list_schedules(session: Session) -> list[Schedule]:
    return list(session.scalars(select(Schedule).order_by(Schedule.name)))


def get_schedule(session: Session, ref: str | uuid.UUID, *, lock: bool = False) -> Schedule:
    """A schedule by id or by name."""
    try:
        condition = Schedule.id == uuid.UUID(str(ref))
    except ValueError:
        condition = Schedule.name == str(ref)
    query = select(Schedule).where(condition)
    schedule = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if schedule is None:
        raise ScheduleNotFound(f"no schedule {ref}")
    return schedule


def set_enabled(session: Session, ref: str | uuid.UUID, enabled: bool) -> Schedule:
    """Enabling checks the schedule's kind and params against the command registry (UnknownCommand,
    InvalidParams): a schedule that could not fire is not enabled."""
    schedule = get_schedule(session, ref, lock=True)
    if enabled:
        commands.validate_params(schedule.kind, schedule.params or {})
    schedule.enabled = enabled
    session.flush()
    return schedule


def set_trigger(session: Session, ref: str | uuid.UUID, *, cron: str | None = None,
                interval_seconds: int | None = None, timezone: str | None = None) -> Schedule:
    """Replace the trigger (a crontab line or an interval); the scheduler picks it up at its next
    reload. Refused, changing nothing, when it does not parse."""
    if (cron is None) == (interval_seconds is None):
        raise InvalidTrigger("give either a cron expression or an interval, not both")
    schedule = get_schedule(session, ref, lock=True)
    candidate = Schedule(name=schedule.name, kind=schedule.kind, cron=cron, interval_seconds=interval_seconds,
                         timezone=timezone or schedule.timezone, enabled=True)
    validate_trigger(candidate)
    schedule.cron, schedule.interval_seconds, schedule.timezone = cron, interval_seconds, candidate.timezone
    session.flush()
    return schedule


def set_params(session: Session, ref: str | uuid.UUID, params: dict[str, Any]) -> Schedule:
    """Replace the params each firing submits, as the command registry loads them; refused
    (InvalidParams, with an error per field), changing nothing, when the kind's schema refuses them."""
    schedule = get_schedule(session, ref, lock=True)
    schedule.params = commands.validate_params(schedule.kind, params)
    session.flush()
    return schedule


def validate_trigger(schedule: Schedule) -> None:
    if schedule.cron is not None and len(schedule.cron.split()) != 5:
        raise InvalidTrigger(f"{schedule.cron!r} is not a crontab line: five fields, minute hour day month weekday")
    if schedule.interval_seconds is not None and schedule.interval_seconds < 1:
        raise InvalidTrigger("the interval must be at least one second")
    try:
        trigger_for(schedule)
    except (ValueError, KeyError, LookupError) as exc:  # APScheduler's and zoneinfo's parse errors
        raise InvalidTrigger(f"{schedule.cron or schedule.interval_seconds!r} does not parse: {exc}") from exc


def run_now(session: Session, ref: str | uuid.UUID, *, enqueue: commands.Enqueue,
            requested_by: uuid.UUID | None = None, now: dt.datetime | None = None) -> Job:
    """Fire a schedule outside its times (an operator's "run now"); its overlap policy still holds."""
    schedule = get_schedule(session, ref, lock=True)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    blocking = ("queued", "running") if schedule.overlap_policy == "skip" else ("queued",)
    if session.scalar(select(exists().where(Job.schedule_id == schedule.id, Job.status.in_(blocking)))):
        raise ScheduleBusy(f"{schedule.name}'s previous run is still queued or running")
    submitted = commands.submit(session, schedule.kind, dict(schedule.params), enqueue=enqueue,
                                key=f"{schedule.name}@manual@{now.isoformat()}", scope=SCHEDULER_SCOPE,
                                requested_by=requested_by, schedule_id=schedule.id, scheduled_for=now)
    return submitted.job
