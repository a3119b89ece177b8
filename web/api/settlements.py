"""Vendor settlements as the caller may see them (a vendor: its own; finance: all), runs,
approval (maker-checker), payouts, adjustments and statements (docs/settlements.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from flask import Response, url_for
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.models.payments import PaymentSettlement
from ombaro.settlements import commands as settlement_commands
from ombaro.settlements import payouts, queries, rates, runs, statements
from ombaro.settlements.runs import MAX_PERIOD_DAYS
from web.auth import current_user, current_user_id, requires
from web.commanding import idempotency_key, submit
from web.errors import NotFound
from web.extension import Ombaro, db_session
from web.openapi import idempotent
from web.sanitize import Blueprint
from web.schemas import Boolean, Integer, JobSchema, Money, MoneyAmount

blp = Blueprint("settlements", __name__, url_prefix="/api/v1/settlements", description="Vendor settlements")

# The schema's settlement statuses plus `approved` (migration 0005).
STATUSES = ("pending", "approved", "processing", "completed", "failed")


class SettlementSchema(Schema):
    id = fields.UUID()
    vendor_id = fields.UUID()
    settlement_period_start = fields.Date()
    settlement_period_end = fields.Date()
    total_bookings = fields.Integer()
    gross_amount = MoneyAmount()
    commission_amount = MoneyAmount()
    commission_gst_amount = MoneyAmount()  # GST on the commission (the platform's invoice)
    tds_amount = MoneyAmount()
    tcs_amount = MoneyAmount()  # GST TCS, s.52 CGST Act
    adjustment_amount = MoneyAmount()
    net_settlement_amount = MoneyAmount()
    status = fields.String()
    vendor_name = fields.String(allow_none=True, metadata={"description": "null where the caller may not read it"})
    payment_reference = fields.String(allow_none=True)
    payment_date = fields.DateTime(allow_none=True)
    payment_method = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)


class SettlementQuerySchema(Schema):
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))
    status = fields.List(fields.String(validate=validate.OneOf(STATUSES)), load_default=list)
    vendor_id = fields.UUID(load_default=None)
    period_from = fields.Date(load_default=None, metadata={"description": "periods starting on or after"})
    period_to = fields.Date(load_default=None, metadata={"description": "periods ending on or before"})


class SettlementExportQuerySchema(SettlementQuerySchema):
    limit = Integer(load_default=5000, validate=validate.Range(min=1, max=50000))


class SettlementItemSchema(Schema):
    item_date = fields.Date()
    kind = fields.String()
    booking_number = fields.String(allow_none=True)
    payment_id = fields.UUID()
    refund_id = fields.UUID(allow_none=True)
    collected_by = fields.String()
    sale_amount = MoneyAmount()
    gross_amount = MoneyAmount()
    commission_rate = fields.Decimal(as_string=True, places=2)
    commission_amount = MoneyAmount()
    tds_section = fields.String()
    tds_rate = fields.Decimal(as_string=True, places=3)
    tds_amount = MoneyAmount()
    tcs_amount = MoneyAmount()
    net_amount = MoneyAmount()


class SettlementRunRequestSchema(settlement_commands.RunSettlementsSchema):
    """The `settlements.run` params (the period rule is the command's), with the period required."""

    period_start = fields.Date(required=True)
    period_end = fields.Date(required=True, metadata={"description": f"a period is at most {MAX_PERIOD_DAYS} days"})
    dry_run = Boolean(load_default=False, metadata={"description": "compute and return, write nothing"})


class SettlementRunSchema(Schema):
    id = fields.UUID()
    period_start = fields.Date()
    period_end = fields.Date()
    vendor_ids = fields.List(fields.UUID(), allow_none=True)
    requested_by = fields.UUID(allow_none=True)
    job_id = fields.UUID(allow_none=True)
    status = fields.String()
    batches_total = fields.Integer()
    batches_done = fields.Integer()
    vendors_total = fields.Integer()
    settlements_created = fields.Integer()
    batch_jobs = fields.Dict(keys=fields.String(), values=fields.Integer())
    totals = fields.Dict()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class SettlementPayoutSchema(Schema):
    id = fields.UUID()
    settlement_id = fields.UUID()
    attempt = fields.Integer()
    idempotency_key = fields.String()
    amount = MoneyAmount()
    status = fields.String()
    provider = fields.String()
    destination_account = fields.String()
    provider_transfer_id = fields.String(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    hold_reason = fields.String(allow_none=True, metadata={
        "description": "why a payout of unknown outcome is held for the reconciler and finance"})
    sends = fields.Integer(metadata={"description": "calls made to the provider for this attempt"})
    first_sent_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)


class SettlementPayoutAcceptedSchema(Schema):
    payout = fields.Nested(SettlementPayoutSchema)
    job = fields.Nested(JobSchema)


class SettlementAdjustmentRequestSchema(Schema):
    vendor_id = fields.UUID(required=True)
    amount = Money(required=True, minimum=-10_000_000, maximum=10_000_000)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class SettlementAdjustmentSchema(Schema):
    id = fields.UUID()
    vendor_id = fields.UUID()
    amount = MoneyAmount()
    kind = fields.String()
    reason = fields.String()
    created_by = fields.UUID(allow_none=True)
    source_settlement_id = fields.UUID(allow_none=True)
    settlement_id = fields.UUID(allow_none=True)
    created_at = fields.DateTime()


class SettlementAdjustmentQuerySchema(Schema):
    vendor_id = fields.UUID(load_default=None)
    pending = Boolean(load_default=None, metadata={"description": "only those not yet applied"})
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=500))


