"""What one batch settles: its vendors not yet settled for the period (the settled ones are read
once per batch, not once per vendor or per payment) and, of theirs, the payments whose booking is
completed by the period's end."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import Engine, text

from ombaro.settlements import runs
from tests.factories import settlements as f
from tests.settlements.helpers import as_worker

ZONE = "Asia/Kolkata"
WEEK = runs.Period(dt.date(2025, 5, 5), dt.date(2025, 5, 11))


def settle(engine: Engine, vendors: list[uuid.UUID]) -> int:
    result = as_worker(
        engine,
        lambda s: runs.settle_batch(
            s, run_id=None, period=WEEK, vendor_ids=vendors, requested_by=None, zone=ZONE, lookback_days=92
        ),
    )
    return int(result["settlements_created"])


def settled(engine: Engine, vendors: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text("SELECT payment_id, vendor_id FROM settlement_items WHERE vendor_id = ANY (:vendors)"),
                {"vendors": vendors},
            )
            .tuples()
            .all()
        )


def test_a_batch_skips_vendors_settled_for_the_period_and_bookings_not_completed(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        first, second, customer = f.vendor(conn), f.vendor(conn), f.user(conn)
        early = f.paid_booking(
            conn, first, customer, Decimal("500.00"), day=dt.date(2025, 5, 6), at=f.ist(2025, 5, 6, 10)
        )
    assert settle(settle_engine, [first]) == 1

    with settle_engine.begin() as conn:
        # paid after the first vendor's settlement for the week: it waits for the next period
        late = f.paid_booking(
            conn, first, customer, Decimal("700.00"), day=dt.date(2025, 5, 7), at=f.ist(2025, 5, 7, 11)
        )
        done = f.paid_booking(
            conn, second, customer, Decimal("800.00"), day=dt.date(2025, 5, 8), at=f.ist(2025, 5, 8, 12)
        )
        for status, day in (("confirmed", dt.date(2025, 5, 9)), ("completed", dt.date(2025, 5, 12))):
            # not completed, or completed after the period: not this week's
            f.paid_booking(conn, second, customer, Decimal("300.00"), day=day, at=f.ist(2025, 5, 9, 9), status=status)

    assert settle(settle_engine, [first, second]) == 1
    assert settled(settle_engine, [first, second]) == {early: first, done: second}
    assert late not in settled(settle_engine, [first, second])
    assert settle(settle_engine, [first, second]) == 0
