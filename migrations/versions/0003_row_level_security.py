"""Row-level security: the request roles, the auth.* claim helpers, refresh tokens, the audit log,
the grants, and one set of policies per table (docs/access.md, "Row-level security").

Every API request runs as `ombaro_api` and every job handler as `ombaro_worker` (SET LOCAL ROLE) with
its claims in `request.jwt.claims`; the policies below decide which rows those transactions see.
Policies are data (POLICIES), so a reviewer reads one table per entry instead of DDL.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from migrations.partitions import ENSURE_MONTHLY_PARTITIONS
from migrations.rls import (
    API,
    AUTHENTICATED,
    FINANCE,
    REQUEST_ROLES,
    ROLE,
    STAFF,
    STAFF_OPS,
    THERAPIST,
    UID,
    VENDOR,
    WORKER,
    Policy,
    api,
    everywhere,
    of_my_reports,
    of_own_vendors_therapists,
    own,
    policy_sql,
    role_in,
)

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The policy vocabulary (roles, claims, api/own/everywhere) is shared with later migrations: migrations/rls.py.

# --- roles ---------------------------------------------------------------------------------------

# Roles are cluster-wide and the test suite migrates many databases on one server, sometimes at
# once: create only when missing, and treat a concurrent creation as success.
CREATE_ROLES = """
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['ombaro_api', 'ombaro_worker'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOBYPASSRLS NOSUPERUSER', name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$$
"""

# The login user must be able to SET ROLE to the request roles. It also has to see every row it works
# on (authentication, the command log, the audit writer, view refreshes, the SECURITY DEFINER
# helpers): FORCE ROW LEVEL SECURITY holds the owner to the policies, so it must be a superuser, have
# BYPASSRLS, or inherit ombaro_worker (whose policies let it see everything). Refuse anything else
# here rather than let every query of the engine find no rows.
GRANT_ROLES_TO_OWNER = """
DO $$
DECLARE
    me pg_roles%ROWTYPE;
BEGIN
    SELECT * INTO me FROM pg_roles WHERE rolname = current_user;
    IF NOT me.rolsuper AND NOT (pg_has_role(current_user, 'ombaro_api', 'MEMBER')
                                AND pg_has_role(current_user, 'ombaro_worker', 'MEMBER')) THEN
        BEGIN
            GRANT ombaro_api, ombaro_worker TO CURRENT_USER;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'role % cannot take the request roles', current_user
                USING HINT = format('as a superuser: GRANT ombaro_api, ombaro_worker TO %I', current_user);
        END;
    END IF;
    IF NOT (me.rolsuper OR me.rolbypassrls OR pg_has_role(current_user, 'ombaro_worker', 'USAGE')) THEN
        RAISE EXCEPTION 'role % owns tables under FORCE ROW LEVEL SECURITY but would see no rows', current_user
            USING HINT = 'as a superuser: ALTER ROLE ... BYPASSRLS; or let it inherit ombaro_worker';
    END IF;
END
$$
"""

# --- the claim helpers (docs/access.md) -----------------------------------------------------------

# PL/pgSQL, not SQL: before PostgreSQL 18 a SQL function that cannot be inlined (these cannot: a
# fixed search_path, SECURITY DEFINER) plans its body on every call, and every policy calls them once
# per query. On PostgreSQL 15 the five cost 0.33 ms a query as SQL and 0.05 ms as PL/pgSQL, whose
# plans are kept for the session (docs/access.md, "Row-level security").
HELPER_OPTIONS = "LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public, auth"
CLAIMS = "nullif(current_setting('request.jwt.claims', true), '')::jsonb"
AUTH_FUNCTIONS: dict[str, str] = {
    "auth.jwt()": f"""
        CREATE FUNCTION auth.jwt() RETURNS jsonb {HELPER_OPTIONS} AS $$
        BEGIN
            RETURN coalesce({CLAIMS}, '{{}}'::jsonb);
        END
        $$""",
    "auth.uid()": f"""
        CREATE FUNCTION auth.uid() RETURNS uuid {HELPER_OPTIONS} AS $$
        BEGIN
            RETURN nullif({CLAIMS} ->> 'sub', '')::uuid;
        END
        $$""",
    "auth.role()": f"""
        CREATE FUNCTION auth.role() RETURNS text {HELPER_OPTIONS} AS $$
        BEGIN
            RETURN nullif({CLAIMS} ->> 'role', '');
        END
        $$""",
    # SECURITY DEFINER: the lookups read vendors / vendor_staff / therapists, whose own policies call
    # these helpers; running as the owner keeps that from recursing.
    "auth.vendor_id()": f"""
        CREATE FUNCTION auth.vendor_id() RETURNS uuid {HELPER_OPTIONS} SECURITY DEFINER AS $$
        DECLARE
            me uuid := auth.uid();
            found uuid;
        BEGIN
            -- Only vendor accounts act for a vendor: every other caller skips the lookups (cheaper
            -- policies for customers and staff, and stricter).
            IF me IS NULL OR auth.role() IS DISTINCT FROM 'vendor' THEN
                RETURN NULL;
            END IF;
            SELECT v.id INTO found FROM public.vendors AS v WHERE v.id = me;
            IF found IS NULL THEN
                SELECT s.vendor_id INTO found FROM public.vendor_staff AS s
                WHERE s.user_id = me AND s.status = 'active' ORDER BY s.created_at, s.id LIMIT 1;
            END IF;
            RETURN found;
        END
        $$""",
    "auth.therapist_id()": f"""
        CREATE FUNCTION auth.therapist_id() RETURNS uuid {HELPER_OPTIONS} SECURITY DEFINER AS $$
        DECLARE
            me uuid := auth.uid();
            found uuid;
        BEGIN
            IF me IS NULL OR auth.role() IS DISTINCT FROM 'therapist' THEN
                RETURN NULL;
            END IF;
            SELECT t.id INTO found FROM public.therapists AS t WHERE t.user_id = me
            ORDER BY t.created_at, t.id LIMIT 1;
            RETURN found;
        END
        $$""",
}

# --- triggers -------------------------------------------------------------------------------------

# Nobody edits history: the owner included. Changing that takes a migration that drops the trigger.
AUDIT_LOG_APPEND_ONLY = """
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
"""

# Policies choose rows, not columns: an "update own row" policy would let a vendor verify itself or a
# customer top up their own points. This trigger refuses a change to the listed columns (trigger
# arguments after the first) unless the claims' role is one of the first argument's comma-separated
# roles. It fires only for the request role; workers and the owner are trusted code.
PROTECT_COLUMNS = """
CREATE FUNCTION protect_columns() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, auth AS $$
DECLARE
    allowed text[] := string_to_array(TG_ARGV[0], ',');
    old_row jsonb := to_jsonb(OLD);
    new_row jsonb := to_jsonb(NEW);
BEGIN
    IF auth.role() = ANY (allowed) THEN
        RETURN NEW;
    END IF;
    FOR i IN 1 .. TG_NARGS - 1 LOOP
        IF old_row -> TG_ARGV[i] IS DISTINCT FROM new_row -> TG_ARGV[i] THEN
            RAISE EXCEPTION 'role % may not change %.%', coalesce(auth.role(), 'anonymous'), TG_TABLE_NAME, TG_ARGV[i]
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    RETURN NEW;
END
$$
"""


# Only a view's owner may refresh it (PostgreSQL 17 adds a MAINTAIN privilege, 15 and 16 have none),
# and job handlers run as ombaro_worker: they refresh through this function, which runs as the owner
# and takes only the materialized views of schema public.
REFRESH_FUNCTION = "refresh_materialized_view(text, boolean)"
REFRESH_MATERIALIZED_VIEW = f"""
CREATE FUNCTION refresh_materialized_view(view_name text, concurrent boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_matviews WHERE schemaname = 'public' AND matviewname = view_name) THEN
        RAISE EXCEPTION 'public.% is not a materialized view', view_name USING ERRCODE = 'undefined_table';
    END IF;
    EXECUTE format('REFRESH MATERIALIZED VIEW %s public.%I', CASE WHEN concurrent THEN 'CONCURRENTLY' END,
                   view_name);
END
$$;
REVOKE ALL ON FUNCTION {REFRESH_FUNCTION} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {REFRESH_FUNCTION} TO {WORKER};
"""


class Guard(NamedTuple):
    name: str  # trigger protect_<table>_<name>
    roles: tuple[str, ...]  # claims roles that may change the columns through the API
    columns: tuple[str, ...]


PROTECTED_COLUMNS: dict[str, list[Guard]] = {
    "vendors": [Guard("standing", ("super_admin", "vendor_list"),
                      ("verification_status", "commission_rate", "status", "rating", "total_reviews"))],
    "customers": [Guard("standing", ("super_admin",),
                        ("membership_tier", "loyalty_points", "total_bookings", "total_spent", "referral_code",
                         "referred_by", "referral_count"))],
    "therapists": [Guard("standing", ("super_admin",), ("rating", "total_reviews", "total_services")),
                   Guard("employment", ("super_admin", "vendor"), ("vendor_id", "user_id", "status"))],
    "bookings": [Guard("money", ("super_admin",),
                       ("booking_number", "customer_id", "vendor_id", "promotion_id", "payment_status",
                        "subtotal_amount", "discount_amount", "tax_amount", "total_amount"))],
    # A therapist who could repoint their assignment at any booking would then read that booking.
    "therapist_assignments": [Guard("parties", ("super_admin",), ("booking_id", "customer_id", "vendor_id")),
                              Guard("therapist", ("super_admin", "vendor", "fo_department", "customer_care"),
                                    ("therapist_id",))],
    "reviews": [Guard("moderation", ("super_admin", "customer_care"),
                      ("status", "moderated_by", "moderation_notes", "booking_id", "vendor_id", "therapist_id"))],
    "leave_requests": [Guard("decision", ("super_admin", "hr_department"),
                             ("approved_by", "approved_date", "rejection_reason"))],
}

# A partition named directly (not through its parent) is closed to requests: no grant, and RLS with
# no policy for ombaro_api should one be granted. Workers, and an owner that inherits ombaro_worker,
# still reach the rows (this function moves rows out of the default partition). Later monthly
# partitions get the same: the function of 0001 is kept as it is, with this step before it counts a
# new partition.
PARTITION_WORKER_POLICY = f"CREATE POLICY worker_all ON {{}} TO {WORKER} USING (true) WITH CHECK (true)"
PARTITION_RLS_STEP = f"""\
        IF (SELECT relrowsecurity FROM pg_class WHERE oid = parent) THEN
            EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY',
                           parent_schema, partition_name);
            EXECUTE format('{PARTITION_WORKER_POLICY.format("%I.%I")}', parent_schema, partition_name);
        END IF;
