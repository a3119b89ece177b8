"""A real Celery worker SIGKILLed in the middle of a settlement run: the batches it committed
stay, the one it was inside leaves nothing, and after a restart the run completes with totals
identical to an uninterrupted run over the same data (in a database of its own)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.settlements import runs
from tests.helpers import wait_until
from tests.services import Process, start_worker
from tests.settlements.helpers import as_worker
from tests.settlements.worlds import BATCH, PERIOD, VENDORS, totals
from workers.app import enqueuer


def test_worker_killed_mid_run_resumes_to_the_totals_of_an_uninterrupted_run(
        spawn: Callable[..., Process], redis_url: str, two_worlds: tuple[str, Engine, Engine]) -> None:
    killed_url, killed, calm = two_worlds
    assert totals(calm) == totals(killed) == {}
    with calm.connect() as conn:
        vendors = sorted(conn.execute(text("SELECT id FROM vendors")).scalars())

    # The uninterrupted run, batch by batch, in the calm world.
    for start in range(0, len(vendors), BATCH):
        as_worker(calm, lambda s, b=vendors[start:start + BATCH]: runs.settle_batch(
            s, run_id=None, period=PERIOD, vendor_ids=b, requested_by=None, zone="Asia/Kolkata"))
    expected = totals(calm)
    assert len(expected) == VENDORS

    env = {"DATABASE_URL": killed_url, "OMBARO_JOB_LEASE_SECONDS": "3", "OMBARO_SETTLEMENT_BATCH_VENDORS": str(BATCH)}
    blocked_vendor = vendors[2 * BATCH]  # the first vendor of the third batch
    send = enqueuer(redis_url)
    with killed.connect() as blocker:
        # Hold the lock the third batch takes first: the worker will sit inside that batch's transaction.
        blocker.execute(text("SELECT pg_advisory_lock(hashtextextended('ombaro.settle:' || :v, 0))"),
                        {"v": str(blocked_vendor)})
        doomed = start_worker(spawn, "doomed", concurrency=1, env=env)
        with Session(killed) as session, session.begin():
            job = commands.submit(session, "settlements.run", PERIOD.as_dict(), enqueue=send).job.id

        def run_row() -> Any:
            with killed.connect() as conn:
                return conn.execute(text("SELECT id, batches_total, batches_done, status FROM settlement_runs "
                                         "WHERE job_id = :j"), {"j": job}).one_or_none()

        def stuck_in_third_batch() -> bool:
            # The test Redis is shared by every test session on the machine: re-send lost messages.
            with Session(killed) as session, session.begin():
                commands.relay(session, send, stale_seconds=2)
            row = run_row()
            with killed.connect() as conn:
                waiting = conn.execute(text(
                    "SELECT count(*) FROM jobs WHERE kind = 'settlements.run_batch' AND status = 'running' "
                    "AND params ->> 'batch' = '2'")).scalar_one()
            return bool(row and row.batches_done == 2 and waiting)

        wait_until(stuck_in_third_batch, timeout=60, what="the worker to be inside the third batch")
        doomed.stop(signal.SIGKILL)
        blocker.execute(text("SELECT pg_advisory_unlock_all()"))
        blocker.commit()

    partial = totals(killed)
    assert set(partial) == set(vendors[:2 * BATCH])  # two whole batches, nothing of the third
    assert {v: partial[v] for v in partial} == {v: expected[v] for v in partial}

    start_worker(spawn, "rescuer", concurrency=2, env=env)

    def finished() -> bool:
        # Stands in for the scheduler's relay: hand over what the dead worker held or never got.
        with Session(killed) as session, session.begin():
            commands.relay(session, send, stale_seconds=0)
        row = run_row()
        return bool(row and row.status == "completed")

    wait_until(finished, timeout=90, interval=1, what="the run to complete after the restart")
    assert run_row().batches_done == run_row().batches_total == VENDORS // BATCH
    assert totals(killed) == expected
    with killed.connect() as conn:
        twice = conn.execute(text("SELECT count(*) FROM (SELECT 1 FROM settlement_items GROUP BY payment_id, "
                                  "refund_id HAVING count(*) > 1) AS d")).scalar_one()
        attempts = conn.execute(text(
            "SELECT max(attempts) FROM jobs WHERE kind = 'settlements.run_batch'")).scalar_one()
    assert twice == 0
    assert attempts == 2  # the killed batch ran again
