"""Money in: Razorpay orders for bookings, the checkout callback's signature, webhook events,
refunds and cash taken by vendors (docs/settlements.md, "Payments").

States only move forward. A payment's rank is pending < failed < processing < success <
partially_refunded < refunded: a late `payment.failed` after a capture changes nothing, and a new
attempt on an order that failed may still succeed. A booking's payment status is not stored
independently: it is recomputed from its payments whenever one of them changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ombaro.commands import RetryLater
from ombaro.models.bookings import Booking
from ombaro.models.payments import Payment
from ombaro.models.settlements import PaymentRefund, WebhookEvent
from ombaro.money import from_paise, to_paise
from ombaro.providers import PaymentProvider, ProviderRejected, ProviderUnavailable

ZERO = Decimal("0.00")
SETTLED_PAYMENT_STATUSES = ("success", "partially_refunded", "refunded")
PAYMENT_RANK = {"pending": 0, "failed": 1, "processing": 2, "success": 3, "partially_refunded": 4, "refunded": 5}
# Razorpay's methods to the schema's (a card's type decides credit or debit).
METHODS = {"upi": "upi", "netbanking": "net_banking", "wallet": "wallet", "emi": "credit_card",
           "cardless_emi": "credit_card", "paylater": "wallet"}


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
    if advance_payment(session, payment, "success", gateway_payment_id=gateway_payment_id, at=_now(session)):
        release_parked(session, gateway_payment_id)
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
        payment.payment_date = at or _now(session)
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
    return session.execute(text("SELECT sync_booking_payment_status(:id)"), {"id": booking_id}).scalar_one()


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
    now = _now(session)
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
    _apply_refund_to_payment(session, payment, amount, reason=reason.strip())
    session.flush()
    return refund


def _apply_refund_to_payment(session: Session, payment: Payment, delta: Decimal, *, reason: str | None) -> None:
    """refund_amount += delta (negative when a refund failed) and the statuses that follow from it."""
    refunded = (payment.refund_amount or ZERO) + delta
    payment.refund_amount = refunded if refunded > 0 else None
    if refunded <= 0:
        payment.status = "success"
        payment.refund_date = None
    else:
        payment.status = "refunded" if refunded >= payment.total_amount else "partially_refunded"
        payment.refund_date = _now(session)
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
        refund.status, refund.processed_at = "processed", _now(session)
    elif answer.status == "failed":
        fail_refund(session, refund, "the provider reports the refund failed")
    session.flush()
    return refund.status


def fail_refund(session: Session, refund: PaymentRefund, reason: str) -> None:
    if refund.status != "pending":
        return  # processed is final; failed already gave the amount back
    refund.status, refund.failure_reason = "failed", reason[:2000]
    payment = session.scalars(select(Payment).where(Payment.id == refund.payment_id).with_for_update()).one()
    _apply_refund_to_payment(session, payment, -refund.amount, reason=None)


# --- webhooks --------------------------------------------------------------------------------------
#
# Lock order of everything that touches a payment: the provider payment's advisory lock (a payment
# event and a refund event of one provider payment serialise on it, even before we know which of
# our payments it is), then the payment row, then its refund rows, then the booking (through
# sync_booking_payment_status). Parked events are taken with SKIP LOCKED: one locked is being
# applied by its own job, which waits on the advisory lock and then sees what we committed.


def event_id_of(body: bytes, header_id: str | None) -> str:
    """Razorpay names each event in X-Razorpay-Event-Id; without it, the body's hash stands in.
    The header is not signed: de-duplication also holds on `signed_key_of` the body."""
    return header_id.strip() if header_id and header_id.strip() else "sha256:" + hashlib.sha256(body).hexdigest()


def signed_key_of(body: bytes, event: dict[str, Any]) -> str:
    """The event's identity from inside the signed body: its type, its created_at, the account and
    the id of every entity it carries. A valid event replayed under a new (or no) event-id header
    has the same key; so does Razorpay's own retry, even re-serialised. Without any entity id the
    raw body's hash is the key."""
    payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
    entities = {name: (wrapper.get("entity") or {}).get("id") for name, wrapper in sorted(payload.items())
                if isinstance(wrapper, dict) and isinstance(wrapper.get("entity"), dict)}
    if not any(entities.values()):
        return "body:" + hashlib.sha256(body).hexdigest()
    canonical = json.dumps({"event": event.get("event"), "created_at": event.get("created_at"),
                            "account_id": event.get("account_id"), "entities": entities},
                           sort_keys=True, separators=(",", ":"), default=str)
    return "content:" + hashlib.sha256(canonical.encode()).hexdigest()


