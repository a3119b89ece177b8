"""Money out, and the bookkeeping that keeps it exact (migration 0005, docs/settlements.md).

`settlement_items` links every payment (and every refund) to the one settlement that accounted
for it; its UNIQUE key is what makes a payment impossible to settle twice. TDS rates are dated
data, not constants. Refunds, payouts and webhook deliveries each have their own table so that
every transition of money is a row with a state that only moves forward.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk

RUN_STATUSES = ("running", "completed", "failed")
ITEM_KINDS = ("payment", "refund")
COLLECTORS = ("platform", "vendor")  # who holds the customer's money: online (platform) or cash (vendor)
ADJUSTMENT_KINDS = ("manual", "carried_balance")
REFUND_STATUSES = ("pending", "processed", "failed")
# sending: a call to the provider was (or may have been) made and its answer is not recorded;
# held: its outcome could not be decided, so it waits for the reconciler and finance (never re-sent).
PAYOUT_STATUSES = ("pending", "sending", "held", "processing", "processed", "failed")


class TdsRate(Base):
    """A TDS rate of one section, in force from `effective_from` to `effective_to` (inclusive;
    NULL: until further notice), for deductees with or without a PAN. Ranges of one section and
    PAN case never overlap (an exclusion constraint in migration 0005)."""

    __tablename__ = "tds_rates"
    __table_args__ = (
        CheckConstraint("rate_percent >= 0 AND rate_percent <= 100", name="rate_percent"),
        CheckConstraint("effective_to IS NULL OR effective_to >= effective_from", name="dates_ordered"),
        Index("idx_tds_rates_lookup", "section", "pan_available", "effective_from"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    section: Mapped[str]  # '194-O'
    pan_available: Mapped[bool]
    rate_percent: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    effective_from: Mapped[dt.date]
    effective_to: Mapped[dt.date | None]
    description: Mapped[str | None]
    # The 194-O base in force with the rate (migration 0017): GST shown separately left out
    # (CBDT Circular 17/2020), or the whole sale.
    base: Mapped[str] = mapped_column(server_default=text("'excluding_gst'"))
    created_at: Mapped[dt.datetime] = created_at()


class GstRate(Base):
    """A GST rate as dated data: `tcs_52` (the tax an e-commerce operator collects under s.52 CGST
    Act on its suppliers' net taxable supplies) or `commission` (GST on the platform's own supply
    of its service to the vendor). Ranges of one tax never overlap (migration 0017)."""

    __tablename__ = "gst_rates"
    __table_args__ = (
        CheckConstraint("tax IN ('tcs_52', 'commission')", name="tax"),
        CheckConstraint("rate_percent >= 0 AND rate_percent <= 100", name="rate_percent"),
        CheckConstraint("effective_to IS NULL OR effective_to >= effective_from", name="dates_ordered"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    tax: Mapped[str]
    rate_percent: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    effective_from: Mapped[dt.date]
    effective_to: Mapped[dt.date | None]
    description: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_at()


class PlatformTaxProfile(Base):
    """The platform's own GST registration (one row): its state makes a vendor's tax intra-state
    (CGST + SGST) or inter-state (IGST)."""

    __tablename__ = "platform_tax_profile"
    __table_args__ = (CheckConstraint("id", name="one_row"),)

    id: Mapped[bool] = mapped_column(primary_key=True, server_default=text("true"))
    state_code: Mapped[str]
    gstin: Mapped[str | None]
    tan: Mapped[str | None]
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))


class TaxDocumentCounter(Base):
    """The last serial used per document type and financial year: taken in the settling
    transaction, so a rolled-back batch gives its numbers back (gap-free)."""

    __tablename__ = "tax_document_counters"
    __table_args__ = (UniqueConstraint("document_type", "financial_year",
                                       name="uq_tax_document_counters_document_type_financial_year"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    document_type: Mapped[str]
    financial_year: Mapped[str]
    last_serial: Mapped[int] = mapped_column(Integer)


class SettlementTaxDocument(Base):
    """The platform's tax invoice (or credit note, when refunds left the commission negative) for
    its commission in one settlement, numbered gap-free per type and financial year."""

    __tablename__ = "settlement_tax_documents"
    __table_args__ = (
        CheckConstraint("document_type IN ('invoice', 'credit_note')", name="type"),
        UniqueConstraint("document_type", "financial_year", "serial", name="uq_settlement_tax_documents_serial"),
        Index("idx_settlement_tax_documents_vendor", "vendor_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    settlement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payment_settlements.id", ondelete="RESTRICT"), unique=True)
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    document_type: Mapped[str]
    financial_year: Mapped[str]  # '2024-25'
    serial: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(unique=True)  # CI2425/0000001 (Rule 46(b): at most 16 characters)
    document_date: Mapped[dt.date]
    supplier_state: Mapped[str]
    recipient_state: Mapped[str]
    recipient_gstin: Mapped[str | None]
    taxable_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    gst_rate: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    cgst: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    sgst: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    igst: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    created_at: Mapped[dt.datetime] = created_at()


class SettlementRun(Base):
    """One (non-dry) run of settlements for a period: its vendor batches are jobs of their own."""

    __tablename__ = "settlement_runs"
    __table_args__ = (
        CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),
        CheckConstraint("period_end >= period_start", name="period_ordered"),
        Index("idx_settlement_runs_period", "period_start", "period_end"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    period_start: Mapped[dt.date]
    period_end: Mapped[dt.date]
    vendor_ids: Mapped[list[uuid.UUID] | None]  # NULL: every vendor
    requested_by: Mapped[uuid.UUID | None]  # the maker; NULL for a scheduled run
    # No FK to jobs: the command log is truncated and pruned on its own schedule; a run outlives its job.
    job_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    status: Mapped[str] = mapped_column(server_default=text("'running'"))
    batches_total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    batches_done: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    vendors_total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    settlements_created: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[dt.datetime] = created_at()
    finished_at: Mapped[dt.datetime | None]


class SettlementApproval(Base):
    """Who made a settlement and who approved it: maker and checker must differ (the CHECK holds
    even against code that forgets)."""

    __tablename__ = "settlement_approvals"
    __table_args__ = (
        CheckConstraint("approved_by <> requested_by", name="maker_is_not_checker"),
        CheckConstraint("(approved_by IS NULL) = (approved_at IS NULL)", name="approved_together"),
        Index("idx_settlement_approvals_run", "run_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    settlement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("payment_settlements.id", ondelete="CASCADE"), unique=True)
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("settlement_runs.id", ondelete="SET NULL"))
    requested_by: Mapped[uuid.UUID | None]
    approved_by: Mapped[uuid.UUID | None]
    approved_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at()


class PaymentRefund(Base):
    """One refund (full or partial) of one payment, from request to the provider's outcome."""

    __tablename__ = "payment_refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(f"status IN {REFUND_STATUSES!r}", name="status"),
        CheckConstraint("length(btrim(reason)) > 0", name="reason_given"),
        Index("idx_payment_refunds_payment", "payment_id"),
        Index("idx_payment_refunds_vendor", "vendor_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"))
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="RESTRICT"))
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal]
    reason: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    gateway_refund_id: Mapped[str | None] = mapped_column(unique=True)
    failure_reason: Mapped[str | None]
    requested_by: Mapped[uuid.UUID | None]
    processed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class SettlementItem(Base):
    """One line of a settlement: a payment (positive) or a refund (negative), rounded once here.

    net = gross - commission - tds on every line (CHECK), so a settlement's totals, which are
    sums of its lines, conserve to the paise. `sale_amount` is the base of commission and TDS;
    `gross_amount` is what the platform collected for the vendor (0 when the vendor took cash).
    """

    __tablename__ = "settlement_items"
    __table_args__ = (
        # The guard of "settled exactly once": one line per payment (refund_id NULL) and one per refund.
        UniqueConstraint("payment_id", "refund_id", name="uq_settlement_items_payment_refund",
                         postgresql_nulls_not_distinct=True),
        CheckConstraint(f"kind IN {ITEM_KINDS!r}", name="kind"),
        CheckConstraint(f"collected_by IN {COLLECTORS!r}", name="collected_by"),
        CheckConstraint("(kind = 'refund') = (refund_id IS NOT NULL)", name="refund_line_has_refund"),
        CheckConstraint("net_amount = gross_amount - commission_amount - tds_amount - tcs_cgst - tcs_sgst - tcs_igst",
                        name="line_conserves"),
        CheckConstraint("tds_rule IN ('rate', 'no_operative_pan', 'exempt_194o4', 'return_other_year')",
                        name="tds_rule"),
        Index("idx_settlement_items_settlement", "settlement_id"),
        Index("idx_settlement_items_date", "item_date"),
        # "is this refund settled?" without reading every line (migration 0025)
        Index("idx_settlement_items_refund", "refund_id", postgresql_where=text("refund_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_settlements.id", ondelete="CASCADE"))
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id", ondelete="RESTRICT"))
    refund_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("payment_refunds.id", ondelete="RESTRICT"))
    booking_id: Mapped[uuid.UUID]
    kind: Mapped[str]
    item_date: Mapped[dt.date]  # the line's business date in the platform zone: it picks the TDS rate
    collected_by: Mapped[str]
    sale_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    gross_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    commission_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    commission_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    tds_section: Mapped[str]
    tds_rate: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    tds_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    net_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    # Migration 0017: GST shown separately in the sale, the 194-O base and why the rate applies,
    # and the s.52 TCS (taxable value, rate, CGST/SGST or IGST; none for cash or an unregistered vendor).
    tax_shown: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    tds_base: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    tds_rule: Mapped[str] = mapped_column(server_default=text("'rate'"))
    tcs_base: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    tcs_rate: Mapped[Decimal] = mapped_column(Numeric(6, 3), server_default=text("0"))
    tcs_cgst: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    tcs_sgst: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    tcs_igst: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))


