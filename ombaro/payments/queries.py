"""What the payments API reads: payments as the caller may see them, a payment's refunds, and the
refund an Idempotency-Key already asked for. Read in the caller's session: row-level security
decides whose rows exist."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ombaro.commands import Submitted
from ombaro.models.jobs import Job
from ombaro.models.payments import Payment
from ombaro.models.settlements import PaymentRefund

REFUND_KIND = "payments.refund"


def list_payments(session: Session, *, booking_id: uuid.UUID | None, statuses: Sequence[str],
                  limit: int) -> Sequence[Payment]:
    """Payments newest first, of one booking when given, in any of `statuses` (all when empty)."""
    query = select(Payment).order_by(Payment.created_at.desc(), Payment.id).limit(limit)
    if booking_id:
        query = query.where(Payment.booking_id == booking_id)
    if statuses:
        query = query.where(Payment.status.in_(statuses))
    return session.scalars(query).all()


def refunds_of(session: Session, payment_id: uuid.UUID) -> Sequence[PaymentRefund]:
    """The payment's refunds, oldest first."""
    return session.scalars(select(PaymentRefund).where(PaymentRefund.payment_id == payment_id)
                           .order_by(PaymentRefund.created_at)).all()


def replayed_refund(session: Session, *, scope: str,
                    key: str | None) -> tuple[PaymentRefund | None, Submitted] | None:
    """The refund and its job that an earlier request with this Idempotency-Key made, if any."""
    if key is None:
        return None
    job = session.scalars(select(Job).where(Job.kind == REFUND_KIND, Job.idempotency_scope == scope,
                                            Job.idempotency_key == key)).one_or_none()
    if job is None:
        return None
    return session.get(PaymentRefund, uuid.UUID(job.params["refund_id"])), Submitted(job, created=False)
