"""A reference settlement computed the straightforward way, line by line, in Python: what the
settlement and payment tests check the engine's runs against.

The statute's figures are written out again here on purpose (the test must not read the code's data
or call its rounding): rates by date, bases, shares and rounding half away from zero."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tests.factories.settlements import IST

PAISA = Decimal("0.01")
FY_LIMIT_194O4 = Fraction(500000)


def tds_rate(day: dt.date, pan_operative: bool) -> Decimal:
    """s.194-O: 0.75% from 1 Oct 2020 (Taxation and Other Laws Act 2020), 1% from 1 Apr 2021, 0.1%
    from 1 Oct 2024; 5% without an operative PAN (s.206AA). Nothing before 1 Oct 2020."""
    if day < dt.date(2020, 10, 1):
        raise LookupError(f"194-O did not exist on {day}")
    if not pan_operative:
        return Decimal("5")
    if day <= dt.date(2021, 3, 31):
        return Decimal("0.75")
    return Decimal("1") if day <= dt.date(2024, 9, 30) else Decimal("0.1")


def tcs_rate(day: dt.date) -> Decimal:
    """s.52 CGST Act: 1% until 9 July 2024, 0.5% from 10 July 2024."""
    return Decimal("1") if day <= dt.date(2024, 7, 9) else Decimal("0.5")


COMMISSION_GST = Decimal("18")


def half_up(value: Decimal | Fraction) -> Decimal:
    """To the paisa, half away from zero, from the exact value."""
    exact = Fraction(value) * 100
    whole, rest = divmod(abs(exact.numerator), exact.denominator)
    whole += 1 if 2 * rest >= exact.denominator else 0
    return (Decimal(whole if exact >= 0 else -whole) / 100).quantize(PAISA)


def financial_year(day: dt.date) -> int:
    return day.year if day.month >= 4 else day.year - 1


@dataclass
class RefVendor:
    id: uuid.UUID
    commission_rate: Decimal
    pan: bool
    adjustments: list[Decimal] = field(default_factory=list)  # pending manual (and carried) amounts
    manual_pending: int = 0
    pan_status: str | None = None
    pan_status_on: dt.date | None = None
    small_seller: bool = False  # an individual or HUF
    aadhaar: bool = False
    gst_state: str | None = None  # the GSTIN's state; None: not registered
    year_gross: dict[int, Fraction] = field(default_factory=dict)  # settled sales per financial year

    def pan_operative(self, day: dt.date) -> bool:
        return self.pan and not (self.pan_status == "inoperative"
                                 and (self.pan_status_on is None or self.pan_status_on <= day))


PLATFORM_STATE = "27"


@dataclass
class RefPayment:
    id: uuid.UUID
    vendor: uuid.UUID
    booking: uuid.UUID
    amount: Decimal
    at: dt.datetime
    method: str
    completed: bool
    booking_day: dt.date
    refunds: list[tuple[uuid.UUID, Decimal, dt.datetime]] = field(default_factory=list)
    tax: Decimal = Decimal("0.00")
    charged: dict[str, Any] | None = None  # the payment's line, once settled: its rates and bases


@dataclass
class Reference:
    """A straightforward settlement: loop over every payment and refund, decide, round, add up."""

    vendors: dict[uuid.UUID, RefVendor] = field(default_factory=dict)
    payments: list[RefPayment] = field(default_factory=list)
    settled: set[uuid.UUID] = field(default_factory=set)  # payment and refund ids
    periods: set[tuple[uuid.UUID, dt.date, dt.date]] = field(default_factory=set)

    def run(self, start: dt.date, end: dt.date) -> dict[uuid.UUID, dict[str, Any]]:
        end_at = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tzinfo=IST)
        lines: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        taken: list[RefPayment] = []
        for p in self.payments:
            if (p.vendor, start, end) in self.periods or p.id in self.settled:
                continue
            if p.completed and p.booking_day <= end and p.at < end_at:
                taken.append(p)
        # The s.194-O(4) running total follows the platform's order: date, then payment id.
        taken.sort(key=lambda p: (p.at.astimezone(IST).date(), str(p.id)))
        running = {(vid, year): gross for vid, v in self.vendors.items() for year, gross in v.year_gross.items()}
        for p in taken:
            p.charged = self._payment_line(self.vendors[p.vendor], p, running)
            lines[p.vendor].append(p.charged)
        for p in self.payments:
            if (p.vendor, start, end) in self.periods or p.charged is None:
                continue
            for rid, amount, at in p.refunds:
                if rid in self.settled or at >= end_at:
                    continue
                lines[p.vendor].append(self._refund_line(p, rid, amount, at))
        result: dict[uuid.UUID, dict[str, Any]] = {}
        for vid, v in self.vendors.items():
            if (vid, start, end) in self.periods:
                continue
            own = lines.get(vid, [])
            if not own and not v.manual_pending:
                continue
            gross = sum((ln["gross"] for ln in own), Decimal("0.00"))
            commission = sum((ln["commission"] for ln in own), Decimal("0.00"))
            tds = sum((ln["tds"] for ln in own), Decimal("0.00"))
            tcs = sum((ln["tcs"] for ln in own), Decimal("0.00"))
            inter = v.gst_state is not None and v.gst_state != PLATFORM_STATE
            if inter:
                commission_gst = half_up(Fraction(commission) * Fraction(COMMISSION_GST) / 100)
            else:
                commission_gst = 2 * half_up(Fraction(commission) * Fraction(COMMISSION_GST) / 200)
            adjust = sum(v.adjustments, Decimal("0.00"))
            net = gross - commission - commission_gst - tds - tcs + adjust
            result[vid] = {"gross": gross, "commission": commission, "commission_gst": commission_gst, "tds": tds,
                           "tcs": tcs, "adjustment": adjust, "net": net, "items": len(own), "lines": own,
                           "bookings": len({ln["booking"] for ln in own if ln["kind"] == "payment"})}
            self.periods.add((vid, start, end))
            self.settled.update(ln["refund"] or ln["payment"] for ln in own)
            for ln in own:
                if ln["kind"] == "payment":
                    year = financial_year(ln["day"])
                    v.year_gross[year] = v.year_gross.get(year, Fraction(0)) + Fraction(ln["tds_base"])
            v.adjustments = [net] if net < 0 else []
            v.manual_pending = 0
        return result

    @staticmethod
    def _payment_line(v: RefVendor, p: RefPayment, running: dict[tuple[uuid.UUID, int], Fraction]) -> dict[str, Any]:
        day = p.at.astimezone(IST).date()
        operative = v.pan_operative(day)
        rate = tds_rate(day, operative)
        base = Fraction(p.amount) - Fraction(p.tax)  # 194-O base: GST shown separately left out
        rule = "rate" if operative else "no_operative_pan"
        if v.small_seller:
            key = (v.id, financial_year(day))
            running[key] = running.get(key, Fraction(0)) + base  # the year's gross sales with this one
            if running[key] <= FY_LIMIT_194O4 and (operative or v.aadhaar):
                rate, rule = Decimal("0"), "exempt_194o4"
        online = p.method != "cash"
        tcs = tcs_rate(day) if online and v.gst_state is not None else Decimal("0")
        line = {"payment": p.id, "refund": None, "booking": p.booking, "kind": "payment", "day": day,
                "sale": p.amount, "commission_rate": v.commission_rate, "tds_rate": rate, "tds_rule": rule,
                "tds_base": base, "tcs_base": base if tcs else Fraction(0), "tcs_rate": tcs,
                "inter": v.gst_state is not None and v.gst_state != PLATFORM_STATE, "online": online}
        return Reference._priced(line, Fraction(1))

    def _refund_line(self, p: RefPayment, rid: uuid.UUID, amount: Decimal, at: dt.datetime) -> dict[str, Any]:
        """A refund reverses the share refunded of the payment's own line, at that line's rates."""
        charged = p.charged
        assert charged is not None
        day = at.astimezone(IST).date()
        line = {**charged, "refund": rid, "kind": "refund", "day": day, "sale": -amount}
        if financial_year(day) != financial_year(charged["day"]):  # 194-O: adjusted within the year only
            line.update(tds_rate=Decimal("0"), tds_rule="return_other_year")
        return self._priced(line, -Fraction(amount) / Fraction(p.amount))

    @staticmethod
    def _priced(line: dict[str, Any], share: Fraction) -> dict[str, Any]:
        sale = line["sale"]
        commission = half_up(Fraction(sale) * Fraction(line["commission_rate"]) / 100)
        tds = half_up(share * Fraction(line["tds_base"]) * Fraction(line["tds_rate"]) / 100)
        if line["inter"]:
            tcs = half_up(share * Fraction(line["tcs_base"]) * Fraction(line["tcs_rate"]) / 100)
        else:
            tcs = 2 * half_up(share * Fraction(line["tcs_base"]) * Fraction(line["tcs_rate"]) / 200)
        gross = sale if line["online"] else Decimal("0.00")
        return {**line, "gross": gross, "commission": commission, "tds": tds, "tcs": tcs,
                "net": gross - commission - tds - tcs}
