"""Campaigns and notifications: message deliveries (one per campaign or event, user and channel),
the development outbox, provider webhook de-duplication, notification events captured by triggers
on bookings, assignments and payments, push devices; row-level security for all of it; the
schedules that start campaigns, reconcile unknown sends, dispatch events and send reminders
(docs/campaigns.md).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations import rls as RLS

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


api, own, role_in, everywhere = RLS.api, RLS.own, RLS.role_in, RLS.everywhere
UID = RLS.UID

CHANNELS = "('email', 'sms', 'whatsapp', 'push', 'in_app')"
DELIVERY_STATUSES = ("('pending', 'sending', 'unknown', 'sent', 'delivered', 'opened', 'clicked', 'bounced', "
                     "'failed', 'skipped')")
MARKETING = ("marketing_department", "customer_data", "directors")

NEW_TABLES = ("notification_events", "message_deliveries", "outbox_messages", "messaging_webhook_events",
              "push_devices")

NEW_POLICIES: dict[str, list] = {
    "notification_events": [],
    "message_deliveries": [
        api("select_marketing", "SELECT", f"campaign_id IS NOT NULL AND {role_in(*MARKETING)}"),
    ],
    # The development outbox: a user sees what was 'sent' to them; the IT desk sees all of it.
    "outbox_messages": [*own("user_id", UID, "SELECT"), api("select_it", "SELECT", role_in("it_department"))],
    "messaging_webhook_events": [],
    "push_devices": own("user_id", UID, "ALL"),
}

# customer_data holds campaigns:read in the matrix; 0003 let only marketing and directors see rows.
EXTRA_POLICIES: dict[str, list] = {"campaigns": [api("select_customer_data", "SELECT", role_in("customer_data"))]}

SCHEDULES = [
    # (name, kind, cron, interval seconds, overlap, misfire)
    ("campaigns.start-due", "campaigns.start_due", "* * * * *", None, "skip", "skip"),
    ("campaigns.reconcile", "campaigns.reconcile", "*/5 * * * *", None, "skip", "skip"),
    ("notifications.reminders", "notifications.reminders", "*/5 * * * *", None, "skip", "run_once"),
    ("notifications.dispatch", "notifications.dispatch", None, 30, "skip", "skip"),
]

# Booking, assignment and payment changes become notification events in the same transaction as
# the change, whoever makes it. SECURITY DEFINER: the request role updating a booking needs no
# rights on notification_events. Inserts of bookings are not events (a booking starts pending).
CAPTURE_FUNCTION = """
CREATE FUNCTION capture_notification_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    kind text;
    booking uuid;
    detail jsonb := '{}'::jsonb;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'bookings' THEN
        booking := NEW.id;
        kind := CASE NEW.status WHEN 'confirmed' THEN 'booking_confirmed' WHEN 'cancelled' THEN 'booking_cancelled'
                                WHEN 'in_progress' THEN 'service_started' WHEN 'completed' THEN 'service_completed'
                END;
    ELSIF TG_TABLE_NAME = 'therapist_assignments' THEN
        booking := NEW.booking_id;
        kind := CASE NEW.status WHEN 'assigned' THEN 'therapist_assigned' WHEN 'reached' THEN 'therapist_arrived' END;
        detail := jsonb_build_object('assignment_id', NEW.id, 'therapist_id', NEW.therapist_id);
    ELSIF TG_TABLE_NAME = 'payments' THEN
        booking := NEW.booking_id;
        kind := CASE NEW.status WHEN 'success' THEN 'payment_received' WHEN 'refunded' THEN 'refund_processed'
                                WHEN 'partially_refunded' THEN 'refund_processed' END;
        detail := jsonb_build_object('payment_id', NEW.id, 'amount', NEW.amount);
    END IF;
    IF kind IS NOT NULL THEN
        INSERT INTO public.notification_events (type, booking_id, data) VALUES (kind, booking, detail);
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION capture_notification_event() FROM PUBLIC;
"""
TRIGGERS = {
    "bookings": "AFTER UPDATE OF status",
    "therapist_assignments": "AFTER INSERT OR UPDATE OF status",
    "payments": "AFTER INSERT OR UPDATE OF status",
}


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False)


def _created() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def _create_tables() -> None:
    op.create_table(
        "notification_events", _id(),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("booking_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.Column("data", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        _created(),
        _ts("processed_at"),
        sa.CheckConstraint("status IN ('pending', 'done')", name="ck_notification_events_status"),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"], name="fk_notification_events_booking_id_bookings",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_notification_events"),
        sa.UniqueConstraint("dedupe_key", name="uq_notification_events_dedupe_key"),
    )
    op.create_index("ix_notification_events_pending", "notification_events", ["created_at"],
                    postgresql_where=sa.text("status = 'pending'"))

    op.create_table(
        "message_deliveries", _id(),
        sa.Column("campaign_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        *(_ts(name) for name in ("sending_at", "sent_at", "delivered_at", "opened_at", "clicked_at", "failed_at",
                                 "unsubscribed_at")),
        _created(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"channel IN {CHANNELS}", name="ck_message_deliveries_channel"),
        sa.CheckConstraint(f"status IN {DELIVERY_STATUSES}", name="ck_message_deliveries_status"),
        sa.CheckConstraint("num_nonnulls(campaign_id, event_id) = 1", name="ck_message_deliveries_one_source"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name="fk_message_deliveries_campaign_id_campaigns",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["event_id"], ["notification_events.id"],
                                name="fk_message_deliveries_event_id_notification_events", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"], name="fk_message_deliveries_user_id_users",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_message_deliveries"),
    )
    op.create_index("uq_message_deliveries_campaign", "message_deliveries", ["campaign_id", "user_id", "channel"],
                    unique=True, postgresql_where=sa.text("campaign_id IS NOT NULL"))
    op.create_index("uq_message_deliveries_event", "message_deliveries", ["event_id", "user_id", "channel"],
                    unique=True, postgresql_where=sa.text("event_id IS NOT NULL"))
    op.create_index("ix_message_deliveries_provider_message_id", "message_deliveries", ["provider_message_id"],
                    postgresql_where=sa.text("provider_message_id IS NOT NULL"))
    op.create_index("ix_message_deliveries_cap", "message_deliveries", ["user_id", "channel", "sent_at"],
                    postgresql_where=sa.text("campaign_id IS NOT NULL AND sent_at IS NOT NULL"))
    op.create_index("ix_message_deliveries_pending", "message_deliveries", ["campaign_id", "channel", "user_id"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index("ix_message_deliveries_event_pending", "message_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending' AND event_id IS NOT NULL"))
    op.create_index("ix_message_deliveries_inflight", "message_deliveries", ["sending_at"],
                    postgresql_where=sa.text("status IN ('sending', 'unknown')"))

    op.create_table(
        "outbox_messages", _id(),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("delivery_id", sa.BigInteger(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("headers", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("data", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        _created(),
        sa.CheckConstraint(f"channel IN {CHANNELS}", name="ck_outbox_messages_channel"),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"], name="fk_outbox_messages_user_id_users",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_messages"),
    )
    op.create_index("ix_outbox_messages_user", "outbox_messages", ["user_id", sa.text("created_at DESC")])
    op.create_index("ix_outbox_messages_created", "outbox_messages", [sa.text("created_at DESC")])
    op.create_index("ix_outbox_messages_delivery", "outbox_messages", ["delivery_id"])

    op.create_table(
        "messaging_webhook_events", _id(),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messaging_webhook_events"),
        sa.UniqueConstraint("provider", "event_id", name="uq_messaging_webhook_events_provider_event_id"),
    )
    op.create_index("ix_messaging_webhook_events_received", "messaging_webhook_events", ["received_at"])

    op.create_table(
        "push_devices", _id(),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        _ts("disabled_at"),
        _created(),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"], name="fk_push_devices_user_id_users",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_push_devices"),
        sa.UniqueConstraint("token", name="uq_push_devices_token"),
    )
    op.create_index("ix_push_devices_user", "push_devices", ["user_id", sa.text("last_seen_at DESC")])


def upgrade() -> None:
    _create_tables()
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

    op.execute(CAPTURE_FUNCTION)
    for table, timing in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER notify_{table} {timing} ON {table} FOR EACH ROW "
                   "EXECUTE FUNCTION capture_notification_event()")

    for name, kind, cron, interval, overlap, misfire in SCHEDULES:
        op.execute(sa.text(
            "INSERT INTO schedules (name, kind, params, cron, interval_seconds, overlap_policy, misfire_policy) "
            "VALUES (:name, :kind, '{}', :cron, :interval, :overlap, :misfire) ON CONFLICT (name) DO NOTHING"
        ).bindparams(name=name, kind=kind, cron=cron, interval=interval, overlap=overlap, misfire=misfire))


def downgrade() -> None:
    op.execute(f"DELETE FROM schedules WHERE name IN ({', '.join(repr(s[0]) for s in SCHEDULES)})")
    for table in TRIGGERS:
        op.execute(f"DROP TRIGGER notify_{table} ON {table}")
    op.execute("DROP FUNCTION capture_notification_event()")
    for table, policies in EXTRA_POLICIES.items():
        for policy in policies:
            op.execute(f"DROP POLICY {policy.name} ON {table}")
    # Dropping a table drops its policies and grants with it.
    for table in reversed(NEW_TABLES):
        op.drop_table(table)
