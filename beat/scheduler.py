"""APScheduler in one long-running process, driven by the `schedules` table.

Only the holder of a PostgreSQL advisory lock acts; a second process waits on the lock and takes
over when the first one's connection dies. The lock is a courtesy, not the guard: two leaders can
overlap until a dead connection is noticed, and a firing's idempotency key (schedule name and
scheduled time, unique in `jobs`) makes their firings one job.

Misfires: APScheduler coalesces firings missed while the process runs (a late firing runs once,
within a 60 s grace). A new leader (a start, or a standby taking over) first fires every schedule's
latest time within that grace that nobody fired: a slot that fell between the old leader's death and
the takeover is late, not missed, whatever the misfire policy (the firing key makes a double
impossible). Beyond the grace, a schedule whose misfire policy is `run_once` fires once for the
latest time it missed; one whose policy is `skip` waits for its next time.

Observability (docs/observability.md): every process, leader or standby, writes a heartbeat to
Redis every few seconds; each firing gets a request id of its own, carried by its job into the
worker's logs; firings and misfires are counted by schedule. A misfire is a scheduled time that
did not fire on time: `missed` (APScheduler dropped it, later than the grace), `caught_up` (fired
after downtime, policy run_once) or `skipped` (missed during downtime and not fired, policy skip).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
import uuid

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, Engine, text

from ombaro import commands, logs, metrics, schedules
from ombaro.db import session_factory
from ombaro.models.jobs import Schedule
from ombaro.schedules import latest_fire_time, trigger_for

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 7_201_120_001  # pg_advisory_lock key of the scheduler leader
GRACE = dt.timedelta(seconds=60)


def signature(schedule: Schedule) -> str:
    fields = [schedule.kind, schedule.cron, schedule.interval_seconds, schedule.timezone, schedule.params,
              schedule.overlap_policy]
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


class Beat:
    def __init__(self, engine: Engine, enqueue: commands.Enqueue, *, leader_lock: bool = True,
                 reload_seconds: float = 15, relay_interval: float = 10, relay_stale_seconds: int = 300,
                 lock_poll_seconds: float = 2, heartbeat_seconds: float = 5) -> None:
        self.engine, self.enqueue = engine, enqueue
        self.sessions = session_factory(engine)
        self.leader_lock, self.reload_seconds = leader_lock, reload_seconds
        self.relay_interval, self.relay_stale_seconds = relay_interval, relay_stale_seconds
        self.lock_poll_seconds = lock_poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.role = "standby"
        self._names: dict[str, str] = {}  # APScheduler job id -> schedule name
        self._signatures: dict[str, str] = {}
        self._refused: dict[str, str] = {}  # schedule name -> signature of the row the registry refused

    # -- leadership ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        beating = threading.Thread(target=self._heartbeat, args=(stop,), name="scheduler-heartbeat", daemon=True)
        beating.start()
        try:
            self._run(stop)
        finally:
            self.role = "stopped"

    def _heartbeat(self, stop: threading.Event) -> None:
        while True:
            metrics.scheduler_heartbeat(self.instance, self.role)
            if stop.wait(self.heartbeat_seconds):
                return

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            lock = self._acquire(stop) if self.leader_lock else None
            if stop.is_set():
                break
            try:
                log.info("scheduler leading (leader lock %s)", "held" if lock else "disabled")
                self.role = "leader"
                metrics.scheduler_heartbeat(self.instance, self.role)
                self._lead(stop, lock)
            finally:
                self.role = "standby"
                if lock is not None:
                    lock.close()  # closing the session releases the advisory lock

    def _acquire(self, stop: threading.Event) -> Connection | None:
        waiting_logged = False
        while not stop.is_set():
            conn = None
            try:
                conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}).scalar_one():
                    return conn
                conn.close()
                if not waiting_logged:
                    log.info("another scheduler leads; waiting to take over")
                    waiting_logged = True
            except Exception as exc:
                log.warning("scheduler cannot reach the database: %s", exc)
                if conn is not None:
                    conn.invalidate()
            stop.wait(self.lock_poll_seconds)
        return None

    def _lead(self, stop: threading.Event, lock: Connection | None) -> None:
        scheduler = BackgroundScheduler(timezone=dt.UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": int(GRACE.total_seconds())})
        scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        scheduler.start()
        self._signatures.clear()
        try:
            # APScheduler plans each schedule from the moment it is added; catching up afterwards
            # covers every slot up to then, so none falls between the two.
            self.sync(scheduler)
            self.catch_up()
            scheduler.add_job(self.relay, "interval", seconds=self.relay_interval, id="relay",
                              next_run_time=dt.datetime.now(dt.UTC))
            while not stop.wait(self.reload_seconds):
                if lock is not None and not self._still_leader(lock):
                    return
                self.sync(scheduler)
        finally:
            scheduler.shutdown(wait=True)

    def _missed(self, event: JobExecutionEvent) -> None:
        name = self._names.get(event.job_id)
        if name is not None:
            log.warning("schedule %s missed its firing for %s (later than the grace)", name, event.scheduled_run_time)
            metrics.inc(metrics.SCHEDULER_MISFIRES, name, "missed")

    def _still_leader(self, lock: Connection) -> bool:
        try:
            lock.execute(text("SELECT 1"))
            return True
        except Exception as exc:
            log.error("lost the leader lock's connection (%s); stepping down", exc)
            lock.invalidate()
            return False

    # -- schedules -------------------------------------------------------------------------------

    def sync(self, scheduler: BackgroundScheduler) -> None:
        """Make APScheduler's jobs match the enabled rows (added, edited, disabled, deleted). A row
        whose kind or params the command registry refuses is left out, said once per change."""
        with self.sessions() as session:
            rows = {str(s.id): s for s in schedules.enabled_schedules(session) if self._valid(s)}
        for job_id in set(self._signatures) - set(rows):
            scheduler.remove_job(job_id)
            del self._signatures[job_id]
        for job_id, schedule in rows.items():
            sig = signature(schedule)
            if self._signatures.get(job_id) == sig:
                continue
            scheduler.add_job(self.fire, trigger_for(schedule), args=[schedule.id], id=job_id,
                              name=schedule.name, replace_existing=True)
            self._names[job_id] = schedule.name
            self._signatures[job_id] = sig

    def fire(self, schedule_id: uuid.UUID, now: dt.datetime | None = None) -> schedules.Firing | None:
        with logs.context(request=logs.new_request_id()):  # a firing has no HTTP request: one id each
            return self._fire(schedule_id, now)

    def _fire(self, schedule_id: uuid.UUID, now: dt.datetime | None = None) -> schedules.Firing | None:
        now = now or dt.datetime.now(dt.UTC)
        try:
            with self.sessions() as session, session.begin():
                schedule = session.get(Schedule, schedule_id)
                if schedule is None or not schedule.enabled:
                    return None
                due = latest_fire_time(schedule, after=now - GRACE, now=now)
                if due is None:  # called later than the grace after its time: nothing fires
                    log.warning("schedule %s ran later than the grace; nothing fired", schedule.name)
                    metrics.inc(metrics.SCHEDULER_MISFIRES, schedule.name, "missed")
                    return None
                firing = schedules.fire(session, schedule, due, enqueue=self.enqueue)
            log.info("schedule %s for %s: %s", firing.schedule, firing.scheduled_for, firing.outcome)
            metrics.inc(metrics.SCHEDULER_FIRINGS, firing.schedule, firing.outcome)
            return firing
        except Exception:
            log.exception("firing schedule %s failed", schedule_id)
            return None

    def catch_up(self, now: dt.datetime | None = None) -> list[schedules.Firing]:
        """On taking the lead: fire the latest time within the grace that nobody fired (late, not
        missed: any policy), else, after longer downtime, once for the latest missed time the
        schedules whose misfire policy is run_once."""
        now = now or dt.datetime.now(dt.UTC)
        fired: list[tuple[schedules.Firing, bool]] = []  # (firing, beyond the grace)
        skipped = []
        with self.sessions() as session, session.begin():
            for schedule in schedules.enabled_schedules(session):
                if not self._valid(schedule):
                    continue
                last = schedule.last_fired_for
                # A schedule never fired is due from its creation: a slot before it existed is not late.
                late = latest_fire_time(schedule, after=max(last or schedule.created_at, now - GRACE), now=now)
                if late is not None:
                    with logs.context(request=logs.new_request_id()):
                        fired.append((schedules.fire(session, schedule, late, enqueue=self.enqueue), False))
                    continue
                if last is None:
                    continue
                missed = latest_fire_time(schedule, after=max(last, now - dt.timedelta(days=7)), now=now)
                if missed is None:
                    continue
                if schedule.misfire_policy != "run_once":
                    skipped.append(schedule.name)
                    continue
                with logs.context(request=logs.new_request_id()):
                    fired.append((schedules.fire(session, schedule, missed, enqueue=self.enqueue), True))
        for name in skipped:
            log.info("schedule %s missed a time during downtime; misfire policy skip: not fired", name)
            metrics.inc(metrics.SCHEDULER_MISFIRES, name, "skipped")
        for firing, beyond_grace in fired:
            log.info("caught up schedule %s for %s: %s", firing.schedule, firing.scheduled_for, firing.outcome)
            metrics.inc(metrics.SCHEDULER_FIRINGS, firing.schedule, firing.outcome)
            # A duplicate means another scheduler fired it in time.
            if firing.outcome == "submitted" and beyond_grace:
                metrics.inc(metrics.SCHEDULER_MISFIRES, firing.schedule, "caught_up")
        return [firing for firing, _ in fired]

    def _valid(self, schedule: Schedule) -> bool:
        """Whether the registry accepts the schedule's kind and params (the API refuses to save
        others; a row written around it is skipped here rather than failing every firing)."""
        try:
            commands.validate_params(schedule.kind, schedule.params or {})
        except commands.CommandError as exc:
            sig = signature(schedule)
            if self._refused.get(schedule.name) != sig:
                log.error("schedule %s refused, not fired: %s", schedule.name, exc)
                self._refused[schedule.name] = sig
            return False
        self._refused.pop(schedule.name, None)
        return True

    def relay(self) -> int:
        try:
            with self.sessions() as session, session.begin():
                sent = commands.relay(session, self.enqueue, stale_seconds=self.relay_stale_seconds)
            if sent:
                log.info("relay handed %s job(s) to the broker", sent)
            return sent
        except Exception:
            log.exception("relay failed")
            return 0
