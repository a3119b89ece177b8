"""Rows for the settlement and payment tests, written with plain SQL (fast enough for Hypothesis),
and a reference settlement computed the straightforward way, line by line, in Python."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

IST = ZoneInfo("Asia/Kolkata")
PAISA = Decimal("0.01")


def ist(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=IST)  # type: ignore[misc]


def user(conn: Connection, uid: uuid.UUID | None = None) -> uuid.UUID:
    uid = uid or uuid.uuid4()
    conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :email, '!')"),
                 {"id": uid, "email": f"{uid.hex}@example.test"})
    return uid


def vendor(conn: Connection, *, commission_rate: Decimal | None = Decimal("15.00"), pan: bool = True,
           uid: uuid.UUID | None = None) -> uuid.UUID:
    vid = user(conn, uid)
    conn.execute(text(
        "INSERT INTO vendors (id, business_name, business_address, contact_person, contact_mobile, contact_email, "
        "commission_rate, pan_number, verification_status) VALUES (:id, 'Lotus Spa', "
        "'{\"city\": \"Pune\", \"latitude\": 18.52, \"longitude\": 73.85}', 'Asha', '+919800000000', "
        "'spa@example.test', :rate, :pan, 'verified')"),
        {"id": vid, "rate": commission_rate, "pan": "ABCDE1234F" if pan else None})
    return vid


def booking(conn: Connection, vendor_id: uuid.UUID, customer_id: uuid.UUID, *, total: Decimal,
            day: dt.date, status: str = "completed", booking_type: str = "spa_visit",
            payment_status: str = "pending", uid: uuid.UUID | None = None) -> uuid.UUID:
    bid = uid or uuid.uuid4()
    return conn.execute(text(
        "INSERT INTO bookings (id, booking_number, customer_id, vendor_id, booking_type, service_location, "
        "booking_date, booking_time, status, payment_status, subtotal_amount, total_amount) VALUES (:id, :n, :c, "
        ":v, :t, '{\"city\": \"Pune\"}', :d, '10:00', :s, :ps, :total, :total) RETURNING id"),
        {"id": bid, "n": f"OBO-T-{bid.hex[:12]}", "c": customer_id, "v": vendor_id, "t": booking_type, "d": day,
         "s": status, "ps": payment_status, "total": total}).scalar_one()


def payment(conn: Connection, booking_id: uuid.UUID, *, amount: Decimal, at: dt.datetime, method: str = "upi",
            status: str = "success", gateway_id: str | None = None, uid: uuid.UUID | None = None) -> uuid.UUID:
    row = conn.execute(text("SELECT customer_id, vendor_id FROM bookings WHERE id = :id"), {"id": booking_id}).one()
    pid = uid or uuid.uuid4()
    gateway = None if method == "cash" else "razorpay"
    conn.execute(text(
        "INSERT INTO payments (id, transaction_id, booking_id, customer_id, vendor_id, amount, total_amount, "
        "payment_method, payment_gateway, gateway_transaction_id, status, payment_date) VALUES (:id, :tx, :b, :c, :v, "
        ":amount, :amount, :method, :gateway, :gid, :status, :at)"),
        {"id": pid, "tx": f"order_{pid.hex[:14]}", "b": booking_id, "c": row.customer_id, "v": row.vendor_id,
         "amount": amount, "method": method, "gateway": gateway,
         "gid": None if method == "cash" else (gateway_id or f"pay_{pid.hex[:14]}"), "status": status, "at": at})
    return pid


def refund(conn: Connection, payment_id: uuid.UUID, *, amount: Decimal, at: dt.datetime,
           status: str = "processed") -> uuid.UUID:
    row = conn.execute(text("SELECT booking_id, vendor_id, total_amount, coalesce(refund_amount, 0) AS refunded "
                            "FROM payments WHERE id = :id"), {"id": payment_id}).one()
    rid = conn.execute(text(
        "INSERT INTO payment_refunds (payment_id, booking_id, vendor_id, amount, reason, status, processed_at, "
        "gateway_refund_id) VALUES (:p, :b, :v, :a, 'customer asked', :s, :at, :g) RETURNING id"),
        {"p": payment_id, "b": row.booking_id, "v": row.vendor_id, "a": amount, "s": status,
         "at": at if status == "processed" else None, "g": f"rfnd_{secrets.token_hex(7)}"}).scalar_one()
    refunded = row.refunded + amount
    conn.execute(text("UPDATE payments SET refund_amount = :r, status = :s WHERE id = :id"),
                 {"r": refunded, "id": payment_id,
                  "s": "refunded" if refunded >= row.total_amount else "partially_refunded"})
    return rid


def adjustment(conn: Connection, vendor_id: uuid.UUID, amount: Decimal, reason: str = "goodwill") -> uuid.UUID:
    return conn.execute(text("INSERT INTO settlement_adjustments (vendor_id, amount, kind, reason) "
                             "VALUES (:v, :a, 'manual', :r) RETURNING id"),
                        {"v": vendor_id, "a": amount, "r": reason}).scalar_one()


# --- the reference -------------------------------------------------------------------------------

# The seeded 194-O rates, written out again here on purpose (the test must not read the code's data).
def tds_rate(day: dt.date, pan: bool) -> Decimal:
    if not pan:
        return Decimal("5")
    return Decimal("1") if day <= dt.date(2024, 9, 30) else Decimal("0.1")


def half_up(value: Decimal) -> Decimal:
    return value.quantize(PAISA, rounding=ROUND_HALF_UP)


@dataclass
class RefVendor:
    id: uuid.UUID
    commission_rate: Decimal
    pan: bool
    adjustments: list[Decimal] = field(default_factory=list)  # pending manual (and carried) amounts
    manual_pending: int = 0


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
        for p in self.payments:
            if (p.vendor, start, end) in self.periods:
                continue
            v = self.vendors[p.vendor]
            take_payment = (p.id not in self.settled and p.completed and p.booking_day <= end and p.at < end_at)
            if take_payment:
                lines[p.vendor].append(self._line(v, p.id, None, p.booking, "payment", p.at, p.amount, p.method))
            for rid, amount, at in p.refunds:
                if rid in self.settled or at >= end_at:
                    continue
                if p.id in self.settled or take_payment:
                    lines[p.vendor].append(self._line(v, p.id, rid, p.booking, "refund", at, -amount, "upi"))
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
            adjust = sum(v.adjustments, Decimal("0.00"))
            net = gross - commission - tds + adjust
            result[vid] = {"gross": gross, "commission": commission, "tds": tds, "adjustment": adjust, "net": net,
                           "items": len(own), "lines": own,
                           "bookings": len({ln["booking"] for ln in own if ln["kind"] == "payment"})}
            self.periods.add((vid, start, end))
            self.settled.update(ln["refund"] or ln["payment"] for ln in own)
            v.adjustments = [net] if net < 0 else []
            v.manual_pending = 0
        return result

    @staticmethod
    def _line(v: RefVendor, payment_id: uuid.UUID, refund_id: uuid.UUID | None, booking_id: uuid.UUID, kind: str,
              at: dt.datetime, sale: Decimal, method: str) -> dict[str, Any]:
        day = at.astimezone(IST).date()
        commission = half_up(sale * v.commission_rate / 100)
        tds = half_up(sale * tds_rate(day, v.pan) / 100)
        gross = Decimal("0.00") if method == "cash" else sale
        return {"payment": payment_id, "refund": refund_id, "booking": booking_id, "kind": kind, "day": day,
                "sale": sale, "gross": gross, "commission": commission, "tds": tds,
                "net": gross - commission - tds}
