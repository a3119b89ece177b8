"""Period edges in platform time, the 194-O rate change inside a period, the weekly schedule's
period, carried balances and the rounding rule."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Engine, text

from ombaro.settlements import round_paise, runs
from ombaro.settlements.rates import rate_on
from tests.factories import settlements as f
from tests.settlements.helpers import as_worker

ZONE = "Asia/Kolkata"


def settle(engine: Engine, vendor: object, start: dt.date, end: dt.date) -> dict:
    return as_worker(engine, lambda s: runs.settle_batch(s, run_id=None, period=runs.Period(start, end),
                                                         vendor_ids=[vendor], requested_by=None, zone=ZONE))


def lines(engine: Engine, vendor: object) -> dict:
    with engine.connect() as conn:
        return {(r.payment_id, r.refund_id): r for r in conn.execute(text(
            "SELECT i.*, s.settlement_period_start AS period_start FROM settlement_items AS i "
            "JOIN payment_settlements AS s ON s.id = i.settlement_id WHERE i.vendor_id = :v"), {"v": vendor})}


def test_payments_at_2359_and_0000_platform_time_fall_on_their_own_side_of_the_week(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn), f.user(conn)

        def paid(at: dt.datetime) -> object:
            return f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("500.00"), day=at.date()),
                             amount=Decimal("500.00"), at=at)

        first_second = paid(f.ist(2025, 3, 3, 0, 0, 0))      # Monday 00:00:00: the week's first second
        last_second = paid(f.ist(2025, 3, 9, 23, 59, 59))    # Sunday 23:59:59: its last
        next_week = paid(f.ist(2025, 3, 10, 0, 0, 0))        # Monday 00:00:00: the next week's
    settle(settle_engine, vendor, dt.date(2025, 3, 3), dt.date(2025, 3, 9))
    settle(settle_engine, vendor, dt.date(2025, 3, 10), dt.date(2025, 3, 16))
    got = lines(settle_engine, vendor)
    assert got[(first_second, None)].period_start == dt.date(2025, 3, 3)
    assert got[(last_second, None)].period_start == dt.date(2025, 3, 3)
    assert got[(next_week, None)].period_start == dt.date(2025, 3, 10)
    # 18:29:59 UTC on Sunday is still Sunday in Kolkata; 18:30:00 UTC is Monday there.
    assert got[(last_second, None)].item_date == dt.date(2025, 3, 9)
    assert got[(next_week, None)].item_date == dt.date(2025, 3, 10)


def test_tds_rate_changes_on_1_october_2024_inside_one_period(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn, commission_rate=Decimal("10.00")), f.user(conn)
        before = f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("1234.50"), day=dt.date(2024, 9, 30)),
                           amount=Decimal("1234.50"), at=f.ist(2024, 9, 30, 23, 59, 59))
        after = f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("1234.50"), day=dt.date(2024, 10, 1)),
                          amount=Decimal("1234.50"), at=f.ist(2024, 10, 1, 0, 0, 0))
        no_pan = f.vendor(conn, pan=False)
        unknown = f.payment(conn, f.booking(conn, no_pan, customer, total=Decimal("100.00"), day=dt.date(2024, 10, 1)),
                            amount=Decimal("100.00"), at=f.ist(2024, 10, 1, 12))
    settle(settle_engine, vendor, dt.date(2024, 9, 28), dt.date(2024, 10, 4))
    settle(settle_engine, no_pan, dt.date(2024, 9, 28), dt.date(2024, 10, 4))
    got = lines(settle_engine, vendor)
    assert (got[(before, None)].tds_rate, got[(before, None)].tds_amount) == (Decimal("1.000"), Decimal("12.35"))
    assert (got[(after, None)].tds_rate, got[(after, None)].tds_amount) == (Decimal("0.100"), Decimal("1.23"))
    assert got[(before, None)].tds_section == "194-O"
    assert lines(settle_engine, no_pan)[(unknown, None)].tds_amount == Decimal("5.00")  # without PAN: 5%


def test_rates_are_dated_data(settle_engine: Engine) -> None:
    def rate(day: dt.date, pan: bool = True) -> Decimal | None:
        return as_worker(settle_engine, lambda s: rate_on(s, day, pan_available=pan))

    assert rate(dt.date(2024, 9, 30)) == Decimal("1.000")
    assert rate(dt.date(2024, 10, 1)) == Decimal("0.100")
    assert rate(dt.date(2030, 1, 1), pan=False) == Decimal("5.000")
    assert rate(dt.date(2010, 1, 1)) is None


def test_missing_rate_fails_the_batch_instead_of_settling_without_tds(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn), f.user(conn)
        f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("100.00"), day=dt.date(2012, 5, 5)),
                  amount=Decimal("100.00"), at=f.ist(2012, 5, 5, 10))
    try:
        settle(settle_engine, vendor, dt.date(2012, 5, 1), dt.date(2012, 5, 7))
    except runs.MissingTdsRate as exc:
        assert "2012-05-05" in str(exc)
    else:
        raise AssertionError("settled without a TDS rate")
    assert lines(settle_engine, vendor) == {}


def test_weekly_schedule_settles_the_previous_monday_to_sunday() -> None:
    fired = dt.datetime(2025, 3, 9, 20, 30, tzinfo=dt.UTC)  # Monday 2025-03-10 02:00 in Kolkata
    assert runs.previous_week(fired, ZONE) == runs.Period(dt.date(2025, 3, 3), dt.date(2025, 3, 9))
    assert runs.period_of({}, fired, ZONE) == runs.Period(dt.date(2025, 3, 3), dt.date(2025, 3, 9))


def test_refund_after_settlement_is_a_negative_line_next_time_and_a_negative_net_is_carried(
        settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn, commission_rate=Decimal("20.00")), f.user(conn)
        paid = f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("1000.00"), day=dt.date(2025, 3, 4)),
                         amount=Decimal("1000.00"), at=f.ist(2025, 3, 4, 12))
    settle(settle_engine, vendor, dt.date(2025, 3, 3), dt.date(2025, 3, 9))
    with settle_engine.begin() as conn:
        refunded = f.refund(conn, paid, amount=Decimal("1000.00"), at=f.ist(2025, 3, 11, 9))
    settle(settle_engine, vendor, dt.date(2025, 3, 10), dt.date(2025, 3, 16))
    got = lines(settle_engine, vendor)
    assert got[(paid, refunded)].period_start == dt.date(2025, 3, 10)
    assert got[(paid, refunded)].net_amount == Decimal("-799.00")  # -1000 + 200 commission + 1.00 TDS (0.1%)
    with settle_engine.connect() as conn:
        second = conn.execute(text("SELECT id, net_settlement_amount, status FROM payment_settlements "
                                   "WHERE vendor_id = :v AND settlement_period_start = '2025-03-10'"),
                              {"v": vendor}).one()
        carried = conn.execute(text("SELECT amount, settlement_id FROM settlement_adjustments "
                                    "WHERE source_settlement_id = :s"), {"s": second.id}).one()
    # The refund's -200.00 of commission is a credit note: its 18% GST (-36.00) goes back to the vendor.
    assert (second.net_settlement_amount, second.status) == (Decimal("-763.00"), "completed")
    assert (carried.amount, carried.settlement_id) == (Decimal("-763.00"), None)
    # The next settlement with lines takes the carried balance.
    with settle_engine.begin() as conn:
        f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("2000.00"), day=dt.date(2025, 3, 18)),
                  amount=Decimal("2000.00"), at=f.ist(2025, 3, 18, 12))
    settle(settle_engine, vendor, dt.date(2025, 3, 17), dt.date(2025, 3, 23))
    with settle_engine.connect() as conn:
        third = conn.execute(text("SELECT gross_amount, commission_amount, commission_gst_amount, tds_amount, "
                                  "adjustment_amount, net_settlement_amount FROM payment_settlements "
                                  "WHERE vendor_id = :v AND settlement_period_start = '2025-03-17'"),
                             {"v": vendor}).one()
    assert tuple(third) == (Decimal("2000.00"), Decimal("400.00"), Decimal("72.00"), Decimal("2.00"),
                            Decimal("-763.00"), Decimal("763.00"))


def test_rounding_is_once_per_line_half_away_from_zero() -> None:
    assert round_paise(Decimal("0.125")) == Decimal("0.13")
    assert round_paise(Decimal("-0.125")) == Decimal("-0.13")
    assert round_paise(Decimal("2.675")) == Decimal("2.68")  # a float would say 2.67
    assert round_paise(Decimal("0.124999")) == Decimal("0.12")
