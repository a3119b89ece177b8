"""Property-based, at the boundaries of the law (docs/settlements.md, "Taxes"): payments on either
side of each dated change (194-O from 1 Oct 2020 at 0.75%, 1% from 1 Apr 2021, 0.1% from 1 Oct
2024; s.52 TCS 1% until 9 Jul 2024, 0.5% from 10 Jul 2024), with GST shown separately, PANs
missing, operative or inoperative from a day near the sale, individual sellers near the Rs 5 lakh
limit of s.194-O(4), registered vendors in the platform's state and in another, cash and online,
refunds after the rates and the vendor's commission changed. Each line and each settlement must
equal the statute's figure computed by tests/settlements/reference.py, written apart from
the engine's code path (its own rate table, exact fractions, its own rounding)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from ombaro.settlements import runs
from tests.factories import settlements as f
from tests.settlements.helpers import as_worker
from tests.settlements.reference import Reference, RefPayment, RefVendor

ZONE = "Asia/Kolkata"
BOUNDARIES = [dt.date(2020, 10, 1), dt.date(2021, 4, 1), dt.date(2024, 7, 10), dt.date(2024, 10, 1)]
GSTINS = {"27": "27ABCDE1234F1Z5", "29": "29ABCDE1234F1Z3"}  # the platform's state (Maharashtra), Karnataka

large = st.integers(min_value=1, max_value=25_000_000).map(lambda paise: Decimal(paise) / 100)


@st.composite
def a_payment(draw: st.DrawFn, boundary: dt.date) -> dict[str, Any]:
    first = dt.datetime.combine(boundary, dt.time(0), tzinfo=f.IST) - dt.timedelta(days=5)
    at = first + dt.timedelta(seconds=draw(st.integers(0, 10 * 86400)))
    if at.date() < dt.date(2020, 10, 1):
        at = dt.datetime(2020, 10, 1, tzinfo=f.IST) + (at - first)
    amount = draw(large)
    # GST shown separately: none, the 18% inside an inclusive price, or any part of it.
    tax = draw(st.sampled_from(["none", "18", "any"]))
    shown = {"none": Decimal("0.00"), "18": (amount * 18 / 118).quantize(Decimal("0.01")),
             "any": Decimal(draw(st.integers(0, int(amount * 100)))) / 100}[tax]
    refunds = []
    left = amount
    for _ in range(draw(st.integers(0, 2))):
        if left <= Decimal("0.01"):
            break
        part = left if draw(st.booleans()) else Decimal(draw(st.integers(1, int(left * 100)))) / 100
        refunds.append((part, at + dt.timedelta(seconds=draw(st.integers(1, 18 * 86400)))))
        left -= part
    return {"amount": amount, "tax": shown, "at": at, "cash": draw(st.integers(0, 4)) == 0, "refunds": refunds}


@st.composite
def a_world(draw: st.DrawFn) -> dict[str, Any]:
    boundary = draw(st.sampled_from(BOUNDARIES))
    vendors = draw(st.lists(st.fixed_dictionaries({
        "rate": st.integers(0, 3000).map(lambda bp: Decimal(bp) / 100),
        "new_rate": st.integers(0, 3000).map(lambda bp: Decimal(bp) / 100),
        "pan": st.booleans(),
        "pan_status": st.sampled_from([None, "operative", "inoperative"]),
        "status_shift": st.one_of(st.none(), st.integers(-7, 7)),
        "taxpayer_type": st.sampled_from([None, "individual", "huf", "company"]),
        "aadhaar": st.booleans(),
        "gst_state": st.sampled_from([None, "27", "29"]),
        "payments": st.lists(a_payment(boundary), max_size=6)}), min_size=1, max_size=3))
    return {"boundary": boundary, "vendors": vendors}


def build(engine: Engine, world: dict[str, Any]) -> Reference:
    ref = Reference()
    boundary = world["boundary"]
    with engine.begin() as conn:
        customer = f.user(conn)
        for spec in world["vendors"]:
            status_on = None if spec["status_shift"] is None else boundary + dt.timedelta(days=spec["status_shift"])
            state = spec["gst_state"]
            vid = f.vendor(conn, commission_rate=spec["rate"], pan=spec["pan"], pan_status=spec["pan_status"],
                           pan_status_on=status_on, taxpayer_type=spec["taxpayer_type"], aadhaar=spec["aadhaar"],
                           gstin=GSTINS[state] if state else None)
            ref.vendors[vid] = RefVendor(vid, spec["rate"], spec["pan"], pan_status=spec["pan_status"],
                                           pan_status_on=status_on, aadhaar=spec["aadhaar"], gst_state=state,
                                           small_seller=spec["taxpayer_type"] in ("individual", "huf"))
            for p in spec["payments"]:
                day = p["at"].astimezone(f.IST).date()
                booking = f.booking(conn, vid, customer, total=p["amount"], day=day)
                method = "cash" if p["cash"] else "upi"
                pid = f.payment(conn, booking, amount=p["amount"], at=p["at"], method=method, tax=p["tax"])
                refunds = []
                if not p["cash"]:
                    refunds = [(f.refund(conn, pid, amount=a, at=at), a, at) for a, at in p["refunds"]]
                ref.payments.append(RefPayment(pid, vid, booking, p["amount"], p["at"], method, True, day, refunds,
                                                 tax=p["tax"]))
    return ref


def engine_lines(engine: Engine, vendors: list[uuid.UUID]) -> dict[uuid.UUID, tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT coalesce(refund_id, payment_id) AS id, gross_amount, commission_rate, commission_amount, tds_rate, "
            "tds_rule, tds_amount, tcs_rate, tcs_cgst + tcs_sgst + tcs_igst AS tcs, tcs_igst <> 0 AS igst, "
            "tcs_cgst = tcs_sgst AS halves FROM settlement_items WHERE vendor_id = ANY (:v)"), {"v": vendors}).all()
    return {r.id: (r.gross_amount, r.commission_rate, r.commission_amount, r.tds_rate, r.tds_rule, r.tds_amount,
                   r.tcs_rate, r.tcs) for r in rows}


def expected_line(line: dict[str, Any]) -> tuple[Any, ...]:
    return (line["gross"], line["commission_rate"], line["commission"], line["tds_rate"], line["tds_rule"],
            line["tds"], line["tcs_rate"], line["tcs"])


def settle(engine: Engine, vendors: list[uuid.UUID], start: dt.date, end: dt.date) -> None:
    period = runs.Period(start, end)
    as_worker(engine, lambda s: runs.settle_batch(s, run_id=None, period=period, vendor_ids=vendors,
                                                  requested_by=None, zone=ZONE))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(world=a_world())
def test_every_line_and_settlement_is_the_statutes_figure_across_each_boundary(
        settle_engine: Engine, world: dict[str, Any]) -> None:
    ref = build(settle_engine, world)
    vendors = list(ref.vendors)
    boundary = world["boundary"]
    periods = [(boundary - dt.timedelta(days=6), boundary + dt.timedelta(days=6)),
               (boundary + dt.timedelta(days=7), boundary + dt.timedelta(days=30))]
    for number, (start, end) in enumerate(periods):
        if number == 1:  # the vendors' commission changes between the sale and its refund
            with settle_engine.begin() as conn:
                for spec, vid in zip(world["vendors"], vendors, strict=True):
                    conn.execute(text("UPDATE vendors SET commission_rate = :r WHERE id = :v"),
                                 {"r": spec["new_rate"], "v": vid})
                    ref.vendors[vid].commission_rate = spec["new_rate"]
        expected = ref.run(start, end)
        period = runs.Period(start, end)
        dry = as_worker(settle_engine, lambda s, p=period: runs.dry_run(s, p, vendors, zone=ZONE))
        settle(settle_engine, vendors, start, end)
        with settle_engine.connect() as conn:
            got = {r.vendor_id: r for r in conn.execute(text(
                "SELECT s.id, s.vendor_id, s.gross_amount, s.commission_amount, s.commission_gst_amount, "
                "s.tds_amount, s.tcs_amount, s.net_settlement_amount, d.document_type, d.taxable_amount, "
                "d.cgst + d.sgst + d.igst AS document_gst, d.igst <> 0 AS igst, d.number "
                "FROM payment_settlements AS s LEFT JOIN settlement_tax_documents AS d ON d.settlement_id = s.id "
                "WHERE s.vendor_id = ANY (:v) AND s.settlement_period_start = :a"), {"v": vendors, "a": start})}
        assert set(got) == set(expected)
        for vid, e in expected.items():
            g = got[vid]
            assert (g.gross_amount, g.commission_amount, g.commission_gst_amount, g.tds_amount, g.tcs_amount,
                    g.net_settlement_amount) == (e["gross"], e["commission"], e["commission_gst"], e["tds"], e["tcs"],
                                                 e["net"])
            # The platform's invoice (or credit note) carries the commission and its GST.
            if e["commission"] == 0:
                assert g.document_type is None
            else:
                assert (g.document_type, g.taxable_amount, g.document_gst) == (
                    "invoice" if e["commission"] > 0 else "credit_note", e["commission"], e["commission_gst"])
        assert {uuid.UUID(d["vendor_id"]): (d["commission_gst_amount"], d["tcs_amount"], d["net_settlement_amount"])
                for d in dry["settlements"]} == {v: (e["commission_gst"], e["tcs"], e["net"])
                                                 for v, e in expected.items()}
    lines = engine_lines(settle_engine, vendors)
    wanted = {ln["refund"] or ln["payment"]: expected_line(ln)
              for p in ref.payments if p.charged is not None for ln in [p.charged]}
    for p in ref.payments:
        for rid, amount, at in p.refunds:
            if rid in ref.settled:
                wanted[rid] = expected_line(ref._refund_line(p, rid, amount, at))
    assert lines == wanted
    # A sale refunded in full leaves no TDS, no TCS and no commission behind, whatever changed since
    # (but TDS stays when the return falls in a later financial year: rule return_other_year).
    for p in ref.payments:
        refunded = sum((a for rid, a, _ in p.refunds if rid in ref.settled), Decimal("0"))
        if p.charged is not None and refunded == p.amount and len(p.refunds) == 1:
            (rid, _, _), = p.refunds
            assert lines[p.id][2] + lines[rid][2] == 0
            kept = lines[rid][4] == "return_other_year"
            assert lines[p.id][5] + lines[rid][5] == (lines[p.id][5] if kept else 0)
            assert lines[p.id][7] + lines[rid][7] == 0


def test_no_194o_rate_before_1_october_2020_and_a_sale_before_it_fails_its_batch(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn, pytest.raises(IntegrityError, match="section_194o_from_2020_10_01"):
        conn.execute(text("INSERT INTO tds_rates (section, pan_available, rate_percent, effective_from, effective_to) "
                          "VALUES ('194-O', true, 1, '2020-09-30', '2020-09-30')"))
    with settle_engine.connect() as conn:
        first = conn.execute(text("SELECT min(effective_from) FROM tds_rates WHERE section = '194-O'")).scalar_one()
    assert first == dt.date(2020, 10, 1)
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn), f.user(conn)
        f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("100.00"), day=dt.date(2020, 9, 30)),
                  amount=Decimal("100.00"), at=f.ist(2020, 9, 30, 23, 59, 59))
    with pytest.raises(runs.MissingTdsRate, match="2020-09-30"):
        settle(settle_engine, [vendor], dt.date(2020, 9, 28), dt.date(2020, 10, 4))


def test_tax_documents_are_numbered_without_gaps_per_type_and_financial_year(settle_engine: Engine) -> None:
    """Across every settlement the session's tests made, and after a batch that failed (its numbers
    went back with its transaction)."""
    with settle_engine.begin() as conn:
        customer = f.user(conn)
        good = [f.vendor(conn, commission_rate=Decimal("10.00")) for _ in range(3)]
        for vendor in good:
            f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("500.00"), day=dt.date(2025, 3, 31)),
                      amount=Decimal("500.00"), at=f.ist(2025, 3, 31, 12))
        bad = f.vendor(conn)
        f.payment(conn, f.booking(conn, bad, customer, total=Decimal("100.00"), day=dt.date(2020, 9, 30)),
                  amount=Decimal("100.00"), at=f.ist(2020, 9, 30, 12))
    with pytest.raises(runs.MissingTdsRate):
        settle(settle_engine, [*good, bad], dt.date(2025, 3, 25), dt.date(2025, 3, 31))
    settle(settle_engine, good, dt.date(2025, 3, 25), dt.date(2025, 3, 31))
    with settle_engine.connect() as conn:
        mine = conn.execute(text("SELECT financial_year, number FROM settlement_tax_documents "
                                 "WHERE vendor_id = ANY (:v)"), {"v": good}).all()
        assert {year for year, _ in mine} == {"2024-25"} and all(n.startswith("CI2425/") for _, n in mine)
        assert len(mine) == 3
        counters = conn.execute(text("SELECT document_type, financial_year, last_serial FROM tax_document_counters"))
        for kind, year, last in counters:
            serials = conn.execute(text("SELECT serial FROM settlement_tax_documents WHERE document_type = :k "
                                        "AND financial_year = :y ORDER BY serial"), {"k": kind, "y": year}).scalars()
            assert list(serials) == list(range(1, last + 1))


def test_an_unsettleable_payment_is_flagged_by_the_dry_run_and_never_settled(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn), f.user(conn)
        f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("900.00"), day=dt.date(2025, 5, 6)),
                  amount=Decimal("900.00"), at=f.ist(2025, 5, 6, 10))
        undated = f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("700.00"), day=dt.date(2025, 5, 7)),
                            amount=Decimal("700.00"), at=None)
    period = runs.Period(dt.date(2025, 5, 5), dt.date(2025, 5, 11))
    dry = as_worker(settle_engine, lambda s: runs.dry_run(s, period, [vendor], zone=ZONE))
    assert dry["unsettleable"]["count"] == 1 and dry["unsettleable"]["amount"] == Decimal("700.00")
    (flagged,) = dry["unsettleable"]["listed"]
    assert flagged["payment_id"] == str(undated) and "without a payment date" in flagged["reason"]
    settle(settle_engine, [vendor], period.start, period.end)
    with settle_engine.connect() as conn:
        settled = set(conn.execute(text("SELECT payment_id FROM settlement_items WHERE vendor_id = :v"),
                                   {"v": vendor}).scalars())
    assert undated not in settled and len(settled) == 1
    again = as_worker(settle_engine, lambda s: runs.unsettleable(s, [vendor]))
    assert again["count"] == 1  # still flagged: nothing settled it


def test_a_refund_of_cash_is_the_vendors_and_reverses_commission_and_tds_only(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn, commission_rate=Decimal("10.00")), f.user(conn)
        cash = f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("1000.00"), day=dt.date(2025, 5, 6)),
                         amount=Decimal("1000.00"), at=f.ist(2025, 5, 6, 10), method="cash")
        refund = f.refund(conn, cash, amount=Decimal("400.00"), at=f.ist(2025, 5, 7, 10))
    settle(settle_engine, [vendor], dt.date(2025, 5, 5), dt.date(2025, 5, 11))
    with settle_engine.connect() as conn:
        line = conn.execute(text("SELECT collected_by, gross_amount, commission_amount, tds_amount, net_amount "
                                 "FROM settlement_items WHERE refund_id = :r"), {"r": refund}).one()
    assert tuple(line) == ("vendor", Decimal("0.00"), Decimal("-40.00"), Decimal("-0.40"), Decimal("40.40"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(sales=st.lists(st.integers(5_000_000, 20_000_000).map(lambda paise: Decimal(paise) / 100), min_size=2,
                      max_size=9),
       taxpayer=st.sampled_from(["individual", "huf", "company"]), pan=st.booleans(), aadhaar=st.booleans(),
       split=st.integers(0, 9), march=st.booleans())
def test_the_5_lakh_exemption_of_194o4_ends_at_the_line_that_crosses_it(
        settle_engine: Engine, sales: list[Decimal], taxpayer: str, pan: bool, aadhaar: bool, split: int,
        march: bool) -> None:
    """An individual or HUF seller with PAN or Aadhaar pays no TDS while its gross sales of the
    financial year stay within Rs 5,00,000, settled in two runs (the second counts the first's
    sales); a new financial year starts from nothing."""
    ref = Reference()
    first_day = dt.date(2025, 3, 24) if march else dt.date(2025, 5, 5)  # March: the sales straddle 1 April
    with settle_engine.begin() as conn:
        customer = f.user(conn)
        vid = f.vendor(conn, commission_rate=Decimal("10.00"), pan=pan, taxpayer_type=taxpayer, aadhaar=aadhaar)
        ref.vendors[vid] = RefVendor(vid, Decimal("10.00"), pan, aadhaar=aadhaar,
                                       small_seller=taxpayer in ("individual", "huf"))
        for n, amount in enumerate(sales):
            at = dt.datetime.combine(first_day + dt.timedelta(days=n), dt.time(11), tzinfo=f.IST)
            booking = f.booking(conn, vid, customer, total=amount, day=at.date())
            pid = f.payment(conn, booking, amount=amount, at=at)
            ref.payments.append(RefPayment(pid, vid, booking, amount, at, "upi", True, at.date()))
    middle = first_day + dt.timedelta(days=min(split, len(sales)) - 1)
    for start, end in ((first_day - dt.timedelta(days=1), middle), (middle + dt.timedelta(days=1),
                                                                   first_day + dt.timedelta(days=12))):
        if end < start:
            continue
        ref.run(start, end)
        settle(settle_engine, [vid], start, end)
    with settle_engine.connect() as conn:
        got = {r.payment_id: (r.tds_rule, r.tds_amount) for r in conn.execute(text(
            "SELECT payment_id, tds_rule, tds_amount FROM settlement_items WHERE vendor_id = :v"), {"v": vid})}
    assert got == {p.id: (p.charged["tds_rule"], p.charged["tds"]) for p in ref.payments if p.charged}
    assert len(got) == len(sales)


def test_the_line_reaching_exactly_5_lakh_is_exempt_and_the_next_paisa_is_not(settle_engine: Engine) -> None:
    with settle_engine.begin() as conn:
        customer = f.user(conn)
        vid = f.vendor(conn, commission_rate=Decimal("10.00"), taxpayer_type="individual")
        paid = []
        for n, amount in enumerate(("300000.00", "200000.00", "0.01")):
            at = f.ist(2025, 6, 2 + n, 12)
            paid.append(f.payment(conn, f.booking(conn, vid, customer, total=Decimal(amount), day=at.date()),
                                  amount=Decimal(amount), at=at))
    settle(settle_engine, [vid], dt.date(2025, 6, 2), dt.date(2025, 6, 8))
    with settle_engine.connect() as conn:
        got = dict(conn.execute(text("SELECT payment_id, tds_rule FROM settlement_items WHERE vendor_id = :v"),
                                {"v": vid}).all())
    assert [got[p] for p in paid] == ["exempt_194o4", "exempt_194o4", "rate"]


def test_refunds_reverse_the_charged_rates_within_the_financial_year_only(settle_engine: Engine) -> None:
    """Issue 15's example: Rs 1,000 sold at 1% TDS and 20% commission, refunded after 1 October 2024
    and after the vendor moved to 18%, leaves nothing; a return in the next financial year keeps
    its TDS (Circular 20/2023: adjusted against the same seller in the same financial year)."""
    with settle_engine.begin() as conn:
        vendor, customer = f.vendor(conn, commission_rate=Decimal("20.00")), f.user(conn)
        sold = f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("1000.00"), day=dt.date(2024, 9, 30)),
                         amount=Decimal("1000.00"), at=f.ist(2024, 9, 30, 18))
        march = f.payment(conn, f.booking(conn, vendor, customer, total=Decimal("1000.00"), day=dt.date(2025, 3, 30)),
                          amount=Decimal("1000.00"), at=f.ist(2025, 3, 30, 18))
    settle(settle_engine, [vendor], dt.date(2024, 9, 24), dt.date(2024, 9, 30))
    settle(settle_engine, [vendor], dt.date(2025, 3, 24), dt.date(2025, 3, 30))
    with settle_engine.begin() as conn:
        conn.execute(text("UPDATE vendors SET commission_rate = 18 WHERE id = :v"), {"v": vendor})
        back = f.refund(conn, sold, amount=Decimal("1000.00"), at=f.ist(2024, 10, 2, 10))
        april = f.refund(conn, march, amount=Decimal("1000.00"), at=f.ist(2025, 4, 2, 10))
    settle(settle_engine, [vendor], dt.date(2024, 10, 1), dt.date(2024, 10, 7))
    settle(settle_engine, [vendor], dt.date(2025, 3, 31), dt.date(2025, 4, 6))
    with settle_engine.connect() as conn:
        got = {r.refund_id or r.payment_id: (r.commission_amount, r.tds_amount, r.tds_rule) for r in conn.execute(
            text("SELECT payment_id, refund_id, commission_amount, tds_amount, tds_rule FROM settlement_items "
                 "WHERE vendor_id = :v"), {"v": vendor})}
    assert got[sold] == (Decimal("200.00"), Decimal("10.00"), "rate")
    assert got[back] == (Decimal("-200.00"), Decimal("-10.00"), "rate")  # not 18% and 0.1%
    assert got[march] == (Decimal("200.00"), Decimal("1.00"), "rate")
    assert got[april] == (Decimal("-200.00"), Decimal("0.00"), "return_other_year")
