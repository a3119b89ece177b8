"""A settlement batch held inside its transaction (a lock held from this test session) for longer
than the lease: with the default settings its live worker keeps it (heartbeat), although another
worker and the scheduler's relay are running. Then kill -9 of that worker: the batch resumes on the
other worker within a minute, and the run ends with the totals of an uninterrupted run.
Lost = 0 (every vendor settled), doubled = 0 (no payment counted twice)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.settlements import runs
from tests.chaos.helpers import defaults, measure, only_schedules, start_beat
from tests.helpers import wait_until
from tests.services import Process, start_worker
from tests.settlements.helpers import as_worker
from tests.settlements.worlds import BATCH, PERIOD, VENDORS, totals
from workers.app import enqueuer

pytestmark = [pytest.mark.chaos, pytest.mark.db]


def test_live_batch_is_kept_past_its_lease_and_a_killed_one_resumes_within_a_minute(
        spawn: Callable[..., Process], broker_url: str, service_env: dict[str, str],
        two_worlds: tuple[str, Engine, Engine]) -> None:
    killed_url, killed, calm = two_worlds
    with calm.connect() as conn:
        vendors = sorted(conn.execute(text("SELECT id FROM vendors")).scalars())
    for start in range(0, len(vendors), BATCH):
        as_worker(calm, lambda s, b=vendors[start:start + BATCH]: runs.settle_batch(
            s, run_id=None, period=PERIOD, vendor_ids=b, requested_by=None, zone="Asia/Kolkata"))
    expected = totals(calm)

    only_schedules(killed)  # the scheduler here is the relay only
    env = defaults({**service_env, "DATABASE_URL": killed_url, "OMBARO_SETTLEMENT_BATCH_VENDORS": str(BATCH)})
    lease = 30  # the default, which this test measures against
    blocked_vendor = vendors[2 * BATCH]

    def batch_job() -> Any:
        with killed.connect() as conn:
            return conn.execute(text(
                "SELECT id, status, attempts, lease_expires_at > now() AS leased FROM jobs "
                "WHERE kind = 'settlements.run_batch' AND params ->> 'batch' = '2'")).one_or_none()

    def run_row() -> Any:
        with killed.connect() as conn:
            return conn.execute(text("SELECT batches_total, batches_done, status FROM settlement_runs")).one_or_none()

    with killed.connect() as blocker:
        blocker.execute(text("SELECT pg_advisory_lock(hashtextextended('ombaro.settle:' || :v, 0))"),
                        {"v": str(blocked_vendor)})
        doomed = start_worker(spawn, "doomed", concurrency=1, env=env)
        beat = start_beat(spawn, "beat", env)
        beat.wait_for("scheduler leading")
        with Session(killed) as session, session.begin():
            commands.submit(session, "settlements.run", PERIOD.as_dict(), enqueue=enqueuer(broker_url))
        wait_until(lambda: (job := batch_job()) is not None and job.status == "running", timeout=60,
                   what="the worker to be inside the third batch")
        start_worker(spawn, "rescuer", concurrency=2, env=env)
        # A lease and a half with the batch inside one statement and no progress: never taken over.
        held_until = time.monotonic() + 1.5 * lease
        while time.monotonic() < held_until:
            job = batch_job()
            assert (job.status, job.attempts, job.leased) == ("running", 1, True)
            time.sleep(1)
        doomed.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        blocker.execute(text("SELECT pg_advisory_unlock_all()"))
        blocker.commit()

    wait_until(lambda: batch_job().attempts == 2, timeout=90, interval=0.5, what="the batch to be taken over")
    resumed = measure("settlement batch taken over after kill -9", time.monotonic() - killed_at)
    wait_until(lambda: (row := run_row()) is not None and row.status == "completed", timeout=60, interval=0.5,
               what="the run to complete")
    completed = measure("settlement run completed after kill -9", time.monotonic() - killed_at)
    assert resumed < 60 and completed < 60
    row = run_row()
    assert row.batches_done == row.batches_total == VENDORS // BATCH
    assert totals(killed) == expected  # lost = 0
    with killed.connect() as conn:
        twice = conn.execute(text("SELECT count(*) FROM (SELECT 1 FROM settlement_items GROUP BY payment_id, "
                                  "refund_id HAVING count(*) > 1) AS d")).scalar_one()
    assert twice == 0  # doubled = 0
    assert "lost its lease" not in doomed.output()