"""
PARTITION_COUNT_LINE = "        created := created + 1;\n"

# --- policies ------------------------------------------------------------------------------------

LIVE_ASSIGNMENT = "('assigned', 'acknowledged', 'in_transit', 'reached', 'in_progress')"


CATALOGUE = [api("select_authenticated", "SELECT", AUTHENTICATED),
             api("manage_vendor_list", "ALL", role_in("vendor_list"))]

POLICIES: dict[str, list[Policy]] = {
    "auth.users": [  # writes only through the owner connection (ombaro/identity)
        *own("id", UID, "SELECT"),
        api("select_staff", "SELECT", role_in("hr_department", "admin")),
    ],
    "user_profiles": [  # column grants below keep role and status out of an own-row update
        *own("id", UID, "SELECT", "UPDATE"),
        api("select_staff", "SELECT", role_in("admin", "hr_department", "directors", "customer_care", "fo_department",
                                              "customer_data", "marketing_department", "staff_department")),
    ],
    "role_permissions": [api("select_authenticated", "SELECT", AUTHENTICATED)],
    "services": CATALOGUE,
    "service_packages": CATALOGUE,
    "addon_services": CATALOGUE,
    "vendors": [
        *own("id", VENDOR, "SELECT", "UPDATE"),
        api("select_staff", "SELECT", role_in("legal_department", "advocate", "ca_cs", "directors", *FINANCE,
                                              *STAFF_OPS, "marketing_department")),
        api("select_listed", "SELECT",
            f"{ROLE} = 'customer' AND verification_status = 'verified' AND status = 'active'"),
        api("manage_vendor_list", "ALL", role_in("vendor_list")),
    ],
    "vendor_staff": [
        *own("vendor_id", VENDOR, "ALL"),
        *own("user_id", UID, "SELECT"),
        api("select_staff", "SELECT", role_in("vendor_list", "directors")),
    ],
    "therapists": [
        *own("vendor_id", VENDOR, "ALL"),
        *own("user_id", UID, "SELECT", "UPDATE"),
        api("select_staff", "SELECT", role_in("directors", *STAFF_OPS, *FINANCE)),
        api("select_assigned_to_me", "SELECT",
            f"id IN (SELECT therapist_id FROM therapist_assignments WHERE customer_id = {UID})"),
    ],
    "therapist_schedules": [
        api("all_own_vendor", "ALL", of_own_vendors_therapists()),
        *own("therapist_id", THERAPIST, "SELECT"),
        api("select_staff", "SELECT", role_in(*STAFF_OPS, "directors")),
    ],
    "therapist_leaves": [
        api("all_own_vendor", "ALL", of_own_vendors_therapists()),
        *own("therapist_id", THERAPIST, "SELECT"),
        api("insert_own_therapist", "INSERT",
            check=f"therapist_id = {THERAPIST} AND status = 'pending' AND approved_by IS NULL"),
        api("select_staff", "SELECT", role_in(*STAFF_OPS, "directors")),
    ],
    "therapist_locations": [
        *own("therapist_id", THERAPIST, "SELECT", "INSERT"),
        api("select_own_vendor", "SELECT", of_own_vendors_therapists()),
        api("select_staff", "SELECT", role_in(*STAFF_OPS, "directors")),
        api("select_my_live_therapist", "SELECT",
            f"therapist_id IN (SELECT therapist_id FROM therapist_assignments "
            f"WHERE customer_id = {UID} AND status IN {LIVE_ASSIGNMENT})"),
    ],
    "bookings": [
        *own("customer_id", UID, "SELECT", "INSERT", "UPDATE"),
        *own("vendor_id", VENDOR, "SELECT", "UPDATE"),
        api("select_assigned_therapist", "SELECT",
            f"id IN (SELECT booking_id FROM therapist_assignments WHERE therapist_id = {THERAPIST})"),
        api("select_staff", "SELECT", role_in("customer_care", "fo_department", *FINANCE, "directors")),
        api("update_staff", "UPDATE", role_in("fo_department", "customer_care")),
    ],
    "booking_items": [
        # The subquery runs under the caller's own bookings policies: items follow their booking.
        # EXISTS probes one booking per item by primary key, where IN would hash every visible booking.
        api("select_visible_booking", "SELECT", "EXISTS (SELECT 1 FROM bookings AS b WHERE b.id = booking_id)"),
        api("insert_own_booking", "INSERT",
            check=f"EXISTS (SELECT 1 FROM bookings AS b WHERE b.id = booking_id AND b.customer_id = {UID})"),
    ],
    "therapist_assignments": [
        *own("therapist_id", THERAPIST, "SELECT", "UPDATE"),
        *own("vendor_id", VENDOR, "SELECT", "UPDATE"),
        *own("customer_id", UID, "SELECT"),
        api("select_staff", "SELECT", role_in("fo_department", "customer_care", "directors")),
        api("update_staff", "UPDATE", role_in("fo_department", "customer_care")),
    ],
    "payments": [
        *own("customer_id", UID, "SELECT"),
        *own("vendor_id", VENDOR, "SELECT"),
        api("select_staff", "SELECT", role_in(*FINANCE, "directors", "customer_care")),
    ],
    "payment_settlements": [
        *own("vendor_id", VENDOR, "SELECT"),
        api("manage_finance", "ALL", role_in(*FINANCE)),
        api("select_directors", "SELECT", role_in("directors")),
    ],
    "employees": [
        *own("id", UID, "SELECT"),
        api("select_staff", "SELECT", role_in("hr_department", "staff_department", "directors")),
        api("select_my_reports", "SELECT", f"reporting_manager = {UID}"),
        api("insert_hr", "INSERT", check=role_in("hr_department")),
        api("update_hr", "UPDATE", role_in("hr_department")),
    ],
    "attendance_records": [
        *own("employee_id", UID, "SELECT", "INSERT", "UPDATE"),
        api("manage_hr", "ALL", role_in("hr_department", "staff_department")),
        api("select_my_reports", "SELECT", of_my_reports()),
    ],
    "leave_requests": [
        *own("employee_id", UID, "SELECT"),
        api("insert_own", "INSERT", check=f"employee_id = {UID} AND status = 'pending'"),
        # Own requests change only while pending, and only to withdraw them.
        api("cancel_own", "UPDATE", f"employee_id = {UID} AND status = 'pending'",
            f"employee_id = {UID} AND status IN ('pending', 'cancelled')"),
        api("select_hr", "SELECT", role_in("hr_department", "staff_department")),
        api("update_hr", "UPDATE", role_in("hr_department")),
        api("select_my_reports", "SELECT", of_my_reports()),
    ],
    "salary_records": [
        *own("employee_id", UID, "SELECT"),
        api("manage_hr", "ALL", role_in("hr_department")),
        api("select_finance", "SELECT", role_in(*FINANCE, "directors")),
    ],
    "performance_reviews": [
        *own("employee_id", UID, "SELECT"),
        api("select_reviewer", "SELECT", f"reviewer_id = {UID}"),
        api("update_reviewer", "UPDATE", f"reviewer_id = {UID}"),
        api("manage_hr", "ALL", role_in("hr_department")),
    ],
    "customers": [
        *own("id", UID, "SELECT", "UPDATE"),
        api("select_staff", "SELECT", role_in("marketing_department", "customer_data", "customer_care",
                                              "fo_department", "directors")),
    ],
    "customer_addresses": [
        *own("customer_id", UID, "ALL"),
        api("select_staff", "SELECT", role_in("customer_care", "fo_department")),
    ],
    "loyalty_transactions": [
        *own("customer_id", UID, "SELECT"),
        api("select_staff", "SELECT", role_in("marketing_department", "customer_data", "customer_care")),
    ],
    "reviews": [
        api("select_approved", "SELECT", f"{AUTHENTICATED} AND status = 'approved'"),
        *own("customer_id", UID, "SELECT", "UPDATE", "DELETE"),
        api("insert_own", "INSERT", check=f"customer_id = {UID} AND status = 'pending'"),
        *own("vendor_id", VENDOR, "SELECT"),
        api("manage_customer_care", "ALL", role_in("customer_care")),
    ],
    "campaigns": [api("manage_marketing", "ALL", role_in("marketing_department", "directors"))],
    "promotions": [
        api("select_active", "SELECT", f"{AUTHENTICATED} AND status = 'active'"),
        api("manage_marketing", "ALL", role_in("marketing_department")),
    ],
    "promotion_usage": [
        *own("customer_id", UID, "SELECT", "INSERT"),
        api("select_staff", "SELECT", role_in("marketing_department", "customer_data")),
    ],
    "support_tickets": [
        *own("customer_id", UID, "SELECT", "INSERT"),
        api("manage_care", "ALL", role_in("customer_care", "fo_department")),
    ],
    "ticket_messages": [
        api("select_visible_ticket", "SELECT",
            f"EXISTS (SELECT 1 FROM support_tickets AS t WHERE t.id = ticket_id) "
            f"AND (is_internal = false OR {role_in(*STAFF)})"),
        api("insert_own_ticket", "INSERT",
            check=f"sender_id = {UID} AND is_internal = false AND EXISTS "
                  f"(SELECT 1 FROM support_tickets AS t WHERE t.id = ticket_id AND t.customer_id = {UID})"),
        api("manage_care", "ALL", role_in("customer_care", "fo_department")),
    ],
    "notifications": own("user_id", UID, "SELECT", "UPDATE"),
    "analytics_events": [
        api("insert_own", "INSERT", check=f"user_id = {UID}"),
        api("select_staff", "SELECT", role_in("marketing_department", "customer_data", "directors", "it_department")),
    ],
    "jobs": [
        *own("requested_by", UID, "SELECT", "INSERT"),
        api("select_staff", "SELECT", role_in(*STAFF)),
    ],
    "schedules": [
        api("select_staff", "SELECT", role_in(*STAFF)),
        api("update_it", "UPDATE", role_in("it_department")),
    ],
    "view_refreshes": [api("select_staff", "SELECT", role_in(*STAFF))],
    "audit_log": [
        # Anonymous requests (a failed login) are logged with no actor; nobody logs as someone else.
        api("insert_as_self", "INSERT", check=f"actor_id IS NOT DISTINCT FROM {UID}"),
        api("select_auditors", "SELECT", role_in("super_admin", "directors", "it_department", "legal_department")),
    ],
}
TABLES: tuple[str, ...] = tuple(POLICIES)

# --- grants --------------------------------------------------------------------------------------

# Every table of POLICIES gets SELECT, INSERT, UPDATE, DELETE for both roles unless listed here.
USER_COLUMNS = "id, email, email_confirmed_at, last_sign_in_at, created_at, updated_at"  # no password hash
SPECIAL_GRANTS: dict[str, list[str]] = {
    "auth.users": [f"GRANT SELECT ({USER_COLUMNS}) ON auth.users TO {REQUEST_ROLES}"],
    "user_profiles": [
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON user_profiles TO {WORKER}",
        f"GRANT SELECT, INSERT, DELETE ON user_profiles TO {API}",
        # Role, status and mobile change only through the owner connection (ombaro/identity).
        f"GRANT UPDATE (name, gender, date_of_birth, profile_image, address, preferences, updated_at) "
        f"ON user_profiles TO {API}",
    ],
    "audit_log": [f"GRANT SELECT, INSERT ON audit_log TO {API}", f"GRANT INSERT ON audit_log TO {WORKER}"],
}
MATERIALIZED_VIEWS = ("dashboard_stats", "daily_booking_stats")  # no RLS possible; the API gates them

# Policies filter on these columns and nothing indexed them in this order. The bookings pair serves
# "my latest bookings" for a customer or a vendor straight from the index (bench/access.py); with only
# the single-column indexes a prepared (generic) plan walks idx_bookings_date backwards and filters,
# which reads the whole table for a vendor with few bookings. The models declare them in access.py.
INDEXES: dict[str, tuple[str, str]] = {
    "idx_bookings_customer_date": ("bookings", "customer_id, booking_date DESC"),
    "idx_bookings_vendor_date": ("bookings", "vendor_id, booking_date DESC"),
    "ix_jobs_requested_by": ("jobs", "requested_by, created_at DESC"),
}


def _partitions() -> list[str]:
    bind = op.get_bind()
    return list(bind.execute(sa.text(
        "SELECT c.oid::regclass::text FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'analytics_events'::regclass ORDER BY 1"
    )).scalars())


def _ensure_monthly_partitions_0001() -> str:
    return ENSURE_MONTHLY_PARTITIONS.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def _create_tables() -> None:
    op.create_table(
        "refresh_tokens",
        sa.Column("id", pg.UUID(as_uuid=True), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("family_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"], name="fk_refresh_tokens_user_id_users",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        schema="auth",
    )
    op.create_index("idx_refresh_tokens_family", "refresh_tokens", ["family_id"], schema="auth")
    op.create_index("idx_refresh_tokens_user", "refresh_tokens", ["user_id"], schema="auth")
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor_id", pg.UUID(as_uuid=True), nullable=True),
        sa.Column("actor_role", sa.Text(), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("details", pg.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("idx_audit_log_at", "audit_log", [sa.text("at DESC")])
    op.create_index("idx_audit_log_actor", "audit_log", ["actor_id", sa.text("at DESC")])
    op.execute(AUDIT_LOG_APPEND_ONLY)


def upgrade() -> None:
    op.execute(CREATE_ROLES)
    op.execute(GRANT_ROLES_TO_OWNER)
    for definition in AUTH_FUNCTIONS.values():
        op.execute(definition)
    _create_tables()
    for name, (table, columns) in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {table} ({columns})")

    # Grants: the roles can reach tables and helpers; which rows they reach is the policies' business.
    op.execute(f"GRANT USAGE ON SCHEMA public, auth TO {REQUEST_ROLES}")
    for table in TABLES:
        for statement in SPECIAL_GRANTS.get(table,
                                           [f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {REQUEST_ROLES}"]):
            op.execute(statement)
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {REQUEST_ROLES}")
    op.execute(f"GRANT SELECT ON {', '.join(MATERIALIZED_VIEWS)} TO {REQUEST_ROLES}")
    functions = ", ".join(AUTH_FUNCTIONS)
    op.execute(f"REVOKE ALL ON FUNCTION {functions} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {functions} TO {REQUEST_ROLES}")
    op.execute(REFRESH_MATERIALIZED_VIEW)

    # RLS on every table, FORCE so the owner is held to it too. Partitions get no grants (a request
    # goes through the parent, whose policies apply) and RLS without policies: direct reads see nothing.
    for table in (*TABLES, *_partitions()):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    for partition in _partitions():
        op.execute(PARTITION_WORKER_POLICY.format(partition))
    function = _ensure_monthly_partitions_0001()
    assert PARTITION_COUNT_LINE in function, "ensure_monthly_partitions changed: re-anchor PARTITION_RLS_STEP"
    op.execute(function.replace(PARTITION_COUNT_LINE, PARTITION_RLS_STEP + PARTITION_COUNT_LINE, 1))

    for table, policies in POLICIES.items():
        for policy in (*everywhere(), *policies):
            op.execute(policy_sql(table, policy))

    op.execute(PROTECT_COLUMNS)
    for table, guards in PROTECTED_COLUMNS.items():
        for guard in guards:
            arguments = ", ".join(repr(value) for value in (",".join(guard.roles), *guard.columns))
            op.execute(f"CREATE TRIGGER protect_{table}_{guard.name} BEFORE UPDATE ON {table} FOR EACH ROW "
                       f"WHEN (current_user = '{API}') EXECUTE FUNCTION protect_columns({arguments})")


def downgrade() -> None:
    # The roles stay: they are cluster-wide and other databases on the server use them.
    for table, guards in PROTECTED_COLUMNS.items():
        for guard in guards:
            op.execute(f"DROP TRIGGER protect_{table}_{guard.name} ON {table}")
    op.execute("DROP FUNCTION protect_columns()")
    op.execute(f"DROP FUNCTION {REFRESH_FUNCTION}")
    for table, policies in POLICIES.items():
        for policy in (*everywhere(), *policies):
            op.execute(f"DROP POLICY {policy.name} ON {table}")
    op.execute(_ensure_monthly_partitions_0001())
    for partition in _partitions():
        op.execute(f"DROP POLICY IF EXISTS worker_all ON {partition}")
    for table in (*TABLES, *_partitions()):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY")

    # Revoking a table privilege revokes the column privileges on it too.
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public, auth FROM {REQUEST_ROLES}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {REQUEST_ROLES}")
    op.execute(f"REVOKE ALL ON SCHEMA public, auth FROM {REQUEST_ROLES}")

    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
    op.drop_table("audit_log")  # its triggers go with it
    op.execute("DROP FUNCTION audit_log_refuse_change()")
    op.drop_table("refresh_tokens", schema="auth")
    for signature in reversed(AUTH_FUNCTIONS):
        op.execute(f"DROP FUNCTION {signature}")
