"""Razorpay's webhook events: recorded once (web/api/webhooks.py), applied by the
`payments.webhook` job, parked while their entity is unknown here, swept, flagged when overdue
(docs/settlements.md "Webhooks", docs/reliability.md "Parked webhook events").

Events arrive out of order, concurrently and more than once: every branch only moves a state
forward. An event about an entity we do not know yet is parked on that entity's provider id
(`webhook_events.parked_on`), never marked done:

- `payment.*`, `order.paid` while no payment of ours has the order: parked on the order id,
  applied by the checkout callback or the next event of the same provider payment, else by the
  sweep;
- `refund.*` of a refund we do not have while its payment is unknown or not captured: parked on
  the provider payment id, applied by the capture (in its transaction), else by the sweep;
- `transfer.*` while no payout has the transfer (by its id or our key in its notes): parked on
  the transfer id, applied by the sweep once the payout reconciler has recorded the transfer.

The sweep (`sweep_parked`, run by `settlements.reconcile`, every 10 minutes) applies the parked
events whose entity now exists (one query finds them), then flags the ones parked longer than the
age limit (`overdue_at`, a warning log line per event, `ombaro_webhook_events_overdue_total`).
A flagged event stays parked and is still applied if its entity appears.

Lock order of everything that touches a payment: the provider payment's advisory lock (a payment
event and a refund event of one provider payment serialise on it, even before we know which of
our payments it is), then the payment row, then its refund rows, then the booking (through
sync_booking_payment_status). Parked events are taken with SKIP LOCKED: one locked is being
applied by its own job (or a sweep), which waits on the advisory lock and then sees what we
committed. A transaction that applies several events never takes an advisory lock after a row
lock: a released event is applied in another's transaction only if it is about the same provider
payment, and the sweep takes all its batch's advisory locks, sorted, before any row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ombaro import metrics
from ombaro.db import fixed_insert
from ombaro.models.payments import Payment
from ombaro.models.settlements import PaymentRefund, WebhookEvent
from ombaro.money import from_paise, to_paise
from ombaro.payments import (
    SETTLED_PAYMENT_STATUSES,
    ZERO,
    advance_payment,
    apply_refund_to_payment,
    db_now,
    fail_refund,
    lock_gateway_payment,
)

log = logging.getLogger(__name__)

PROVIDER = "razorpay"
OVERDUE_AFTER = dt.timedelta(hours=1)  # the default age limit of a parked event
SWEEP_LIMIT = 500  # parked events applied per sweep (the rest at the next one)
# Razorpay's methods to the schema's (a card's type decides credit or debit).
METHODS = {"upi": "upi", "netbanking": "net_banking", "wallet": "wallet", "emi": "credit_card",
           "cardless_emi": "credit_card", "paylater": "wallet"}


# --- recording -------------------------------------------------------------------------------------


def event_id_of(body: bytes, header_id: str | None) -> str:
    """Razorpay names each event in X-Razorpay-Event-Id; without it, the body's hash stands in.
    The header is not signed: de-duplication also holds on `signed_key_of` the body."""
    return header_id.strip() if header_id and header_id.strip() else "sha256:" + hashlib.sha256(body).hexdigest()


def signed_key_of(body: bytes, event: dict[str, Any]) -> str:
    """The event's identity from inside the signed body: its type, its created_at, the account and
    the id of every entity it carries. A valid event replayed under a new (or no) event-id header
    has the same key; so does Razorpay's own retry, even re-serialised. Without any entity id the
    raw body's hash is the key."""
    raw = event.get("payload")
    payload: dict[str, Any] = raw if isinstance(raw, dict) else {}
    entities = {name: (wrapper.get("entity") or {}).get("id") for name, wrapper in sorted(payload.items())
                if isinstance(wrapper, dict) and isinstance(wrapper.get("entity"), dict)}
    if not any(entities.values()):
        return "body:" + hashlib.sha256(body).hexdigest()
    canonical = json.dumps({"event": event.get("event"), "created_at": event.get("created_at"),
                            "account_id": event.get("account_id"), "entities": entities},
                           sort_keys=True, separators=(",", ":"), default=str)
    return "content:" + hashlib.sha256(canonical.encode()).hexdigest()


# Once per event id and once per signed content: ON CONFLICT on either unique index.
_RECORD_EVENT = select(WebhookEvent).from_statement(fixed_insert(
    WebhookEvent.__table__, ("provider", "event_id", "event_type", "payload", "signed_key"), "ON CONFLICT DO NOTHING"))


