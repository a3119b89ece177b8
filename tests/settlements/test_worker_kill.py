"""A real Celery worker SIGKILLed in the middle of a settlement run: the batches it committed
stay, the one it was inside leaves nothing, and after a restart the run completes with totals
identical to an uninterrupted run over the same data (in a database of its own)."""

from __future__ import annotations

import datetime as dt
import random
import signal
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.settlements import runs
from tests.factories import settlements as f
from tests.helpers import wait_until
from tests.services import Process, migrate, start_worker
from tests.settlements.helpers import as_worker
from workers.app import enqueuer

PERIOD = runs.Period(dt.date(2025, 1, 6), dt.date(2025, 1, 12))
VENDORS = 12
BATCH = 2  # six batches of two vendors


def seed(engine: Engine) -> list[uuid.UUID]:
    """The same world every time: ids and amounts come from one seeded generator."""
    rng = random.Random(20250106)

    def uid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    vendors = []
    with engine.begin() as conn:
        customer = f.user(conn, uid())
        for _ in range(VENDORS):
            vendor = f.vendor(conn, commission_rate=Decimal(rng.randint(500, 2500)) / 100, pan=rng.random() < 0.8,
                              uid=uid())
            vendors.append(vendor)
            for _ in range(40):
                at = f.ist(2025, 1, 6) + dt.timedelta(seconds=rng.randint(0, 7 * 86400 - 1))
                amount = Decimal(rng.randint(30_000, 900_000)) / 100
                booking = f.booking(conn, vendor, customer, total=amount, day=at.date(), uid=uid())
                payment = f.payment(conn, booking, amount=amount, at=at, uid=uid(),
                                    method="cash" if rng.random() < 0.2 else "upi")
                if rng.random() < 0.08:
                    f.refund(conn, payment, amount=(amount / 3).quantize(Decimal("0.01")),
                             at=at + dt.timedelta(hours=5))
    return sorted(vendors)


def totals(engine: Engine) -> dict[uuid.UUID, tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.vendor_id, s.total_bookings, s.gross_amount, s.commission_amount, s.tds_amount, "
            "s.adjustment_amount, s.net_settlement_amount, (SELECT count(*) FROM settlement_items AS i "
            "WHERE i.settlement_id = s.id) FROM payment_settlements AS s WHERE s.settlement_period_start = :a "
            "AND s.settlement_period_end = :b"), {"a": PERIOD.start, "b": PERIOD.end}).all()
    return {r[0]: tuple(r[1:]) for r in rows}


@pytest.fixture
def two_worlds(make_database: Callable[[], str]) -> tuple[str, Engine, Engine]:
    killed_url, calm_url = make_database(), make_database()
    migrate(killed_url)
    migrate(calm_url)
    killed, calm = create_engine(killed_url), create_engine(calm_url)
    assert seed(killed) == seed(calm)
    yield killed_url, killed, calm
    killed.dispose()
    calm.dispose()


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