class SettlementAdjustment(Base):
    """Money added to (positive) or taken from (negative) a vendor's next settlement: a manual
    entry by finance with its reason, or a negative balance carried from an earlier settlement."""

    __tablename__ = "settlement_adjustments"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        CheckConstraint(f"kind IN {ADJUSTMENT_KINDS!r}", name="kind"),
        CheckConstraint("length(btrim(reason)) > 0", name="reason_given"),
        CheckConstraint("(kind = 'carried_balance') = (source_settlement_id IS NOT NULL)", name="carry_has_source"),
        Index("idx_settlement_adjustments_pending", "vendor_id", postgresql_where=text("settlement_id IS NULL")),
        Index("idx_settlement_adjustments_settlement", "settlement_id"),
        Index("uq_settlement_adjustments_idempotency", "created_by", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    kind: Mapped[str] = mapped_column(server_default=text("'manual'"))
    reason: Mapped[str]
    created_by: Mapped[uuid.UUID | None]
    # A carried balance comes from exactly one settlement, once.
    source_settlement_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_settlements.id", ondelete="RESTRICT", name="fk_settlement_adjustments_source_settlement"),
        unique=True)
    settlement_id: Mapped[uuid.UUID | None] = mapped_column(  # the settlement that applied it
        ForeignKey("payment_settlements.id", ondelete="RESTRICT"))
    applied_at: Mapped[dt.datetime | None]
    idempotency_key: Mapped[str | None]  # the creator's Idempotency-Key: one adjustment per key
    created_at: Mapped[dt.datetime] = created_at()


