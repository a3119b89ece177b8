"""Money in: Razorpay orders for bookings, the checkout callback's signature, refunds and cash
taken by vendors (docs/settlements.md, "Payments"). Webhook events: ombaro/payments/webhooks.py.

States only move forward. A payment's rank is pending < failed < processing < success <
partially_refunded < refunded: a late `payment.failed` after a capture changes nothing, and a new
attempt on an order that failed may still succeed. A booking's payment status is not stored
independently: it is recomputed from its payments whenever one of them changes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ombaro.commands import RetryLater
from ombaro.models.bookings import Booking
from ombaro.models.payments import Payment
from ombaro.models.settlements import PaymentRefund
from ombaro.money import to_paise
from ombaro.providers import PaymentProvider, ProviderRejected, ProviderUnavailable

ZERO = Decimal("0.00")
SETTLED_PAYMENT_STATUSES = ("success", "partially_refunded", "refunded")
PAYMENT_RANK = {"pending": 0, "failed": 1, "processing": 2, "success": 3, "partially_refunded": 4, "refunded": 5}


class PaymentError(Exception):
    """Base of the errors the API maps to statuses (web/errors.py)."""


class PaymentNotFound(PaymentError):
    pass


class PaymentConflict(PaymentError):
    """The request does not fit the payment's or booking's state (paid already, cancelled...)."""


class InvalidSignature(PaymentError):
    pass


class ProviderDown(PaymentError):
    """The provider could not be reached; nothing was recorded. Try again."""


@dataclass(frozen=True)
class OrderAmounts:
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    convenience_fee: Decimal

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.discount + self.tax + self.convenience_fee


@dataclass(frozen=True)
class Checkout:
    """What the app needs to open Razorpay's checkout."""

    payment_id: uuid.UUID
    key_id: str
    order_id: str
    amount_paise: int
    currency: str
    amounts: OrderAmounts
    booking_number: str


# --- orders and the checkout callback --------------------------------------------------------------


def order_amounts(session: Session, booking: Booking, convenience_fee: Decimal) -> OrderAmounts:
    """The amount due, from the server's own records: the items (with their add-ons, as priced at
    booking time), the promotion's discount and the tax as the booking recorded them, and the fee."""
    items_total = session.execute(
        text("SELECT coalesce(sum(subtotal), 0) FROM booking_items WHERE booking_id = :id"), {"id": booking.id}
    ).scalar_one()
    if items_total != booking.subtotal_amount:
        raise PaymentConflict(f"booking {booking.booking_number}: its items add up to {items_total}, "
                              f"not its subtotal {booking.subtotal_amount}; it cannot be charged")
    amounts = OrderAmounts(booking.subtotal_amount, booking.discount_amount, booking.tax_amount, convenience_fee)
    if amounts.total - convenience_fee != booking.total_amount or amounts.total <= 0:
        raise PaymentConflict(f"booking {booking.booking_number}: subtotal - discount + tax is not its total")
    return amounts


