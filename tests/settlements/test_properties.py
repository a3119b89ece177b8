"""Property-based: random vendors, payments, refunds, adjustments and periods, settled by the real
statement and by the straightforward reference (tests/settlements/reference.py). Every example uses
vendors of its own, so examples never see each other's rows."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from ombaro.settlements import runs
from tests.factories import settlements as f
from tests.settlements.helpers import as_worker
from tests.settlements.reference import Reference, RefPayment, RefVendor

ZONE = "Asia/Kolkata"
WINDOW_START = dt.datetime(2024, 9, 16, tzinfo=f.IST)  # a window across the 1 October 2024 rate change
WINDOW_SECONDS = 35 * 86400

money = st.integers(min_value=1, max_value=2_000_000).map(lambda paise: Decimal(paise) / 100)
moments = st.integers(min_value=0, max_value=WINDOW_SECONDS).map(lambda s: WINDOW_START + dt.timedelta(seconds=s))
rates = st.integers(min_value=0, max_value=3000).map(lambda bp: Decimal(bp) / 100)


@st.composite
def a_payment(draw: st.DrawFn) -> dict[str, Any]:
    amount = draw(money)
    at = draw(moments)
    refunds = []
    left = amount
    for _ in range(draw(st.integers(0, 2))):
        if left <= Decimal("0.01"):
            break
        part = Decimal(draw(st.integers(1, int(left * 100)))) / 100
        refunds.append((part, at + dt.timedelta(seconds=draw(st.integers(1, 20 * 86400)))))
        left -= part
    return {"amount": amount, "at": at, "cash": draw(st.booleans()), "completed": draw(st.booleans()),
            "booking_shift": draw(st.integers(-1, 3)), "refunds": refunds}


@st.composite
def a_world(draw: st.DrawFn) -> dict[str, Any]:
    vendors = draw(st.lists(st.fixed_dictionaries({
        "rate": rates, "pan": st.booleans(), "payments": st.lists(a_payment(), max_size=6),
        "adjustments": st.lists(st.integers(-50_000, 50_000).filter(bool).map(lambda p: Decimal(p) / 100),
                                max_size=2)}), min_size=1, max_size=3))
    first = draw(st.integers(0, 30))
    length = draw(st.integers(1, 14))
    second_shift = draw(st.integers(-7, 10))
    second_length = draw(st.integers(1, 14))
    start = WINDOW_START.date() + dt.timedelta(days=first)
    start2 = start + dt.timedelta(days=second_shift)
    return {"vendors": vendors, "periods": [(start, start + dt.timedelta(days=length - 1)),
                                            (start2, start2 + dt.timedelta(days=second_length - 1))]}


def build(engine: Engine, world: dict[str, Any]) -> Reference:
    ref = Reference()
    with engine.begin() as conn:
        customer = f.user(conn)
        for spec in world["vendors"]:
            vid = f.vendor(conn, commission_rate=spec["rate"], pan=spec["pan"])
            ref.vendors[vid] = RefVendor(vid, spec["rate"], spec["pan"], list(spec["adjustments"]),
                                           manual_pending=len(spec["adjustments"]))
            for amount in spec["adjustments"]:
                f.adjustment(conn, vid, amount)
            for p in spec["payments"]:
                day = p["at"].astimezone(f.IST).date() + dt.timedelta(days=p["booking_shift"])
                status = "completed" if p["completed"] else "confirmed"
                booking = f.booking(conn, vid, customer, total=p["amount"], day=day, status=status)
                method = "cash" if p["cash"] else "upi"
                pid = f.payment(conn, booking, amount=p["amount"], at=p["at"], method=method)
                refunds = []
                if not p["cash"]:
                    for amount, at in p["refunds"]:
                        refunds.append((f.refund(conn, pid, amount=amount, at=at), amount, at))
                ref.payments.append(RefPayment(pid, vid, booking, p["amount"], p["at"], method, p["completed"],
                                                 day, refunds))
    return ref


def settle(engine: Engine, vendors: list[uuid.UUID], start: dt.date, end: dt.date) -> dict[str, Any]:
    period = runs.Period(start, end)
    return as_worker(engine, lambda s: runs.settle_batch(s, run_id=None, period=period, vendor_ids=vendors,
                                                         requested_by=None, zone=ZONE))


def written(engine: Engine, vendors: list[uuid.UUID], start: dt.date, end: dt.date,
            known: set[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The settlements of the period that the run just made (not those an identical earlier period made)."""
    with engine.connect() as conn:
        rows = conn.execute(text("""
            SELECT s.id, s.vendor_id, s.gross_amount, s.commission_amount, s.tds_amount, s.adjustment_amount,
                   s.net_settlement_amount, s.total_bookings, s.tcs_amount, s.commission_gst_amount,
                   (SELECT count(*) FROM settlement_items AS i WHERE i.settlement_id = s.id) AS items
            FROM payment_settlements AS s
            WHERE s.vendor_id = ANY (:v) AND s.settlement_period_start = :a AND s.settlement_period_end = :b"""),
            {"v": vendors, "a": start, "b": end}).mappings().all()
    return {r["vendor_id"]: {"id": r["id"], "gross": r["gross_amount"], "commission": r["commission_amount"],
                             "commission_gst": r["commission_gst_amount"], "tcs": r["tcs_amount"],
                             "tds": r["tds_amount"], "adjustment": r["adjustment_amount"],
                             "net": r["net_settlement_amount"], "items": r["items"], "bookings": r["total_bookings"]}
            for r in rows if r["id"] not in known}


