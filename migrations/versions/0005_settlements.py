"""Payments and vendor settlements: settlement items (each payment and refund settled once), dated
TDS rates, runs, approvals (maker-checker), adjustments, refunds, payouts, payout accounts and
webhook de-duplication; `approved` joins the settlement statuses; the weekly run and the payout
reconciler are scheduled; row-level security for all of it (docs/settlements.md).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls as RLS

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


api, own, role_in, everywhere = RLS.api, RLS.own, RLS.role_in, RLS.everywhere
UID, VENDOR = RLS.UID, RLS.VENDOR
FINANCE = ("finance_department", "accounts_department")
# Roles holding finance's grants in the matrix also need the rows (directors hold finance).
PAYERS = ("finance_department", "directors")

NEW_TABLES = ("tds_rates", "settlement_runs", "settlement_approvals", "payment_refunds", "settlement_items",
              "settlement_adjustments", "vendor_payout_accounts", "payouts", "webhook_events")

NEW_POLICIES: dict[str, list] = {
    "tds_rates": [api("select_authenticated", "SELECT", RLS.AUTHENTICATED)],  # published rates, not secrets
    "settlement_runs": [
        api("manage_finance", "ALL", role_in(*FINANCE)),
        api("select_directors", "SELECT", role_in("directors")),
    ],
    "settlement_approvals": [
        api("manage_finance", "ALL", role_in(*FINANCE)),
        api("manage_directors", "ALL", role_in("directors")),
    ],
    "payment_refunds": [
        *own("vendor_id", VENDOR, "SELECT"),
        api("select_staff", "SELECT", role_in(*FINANCE, "directors", "customer_care")),
        api("insert_payers", "INSERT", check=f"{role_in(*PAYERS)} AND status = 'pending'"),
        api("update_payers", "UPDATE", role_in(*PAYERS)),
        api("select_own_customer", "SELECT",
            f"EXISTS (SELECT 1 FROM payments AS p WHERE p.id = payment_id AND p.customer_id = {UID})"),
    ],
    "settlement_items": [
        *own("vendor_id", VENDOR, "SELECT"),
        api("manage_finance", "ALL", role_in(*FINANCE)),
        api("select_directors", "SELECT", role_in("directors")),
    ],
    "settlement_adjustments": [
        *own("vendor_id", VENDOR, "SELECT"),
        api("manage_finance", "ALL", role_in(*FINANCE)),
        api("select_directors", "SELECT", role_in("directors")),
    ],
    "vendor_payout_accounts": [
        *own("vendor_id", VENDOR, "SELECT"),
        api("manage_payers", "ALL", role_in(*PAYERS)),
        api("select_accounts", "SELECT", role_in("accounts_department")),
    ],
    "payouts": [
        *own("vendor_id", VENDOR, "SELECT"),
        api("manage_payers", "ALL", role_in(*PAYERS)),
        api("select_accounts", "SELECT", role_in("accounts_department")),
    ],
    "webhook_events": [api("select_finance", "SELECT", role_in(*FINANCE, "directors"))],
}

# Existing tables: the writes this capability makes through the request role.
EXTRA_POLICIES: dict[str, list] = {
    "payments": [
        # A customer opens a payment for their own booking; it is pending until the provider says so.
        api("insert_own_pending", "INSERT",
            check=f"customer_id = {UID} AND status = 'pending' AND payment_method <> 'cash'"),
        # A vendor records the cash it took for its own booking.
        api("insert_own_vendor_cash", "INSERT",
            check=f"vendor_id = {VENDOR} AND payment_method = 'cash' AND status = 'success'"),
        api("update_payers", "UPDATE", role_in(*PAYERS)),
    ],
    "payment_settlements": [api("update_directors", "UPDATE", role_in("directors"))],
}

# bookings.payment_status is a protected column (0003: only super_admin may change it through the
# request role). It is derived from the booking's payments, so the request and worker roles update
# it only through this function, which can set nothing but the value the payments imply.
SYNC_FUNCTION = "sync_booking_payment_status(uuid)"
SYNC_BOOKING_PAYMENT_STATUS = f"""
CREATE FUNCTION sync_booking_payment_status(booking uuid) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    due numeric;
    kept numeric;
    returned numeric;
    result text;
