"""Nothing lost, nothing doubled (issue 13, docs/settlements.md).

Payouts: the attempt to send is recorded (and committed) before the provider is called
(`first_sent_at`, `last_sent_at`, `sends`), with two new states: `sending` (a call was, or may
have been, made and its answer is not recorded) and `held` (the outcome could not be decided:
the payout waits for the reconciler and finance, it is never sent again blindly).

Webhook events: `signed_key` de-duplicates on the signed content (event type, created_at and the
entities' ids inside the signed body), not on the unsigned X-Razorpay-Event-Id header;
`parked_on` names the provider payment an event waits for (a refund before its payment's
capture), applied when that payment appears.

Settlement adjustments: `idempotency_key`, one adjustment per (creator, Idempotency-Key), so a
repeated or racing submission of one manual adjustment is recorded once.

Revision ID: 0013
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "('pending', 'processing', 'processed', 'failed')"
NEW_STATUSES = "('pending', 'sending', 'held', 'processing', 'processed', 'failed')"


def upgrade() -> None:
    # Nullable columns without defaults (or a constant default): no table rewrite, brief locks.
    op.add_column("payouts", sa.Column("first_sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("payouts", sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("payouts", sa.Column("sends", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("payouts", sa.Column("hold_reason", sa.Text(), nullable=True))
    op.drop_constraint("ck_payouts_status", "payouts", type_="check")
    op.create_check_constraint("ck_payouts_status", "payouts", f"status IN {NEW_STATUSES}")
    op.create_check_constraint("ck_payouts_sent_before_held", "payouts",
                               "status NOT IN ('sending', 'held') OR first_sent_at IS NOT NULL")

    op.add_column("webhook_events", sa.Column("signed_key", sa.Text(), nullable=True))
    op.add_column("webhook_events", sa.Column("parked_on", sa.Text(), nullable=True))
    op.create_unique_constraint("uq_webhook_events_provider_signed_key", "webhook_events",
                                ["provider", "signed_key"])
    op.create_index("idx_webhook_events_parked", "webhook_events", ["provider", "parked_on"],
                    postgresql_where=sa.text("parked_on IS NOT NULL"))

    op.add_column("settlement_adjustments", sa.Column("idempotency_key", sa.Text(), nullable=True))
    op.create_index("uq_settlement_adjustments_idempotency", "settlement_adjustments",
                    ["created_by", "idempotency_key"], unique=True,
                    postgresql_where=sa.text("idempotency_key IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("uq_settlement_adjustments_idempotency", table_name="settlement_adjustments")
    op.drop_column("settlement_adjustments", "idempotency_key")
    op.drop_index("idx_webhook_events_parked", table_name="webhook_events")
    op.drop_constraint("uq_webhook_events_provider_signed_key", "webhook_events", type_="unique")
    op.drop_column("webhook_events", "parked_on")
    op.drop_column("webhook_events", "signed_key")
    op.drop_constraint("ck_payouts_sent_before_held", "payouts", type_="check")
    op.drop_constraint("ck_payouts_status", "payouts", type_="check")
    op.execute("UPDATE payouts SET status = 'pending' WHERE status IN ('sending', 'held')")
    op.create_check_constraint("ck_payouts_status", "payouts", f"status IN {OLD_STATUSES}")
    for column in ("hold_reason", "sends", "last_sent_at", "first_sent_at"):
        op.drop_column("payouts", column)