class VendorPayoutAccountSchema(Schema):
    vendor_id = fields.UUID(dump_only=True)
    account_id = fields.String(required=True, validate=validate.Regexp(
        r"^acc_[A-Za-z0-9]{6,30}$", error="A Razorpay linked account id looks like acc_XXXXXXXXXXXXXX."))
    provider = fields.String(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class PayoutReconcileSchema(settlement_commands.ReconcilePayoutsSchema):
    """The `settlements.reconcile` params (the command's bounds), whole numbers strictly."""

    pending_after_seconds = Integer(load_default=600, validate=validate.Range(min=0, max=86400))
    # Parked webhook events older than this are flagged overdue (ombaro/payments/webhooks.py).
    parked_overdue_after_seconds = Integer(load_default=3600, validate=validate.Range(min=60, max=30 * 86400))


class TdsRateSchema(Schema):
    section = fields.String()
    pan_available = fields.Boolean()
    rate_percent = fields.Decimal(as_string=True, places=3)
    effective_from = fields.Date()
    effective_to = fields.Date(allow_none=True)
    description = fields.String(allow_none=True)
    base = fields.String(metadata={"description": "excluding_gst (GST shown separately left out) or including_gst"})


# --- reading ---------------------------------------------------------------------------------------


@blp.get("")
@requires("settlements", "read")
@blp.arguments(SettlementQuerySchema, location="query", as_kwargs=True)
@blp.response(200, SettlementSchema(many=True))
def list_settlements(limit: int, status: list[str], vendor_id: uuid.UUID | None, period_from: dt.date | None,
                     period_to: dt.date | None) -> Any:
    """Newest period first; filter by status (may repeat), vendor and period."""
    session = db_session()
    return named(session, statements.list_settlements(session, statuses=status, vendor_id=vendor_id,
                                                       period_from=period_from, period_to=period_to, limit=limit))


def named(session: Session, settlements: Sequence[PaymentSettlement]) -> Sequence[PaymentSettlement]:
    """Each settlement with its vendor's business name for the response (`vendor_name`), one query."""
    names = runs.vendor_names(session, [s.vendor_id for s in settlements])
    for settlement in settlements:
        settlement.vendor_name = names.get(settlement.vendor_id)  # type: ignore[attr-defined]  # response only
    return settlements


@blp.get("/export.csv")
@requires("settlements", "export")
@blp.arguments(SettlementExportQuerySchema, location="query", as_kwargs=True)
@blp.doc(responses={"200": {"description": "one CSV row per settlement (header row first)",
                            "content": {"text/csv": {}}}})
def export_settlements(limit: int, status: list[str], vendor_id: uuid.UUID | None, period_from: dt.date | None,
                       period_to: dt.date | None) -> Any:
    """Every settlement the caller may see (same filters as the list), one CSV row each."""
    session = db_session()
    found = statements.list_settlements(session, statuses=status, vendor_id=vendor_id, period_from=period_from,
                                        period_to=period_to, limit=limit)
    return Response("".join(statements.export_csv(session, found)), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="settlements.csv"'})


@blp.get("/<uuid:settlement_id>")
@requires("settlements", "read")
@blp.response(200, SettlementSchema)
def get_settlement(settlement_id: uuid.UUID) -> Any:
    session = db_session()
    settlement = session.get(PaymentSettlement, settlement_id)
    if settlement is None:
        raise NotFound(f"no settlement {settlement_id}")
    return named(session, [settlement])[0]


@blp.get("/<uuid:settlement_id>/items")
@requires("settlements", "read")
@blp.response(200, SettlementItemSchema(many=True))
def list_items(settlement_id: uuid.UUID) -> Any:
    """The settlement's lines: each payment (positive) and refund (negative) it accounted for."""
    session = db_session()
    if session.get(PaymentSettlement, settlement_id) is None:
        raise NotFound(f"no settlement {settlement_id}")
    return statements.items_of(session, settlement_id)


@blp.get("/<uuid:settlement_id>/statement.csv")
@requires("settlements", "export")
@blp.doc(responses={"200": {"description": "the statement: header totals, then one line per item and adjustment",
                            "content": {"text/csv": {}}}})
def download_statement(settlement_id: uuid.UUID) -> Any:
    """The statement: header totals, then one line per item and per adjustment."""
    body = statements.statement_csv(db_session(), settlement_id)
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="settlement-{settlement_id}.csv"'})


@blp.get("/<uuid:settlement_id>/payouts")
@requires("settlements", "read")
@blp.response(200, SettlementPayoutSchema(many=True))
def list_payouts(settlement_id: uuid.UUID) -> Any:
    return queries.payouts_of(db_session(), settlement_id)


@blp.get("/tds-rates")
@requires("settlements", "read")
@blp.response(200, TdsRateSchema(many=True))
def list_tds_rates() -> Any:
    """The TDS rates in the calculation: dated data per section and PAN case."""
    return rates.all_rates(db_session())


# --- runs ------------------------------------------------------------------------------------------


@blp.post("/runs")
@requires("settlements", "create")
@idempotent
@blp.arguments(SettlementRunRequestSchema)
@blp.response(202, JobSchema)
def create_run(params: settlement_commands.RunSettlements) -> Any:
    """Settle a period (optionally some vendors). With dry_run the job's result holds every
    settlement the run would create, and nothing is written."""
    return submit("settlements.run", params)


@blp.get("/runs/<uuid:run_id>")
@requires("settlements", "read")
@blp.response(200, SettlementRunSchema)
def get_run(run_id: uuid.UUID) -> Any:
    return runs.run_summary(db_session(), run_id)


@blp.post("/reconcile")
@requires("settlements", "approve")
@idempotent
@blp.arguments(PayoutReconcileSchema, required=False)
@blp.response(202, JobSchema)
def reconcile(params: settlement_commands.ReconcilePayouts | None) -> Any:
    """Ask the provider now about payouts whose outcome is unknown (also scheduled)."""
    return submit("settlements.reconcile", params or {})


# --- approval and payout ---------------------------------------------------------------------------


@blp.post("/<uuid:settlement_id>/approve")
@requires("settlements", "approve")
@blp.response(200, SettlementSchema)
def approve_settlement(settlement_id: uuid.UUID) -> Any:
    """pending -> approved, by someone other than the person who ran it (maker-checker)."""
    session = db_session()
    with session.begin():
        settlement = payouts.approve(session, settlement_id, approver=current_user_id())
    session.refresh(settlement)
    return named(session, [settlement])[0]


@blp.post("/<uuid:settlement_id>/payout")
@requires("settlements", "approve")
@idempotent
@blp.response(202, SettlementPayoutAcceptedSchema)
def pay_settlement(settlement_id: uuid.UUID) -> Any:
    """Pay an approved settlement (or retry a failed one) by a transfer to the vendor's linked
    account. For a payout already in flight this answers its job while one is queued or running,
    else runs it again with its own key: a pending attempt is sent, one of unknown outcome is
    looked up (never sent twice). Concurrent requests answer one payout and one job."""
    user = current_user()
    session = db_session()
    with session.begin():
        payout = payouts.request_payout(session, settlement_id, provider=Ombaro.get().settings.payments_provider,
                                        requested_by=user.id)
        running = payouts.live_job(session, payout.id)
        submitted = commands.Submitted(running, created=False) if running is not None else _submit_here(
            session, payouts.PAYOUT_KIND, {"payout_id": str(payout.id)}, key=f"{payout.id}:{payout.submissions}")
    return {"payout": payout, "job": submitted.job}, 202, {"Location": url_for("jobs.get_job", job_id=submitted.job.id)}


def _submit_here(session: Session, kind: str, params: dict[str, Any], *, key: str) -> commands.Submitted:
    """A job in the caller's open transaction, with the domain rows it goes with. The key makes a
    resubmission of the same payout attempt one job."""
    user = current_user()
    return commands.submit(session, kind, params, enqueue=Ombaro.get().enqueue, key=idempotency_key() or key,
                           scope=user.idempotency_scope, requested_by=user.id)


@blp.put("/payout-accounts/<uuid:vendor_id>")
@requires("settlements", "approve")
@blp.arguments(VendorPayoutAccountSchema)
@blp.response(200, VendorPayoutAccountSchema)
def set_payout_account(params: dict[str, Any], vendor_id: uuid.UUID) -> Any:
    """Where a vendor's settlements are paid (its Razorpay Route linked account)."""
    session = db_session()
    with session.begin():
        return payouts.set_payout_account(session, vendor_id=vendor_id, account_id=params["account_id"],
                                          created_by=current_user().id)


# --- adjustments -----------------------------------------------------------------------------------


@blp.post("/adjustments")
@requires("settlements", "create")
@blp.arguments(SettlementAdjustmentRequestSchema)
@blp.response(201, SettlementAdjustmentSchema)
def create_adjustment(params: dict[str, Any]) -> Any:
    """A manual adjustment with its reason, applied to the vendor's next settlement. With an
    `Idempotency-Key`, a repeated (or racing) request answers the first adjustment
    (`Idempotent-Replayed: true`) instead of adding another."""
    session = db_session()
    with session.begin():
        adjustment, created = runs.add_adjustment(
            session, vendor_id=params["vendor_id"], amount=params["amount"], reason=params["reason"],
            created_by=current_user().id, idempotency_key=idempotency_key())
    return adjustment, 201, ({} if created else {"Idempotent-Replayed": "true"})


@blp.get("/adjustments")
@requires("settlements", "read")
@blp.arguments(SettlementAdjustmentQuerySchema, location="query", as_kwargs=True)
@blp.response(200, SettlementAdjustmentSchema(many=True))
def list_adjustments(vendor_id: uuid.UUID | None, pending: bool | None, limit: int) -> Any:
    return queries.list_adjustments(db_session(), vendor_id=vendor_id, pending=pending, limit=limit)