def open_order(session: Session, provider: PaymentProvider, *, booking_id: uuid.UUID, customer_id: uuid.UUID,
               method: str, convenience_fee: Decimal) -> Checkout:
    """Create a Razorpay order for the customer's booking and record a pending payment for it.

    Runs in the request's transaction as the customer: row-level security shows only their own
    bookings. An open order of the same amount is reused rather than piling up new ones."""
    booking = session.get(Booking, booking_id)
    if booking is None or booking.customer_id != customer_id:
        raise PaymentNotFound(f"no booking {booking_id}")
    if booking.status == "cancelled":
        raise PaymentConflict(f"booking {booking.booking_number} is cancelled")
    if booking.payment_status in ("paid", "refunded"):
        raise PaymentConflict(f"booking {booking.booking_number} is already {booking.payment_status}")
    amounts = order_amounts(session, booking, convenience_fee)
    existing = session.scalars(
        select(Payment).where(Payment.booking_id == booking.id, Payment.status == "pending",
                              Payment.payment_gateway == "razorpay", Payment.total_amount == amounts.total)
        .order_by(Payment.created_at.desc()).limit(1)).first()
    if existing is not None:
        return Checkout(existing.id, provider.key_id, existing.transaction_id, to_paise(existing.total_amount), "INR",
                        amounts, booking.booking_number)
    payment_id = uuid.uuid4()
    try:
        order = provider.create_order(amount_paise=to_paise(amounts.total), receipt=str(payment_id),
                                      notes={"payment_id": str(payment_id), "booking_id": str(booking.id)})
    except ProviderUnavailable as exc:
        raise ProviderDown(f"the payment provider could not be reached: {exc}") from exc
    except ProviderRejected as exc:
        raise PaymentConflict(f"the payment provider refused the order: {exc}") from exc
    session.add(Payment(
        id=payment_id, transaction_id=order.id, booking_id=booking.id, customer_id=customer_id,
        vendor_id=booking.vendor_id, amount=amounts.subtotal, tax_amount=amounts.tax,
        discount_amount=amounts.discount, convenience_fee=amounts.convenience_fee, total_amount=amounts.total,
        payment_method=method, payment_gateway="razorpay", status="pending",
        gateway_metadata={"razorpay_order_id": order.id, "provider": provider.name}))
    session.flush()
    return Checkout(payment_id, provider.key_id, order.id, order.amount_paise, order.currency, amounts,
                    booking.booking_number)


def confirm_checkout(session: Session, provider: PaymentProvider, *, payment_id: uuid.UUID,
                     customer_id: uuid.UUID, order_id: str, gateway_payment_id: str, signature: str) -> Payment:
    """The app's callback after checkout. Nothing is marked paid unless Razorpay's signature over
    `order_id|payment_id` verifies with our key secret and the order is this payment's.

    `session` is the service session: a customer must not be able to mark payments successful,
    so the request role has no such right; the verified signature is what authorises this write."""
    if not provider.verify_payment_signature(order_id=order_id, payment_id=gateway_payment_id, signature=signature):
        raise InvalidSignature("the payment signature does not verify")
    lock_gateway_payment(session, gateway_payment_id)
    payment = session.scalars(select(Payment).where(Payment.id == payment_id).with_for_update()).one_or_none()
    if payment is None or payment.customer_id != customer_id:
        raise PaymentNotFound(f"no payment {payment_id}")
    if payment.transaction_id != order_id:
        raise InvalidSignature("the signature is for another order")
    from ombaro.payments.webhooks import release_parked  # the webhook module builds on this one

    changed = advance_payment(session, payment, "success", gateway_payment_id=gateway_payment_id, at=db_now(session))
    release_parked(session, order_id, gateway_payment_id)  # its events from before the order was known here
    if changed:
        release_parked(session, gateway_payment_id, gateway_payment_id)  # and what waited for the capture
    return payment


def advance_payment(session: Session, payment: Payment, status: str, *, gateway_payment_id: str | None = None,
                    at: dt.datetime | None = None, method: str | None = None,
                    details: dict[str, Any] | None = None) -> bool:
    """Move a payment forward to `status`; a status of lower or equal rank changes nothing.
    Returns whether the payment changed. The booking's payment status follows."""
    if PAYMENT_RANK[status] <= PAYMENT_RANK[payment.status]:
        return False
    payment.status = status
    if gateway_payment_id:
        payment.gateway_transaction_id = gateway_payment_id
    if status == "success" and payment.payment_date is None:
        payment.payment_date = at or db_now(session)
    if method:
        payment.payment_method = method
    if details:
        payment.gateway_metadata = {**(payment.gateway_metadata or {}), **details}
    session.flush()
    sync_booking_payment_status(session, payment.booking_id)
    return True