def record_event(session: Session, *, provider: str, event_id: str, event_type: str,
                 payload: dict[str, Any], signed_key: str | None = None) -> WebhookEvent | None:
    """Keep a delivery once per event id and once per signed content; None when it was seen
    before (a replay, Razorpay's retry, or the same signed body under another event id)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    row = session.scalars(
        pg_insert(WebhookEvent).values(provider=provider, event_id=event_id, event_type=event_type, payload=payload,
                                       signed_key=signed_key)
        .on_conflict_do_nothing().returning(WebhookEvent)).one_or_none()
    return row


def lock_gateway_payment(session: Session, gateway_payment_id: str | None) -> None:
    """Serialise everything about one provider payment (its events, the checkout callback)."""
    if gateway_payment_id:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('ombaro.razorpay-payment:' || :p, 0))"),
                        {"p": gateway_payment_id})


def _gateway_payment_of(kind: str, payload: dict[str, Any]) -> str | None:
    if kind.startswith("payment.") or kind == "order.paid":
        return ((payload.get("payment") or {}).get("entity") or {}).get("id")
    if kind.startswith("refund."):
        return ((payload.get("refund") or {}).get("entity") or {}).get("payment_id")
    return None


def handle_event(session: Session, event: WebhookEvent) -> str:
    """Apply one Razorpay event (the `payments.webhook` job). Returns what it did. Events arrive
    out of order, concurrently and more than once: every branch only moves a state forward, and an
    event about a payment we cannot apply it to yet (a refund before the capture) is parked on the
    provider's payment id and applied when that payment is captured."""
    if event.processed_at is not None and event.parked_on is None:
        return event.outcome or "done"
    payload = event.payload.get("payload") or {}
    kind = event.event_type
    lock_gateway_payment(session, _gateway_payment_of(kind, payload))
    event.parked_on = None
    if kind.startswith("payment.") or kind == "order.paid":
        outcome = _payment_event(session, kind, payload)
    elif kind.startswith("refund."):
        outcome = _refund_event(session, event, kind, (payload.get("refund") or {}).get("entity") or {})
    elif kind.startswith("transfer."):
        from ombaro.settlements.payouts import transfer_event

        outcome = transfer_event(session, kind, (payload.get("transfer") or {}).get("entity") or {})
    else:
        outcome = "ignored"
    event.processed_at, event.outcome = (None if event.parked_on else _now(session)), outcome
    session.flush()
    return outcome


def release_parked(session: Session, gateway_payment_id: str) -> list[str]:
    """Apply the events parked on this provider payment, now that it may take them. The caller
    holds the payment's advisory lock; an event locked by its own job is skipped (that job waits on
    the advisory lock and then sees this transaction's work)."""
    parked = session.scalars(select(WebhookEvent).where(WebhookEvent.provider == "razorpay",
                                                        WebhookEvent.parked_on == gateway_payment_id)
                             .order_by(WebhookEvent.received_at).with_for_update(skip_locked=True)).all()
    return [handle_event(session, event) for event in parked]


