"""Money in (payments from customers) and money out (settlements to vendors)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Numeric, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk

PAYMENT_METHODS = ("credit_card", "debit_card", "upi", "net_banking", "wallet", "cash")
PAYMENT_STATUSES = ("pending", "processing", "success", "failed", "refunded", "partially_refunded")
SETTLEMENT_STATUSES = ("pending", "approved", "processing", "completed", "failed")  # "approved": migration 0005


class Payment(Base):
    """One payment (or refund) against a booking, as reported by the gateway."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"payment_method IN {PAYMENT_METHODS!r}", name="payment_method"),
        CheckConstraint(f"status IN {PAYMENT_STATUSES!r}", name="status"),
        Index("idx_payments_booking", "booking_id"),
        Index("idx_payments_customer", "customer_id"),
        Index("idx_payments_vendor", "vendor_id"),
        Index("idx_payments_status", "status"),
        Index("idx_payments_date", "payment_date"),
        # a settlement batch reads its vendors' payments within the look-back window (migration 0025)
        Index("idx_payments_vendor_date", "vendor_id", "payment_date"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    transaction_id: Mapped[str] = mapped_column(unique=True)
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="RESTRICT"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="RESTRICT"))
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    amount: Mapped[Decimal]
    tax_amount: Mapped[Decimal | None] = mapped_column(server_default=text("0"))
    discount_amount: Mapped[Decimal | None] = mapped_column(server_default=text("0"))
    convenience_fee: Mapped[Decimal | None] = mapped_column(server_default=text("0"))
    total_amount: Mapped[Decimal]
    payment_method: Mapped[str]
    payment_gateway: Mapped[str | None]  # 'razorpay', 'stripe', 'paytm'
    gateway_transaction_id: Mapped[str | None]
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    payment_date: Mapped[dt.datetime | None]
    refund_amount: Mapped[Decimal | None]
    refund_date: Mapped[dt.datetime | None]
    refund_reason: Mapped[str | None]
    # The column is `metadata` as in the spec; the attribute cannot be, Base.metadata owns that name.
    gateway_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class PaymentSettlement(Base):
    """What a vendor is paid for one period: gross takings less commission, TDS and adjustments."""

    __tablename__ = "payment_settlements"
    __table_args__ = (
        CheckConstraint(f"status IN {SETTLEMENT_STATUSES!r}", name="status"),
        # Not in the spec: a re-run of a settled period must find the row, not add a second payout.
        UniqueConstraint(
            "vendor_id", "settlement_period_start", "settlement_period_end",
            name="uq_payment_settlements_vendor_period",
        ),
        Index("idx_payment_settlements_vendor", "vendor_id"),
        Index("idx_payment_settlements_period", "settlement_period_start", "settlement_period_end"),
        Index("idx_payment_settlements_status", "status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    vendor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vendors.id", ondelete="RESTRICT"))
    settlement_period_start: Mapped[dt.date]
    settlement_period_end: Mapped[dt.date]
    total_bookings: Mapped[int]
    gross_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    commission_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    tds_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), server_default=text("0"))
    adjustment_amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), server_default=text("0"))
    net_settlement_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    # Migration 0017 (docs/settlements.md): s.52 GST TCS and GST on the commission, both deducted.
    tcs_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    commission_gst_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2), server_default=text("0"))
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    payment_reference: Mapped[str | None]
    payment_date: Mapped[dt.datetime | None]
    payment_method: Mapped[str | None]
    notes: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
