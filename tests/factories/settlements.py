"""Rows for the settlement and payment tests, written with plain SQL (fast enough for Hypothesis).
The reference settlement they are checked against is tests/settlements/reference.py."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

IST = ZoneInfo("Asia/Kolkata")


def ist(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=IST)  # type: ignore[misc]


def user(conn: Connection, uid: uuid.UUID | None = None) -> uuid.UUID:
    uid = uid or uuid.uuid4()
    conn.execute(text("INSERT INTO auth.users (id, email, encrypted_password) VALUES (:id, :email, '!')"),
                 {"id": uid, "email": f"{uid.hex}@example.test"})
    return uid


def vendor(conn: Connection, *, commission_rate: Decimal | None = Decimal("15.00"), pan: bool = True,
           uid: uuid.UUID | None = None, pan_status: str | None = None, pan_status_on: dt.date | None = None,
           taxpayer_type: str | None = None, aadhaar: bool = False, gstin: str | None = None) -> uuid.UUID:
    vid = user(conn, uid)
    conn.execute(text(
        "INSERT INTO vendors (id, business_name, business_address, contact_person, contact_mobile, contact_email, "
        "commission_rate, pan_number, verification_status, pan_status, pan_status_on, taxpayer_type, "
        "aadhaar_furnished, gst_number) VALUES (:id, 'Lotus Spa', "
        "'{\"city\": \"Pune\", \"latitude\": 18.52, \"longitude\": 73.85}', 'Asha', '+919800000000', "
        "'spa@example.test', :rate, :pan, 'verified', :status, :status_on, :type, :aadhaar, :gstin)"),
        {"id": vid, "rate": commission_rate, "pan": "ABCDE1234F" if pan else None, "status": pan_status,
         "status_on": pan_status_on, "type": taxpayer_type, "aadhaar": aadhaar, "gstin": gstin})
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


def payment(conn: Connection, booking_id: uuid.UUID, *, amount: Decimal, at: dt.datetime | None, method: str = "upi",
            status: str = "success", gateway_id: str | None = None, uid: uuid.UUID | None = None,
            tax: Decimal = Decimal("0.00")) -> uuid.UUID:
    """A payment of `amount` in all, of which `tax` is GST shown separately."""
    row = conn.execute(text("SELECT customer_id, vendor_id FROM bookings WHERE id = :id"), {"id": booking_id}).one()
    pid = uid or uuid.uuid4()
    gateway = None if method == "cash" else "razorpay"
    conn.execute(text(
        "INSERT INTO payments (id, transaction_id, booking_id, customer_id, vendor_id, amount, tax_amount, "
        "total_amount, payment_method, payment_gateway, gateway_transaction_id, status, payment_date) VALUES (:id, "
        ":tx, :b, :c, :v, :amount - :tax, :tax, :amount, :method, :gateway, :gid, :status, :at)"),
        {"id": pid, "tax": tax, "tx": f"order_{pid.hex[:14]}",
          "b": booking_id, "c": row.customer_id, "v": row.vendor_id,
         "amount": amount, "method": method, "gateway": gateway,
         "gid": None if method == "cash" else (gateway_id or f"pay_{pid.hex[:14]}"), "status": status, "at": at})
    return pid


def paid_booking(conn: Connection, vendor_id: uuid.UUID, customer_id: uuid.UUID, amount: Decimal, *,
                 day: dt.date, at: dt.datetime, status: str = "completed") -> uuid.UUID:
    """A booking of `amount` on `day` (in `status`) paid in full at `at`: the payment's id."""
    return payment(conn, booking(conn, vendor_id, customer_id, total=amount, day=day, status=status),
                   amount=amount, at=at)


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