def record_event(session: Session, *, provider: str, event_id: str, event_type: str,
                 payload: dict[str, Any], signed_key: str | None = None) -> WebhookEvent | None:
    """Keep a delivery once per event id and once per signed content; None when it was seen
    before (a replay, Razorpay's retry, or the same signed body under another event id)."""
    return session.scalars(_RECORD_EVENT, {"provider": provider, "event_id": event_id, "event_type": event_type,
                                           "payload": payload, "signed_key": signed_key}).one_or_none()


# --- applying --------------------------------------------------------------------------------------


def _gateway_payment_of(kind: str, payload: dict[str, Any]) -> str | None:
    if kind.startswith("payment.") or kind == "order.paid":
        return ((payload.get("payment") or {}).get("entity") or {}).get("id")
    if kind.startswith("refund."):
        return ((payload.get("refund") or {}).get("entity") or {}).get("payment_id")
    return None


def handle_event(session: Session, event: WebhookEvent) -> str:
    """Apply one Razorpay event (the `payments.webhook` job; the caller holds the event's row).
    Returns what it did. An event whose entity is not known yet is parked (`parked_on` set,
    `processed_at` left empty) and applied again when the entity appears."""
    if event.processed_at is not None and event.parked_on is None:
        return event.outcome or "done"
    payload = event.payload.get("payload") or {}
    kind = event.event_type
    lock_gateway_payment(session, _gateway_payment_of(kind, payload))
    event.parked_on = None
    if kind.startswith("payment.") or kind == "order.paid":
        outcome = _payment_event(session, event, kind, payload)
    elif kind.startswith("refund."):
        outcome = _refund_event(session, event, kind, (payload.get("refund") or {}).get("entity") or {})
    elif kind.startswith("transfer."):
        outcome = _transfer_event(session, event, kind, (payload.get("transfer") or {}).get("entity") or {})
    else:
        outcome = "ignored"
    event.processed_at, event.outcome = (None if event.parked_on else db_now(session)), outcome
    session.flush()
    return outcome


def release_parked(session: Session, entity_id: str, gateway_payment_id: str) -> list[str]:
    """Apply the events parked on this provider id (an order, a payment) that are about the
    provider payment whose advisory lock the caller holds, now that they may apply. Events of the
    order about another provider payment (an earlier failed attempt) are left to the sweep: taking
    their lock here, after the payment's row, could deadlock with their own job. An event locked by
    its own job is skipped (that job waits on the advisory lock and then sees this transaction's
    work)."""
    parked = session.scalars(select(WebhookEvent).where(WebhookEvent.provider == PROVIDER,
                                                        WebhookEvent.parked_on == entity_id)
                             .order_by(WebhookEvent.received_at).with_for_update(skip_locked=True)).all()
    return [handle_event(session, event) for event in parked
            if _gateway_payment_of(event.event_type, event.payload.get("payload") or {}) in (None, gateway_payment_id)]


def _park(event: WebhookEvent, entity_id: str, why: str) -> str:
    event.parked_on = entity_id
    return f"parked: {why}"


def _payment_event(session: Session, event: WebhookEvent, kind: str, payload: dict[str, Any]) -> str:
    entity = (payload.get("payment") or {}).get("entity") or {}
    order_id = entity.get("order_id") or ((payload.get("order") or {}).get("entity") or {}).get("id")
    if not order_id:
        return "no order id"
    payment = session.scalars(select(Payment).where(Payment.transaction_id == order_id).with_for_update()).one_or_none()
    if payment is None:
        return _park(event, str(order_id), f"order {order_id} is unknown here")
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
    released: list[str] = []
    if entity.get("id"):
        # Events of this payment that came before its order was known, then what waited for the capture.
        released = release_parked(session, str(order_id), str(entity["id"]))
        if changed and payment.gateway_transaction_id == entity.get("id"):
            released += release_parked(session, str(entity["id"]), str(entity["id"]))
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
        if payment is None or payment.status not in SETTLED_PAYMENT_STATUSES:
            # Razorpay refunds only captured payments: the capture (or the payment) has not reached
            # us yet. Park the event on the provider payment; the capture applies it.
            if not gateway_payment:
                return "refund without a payment id"
            return _park(event, str(gateway_payment), f"payment {gateway_payment} is "
                         f"{'unknown' if payment is None else payment.status} here")
        if kind != "refund.processed":
            return f"{kind} of a refund made elsewhere: nothing to apply until it is processed"
        refund = _refund_made_elsewhere(session, payment, entity)
        if refund is None:
            return "refund exceeds what is left to refund of the payment"
    refund.gateway_refund_id = refund.gateway_refund_id or gateway_id
    if kind == "refund.processed" and refund.status == "pending":
        refund.status, refund.processed_at = "processed", db_now(session)
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
    apply_refund_to_payment(session, payment, amount, reason=refund.reason)
    session.flush()
    return refund