BEGIN
    SELECT b.total_amount INTO due FROM public.bookings AS b WHERE b.id = booking FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(sum(p.total_amount - coalesce(p.refund_amount, 0)), 0), coalesce(sum(p.refund_amount), 0)
    INTO kept, returned
    FROM public.payments AS p
    WHERE p.booking_id = booking AND p.status IN ('success', 'partially_refunded', 'refunded');
    result := CASE WHEN kept > 0 AND kept >= due THEN 'paid' WHEN kept > 0 THEN 'partial'
                   WHEN returned > 0 THEN 'refunded' ELSE 'pending' END;
    UPDATE public.bookings SET payment_status = result, updated_at = now()
    WHERE id = booking AND payment_status IS DISTINCT FROM result;
    RETURN result;
END
$$;
REVOKE ALL ON FUNCTION {SYNC_FUNCTION} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {SYNC_FUNCTION} TO {RLS.REQUEST_ROLES};
"""

SETTLEMENT_STATUSES_BEFORE = "('pending', 'processing', 'completed', 'failed')"
SETTLEMENT_STATUSES_AFTER = "('pending', 'approved', 'processing', 'completed', 'failed')"

# Section 194-O (docs/settlements.md): 1% until 30 September 2024, 0.1% from 1 October 2024; a
# deductee without PAN pays the section 206AA rate for 194-O, 5%.
TDS_RATES = [
    ("194-O", True, "1.000", "2016-10-01", "2024-09-30", "194-O, PAN furnished"),
    ("194-O", True, "0.100", "2024-10-01", None, "194-O, PAN furnished (Finance (No. 2) Act 2024)"),
    ("194-O", False, "5.000", "2016-10-01", None, "194-O without PAN (section 206AA)"),
]

SCHEDULES = [
    # Every Monday 02:00 platform time; the domain settles the previous Monday to Sunday.
    ("settlements.weekly-run", "settlements.run", "0 2 * * 1", "skip", "run_once"),
    # Payouts whose outcome is unknown (a timeout, a lost worker) are asked about every 10 minutes.
    ("settlements.reconcile-payouts", "settlements.reconcile", "*/10 * * * *", "skip", "skip"),
]


def _ids() -> list[sa.Column]:
    return [sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False)]


def _created() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _updated() -> sa.Column:
    return sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _fk(column: str, table: str, ondelete: str, target: str = "id", schema_table: str | None = None,
        owner: str = "") -> sa.ForeignKeyConstraint:
    referred = (schema_table or table).split(".")[-1]
    return sa.ForeignKeyConstraint([column], [f"{schema_table or table}.{target}"],
                                   name=f"fk_{owner}_{column}_{referred}", ondelete=ondelete)


def _create_tables() -> None:
    money = sa.Numeric(12, 2)
    op.create_table(
        "tds_rates", *_ids(),
        sa.Column("section", sa.Text(), nullable=False),
        sa.Column("pan_available", sa.Boolean(), nullable=False),
        sa.Column("rate_percent", sa.Numeric(6, 3), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        _created(),
        sa.CheckConstraint("rate_percent >= 0 AND rate_percent <= 100", name="ck_tds_rates_rate_percent"),
        sa.CheckConstraint("effective_to IS NULL OR effective_to >= effective_from", name="ck_tds_rates_dates_ordered"),
        sa.PrimaryKeyConstraint("id", name="pk_tds_rates"),
    )
    op.create_index("idx_tds_rates_lookup", "tds_rates", ["section", "pan_available", "effective_from"])
    # Two rates of one section and PAN case may never be in force on the same day.
    op.execute("ALTER TABLE tds_rates ADD CONSTRAINT ex_tds_rates_no_overlap EXCLUDE USING gist "
               "(section WITH =, pan_available WITH =, daterange(effective_from, effective_to, '[]') WITH &&)")

    op.create_table(
        "settlement_runs", *_ids(),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("vendor_ids", pg.ARRAY(pg.UUID(as_uuid=True)), nullable=True),
        sa.Column("requested_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("job_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("status", sa.Text(), server_default=sa.text("'running'"), nullable=False),
        sa.Column("batches_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("batches_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("vendors_total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("settlements_created", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _created(),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running', 'completed', 'failed')", name="ck_settlement_runs_status"),
        sa.CheckConstraint("period_end >= period_start", name="ck_settlement_runs_period_ordered"),
        sa.PrimaryKeyConstraint("id", name="pk_settlement_runs"),
        sa.UniqueConstraint("job_id", name="uq_settlement_runs_job_id"),
    )
    op.create_index("idx_settlement_runs_period", "settlement_runs", ["period_start", "period_end"])

    op.create_table(
        "settlement_approvals", *_ids(),
        sa.Column("settlement_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("run_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("requested_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("approved_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        _created(),
        sa.CheckConstraint("approved_by <> requested_by", name="ck_settlement_approvals_maker_is_not_checker"),
        sa.CheckConstraint("(approved_by IS NULL) = (approved_at IS NULL)",
                           name="ck_settlement_approvals_approved_together"),
        _fk("settlement_id", "payment_settlements", "CASCADE", owner="settlement_approvals"),
        _fk("run_id", "settlement_runs", "SET NULL", owner="settlement_approvals"),
        sa.PrimaryKeyConstraint("id", name="pk_settlement_approvals"),
        sa.UniqueConstraint("settlement_id", name="uq_settlement_approvals_settlement_id"),
    )
    op.create_index("idx_settlement_approvals_run", "settlement_approvals", ["run_id"])

    op.create_table(
        "payment_refunds", *_ids(),
        sa.Column("payment_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("booking_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("amount", sa.Numeric(10, 2), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("gateway_refund_id", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("requested_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        _created(), _updated(),
        sa.CheckConstraint("amount > 0", name="ck_payment_refunds_amount_positive"),
        sa.CheckConstraint("status IN ('pending', 'processed', 'failed')", name="ck_payment_refunds_status"),
        sa.CheckConstraint("length(btrim(reason)) > 0", name="ck_payment_refunds_reason_given"),
        _fk("payment_id", "payments", "RESTRICT", owner="payment_refunds"),
        _fk("booking_id", "bookings", "RESTRICT", owner="payment_refunds"),
        _fk("vendor_id", "vendors", "RESTRICT", owner="payment_refunds"),
        sa.PrimaryKeyConstraint("id", name="pk_payment_refunds"),
        sa.UniqueConstraint("gateway_refund_id", name="uq_payment_refunds_gateway_refund_id"),
    )
    op.create_index("idx_payment_refunds_payment", "payment_refunds", ["payment_id"])
    op.create_index("idx_payment_refunds_vendor", "payment_refunds", ["vendor_id"])

    op.create_table(
        "settlement_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("settlement_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("payment_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("refund_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("booking_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("item_date", sa.Date(), nullable=False),
        sa.Column("collected_by", sa.Text(), nullable=False),
        sa.Column("sale_amount", money, nullable=False),
        sa.Column("gross_amount", money, nullable=False),
        sa.Column("commission_rate", sa.Numeric(5, 2), nullable=False),
        sa.Column("commission_amount", money, nullable=False),
        sa.Column("tds_section", sa.Text(), nullable=False),
        sa.Column("tds_rate", sa.Numeric(6, 3), nullable=False),
        sa.Column("tds_amount", money, nullable=False),
        sa.Column("net_amount", money, nullable=False),
        sa.CheckConstraint("kind IN ('payment', 'refund')", name="ck_settlement_items_kind"),
        sa.CheckConstraint("collected_by IN ('platform', 'vendor')", name="ck_settlement_items_collected_by"),
        sa.CheckConstraint("(kind = 'refund') = (refund_id IS NOT NULL)",
                           name="ck_settlement_items_refund_line_has_refund"),
        sa.CheckConstraint("net_amount = gross_amount - commission_amount - tds_amount",
                           name="ck_settlement_items_line_conserves"),
        _fk("settlement_id", "payment_settlements", "CASCADE", owner="settlement_items"),
        _fk("vendor_id", "vendors", "RESTRICT", owner="settlement_items"),
        _fk("payment_id", "payments", "RESTRICT", owner="settlement_items"),
        _fk("refund_id", "payment_refunds", "RESTRICT", owner="settlement_items"),
        sa.PrimaryKeyConstraint("id", name="pk_settlement_items"),
        sa.UniqueConstraint("payment_id", "refund_id", name="uq_settlement_items_payment_refund",
                            postgresql_nulls_not_distinct=True),
    )
    op.create_index("idx_settlement_items_settlement", "settlement_items", ["settlement_id"])

    op.create_table(
        "settlement_adjustments", *_ids(),
        sa.Column("vendor_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("amount", money, nullable=False),
        sa.Column("kind", sa.Text(), server_default=sa.text("'manual'"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("source_settlement_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("settlement_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        _created(),
        sa.CheckConstraint("amount <> 0", name="ck_settlement_adjustments_amount_not_zero"),
        sa.CheckConstraint("kind IN ('manual', 'carried_balance')", name="ck_settlement_adjustments_kind"),
        sa.CheckConstraint("length(btrim(reason)) > 0", name="ck_settlement_adjustments_reason_given"),
        sa.CheckConstraint("(kind = 'carried_balance') = (source_settlement_id IS NOT NULL)",
                           name="ck_settlement_adjustments_carry_has_source"),
        _fk("vendor_id", "vendors", "RESTRICT", owner="settlement_adjustments"),
        sa.ForeignKeyConstraint(["source_settlement_id"], ["payment_settlements.id"], ondelete="RESTRICT",
                                name="fk_settlement_adjustments_source_settlement"),
        _fk("settlement_id", "payment_settlements", "RESTRICT", owner="settlement_adjustments"),
        sa.PrimaryKeyConstraint("id", name="pk_settlement_adjustments"),
        sa.UniqueConstraint("source_settlement_id", name="uq_settlement_adjustments_source_settlement_id"),
    )
    op.create_index("idx_settlement_adjustments_pending", "settlement_adjustments", ["vendor_id"],
                    postgresql_where=sa.text("settlement_id IS NULL"))
    op.create_index("idx_settlement_adjustments_settlement", "settlement_adjustments", ["settlement_id"])

    op.create_table(
        "vendor_payout_accounts", *_ids(),
        sa.Column("vendor_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("provider", sa.Text(), server_default=sa.text("'razorpay'"), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("created_by", pg.UUID(as_uuid=True), nullable=True),
        _created(), _updated(),
        _fk("vendor_id", "vendors", "CASCADE", owner="vendor_payout_accounts"),
        sa.PrimaryKeyConstraint("id", name="pk_vendor_payout_accounts"),
        sa.UniqueConstraint("vendor_id", name="uq_vendor_payout_accounts_vendor_id"),
    )

    op.create_table(
        "payouts", *_ids(),
        sa.Column("settlement_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("vendor_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("amount", money, nullable=False),
        sa.Column("currency", sa.Text(), server_default=sa.text("'INR'"), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("destination_account", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("provider_transfer_id", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("requested_by", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("submissions", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _created(), _updated(),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'processing', 'processed', 'failed')", name="ck_payouts_status"),
        sa.CheckConstraint("amount > 0", name="ck_payouts_amount_positive"),
        sa.CheckConstraint("attempt >= 1", name="ck_payouts_attempt_positive"),
        _fk("settlement_id", "payment_settlements", "RESTRICT", owner="payouts"),
        _fk("vendor_id", "vendors", "RESTRICT", owner="payouts"),
        sa.PrimaryKeyConstraint("id", name="pk_payouts"),
        sa.UniqueConstraint("settlement_id", "attempt", name="uq_payouts_settlement_id_attempt"),
        sa.UniqueConstraint("idempotency_key", name="uq_payouts_idempotency_key"),
        sa.UniqueConstraint("provider_transfer_id", name="uq_payouts_provider_transfer_id"),
    )
    op.create_index("uq_payouts_one_live_per_settlement", "payouts", ["settlement_id"], unique=True,
                    postgresql_where=sa.text("status <> 'failed'"))
    op.create_index("idx_payouts_status", "payouts", ["status"])

    op.create_table(
        "webhook_events", *_ids(),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", pg.JSONB(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("job_id", pg.UUID(as_uuid=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_events"),
        sa.UniqueConstraint("provider", "event_id", name="uq_webhook_events_provider_event_id"),
    )
    op.create_index("idx_webhook_events_received", "webhook_events", [sa.text("received_at DESC")])


def upgrade() -> None:
    _create_tables()
    op.execute("ALTER TABLE payment_settlements DROP CONSTRAINT ck_payment_settlements_status")
    op.execute("ALTER TABLE payment_settlements ADD CONSTRAINT ck_payment_settlements_status "
               f"CHECK (status IN {SETTLEMENT_STATUSES_AFTER})")

    tds = sa.table("tds_rates", sa.column("section", sa.Text()), sa.column("pan_available", sa.Boolean()),
                   sa.column("rate_percent", sa.Numeric(6, 3)), sa.column("effective_from", sa.Date()),
                   sa.column("effective_to", sa.Date()), sa.column("description", sa.Text()))
    op.execute(tds.insert().values([
        {"section": s, "pan_available": p, "rate_percent": Decimal(r), "effective_from": dt.date.fromisoformat(f),
         "effective_to": dt.date.fromisoformat(t) if t else None, "description": d}
        for s, p, r, f, t, d in TDS_RATES]))
    for name, kind, cron, overlap, misfire in SCHEDULES:
        op.execute(sa.text(
            "INSERT INTO schedules (name, kind, params, cron, overlap_policy, misfire_policy) "
            "VALUES (:name, :kind, '{}', :cron, :overlap, :misfire) ON CONFLICT (name) DO NOTHING"
        ).bindparams(name=name, kind=kind, cron=cron, overlap=overlap, misfire=misfire))

    for table in NEW_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {RLS.REQUEST_ROLES}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {RLS.REQUEST_ROLES}")
    for table, policies in NEW_POLICIES.items():
        for policy in (*everywhere(), *policies):
            op.execute(RLS.policy_sql(table, policy))
    for table, policies in EXTRA_POLICIES.items():
        for policy in policies:
            op.execute(RLS.policy_sql(table, policy))
    op.execute(SYNC_BOOKING_PAYMENT_STATUS)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SYNC_FUNCTION}")
    for table, policies in EXTRA_POLICIES.items():
        for policy in policies:
            op.execute(f"DROP POLICY {policy.name} ON {table}")
    op.execute(f"DELETE FROM schedules WHERE name IN ({', '.join(repr(s[0]) for s in SCHEDULES)})")
    op.execute("UPDATE payment_settlements SET status = 'pending' WHERE status = 'approved'")
    op.execute("ALTER TABLE payment_settlements DROP CONSTRAINT ck_payment_settlements_status")
    op.execute("ALTER TABLE payment_settlements ADD CONSTRAINT ck_payment_settlements_status "
               f"CHECK (status IN {SETTLEMENT_STATUSES_BEFORE})")
    # Dropping a table drops its policies and grants with it.
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