class VendorPayoutAccount(Base):
    """Where a vendor's settlements are paid: its Razorpay Route linked account."""

    __tablename__ = "vendor_payout_accounts"

    id: Mapped[uuid.UUID] = uuid_pk()
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(server_default=text("'razorpay'"))
    account_id: Mapped[str]  # acc_XXXXXXXXXXXXXX
    created_by: Mapped[uuid.UUID | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class Payout(Base):
    """One attempt to pay a settlement. The idempotency key is derived from the settlement and the
    attempt number, and a new attempt exists only after a definitive failure. Every call to the
    provider is recorded (`sends`, `first_sent_at`) and committed before it is made, so a retry
    knows a transfer may exist and looks for it (since `first_sent_at`) instead of paying again.
    At most one attempt per settlement is not failed (index)."""

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint(f"status IN {PAYOUT_STATUSES!r}", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        CheckConstraint("status NOT IN ('sending', 'held') OR first_sent_at IS NOT NULL", name="sent_before_held"),
        UniqueConstraint("settlement_id", "attempt"),
        Index("uq_payouts_one_live_per_settlement", "settlement_id", unique=True,
              postgresql_where=text("status <> 'failed'")),
        Index("idx_payouts_status", "status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    settlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payment_settlements.id", ondelete="RESTRICT"))
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    attempt: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(unique=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(server_default=text("'INR'"))
    provider: Mapped[str]
    destination_account: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    provider_transfer_id: Mapped[str | None] = mapped_column(unique=True)
    failure_reason: Mapped[str | None]
    requested_by: Mapped[uuid.UUID | None]
    submissions: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    sends: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # calls made (or maybe made)
    first_sent_at: Mapped[dt.datetime | None]  # the look-up window for this key starts here
    last_sent_at: Mapped[dt.datetime | None]
    hold_reason: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
    completed_at: Mapped[dt.datetime | None]


class WebhookEvent(Base):
    """A provider's webhook delivery, kept once per event id and once per signed content
    (`signed_key`: a replay under a new, unsigned event-id header finds the row and stops). An
    event whose entity is not known yet is parked on that entity's provider id (`parked_on`: the
    order, payment, refund or transfer) and applied when it appears; still parked after the age
    limit, it is flagged (`overdue_at`), never dropped (ombaro/payments/webhooks.py)."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        UniqueConstraint("provider", "signed_key"),
        Index("idx_webhook_events_parked", "provider", "parked_on", postgresql_where=text("parked_on IS NOT NULL")),
        Index("idx_webhook_events_received", text("received_at DESC")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    provider: Mapped[str]
    event_id: Mapped[str]
    event_type: Mapped[str]
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[dt.datetime] = mapped_column(server_default=text("now()"))
    processed_at: Mapped[dt.datetime | None]
    outcome: Mapped[str | None]
    signed_key: Mapped[str | None]
    parked_on: Mapped[str | None]
    overdue_at: Mapped[dt.datetime | None]  # still parked after the age limit (migration 0015)
    job_id: Mapped[uuid.UUID | None]  # the job that applied it (no FK: the command log is pruned apart)
