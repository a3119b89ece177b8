"""Payments: Razorpay checkout for a booking, its verified callback, cash taken by vendors,
refunds, and payments as the caller may see them (docs/settlements.md)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import url_for
from marshmallow import Schema, fields, validate

from ombaro import commands, payments
from ombaro.models.payments import PAYMENT_METHODS, PAYMENT_STATUSES, Payment
from ombaro.models.settlements import PaymentRefund
from ombaro.payments import queries
from ombaro.providers import payment_provider
from web.auth import current_user, current_user_id, requires
from web.commanding import idempotency_key
from web.errors import NotFound
from web.extension import Ombaro, db_session
from web.openapi import idempotent
from web.sanitize import Blueprint
from web.schemas import Integer, JobSchema, Money, MoneyAmount

blp = Blueprint("payments", __name__, url_prefix="/api/v1/payments", description="Payments and refunds")

ONLINE_METHODS = tuple(m for m in PAYMENT_METHODS if m != "cash")


class PaymentRefundSchema(Schema):
    id = fields.UUID()
    payment_id = fields.UUID()
    amount = MoneyAmount()
    reason = fields.String()
    status = fields.String()
    gateway_refund_id = fields.String(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    processed_at = fields.DateTime(allow_none=True)


class PaymentSchema(Schema):
    id = fields.UUID()
    transaction_id = fields.String()
    booking_id = fields.UUID()
    customer_id = fields.UUID()
    vendor_id = fields.UUID()
    amount = MoneyAmount()
    tax_amount = MoneyAmount(allow_none=True)
    discount_amount = MoneyAmount(allow_none=True)
    convenience_fee = MoneyAmount(allow_none=True)
    total_amount = MoneyAmount()
    payment_method = fields.String()
    payment_gateway = fields.String(allow_none=True)
    gateway_transaction_id = fields.String(allow_none=True)
    status = fields.String()
    payment_date = fields.DateTime(allow_none=True)
    refund_amount = MoneyAmount(allow_none=True)
    refund_date = fields.DateTime(allow_none=True)
    refund_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()


class PaymentDetailSchema(PaymentSchema):
    refunds = fields.List(fields.Nested(PaymentRefundSchema))


class PaymentOrderRequestSchema(Schema):
    booking_id = fields.UUID(required=True)
    method = fields.String(load_default="upi", validate=validate.OneOf(ONLINE_METHODS),
                           metadata={"description": "the method the customer intends; Razorpay's final one wins"})


class OrderAmountsSchema(Schema):
    subtotal = MoneyAmount()
    discount = MoneyAmount()
    tax = MoneyAmount()
    convenience_fee = MoneyAmount()
    total = MoneyAmount()


class PaymentCheckoutSchema(Schema):
    payment_id = fields.UUID()
    key_id = fields.String(metadata={"description": "Razorpay key id for checkout"})
    order_id = fields.String()
    amount = fields.Integer(metadata={"description": "in paise"})
    currency = fields.String()
    booking_number = fields.String()
    amounts = fields.Nested(OrderAmountsSchema)


class PaymentVerifySchema(Schema):
    razorpay_order_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    razorpay_payment_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    razorpay_signature = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-fA-F]{64}$"))


class CashPaymentSchema(Schema):
    booking_id = fields.UUID(required=True)
    amount = Money(exclusive_minimum=True, metadata={"description": "defaults to what is still due"})
    note = fields.String(validate=validate.Length(max=500))


class PaymentRefundRequestSchema(Schema):
    amount = Money(exclusive_minimum=True, metadata={"description": "defaults to everything not yet refunded"})
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class PaymentRefundAcceptedSchema(Schema):
    refund = fields.Nested(PaymentRefundSchema)
    job = fields.Nested(JobSchema)


class PaymentListQuerySchema(Schema):
    booking_id = fields.UUID()
    status = fields.List(fields.String(validate=validate.OneOf(PAYMENT_STATUSES)), load_default=list)
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))


def _provider() -> Any:
    return payment_provider(Ombaro.get().settings)


@blp.post("/orders")
@requires("payments", "create")
@blp.arguments(PaymentOrderRequestSchema)
@blp.response(201, PaymentCheckoutSchema)
def create_order(params: dict[str, Any]) -> Any:
    """Open a Razorpay order for one of the caller's bookings, for the amount the server computes
    (items with add-ons, promotion discount, tax, convenience fee); answers what checkout needs."""
    session = db_session()
    with session.begin():
        checkout = payments.open_order(session, _provider(), booking_id=params["booking_id"],
                                       customer_id=current_user_id(), method=params["method"],
                                       convenience_fee=Ombaro.get().settings.convenience_fee)
    a = checkout.amounts
    return {"payment_id": checkout.payment_id, "key_id": checkout.key_id, "order_id": checkout.order_id,
            "amount": checkout.amount_paise, "currency": checkout.currency, "booking_number": checkout.booking_number,
            "amounts": {"subtotal": a.subtotal, "discount": a.discount, "tax": a.tax,
                        "convenience_fee": a.convenience_fee, "total": a.total}}


@blp.post("/<uuid:payment_id>/verify")
@requires("payments", "create")
@blp.arguments(PaymentVerifySchema)
@blp.response(200, PaymentSchema)
def verify_payment(params: dict[str, Any], payment_id: uuid.UUID) -> Any:
    """Checkout's callback: the payment is marked paid only if Razorpay's signature verifies.
    Written on the service session: customers may not mark payments paid themselves (the request
    role has no such right); the verified signature is the authority for this one write."""
    with Ombaro.get().sessions() as session, session.begin():
        payment = payments.confirm_checkout(
            session, _provider(), payment_id=payment_id, customer_id=current_user_id(),
            order_id=params["razorpay_order_id"], gateway_payment_id=params["razorpay_payment_id"],
            signature=params["razorpay_signature"])
    return payment


@blp.post("/cash")
@requires("payments", "create")
@blp.arguments(CashPaymentSchema)
@blp.response(201, PaymentSchema)
def record_cash(params: dict[str, Any]) -> Any:
    """Cash the caller's spa took for a spa visit (vendors only: row-level security)."""
    session = db_session()
    with session.begin():
        payment = payments.record_cash_payment(session, booking_id=params["booking_id"],
                                               amount=params.get("amount"), note=params.get("note"))
    return payment