def snapshot(engine: Engine, vendors: list[uuid.UUID]) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(text(f"SELECT count(*), coalesce(sum({column}), 0) FROM {table} "
                                        "WHERE vendor_id = ANY (:v)"), {"v": vendors}).one()
                     for table, column in (("payment_settlements", "net_settlement_amount"),
                                           ("settlement_items", "net_amount"), ("settlement_adjustments", "amount")))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(world=a_world())
def test_settlements_conserve_settle_once_rerun_nothing_and_match_the_reference(
        settle_engine: Engine, world: dict[str, Any]) -> None:
    ref = build(settle_engine, world)
    vendors = list(ref.vendors)
    for start, end in world["periods"]:
        period = runs.Period(start, end)
        before = snapshot(settle_engine, vendors)
        dry = as_worker(settle_engine, lambda s, p=period: runs.dry_run(s, p, vendors, zone=ZONE))
        assert snapshot(settle_engine, vendors) == before  # the dry run wrote nothing
        expected = ref.run(start, end)
        known = {g["id"] for g in written(settle_engine, vendors, start, end, set()).values()}
        settle(settle_engine, vendors, start, end)
        got = written(settle_engine, vendors, start, end, known)

        # Equal to the independent computation, vendor by vendor, to the paise.
        assert {v: (g["gross"], g["commission"], g["commission_gst"], g["tds"], g["tcs"], g["adjustment"], g["net"],
                    g["items"], g["bookings"]) for v, g in got.items()} == {
            v: (e["gross"], e["commission"], e["commission_gst"], e["tds"], e["tcs"], e["adjustment"], e["net"],
                e["items"], e["bookings"]) for v, e in expected.items()}
        # The dry run computed exactly what the run wrote.
        assert {uuid.UUID(d["vendor_id"]): d["net_settlement_amount"] for d in dry["settlements"]} == {
            v: g["net"] for v, g in got.items()}
        # Conservation on every settlement, and its lines add up to it.
        with settle_engine.connect() as conn:
            for g in got.values():
                deducted = g["commission"] + g["commission_gst"] + g["tds"] + g["tcs"]
                assert g["gross"] - deducted + g["adjustment"] == g["net"]
                lines = conn.execute(text(
                    "SELECT coalesce(sum(gross_amount), 0), coalesce(sum(commission_amount), 0), "
                    "coalesce(sum(tds_amount), 0), coalesce(sum(tcs_cgst + tcs_sgst + tcs_igst), 0), "
                    "coalesce(sum(net_amount), 0) FROM settlement_items WHERE settlement_id = :s"),
                    {"s": g["id"]}).one()
                assert tuple(lines) == (g["gross"], g["commission"], g["tds"], g["tcs"],
                                        g["net"] - g["adjustment"] + g["commission_gst"])

        # A re-run of the same period changes nothing.
        after = snapshot(settle_engine, vendors)
        assert settle(settle_engine, vendors, start, end)["settlements_created"] == 0
        assert snapshot(settle_engine, vendors) == after

    with settle_engine.connect() as conn:
        # No payment (or refund) in two settlements, whatever the periods' overlap.
        twice = conn.execute(text(
            "SELECT payment_id, refund_id FROM settlement_items WHERE vendor_id = ANY (:v) "
            "GROUP BY payment_id, refund_id HAVING count(*) > 1"), {"v": vendors}).all()
        assert twice == []
        # Every line the reference settled is linked, and nothing else.
        linked = set(conn.execute(text("SELECT coalesce(refund_id, payment_id) FROM settlement_items "
                                       "WHERE vendor_id = ANY (:v)"), {"v": vendors}).scalars())
    assert linked == ref.settled
