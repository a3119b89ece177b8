"""The look-back bound (OMBARO_SETTLEMENT_LOOKBACK_DAYS): a batch reads only payments made from that
many days before its period, and nothing falls through: an eligible payment older than the bound is
named by every run's `unsettleable` until a run whose look-back reaches it settles it."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text

from ombaro.settlements import runs
from ombaro.settlements.calculation import lookback_instant
from tests.factories import settlements as f
from tests.settlements.helpers import as_worker

ZONE = "Asia/Kolkata"
WEEK = runs.Period(dt.date(2025, 5, 5), dt.date(2025, 5, 11))
LOOKBACK = 30  # the bound is 5 April 2025, 00:00 IST


def settle(engine: Engine, vendor: uuid.UUID, period: runs.Period, lookback_days: int) -> dict[str, Any]:
    return as_worker(
        engine,
        lambda s: runs.settle_batch(
            s,
            run_id=None,
            period=period,
            vendor_ids=[vendor],
            requested_by=None,
            zone=ZONE,
            lookback_days=lookback_days,
        ),
    )


def settled_payments(engine: Engine, vendor: uuid.UUID) -> set[uuid.UUID]:
    with engine.connect() as conn:
        return set(
            conn.execute(text("SELECT payment_id FROM settlement_items WHERE vendor_id = :v"), {"v": vendor}).scalars()
        )


def test_a_payment_older_than_the_look_back_is_flagged_never_dropped(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn), f.user(conn)
        recent = f.paid_booking(
            conn, vendor, customer, Decimal("900.00"), day=dt.date(2025, 5, 6), at=f.ist(2025, 5, 6, 10)
        )
        # paid in January for a visit in May: older than the bound, eligible this week
        early = f.paid_booking(
            conn, vendor, customer, Decimal("1234.56"), day=dt.date(2025, 5, 7), at=f.ist(2025, 1, 10, 9)
        )
        # just inside the bound
        edge = f.paid_booking(
            conn, vendor, customer, Decimal("100.00"), day=dt.date(2025, 5, 8), at=f.ist(2025, 4, 5, 0)
        )

    dry = as_worker(settle_engine, lambda s: runs.dry_run(s, WEEK, [vendor], zone=ZONE, lookback_days=LOOKBACK))
    assert dry["unsettleable"]["count"] == 1 and dry["unsettleable"]["amount"] == Decimal("1234.56")
    (flagged,) = dry["unsettleable"]["listed"]
    assert flagged["payment_id"] == str(early) and "look-back" in flagged["reason"]
    (line,) = dry["settlements"]
    assert line["items"] == 2 and line["gross_amount"] == Decimal("1000.00")

    assert settle(settle_engine, vendor, WEEK, LOOKBACK)["settlements_created"] == 1
    assert settled_payments(settle_engine, vendor) == {recent, edge}
    still = as_worker(settle_engine, lambda s: runs.unsettleable(s, [vendor], WEEK, zone=ZONE, lookback_days=LOOKBACK))
    assert still["count"] == 1 and still["listed"][0]["payment_id"] == str(early)
    every_vendor = as_worker(
        settle_engine, lambda s: runs.unsettleable(s, None, WEEK, zone=ZONE, lookback_days=LOOKBACK)
    )
    assert str(early) in {row["payment_id"] for row in every_vendor["listed"]}

    # a run whose look-back reaches it (0: no bound) settles it, and then nobody names it
    next_week = runs.Period(dt.date(2025, 5, 12), dt.date(2025, 5, 18))
    assert settle(settle_engine, vendor, next_week, 0)["settlements_created"] == 1
    assert settled_payments(settle_engine, vendor) == {recent, edge, early}
    after = as_worker(
        settle_engine, lambda s: runs.unsettleable(s, [vendor], next_week, zone=ZONE, lookback_days=LOOKBACK)
    )
    assert after["count"] == 0


def test_settled_or_ineligible_history_behind_the_bound_is_not_flagged(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn), f.user(conn)
        old = f.paid_booking(
            conn, vendor, customer, Decimal("500.00"), day=dt.date(2024, 11, 5), at=f.ist(2024, 11, 5, 10)
        )
        f.payment(
            conn,
            f.booking(conn, vendor, customer, total=Decimal("300.00"), day=dt.date(2025, 6, 1), status="confirmed"),
            amount=Decimal("300.00"),
            at=f.ist(2025, 1, 2, 10),
        )
    settle(settle_engine, vendor, runs.Period(dt.date(2024, 11, 4), dt.date(2024, 11, 10)), LOOKBACK)
    assert settled_payments(settle_engine, vendor) == {old}
    flagged = as_worker(
        settle_engine, lambda s: runs.unsettleable(s, [vendor], WEEK, zone=ZONE, lookback_days=LOOKBACK)
    )
    assert flagged["count"] == 0  # settled long ago; the other's booking is not completed (not yet eligible)
    assert settle(settle_engine, vendor, WEEK, LOOKBACK)["settlements_created"] == 0


def test_the_bound_is_midnight_in_the_platform_zone() -> None:
    assert lookback_instant(WEEK.start, LOOKBACK, ZONE) == dt.datetime(2025, 4, 5, tzinfo=f.IST)
    assert lookback_instant(WEEK.start, 0, ZONE) < dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