@blp.post("/<uuid:payment_id>/refunds")
@requires("payments", "update")
@idempotent
@blp.arguments(PaymentRefundRequestSchema)
@blp.response(202, PaymentRefundAcceptedSchema)
def refund_payment(params: dict[str, Any], payment_id: uuid.UUID) -> Any:
    """Refund all or part of an online payment, with a reason. The payment, its refund amount and
    the booking's payment status change at once; the provider is asked by a job."""
    user = current_user()
    key = idempotency_key()
    session = db_session()
    with session.begin():
        # The payment's lock first: a concurrent request with the same key waits here, then finds
        # the first one's job instead of recording a second refund.
        payments.lock_payment(session, payment_id)
        replay = queries.replayed_refund(session, scope=user.idempotency_scope, key=key)
        if replay is not None:
            return _accepted(*replay)
        refund = payments.request_refund(session, payment_id=payment_id, amount=params.get("amount"),
                                         reason=params["reason"], requested_by=user.id)
        submitted = commands.submit(session, queries.REFUND_KIND, {"refund_id": str(refund.id)},
                                    enqueue=Ombaro.get().enqueue, key=key, scope=user.idempotency_scope,
                                    requested_by=user.id)
        return _accepted(refund, submitted)


def _accepted(refund: PaymentRefund | None, submitted: commands.Submitted) -> Any:
    headers = {"Location": url_for("jobs.get_job", job_id=submitted.job.id)}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return {"refund": refund, "job": submitted.job}, 202, headers


@blp.get("")
@requires("payments", "read")
@blp.arguments(PaymentListQuerySchema, location="query", as_kwargs=True)
@blp.response(200, PaymentSchema(many=True))
def list_payments(status: list[str], limit: int, booking_id: uuid.UUID | None = None) -> Any:
    """The caller's payments (a customer's own, a vendor's; finance and customer care see all)."""
    return queries.list_payments(db_session(), booking_id=booking_id, statuses=status, limit=limit)


@blp.get("/<uuid:payment_id>")
@requires("payments", "read")
@blp.response(200, PaymentDetailSchema)
def get_payment(payment_id: uuid.UUID) -> Any:
    session = db_session()
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id}")
    return {**{name: getattr(payment, name) for name in PaymentSchema().fields},
            "refunds": queries.refunds_of(session, payment_id)}
