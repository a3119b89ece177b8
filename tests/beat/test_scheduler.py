"""The scheduler: one job per firing however many schedulers run, leader takeover, misfires, overlap."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from beat.scheduler import Beat
from ombaro import metrics, schedules
from ombaro.models.jobs import Schedule
from ombaro.schedules import crontab_days, latest_fire_time
from tests.helpers import count_jobs, wait_until
from tests.services import Process


def no_broker(job_id: uuid.UUID, kind: str) -> None:
    """Firings in these tests need not reach a worker."""


def add_schedule(engine: Engine, name: str, **values: object) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        session.execute(text("UPDATE schedules SET enabled = false"))  # only this one fires
        schedule = Schedule(name=name, kind=values.pop("kind", "system.ping"), params={}, **values)
        session.add(schedule)
        session.flush()
        return schedule.id


def start_beat(spawn: Callable[..., Process], name: str, *flags: str) -> Process:
    return spawn(name, sys.executable, "-m", "beat", "--reload-seconds", "1", *flags)


def firings(redis_url: str, schedule: str, outcome: str) -> float:
    """The scheduler's own count (ombaro_scheduler_firings_total) of one schedule's firings."""
    field = json.dumps([schedule, outcome], separators=(",", ":"))
    return float(redis.Redis.from_url(redis_url).hget(metrics.SCHEDULER_FIRINGS.key, field) or 0)


def test_two_schedulers_without_the_lock_make_one_job_per_firing(
    engine: Engine, redis_url: str, spawn: Callable[..., Process], worker: Process,
) -> None:
    name = f"test.every-second-{uuid.uuid4().hex[:6]}"
    schedule_id = add_schedule(engine, name, interval_seconds=1, overlap_policy="queue_one")
    beats = [start_beat(spawn, f"beat{n}", "--no-leader-lock") for n in range(2)]
    for beat in beats:
        beat.wait_for("scheduler leading")
    # At least four firings (seconds) while both run, and both really fired: the second found the
    # first one's job (a duplicate); on a loaded machine this may take longer than 4 s.
    wait_until(lambda: count_jobs(engine, "schedule_id = :id", id=schedule_id) >= 4
               and firings(redis_url, name, "duplicate") >= 1, timeout=60, what="four firings and a duplicate")
    for beat in beats:
        beat.stop()

    with engine.connect() as conn:
        per_firing = conn.execute(text("SELECT scheduled_for, count(*) FROM jobs WHERE schedule_id = :id "
                                       "GROUP BY scheduled_for"), {"id": schedule_id}).all()
    assert len(per_firing) >= 4, per_firing
    assert {count for _, count in per_firing} == {1}
    assert firings(redis_url, name, "submitted") == len(per_firing)


def test_standby_scheduler_takes_over_when_the_leader_dies(
    engine: Engine, spawn: Callable[..., Process], clean_jobs: None,
) -> None:
    schedule_id = add_schedule(engine, "test.takeover", interval_seconds=1, overlap_policy="queue_one")
    first = start_beat(spawn, "leader")
    first.wait_for("scheduler leading")
    second = start_beat(spawn, "standby")
    second.wait_for("another scheduler leads; waiting")
    assert "scheduler leading" not in second.output()

    first.stop(signal.SIGKILL)  # its database session dies with it, and the advisory lock with that
    with engine.connect() as conn:  # the database's clock, the one created_at is stamped with
        killed_at = conn.execute(text("SELECT now()")).scalar_one()
    second.wait_for("scheduler leading", timeout=20)
    # The standby fires from then on (the schedule's job is queued: queue_one keeps one waiting).
    with Session(engine) as session, session.begin():
        session.execute(text("UPDATE jobs SET status = 'succeeded' WHERE schedule_id = :id"), {"id": schedule_id})
    wait_until(lambda: count_jobs(engine, "schedule_id = :id AND created_at > :t", id=schedule_id, t=killed_at),
               timeout=20, what="a firing by the new leader")


def test_run_once_misfire_policy_fires_once_for_the_latest_missed_time(engine: Engine, clean_jobs: None) -> None:
    now = dt.datetime(2026, 11, 26, 10, 7, 30, tzinfo=dt.UTC)
    add_schedule(engine, "test.catch-up", cron="*/5 * * * *", timezone="UTC",
                 last_fired_for=now - dt.timedelta(hours=2))
    beat = Beat(engine, no_broker, leader_lock=False)

    fired = beat.catch_up(now=now)
    assert [(f.outcome, f.scheduled_for) for f in fired] == [("submitted", dt.datetime(2026, 11, 26, 10, 5,
                                                                                       tzinfo=dt.UTC))]
    assert beat.catch_up(now=now) == []  # last_fired_for moved: nothing missed any more
    assert count_jobs(engine, "kind = 'system.ping'") == 1


def test_skip_misfire_policy_does_not_catch_up(engine: Engine, clean_jobs: None) -> None:
    now = dt.datetime(2026, 11, 26, 10, 7, 30, tzinfo=dt.UTC)
    add_schedule(engine, "test.no-catch-up", cron="*/5 * * * *", timezone="UTC", misfire_policy="skip",
                 last_fired_for=now - dt.timedelta(hours=2))
    assert Beat(engine, no_broker, leader_lock=False).catch_up(now=now) == []
    assert count_jobs(engine) == 0


@pytest.mark.parametrize("policy", ["skip", "run_once"])
def test_a_slot_inside_the_grace_is_fired_by_the_new_leader_whatever_its_misfire_policy(
        engine: Engine, clean_jobs: None, policy: str) -> None:
    # The leader died 0.5 s before 10:08; the standby takes the lead 0.3 s after it.
    slot = dt.datetime(2026, 11, 26, 10, 8, tzinfo=dt.UTC)
    add_schedule(engine, f"test.failover-{policy}", cron="* * * * *", timezone="UTC", misfire_policy=policy,
                 last_fired_for=slot - dt.timedelta(minutes=1))
    beat = Beat(engine, no_broker, leader_lock=False)
    fired = beat.catch_up(now=slot + dt.timedelta(seconds=0.3))
    assert [(f.outcome, f.scheduled_for) for f in fired] == [("submitted", slot)]
    assert beat.catch_up(now=slot + dt.timedelta(seconds=2)) == []
    assert count_jobs(engine, "scheduled_for = :t", t=slot) == count_jobs(engine) == 1


def test_a_slot_the_old_leader_fired_is_not_fired_again_and_one_beyond_the_grace_follows_the_policy(
        engine: Engine, clean_jobs: None) -> None:
    slot = dt.datetime(2026, 11, 26, 10, 10, tzinfo=dt.UTC)
    fired_in_time = add_schedule(engine, "test.fired", cron="*/5 * * * *", timezone="UTC", misfire_policy="skip",
                                 last_fired_for=slot)
    beat = Beat(engine, no_broker, leader_lock=False)
    assert beat.catch_up(now=slot + dt.timedelta(seconds=0.3)) == []
    with engine.begin() as conn:  # the takeover came later than the grace: downtime, policy skip
        conn.execute(text("UPDATE schedules SET last_fired_for = :t WHERE id = :id"),
                     {"t": slot - dt.timedelta(minutes=5), "id": fired_in_time})
    assert beat.catch_up(now=slot + dt.timedelta(seconds=61)) == []
    assert count_jobs(engine) == 0


def test_a_slot_inside_the_grace_of_a_schedule_never_fired_is_fired(engine: Engine, clean_jobs: None) -> None:
    slot = dt.datetime(2026, 11, 26, 10, 8, tzinfo=dt.UTC)
    add_schedule(engine, "test.first-ever", cron="* * * * *", timezone="UTC", misfire_policy="skip",
                 created_at=slot - dt.timedelta(minutes=3))
    fired = Beat(engine, no_broker, leader_lock=False).catch_up(now=slot + dt.timedelta(seconds=1))
    assert [(f.outcome, f.scheduled_for) for f in fired] == [("submitted", slot)]


def test_a_slot_before_a_schedule_existed_is_not_fired(engine: Engine, clean_jobs: None) -> None:
    # Created 0.4 s after 10:08; the leader catching up at 10:08:01 must not fire 10:08 for it.
    slot = dt.datetime(2026, 11, 26, 10, 8, tzinfo=dt.UTC)
    add_schedule(engine, "test.created-after-slot", cron="* * * * *", timezone="UTC",
                 created_at=slot + dt.timedelta(seconds=0.4))
    assert Beat(engine, no_broker, leader_lock=False).catch_up(now=slot + dt.timedelta(seconds=1)) == []
    assert count_jobs(engine) == 0


def test_a_firing_fired_twice_is_one_job(engine: Engine, clean_jobs: None) -> None:
    schedule_id = add_schedule(engine, "test.twice", cron="0 2 * * 1", timezone="Asia/Kolkata")
    monday_2am_ist = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    outcomes = []
    for _ in range(2):
        with Session(engine) as session, session.begin():
            schedule = session.get_one(Schedule, schedule_id)
            outcomes.append(schedules.fire(session, schedule, monday_2am_ist, enqueue=no_broker).outcome)
    assert outcomes == ["submitted", "duplicate"]
    assert count_jobs(engine, "scheduled_for = :t", t=monday_2am_ist) == 1


@pytest.mark.parametrize(("policy", "previous_status", "expected"), [
    ("skip", "queued", "skipped-overlap"),
    ("skip", "running", "skipped-overlap"),
    ("queue_one", "running", "submitted"),
    ("queue_one", "queued", "skipped-overlap"),
    ("skip", "succeeded", "submitted"),
])
def test_overlap_policy(engine: Engine, clean_jobs: None, policy: str, previous_status: str, expected: str) -> None:
    schedule_id = add_schedule(engine, f"test.overlap-{policy}", interval_seconds=60, overlap_policy=policy)
    first, second = (dt.datetime(2026, 11, 26, 10, m, tzinfo=dt.UTC) for m in (0, 1))
    with Session(engine) as session, session.begin():
        schedule = session.get_one(Schedule, schedule_id)
        assert schedules.fire(session, schedule, first, enqueue=no_broker).outcome == "submitted"
        session.execute(text("UPDATE jobs SET status = :s WHERE schedule_id = :id"),
                        {"s": previous_status, "id": schedule_id})
        assert schedules.fire(session, schedule, second, enqueue=no_broker).outcome == expected


def test_latest_fire_time_follows_the_schedules_zone() -> None:
    schedule = Schedule(name="weekly", kind="x", cron="0 2 * * 1", timezone="Asia/Kolkata")
    now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)  # a Wednesday
    last = latest_fire_time(schedule, after=now - dt.timedelta(days=8), now=now)
    assert last == dt.datetime(2026, 11, 22, 20, 30, tzinfo=dt.UTC)  # Monday 02:00 IST, as crontab means
    interval = Schedule(name="often", kind="x", interval_seconds=300)
    assert latest_fire_time(interval, after=now - dt.timedelta(hours=1), now=now + dt.timedelta(seconds=299)) == now


def test_next_fire_times_from_the_shared_trigger_are_those_of_a_new_one() -> None:
    weekly = Schedule(name="weekly", kind="x", cron="0 2 * * 1", timezone="Asia/Kolkata", enabled=True)
    edited = Schedule(name="weekly", kind="x", cron="0 3 * * 1", timezone="Asia/Kolkata", enabled=True)
    elsewhere = Schedule(name="weekly", kind="x", cron="0 2 * * 1", timezone="Europe/London", enabled=True)
    assert schedules.shared_trigger(weekly) is schedules.shared_trigger(weekly)  # built once
    assert schedules.shared_trigger(weekly) is not schedules.trigger_for(weekly)  # the scheduler's are its own
    now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
    for schedule in (weekly, edited, elsewhere, weekly):  # a changed cron or zone is a trigger of its own
        for step in range(0, 24 * 14, 5):
            at = now + dt.timedelta(hours=step)
            fresh = schedules.trigger_for(schedule)
            assert schedules.next_fire_time(schedule, at) == fresh.get_next_fire_time(None, at)
    assert schedules.next_fire_time(weekly, now) == dt.datetime(2026, 11, 29, 20, 30, tzinfo=dt.UTC)
    assert schedules.next_fire_time(edited, now) == dt.datetime(2026, 11, 29, 21, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(("field", "expected"), [
    ("1", "mon"), ("0", "sun"), ("7", "sun"), ("1-5", "mon-fri"), ("*", "*"), ("*/2", "*/2"), ("1,3,5", "mon,wed,fri"),
])
def test_crontab_weekdays_are_read_as_crontab_means_them(field: str, expected: str) -> None:
    assert crontab_days(field) == expected


def add_refused_schedules(engine: Engine, last_fired_for: dt.datetime) -> None:
    """Rows the API would not save (written around it): a kind nobody declares, params its kind refuses."""
    with engine.begin() as conn:
        for name, kind, params in (("test.unknown-kind", "dispatch.match", "{}"),
                                   ("test.bad-params", "reports.refresh", '{"views": ["gone"]}')):
            conn.execute(text(
                "INSERT INTO schedules (name, kind, params, cron, timezone, last_fired_for) "
                "VALUES (:name, :kind, CAST(:params AS jsonb), '*/5 * * * *', 'UTC', :last)"),
                {"name": name, "kind": kind, "params": params, "last": last_fired_for})


def test_a_schedule_the_registry_refuses_is_left_out_and_the_others_still_fire(
        engine: Engine, clean_jobs: None, caplog: pytest.LogCaptureFixture) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    now = dt.datetime(2026, 11, 26, 10, 7, 30, tzinfo=dt.UTC)
    add_schedule(engine, "test.good", cron="*/5 * * * *", timezone="UTC", last_fired_for=now - dt.timedelta(hours=2))
    add_refused_schedules(engine, now - dt.timedelta(hours=2))
    beat = Beat(engine, no_broker, leader_lock=False)

    fired = beat.catch_up(now=now)
    assert [(f.schedule, f.outcome) for f in fired] == [("test.good", "submitted")]
    assert count_jobs(engine) == 1
    scheduler = BackgroundScheduler(timezone="UTC")
    beat.sync(scheduler)
    beat.sync(scheduler)  # a refusal is said once per change of the row, not at every reload
    assert sorted(job.name for job in scheduler.get_jobs()) == ["test.good"]
    refusals = [r.getMessage() for r in caplog.records if "refused, not fired" in r.getMessage()]
    assert len(refusals) == 2
    assert any("test.unknown-kind" in m and "dispatch.match" in m for m in refusals)
    assert any("test.bad-params" in m and "views" in m for m in refusals)


def test_schedule_params_are_checked_when_saved_and_when_enabled(
        engine: Engine, clean_jobs: None, client: Any) -> None:
    schedule_id = add_schedule(engine, "test.params", interval_seconds=3600)
    path = f"/api/v1/schedules/{schedule_id}"

    refused = client.patch(path, json={"params": {"steps": 0, "colour": "red"}})
    assert refused.status_code == 422 and refused.content_type == "application/problem+json", refused.json
    assert {"steps", "colour"} <= set(refused.json["errors"])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT params FROM schedules WHERE id = :id"), {"id": schedule_id}).scalar_one() == {}

    saved = client.patch(path, json={"params": {"steps": 3, "echo": "hi"}})
    assert saved.status_code == 200, saved.json
    assert saved.json["params"] == {"steps": 3, "echo": "hi"} and saved.json["interval_seconds"] == 3600

    with engine.begin() as conn:  # a row changed around the API, then enabled through it
        conn.execute(text("UPDATE schedules SET enabled = false, params = '{\"fail\": \"often\"}' WHERE id = :id"),
                     {"id": schedule_id})
    enabled = client.post(f"{path}/enable")
    assert enabled.status_code == 422 and "fail" in enabled.json["errors"], enabled.json
    with engine.connect() as conn:
        assert conn.execute(text("SELECT enabled FROM schedules WHERE id = :id"), {"id": schedule_id}).scalar_one() \
            is False