def sync_booking_payment_status(session: Session, booking_id: uuid.UUID) -> str:
    """bookings.payment_status from its payments: `paid` when what was paid and not refunded covers
    the total, `partial` when part of it does, `refunded` when everything paid went back. The
    column is protected from the request role (migration 0003), so this goes through the database
    function of migration 0005, which can set nothing but the value the payments imply."""
    status: str = session.execute(text("SELECT sync_booking_payment_status(:id)"), {"id": booking_id}).scalar_one()
    return status


# --- cash ------------------------------------------------------------------------------------------


def record_cash_payment(session: Session, *, booking_id: uuid.UUID, amount: Decimal | None,
                        note: str | None) -> Payment:
    """Cash a vendor took at the counter for a spa visit. Runs as the vendor (row-level security:
    its own bookings only). The amount may not exceed what is still due, so a repeated submission
    is refused instead of counted twice."""
    vendor_id = session.execute(text("SELECT auth.vendor_id()")).scalar_one()
    booking = session.scalars(select(Booking).where(Booking.id == booking_id).with_for_update()).one_or_none()
    if booking is None or vendor_id is None or booking.vendor_id != vendor_id:
        raise PaymentNotFound(f"no booking {booking_id}")
    if booking.booking_type != "spa_visit":
        raise PaymentConflict(f"booking {booking.booking_number} is a {booking.booking_type}: "
                              "cash is recorded for spa visits only")
    if booking.status == "cancelled":
        raise PaymentConflict(f"booking {booking.booking_number} is cancelled")
    due = booking.total_amount - session.execute(text(
        "SELECT coalesce(sum(total_amount - coalesce(refund_amount, 0)), 0) FROM payments "
        "WHERE booking_id = :id AND status IN ('success', 'partially_refunded', 'refunded')"),
        {"id": booking.id}).scalar_one()
    amount = due if amount is None else amount
    if due <= 0:
        raise PaymentConflict(f"booking {booking.booking_number} has nothing left to pay")
    if amount <= 0 or amount > due:
        raise PaymentConflict(f"booking {booking.booking_number}: {amount} is more than the {due} still due")
    payment_id = uuid.uuid4()
    now = db_now(session)
    payment = Payment(
        id=payment_id, transaction_id=f"CASH-{payment_id.hex.upper()}", booking_id=booking.id,
        customer_id=booking.customer_id, vendor_id=vendor_id, amount=amount, tax_amount=ZERO, discount_amount=ZERO,
        convenience_fee=ZERO, total_amount=amount, payment_method="cash", payment_gateway=None, status="success",
        payment_date=now, gateway_metadata={"collected_by": "vendor", **({"note": note} if note else {})})
    session.add(payment)
    session.flush()
    sync_booking_payment_status(session, booking.id)
    return payment


# --- refunds ---------------------------------------------------------------------------------------


def lock_payment(session: Session, payment_id: uuid.UUID) -> Payment:
    """The payment row, locked: refunds of one payment (and their Idempotency-Key replays) are
    decided one at a time, so concurrent ones can neither exceed it nor make two of one request."""
    payment = session.scalars(select(Payment).where(Payment.id == payment_id).with_for_update()).one_or_none()
    if payment is None:
        raise PaymentNotFound(f"no payment {payment_id}")
    return payment


def request_refund(session: Session, *, payment_id: uuid.UUID, amount: Decimal | None, reason: str,
                   requested_by: uuid.UUID | None) -> PaymentRefund:
    """Record a refund and commit the payment to it at once (refund_amount, status, the booking's
    payment status); the provider is asked by the `payments.refund` job. If the provider refuses,
    the job gives the amount back (`fail_refund`). The payment row is locked: two refunds racing
    each other cannot together exceed what was paid."""
    payment = lock_payment(session, payment_id)
    if payment.payment_method == "cash" or payment.payment_gateway != "razorpay":
        raise PaymentConflict("only online payments are refunded through the platform; cash goes back at the counter")
    if payment.status not in ("success", "partially_refunded"):
        raise PaymentConflict(f"payment {payment.transaction_id} is {payment.status}: nothing to refund")
    if not payment.gateway_transaction_id:
        raise PaymentConflict(f"payment {payment.transaction_id} has no gateway payment id")
    refundable = payment.total_amount - (payment.refund_amount or ZERO)
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        raise PaymentConflict(f"at most {refundable} of payment {payment.transaction_id} can be refunded, "
                              f"not {amount}")
    refund = PaymentRefund(payment_id=payment.id, booking_id=payment.booking_id, vendor_id=payment.vendor_id,
                           amount=amount, reason=reason.strip(), status="pending", requested_by=requested_by)
    session.add(refund)
    apply_refund_to_payment(session, payment, amount, reason=reason.strip())
    session.flush()
    return refund


