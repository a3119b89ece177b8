"""The same settlement world every time (ids and amounts from one seeded generator) for the worker
kill tests (tests/settlements/test_worker_kill.py, tests/chaos/test_settlement_kill.py), and the
totals of its week to compare a killed run with a calm one."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from ombaro.settlements import runs
from tests.factories import settlements as f

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
