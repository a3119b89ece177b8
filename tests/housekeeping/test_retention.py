"""Retention as data (migration 0022) and the housekeeping command that enforces it: each policy's
boundary on the database's clock, money and pay jobs kept past the routine window, unfinished and
referenced jobs kept, kinds without a policy kept, bounded batches, re-runs, and who may run it.

The tests share a database of their own (the sweep reaches every row of `jobs`, and the shared
session database's `clean_jobs` deletes the seeded schedules); each starts from an empty job log."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ombaro import commands, housekeeping
from ombaro.config import load_settings
from tests.factories.accounts import client_for, make_account
from tests.helpers import job_row
from tests.services import Database

pytestmark = pytest.mark.db

MINUTE = "1 minute"


@pytest.fixture(scope="module")
def db(own_database: Callable[[], Database], service_env: dict[str, str]) -> Database:
    return own_database()


@pytest.fixture
def engine(db: Database) -> Iterator[Engine]:
    with db.engine.begin() as conn:
        conn.execute(text("TRUNCATE view_refreshes, webhook_events, jobs"))
    yield db.engine


def add_job(conn: Connection, kind: str, status: str, finished_ago: str | None, *, created_ago: str | None = None,
            job_id: uuid.UUID | None = None) -> uuid.UUID:
    """A job finished `finished_ago` (an interval, read on the database's clock) before now, created an
    hour before that unless said; `finished_ago` None: not finished."""
    created = created_ago or (f"{finished_ago}" if finished_ago else "1 hour")
    return conn.execute(text(
        "INSERT INTO jobs (id, kind, status, attempts, created_at, finished_at) VALUES "
        "(coalesce(CAST(:id AS uuid), gen_random_uuid()), :kind, :status, 1, "
        " now() - CAST(:created AS interval) - interval '1 hour', now() - CAST(:finished AS interval)) RETURNING id"),
        {"id": job_id, "kind": kind, "status": status, "created": created, "finished": finished_ago}).scalar_one()


def ages(days: int) -> tuple[str, str]:
    """Just inside and just outside a keep of `days` days."""
    return f"{days} days - {MINUTE}", f"{days} days + {MINUTE}"


def remaining(engine: Engine, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT id FROM jobs WHERE id = ANY(:ids)"), {"ids": ids}).scalars())


def enforce(engine: Engine, **kw: Any) -> dict[str, Any]:
    return housekeeping.enforce(engine, commands.registry(), **kw)


# --- the policies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "succeeded_days", "other_days"), [
    ("system.ping", 30, 180), ("reports.refresh", 30, 180), ("locations.prune", 30, 180),
    ("notifications.dispatch", 30, 180), ("dispatch.booking", 90, 180), ("campaigns.send_chunk", 90, 180),
])
def test_routine_jobs_expire_at_their_policys_boundary_by_outcome(
        engine: Engine, kind: str, succeeded_days: int, other_days: int) -> None:
    with engine.begin() as conn:
        young_ok, old_ok = (add_job(conn, kind, "succeeded", age) for age in ages(succeeded_days))
        # A failure is kept past the success window, until its own.
        failed_past_success = add_job(conn, kind, "failed", ages(succeeded_days)[1])
        young_failed, old_failed = (add_job(conn, kind, "failed", age) for age in ages(other_days))
        young_cancelled, old_cancelled = (add_job(conn, kind, "cancelled", age) for age in ages(other_days))
    result = enforce(engine)
    everything = [young_ok, old_ok, failed_past_success, young_failed, old_failed, young_cancelled, old_cancelled]
    assert remaining(engine, everything) == {young_ok, failed_past_success, young_failed, young_cancelled}
    assert result["deleted"] == 3 and result["complete"]
    assert {(k["kind"], k["status"], k["deleted"]) for k in result["by_kind"]} == {
        (kind, "succeeded", 1), (kind, "failed", 1), (kind, "cancelled", 1)}


@pytest.mark.parametrize("kind", ["settlements.run", "settlements.payout", "payroll.run", "payroll.compute_batch",
                                  "payments.webhook", "payments.refund"])
def test_money_and_pay_jobs_are_kept_the_statutory_nine_years_whatever_their_outcome(engine: Engine, kind: str) -> None:
    with engine.begin() as conn:
        past_routine = [add_job(conn, kind, status, "400 days") for status in ("succeeded", "failed", "cancelled")]
        inside = add_job(conn, kind, "succeeded", f"9 years - {MINUTE}")
        outside = add_job(conn, kind, "succeeded", "9 years 1 day")
    enforce(engine)
    assert remaining(engine, [*past_routine, inside, outside]) == {*past_routine, inside}
    with engine.connect() as conn:
        reasons = conn.execute(text("SELECT reason FROM retention_policies WHERE kind = :family"),
                               {"family": kind.split(".")[0] + ".*"}).scalars().all()
    assert reasons and all("s.44AA" in r and "6F(5)" in r and "s.128(5)" in r for r in reasons)


def test_queued_and_running_jobs_are_never_deleted_however_old(engine: Engine) -> None:
    with engine.begin() as conn:
        kept = [add_job(conn, "system.ping", status, None, created_ago="3 years") for status in ("queued", "running")]
        # A job retried after it failed is queued again, with its old finish time still set.
        kept.append(add_job(conn, "system.ping", "queued", "3 years"))
    assert enforce(engine)["deleted"] == 0
    assert remaining(engine, kept) == set(kept)


def test_a_kind_no_policy_covers_is_kept_and_reported(engine: Engine) -> None:
    with engine.begin() as conn:
        legacy = add_job(conn, "legacy.export", "succeeded", "5 years")
    result = enforce(engine)
    assert remaining(engine, [legacy]) == {legacy}
    assert "legacy.export" in result["kept_without_policy"]
    assert "system.ping" not in result["kept_without_policy"]


def test_the_most_specific_policy_wins_and_a_referenced_job_stays(engine: Engine) -> None:
    """A policy for one kind and outcome beats its family's; a webhook event still pointing at its
    job keeps the job whatever the policy says."""
    with engine.begin() as conn:
        policy = conn.execute(text(
            "INSERT INTO retention_policies (table_name, kind, status, keep_for, reason) "
            "VALUES ('jobs', 'payments.webhook', 'succeeded', '10 days', 'test') RETURNING id")).scalar_one()
        free, referenced = (add_job(conn, "payments.webhook", "succeeded", "11 days") for _ in range(2))
        failed = add_job(conn, "payments.webhook", "failed", "11 days")  # the family's 9 years
        conn.execute(text("INSERT INTO webhook_events (provider, event_id, event_type, payload, job_id) "
                          "VALUES ('razorpay', :e, 'payment.captured', '{}', :j)"),
                     {"e": f"evt_{uuid.uuid4().hex}", "j": referenced})
    try:
        result = enforce(engine)
        assert remaining(engine, [free, referenced, failed]) == {referenced, failed}
        assert [(p["policy_id"], p["deleted"]) for p in result["by_policy"] if p["deleted"]] == [(policy, 1)]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM retention_policies WHERE id = :id"), {"id": policy})


def test_a_view_refresh_keeps_its_row_without_the_job_and_the_latest_per_view_stays(engine: Engine) -> None:
    with engine.begin() as conn:
        job = add_job(conn, "reports.refresh", "succeeded", "31 days")
        for age in ("100 days", "95 days", "5 days"):
            conn.execute(text(
                "INSERT INTO view_refreshes (view_name, job_id, concurrent, started_at, finished_at, duration_ms, "
                "row_count) VALUES ('dashboard_stats', :j, true, now() - CAST(:a AS interval), "
                "now() - CAST(:a AS interval), 5, 1)"), {"j": job, "a": age})
        conn.execute(text(  # the only refresh of a view, long ago: still its latest
            "INSERT INTO view_refreshes (view_name, job_id, concurrent, started_at, finished_at, duration_ms, "
            "row_count) VALUES ('daily_booking_stats', NULL, true, now() - interval '1 year', now(), 5, 1)"))
    enforce(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT view_name, job_id FROM view_refreshes ORDER BY started_at")).all()
    assert remaining(engine, [job]) == set()
    assert rows == [("daily_booking_stats", None), ("dashboard_stats", None)]


def test_the_audit_log_and_unknown_tables_cannot_be_given_a_policy(engine: Engine) -> None:
    for table, kind in (("audit_log", "*"), ("webhook_events", "*"), ("view_refreshes", "reports.refresh")):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("INSERT INTO retention_policies (table_name, kind, keep_for, reason) "
                              "VALUES (:t, :k, '1 year', 'no')"), {"t": table, "k": kind})
    with pytest.raises(IntegrityError), engine.begin() as conn:  # never shorter than a day
        conn.execute(text("INSERT INTO retention_policies (table_name, kind, status, keep_for, reason) "
                          "VALUES ('jobs', 'system.ping', 'failed', '1 hour', 'no')"))
    with engine.connect() as conn:
        named = conn.execute(text("SELECT count(*) FROM retention_policies WHERE table_name = 'audit_log'"))
        assert named.scalar_one() == 0


# --- batches ---------------------------------------------------------------------------------------


def test_batches_are_bounded_and_a_rerun_finishes_then_finds_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO jobs (kind, status, created_at, finished_at) SELECT 'system.ping', 'succeeded', "
            "now() - interval '60 days', now() - interval '60 days' FROM generate_series(1, 25)"))
    first = enforce(engine, batch_rows=10, max_batches=2)
    assert (first["deleted"], first["batches"], first["complete"]) == (20, 2, False)
    second = enforce(engine, batch_rows=10, max_batches=2)
    assert (second["deleted"], second["complete"]) == (5, True)
    third = enforce(engine, batch_rows=10, max_batches=2)
    assert third["deleted"] == 0 and third["by_kind"] == []


def test_a_row_locked_by_a_hot_path_is_skipped_not_waited_for(engine: Engine) -> None:
    with engine.begin() as conn:
        locked, free = (add_job(conn, "system.ping", "succeeded", "60 days") for _ in range(2))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1 FROM jobs WHERE id = :id FOR UPDATE"), {"id": locked})
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        result = enforce(engine, lock_timeout_ms=60_000)
    finally:
        release.set()
        holder.join()
    assert result["deleted"] == 1 and result["duration_ms"] < 30_000
    assert remaining(engine, [locked, free]) == {locked}
    assert enforce(engine)["deleted"] == 1  # the next night takes it


# --- the command, its schedule and who may run it --------------------------------------------------


def test_the_command_runs_through_its_declaration_and_reports_per_policy(engine: Engine) -> None:
    with engine.begin() as conn:
        old = add_job(conn, "system.ping", "succeeded", "31 days")
    with Session(engine, expire_on_commit=False) as session, session.begin():
        job = commands.submit(session, "system.housekeeping", {"batch_rows": 100}, enqueue=lambda *_: None).job
    env = commands.Environment(settings=load_settings(), engine=engine, enqueue=lambda *_: None)
    assert commands.execute(job.id, commands.command_of("system.housekeeping").run(env), engine=engine,
                            lease_seconds=60) == "succeeded"
    row = job_row(engine, job.id)
    assert remaining(engine, [old]) == set()
    assert row["result"]["deleted"] == 1 and row["result"]["batch_rows"] == 100 and row["progress"] == 100
    [ping] = [p for p in row["result"]["by_policy"] if p["deleted"]]
    assert (ping["table"], ping["kind"], ping["status"], ping["keep_for"]) == (
        "jobs", "system.ping", "succeeded", "30 days")


def test_housekeeping_is_scheduled_nightly_in_the_platforms_zone(engine: Engine) -> None:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT kind, params, cron, timezone, enabled, overlap_policy FROM schedules "
                                "WHERE name = 'system.housekeeping-nightly'")).one()
    assert tuple(row) == ("system.housekeeping", {}, "30 2 * * *", "Asia/Kolkata", True, "skip")
    assert commands.validate_params("system.housekeeping", row.params) == {}


@pytest.mark.parametrize(("role", "status"), [
    ("it_department", 202), ("admin", 403), ("finance_department", 403), ("marketing_department", 403),
    ("customer", 403),
])
def test_only_operations_it_may_run_housekeeping_through_the_api(
        engine: Engine, db: Database, app_factory: Callable[..., Any], role: str, status: int) -> None:
    app = app_factory(DATABASE_URL=db.url)
    with engine.connect() as conn:
        sid = conn.execute(text("SELECT id FROM schedules WHERE name = 'system.housekeeping-nightly'")).scalar_one()
    answer = client_for(app, make_account(engine, role)).post(f"/api/v1/schedules/{sid}/run")
    assert answer.status_code == status, answer.json
    if status == 202:
        assert answer.json["kind"] == "system.housekeeping"
        assert job_row(engine, answer.json["id"])["status"] == "queued"
    else:
        assert answer.content_type == "application/problem+json"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