def _payment_event(session: Session, kind: str, payload: dict[str, Any]) -> str:
    entity = (payload.get("payment") or {}).get("entity") or {}
    order_id = entity.get("order_id") or ((payload.get("order") or {}).get("entity") or {}).get("id")
    if not order_id:
        return "no order id"
    payment = session.scalars(select(Payment).where(Payment.transaction_id == order_id).with_for_update()).one_or_none()
    if payment is None:
        return "unknown order"
    target = {"payment.authorized": "processing", "payment.captured": "success", "order.paid": "success",
              "payment.failed": "failed"}.get(kind)
    if target is None:
        return "ignored"
    amount = entity.get("amount")
    if target == "success" and amount is not None and int(amount) != to_paise(payment.total_amount):
        return f"amount mismatch: {amount} paise for {payment.total_amount}"
    method = _method(entity)
    details: dict[str, Any] = {"razorpay_payment_id": entity.get("id")} if entity.get("id") else {}
    if target == "failed":
        details.update(error_code=entity.get("error_code"), error_description=entity.get("error_description"))
    created = entity.get("created_at")
    at = dt.datetime.fromtimestamp(int(created), dt.UTC) if created else None
    changed = advance_payment(session, payment, target, gateway_payment_id=entity.get("id"), at=at,
                              method=method, details={k: v for k, v in details.items() if v is not None})
    outcome = f"payment {target}" if changed else f"payment already {payment.status}"
    if changed and entity.get("id") and payment.gateway_transaction_id == entity.get("id"):
        released = release_parked(session, str(entity["id"]))
        if released:
            outcome += f"; parked events applied: {', '.join(released)}"
    return outcome


def _method(entity: dict[str, Any]) -> str | None:
    method = entity.get("method")
    if method == "card":
        return "debit_card" if (entity.get("card") or {}).get("type") == "debit" else "credit_card"
    return METHODS.get(str(method)) if method else None


def _refund_event(session: Session, event: WebhookEvent, kind: str, entity: dict[str, Any]) -> str:
    gateway_id = entity.get("id")
    if not gateway_id:
        return "no refund id"
    gateway_payment = entity.get("payment_id")
    payment = session.scalars(select(Payment).where(Payment.gateway_transaction_id == gateway_payment)
                              .with_for_update()).one_or_none() if gateway_payment else None
    ours = (entity.get("notes") or {}).get("refund_id") if isinstance(entity.get("notes"), dict) else None
    refund = session.scalars(select(PaymentRefund).where(PaymentRefund.gateway_refund_id == gateway_id)
                             .with_for_update()).one_or_none()
    if refund is None and ours:
        try:
            refund = session.scalars(select(PaymentRefund).where(PaymentRefund.id == uuid.UUID(str(ours)))
                                     .with_for_update()).one_or_none()
        except ValueError:
            refund = None
    if refund is None:
        if kind != "refund.processed":
            return "unknown refund"
        if payment is None or payment.status not in SETTLED_PAYMENT_STATUSES:
            # Razorpay refunds only captured payments: the capture (or the payment) has not reached
            # us yet. Park the event on the provider payment; the capture applies it.
            event.parked_on = str(gateway_payment) if gateway_payment else None
            if event.parked_on is None:
                return "refund without a payment id"
            return f"parked: payment {gateway_payment} is {'unknown' if payment is None else payment.status} here"
        refund = _refund_made_elsewhere(session, payment, entity)
        if refund is None:
            return "refund exceeds what is left to refund of the payment"
    refund.gateway_refund_id = refund.gateway_refund_id or gateway_id
    if kind == "refund.processed" and refund.status == "pending":
        refund.status, refund.processed_at = "processed", _now(session)
        session.flush()
        return "refund processed"
    if kind == "refund.failed" and refund.status == "pending":
        fail_refund(session, refund, "the provider reports the refund failed")
        return "refund failed"
    return f"refund already {refund.status}"


def _refund_made_elsewhere(session: Session, payment: Payment, entity: dict[str, Any]) -> PaymentRefund | None:
    """A refund made on Razorpay's dashboard reaches us only as an event: record it, so the
    payment, the booking and the vendor's next settlement account for it."""
    amount = from_paise(int(entity.get("amount") or 0))
    refundable = payment.total_amount - (payment.refund_amount or ZERO)
    if amount <= 0 or amount > refundable:
        return None
    refund = PaymentRefund(payment_id=payment.id, booking_id=payment.booking_id, vendor_id=payment.vendor_id,
                           amount=amount, reason="refunded on the provider's dashboard", status="pending",
                           gateway_refund_id=str(entity.get("id")))
    session.add(refund)
    _apply_refund_to_payment(session, payment, amount, reason=refund.reason)
    session.flush()
    return refund


def _now(session: Session) -> dt.datetime:
    return session.execute(select(func.now())).scalar_one()