def apply_refund_to_payment(session: Session, payment: Payment, delta: Decimal, *, reason: str | None) -> None:
    """refund_amount += delta (negative when a refund failed) and the statuses that follow from it."""
    refunded = (payment.refund_amount or ZERO) + delta
    payment.refund_amount = refunded if refunded > 0 else None
    if refunded <= 0:
        payment.status = "success"
        payment.refund_date = None
    else:
        payment.status = "refunded" if refunded >= payment.total_amount else "partially_refunded"
        payment.refund_date = db_now(session)
        if reason:
            payment.refund_reason = reason
    session.flush()
    sync_booking_payment_status(session, payment.booking_id)


def send_refund(session: Session, provider: PaymentProvider, refund_id: uuid.UUID, *, look_first: bool) -> str:
    """Ask the provider for a recorded refund (the `payments.refund` job). The refund's own id is
    the receipt: on a retry (`look_first`) the provider is asked whether it already has it before
    anything is sent again, so a timeout after success never refunds twice."""
    payment_id = session.execute(select(PaymentRefund.payment_id).where(PaymentRefund.id == refund_id)).scalar_one()
    payment = session.scalars(select(Payment).where(Payment.id == payment_id).with_for_update()).one()  # lock order
    refund = session.scalars(select(PaymentRefund).where(PaymentRefund.id == refund_id).with_for_update()).one()
    if refund.status != "pending" or refund.gateway_refund_id:
        return refund.status
    receipt = str(refund.id)
    try:
        found = provider.find_refund(payment_id=str(payment.gateway_transaction_id), receipt=receipt) \
            if look_first else None
        answer = found or provider.create_refund(
            payment_id=str(payment.gateway_transaction_id), amount_paise=to_paise(refund.amount), receipt=receipt,
            notes={"refund_id": receipt, "reason": refund.reason[:200]})
    except ProviderUnavailable as exc:
        raise RetryLater(f"refund {refund.id}: {exc}") from exc
    except ProviderRejected as exc:
        fail_refund(session, refund, str(exc))
        return refund.status
    refund.gateway_refund_id = answer.id
    if answer.status == "processed":
        refund.status, refund.processed_at = "processed", db_now(session)
    elif answer.status == "failed":
        fail_refund(session, refund, "the provider reports the refund failed")
    session.flush()
    return refund.status


def fail_refund(session: Session, refund: PaymentRefund, reason: str) -> None:
    if refund.status != "pending":
        return  # processed is final; failed already gave the amount back
    refund.status, refund.failure_reason = "failed", reason[:2000]
    payment = session.scalars(select(Payment).where(Payment.id == refund.payment_id).with_for_update()).one()
    apply_refund_to_payment(session, payment, -refund.amount, reason=None)


# --- locks ----------------------------------------------------------------------------------------
#
# Lock order of everything that touches a payment: the provider payment's advisory lock, then the
# payment row, then its refund rows, then the booking (webhooks: ombaro/payments/webhooks.py).


def lock_gateway_payment(session: Session, gateway_payment_id: str | None) -> None:
    """Serialise everything about one provider payment (its events, the checkout callback)."""
    if gateway_payment_id:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('ombaro.razorpay-payment:' || :p, 0))"),
                        {"p": gateway_payment_id})


def db_now(session: Session) -> dt.datetime:
    return session.execute(select(func.now())).scalar_one()