def _transfer_event(session: Session, event: WebhookEvent, kind: str, entity: dict[str, Any]) -> str:
    from ombaro.settlements.payouts import transfer_event

    outcome = transfer_event(session, kind, entity)
    if outcome == "unknown transfer" and entity.get("id"):
        return _park(event, str(entity["id"]), f"transfer {entity['id']} is unknown here")
    return outcome


# --- the sweep -------------------------------------------------------------------------------------

# A parked event whose entity now exists: the order has a payment of ours; the payment is captured
# (what a parked refund waits for); a payout carries the transfer.
_APPLICABLE = text("""
    SELECT e.id FROM webhook_events AS e
    WHERE e.provider = :provider AND e.parked_on IS NOT NULL AND (
          EXISTS (SELECT 1 FROM payments AS p WHERE p.transaction_id = e.parked_on)
       OR EXISTS (SELECT 1 FROM payments AS p WHERE p.gateway_transaction_id = e.parked_on
                  AND p.status IN ('success', 'partially_refunded', 'refunded'))
       OR EXISTS (SELECT 1 FROM payouts AS o WHERE o.provider_transfer_id = e.parked_on))
    ORDER BY e.received_at
    LIMIT :limit
    FOR UPDATE OF e SKIP LOCKED""")

_FLAG_OVERDUE = text("""
    UPDATE webhook_events SET overdue_at = now()
    WHERE provider = :provider AND parked_on IS NOT NULL AND overdue_at IS NULL
      AND received_at < now() - make_interval(secs => :seconds)
    RETURNING event_id, event_type, parked_on, received_at""")


def sweep_parked(session: Session, *, overdue_after: dt.timedelta = OVERDUE_AFTER,
                 limit: int = SWEEP_LIMIT) -> dict[str, int]:
    """Apply the parked events whose entity has appeared since; flag the ones parked longer than
    `overdue_after` (`overdue_at`, a warning per event, the overdue counter once committed). Rows
    another transaction holds are left for the next sweep. Returns counts."""
    ids = session.scalars(_APPLICABLE, {"provider": PROVIDER, "limit": limit}).all()
    events = [session.get_one(WebhookEvent, event_id) for event_id in ids]
    # Every provider payment's lock before any row, in one order: a job holds at most one of them
    # and takes no other after it, so neither side can wait for the other in a cycle.
    gateway_payments = {_gateway_payment_of(e.event_type, e.payload.get("payload") or {}) for e in events}
    for gateway_payment_id in sorted(p for p in gateway_payments if p is not None):
        lock_gateway_payment(session, gateway_payment_id)
    still_parked = 0
    for event in events:
        handle_event(session, event)
        still_parked += event.parked_on is not None  # e.g. a refund whose payment is not captured
    overdue = session.execute(_FLAG_OVERDUE, {"provider": PROVIDER,
                                              "seconds": overdue_after.total_seconds()}).all()
    for row in overdue:
        log.warning("webhook event %s (%s) still parked on %s since %s: overdue, its entity never appeared "
                    "(docs/reliability.md, \"Parked webhook events\")", row.event_id, row.event_type, row.parked_on,
                    row.received_at.isoformat())
    if overdue:
        by_type = Counter(row.event_type for row in overdue)

        def count(_: Session) -> None:
            for event_type, n in by_type.items():
                metrics.inc(metrics.WEBHOOK_EVENTS_OVERDUE, PROVIDER, event_type, by=n)

        orm_event.listen(session, "after_commit", count, once=True)
    parked = session.execute(select(func.count()).select_from(WebhookEvent).where(
        WebhookEvent.provider == PROVIDER, WebhookEvent.parked_on.is_not(None))).scalar_one()
    return {"applied": len(ids) - still_parked, "overdue": len(overdue), "parked": parked}
