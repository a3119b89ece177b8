"""Jobs and schedules by kind (docs/security.md): a job's row (its params, result and error) is
visible to the staff roles that hold the permission of the endpoint that starts its kind, and to
the caller who requested it; a schedule is listed to the same roles and changed or run only by those
that also hold `schedules:update`. The decision reads the grants table the super admin edits.

Replaces 0003's `select_staff` on jobs (every staff role saw every job, pay runs included) and
`select_staff` / `update_it` on schedules (IT could run payroll through a schedule).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

API = "ombaro_api"
WORKER = "ombaro_worker"
HELPER_OPTIONS = "SET search_path = pg_catalog, public, auth"

# ombaro.access.roles.holds(role) minus the role itself, as of this revision (a test compares them).
HOLDS: dict[str, tuple[str, ...]] = {
    "admin": ("employee",),
    "accounts_department": ("employee",),
    "marketing_department": ("customer_data", "employee"),
    "finance_department": ("accounts_department", "employee"),
    "legal_department": ("advocate", "ca_cs", "employee"),
    "customer_care": ("employee",),
    "staff_department": ("employee",),
    "vendor_list": ("employee",),
    "customer_data": ("employee",),
    "fo_department": ("employee",),
    "it_department": ("employee",),
    "ho_details": ("employee",),
    "corporate_office": ("employee",),
    "advocate": ("employee",),
    "ca_cs": ("employee",),
    "hr_department": ("employee", "staff_department"),
    "directors": ("accounts_department", "advocate", "ca_cs", "corporate_office", "customer_care", "customer_data",
                  "employee", "finance_department", "fo_department", "ho_details", "hr_department",
                  "it_department", "legal_department", "marketing_department", "staff_department", "vendor_list"),
}

# ombaro.access.permissions.JOB_KIND_PERMISSIONS as of this revision (a test compares them); a kind
# not listed needs `<its module>:create`, or `jobs:create` when its prefix is no module.
JOB_KIND_PERMISSIONS: dict[str, str] = {
    "campaigns.start": "campaigns:update", "campaigns.send_chunk": "campaigns:update",
    "campaigns.start_due": "campaigns:update", "campaigns.reconcile": "campaigns:update",
    "dispatch.booking": "dispatch:create", "dispatch.batch": "dispatch:create",
    "locations.prune": "jobs:create", "system.ping": "jobs:create",
    "notifications.dispatch": "jobs:create", "notifications.reminders": "jobs:create",
    "payments.webhook": "payments:update", "payments.refund": "payments:update",
    "payroll.run": "payroll:create", "payroll.compute_batch": "payroll:create",
    "reports.refresh": "reports:create",
    "settlements.run": "settlements:create", "settlements.run_batch": "settlements:create",
    "settlements.payout": "settlements:approve", "settlements.reconcile": "settlements:approve",
}
MODULES = (
    "access", "assignments", "attendance", "audit", "bank_details", "bookings", "campaigns", "customers",
    "dispatch", "employees", "jobs", "leave", "notifications", "payments", "payroll", "reports", "schedules",
    "settlements", "support", "therapists", "users", "vendors",
)
EXTERNAL = ("customer", "vendor", "therapist")


def _literal(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _holds_function() -> str:
    cases = "\n".join(f"        WHEN '{role}' THEN ARRAY['{role}', {_literal(held)}]" for role, held in HOLDS.items())
    return f"""
CREATE FUNCTION auth.roles_held(role text) RETURNS text[] LANGUAGE sql IMMUTABLE {HELPER_OPTIONS} AS $$
    SELECT CASE role
{cases}
        ELSE ARRAY[role]
    END
$$"""


# SQL and IMMUTABLE so the planner inlines it into a policy: a CASE per row, no call.
def _job_permission_function() -> str:
    cases = "\n".join(f"        WHEN '{kind}' THEN '{permission}'" for kind, permission in JOB_KIND_PERMISSIONS.items())
    return f"""
CREATE FUNCTION auth.job_permission(kind text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE kind
{cases}
        ELSE CASE WHEN split_part(kind, '.', 1) IN ({_literal(MODULES)})
                  THEN split_part(kind, '.', 1) || ':' || 'create' ELSE 'jobs:create' END
    END
$$"""


# 'module:action' for every grant of every role the caller's role holds, read from role_permissions
# as the owner (the grants the super admin edits apply at once). The super admin's are everything.
PERMISSIONS_FUNCTION = f"""
CREATE FUNCTION auth.permissions() RETURNS text[] LANGUAGE plpgsql STABLE SECURITY DEFINER {HELPER_OPTIONS} AS $$
DECLARE
    me text := auth.role();
    found text[];
BEGIN
    IF me IS NULL THEN
        RETURN ARRAY[]::text[];
    END IF;
    IF me = 'super_admin' THEN
        SELECT array_agg(m || ':' || a) INTO found
        FROM unnest(ARRAY[{_literal(MODULES)}]) AS m,
             unnest(ARRAY['read', 'create', 'update', 'delete', 'approve', 'export']) AS a;
        RETURN found;
    END IF;
    SELECT coalesce(array_agg(DISTINCT p.module_id || ':' || action), ARRAY[]::text[]) INTO found
    FROM public.role_permissions AS p, unnest(p.permissions) AS action
    WHERE p.role_id = ANY (auth.roles_held(me));
    RETURN found;
END
$$"""

# For the application's own checks (retry, the console): the policies' rule for one kind.
MAY_RUN_FUNCTION = """
CREATE FUNCTION auth.may_run(kind text) RETURNS boolean LANGUAGE sql STABLE
SET search_path = pg_catalog, public, auth AS $$
    SELECT auth.job_permission(kind) = ANY (auth.permissions())
$$"""

# For listing fast (commands.list_jobs): the kinds in the log, read as the owner through the
# (kind, status) index one kind at a time (a loose index scan: a few probes, not the whole log), and
# whether the caller's policies can show any job of a kind. Neither decides anything the policies
# do not: the listing still reads every row under them; this only skips kinds they would reject.
# ROWS 20: the planner's default guess of 1,000 kinds made the listing look costly enough to be
# JIT-compiled (0.7 s a listing on PostgreSQL 15).
JOB_KINDS_FUNCTION = """
CREATE FUNCTION public.job_kinds() RETURNS SETOF text LANGUAGE sql STABLE SECURITY DEFINER ROWS 20
SET search_path = pg_catalog, public AS $$
    WITH RECURSIVE k AS (
        (SELECT j.kind FROM public.jobs AS j ORDER BY j.kind LIMIT 1)
        UNION ALL
        SELECT (SELECT j.kind FROM public.jobs AS j WHERE j.kind > k.kind ORDER BY j.kind LIMIT 1)
        FROM k WHERE k.kind IS NOT NULL
    )
    SELECT kind FROM k WHERE kind IS NOT NULL
$$"""
SEES_KIND_FUNCTION = f"""
CREATE FUNCTION auth.sees_kind(kind text, permissions text[]) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT current_user <> '{API}' OR auth.role() = 'super_admin'
        OR (auth.role() NOT IN ({_literal(EXTERNAL)}) AND auth.job_permission(kind) = ANY (permissions))
$$"""
KIND_INDEX = "CREATE INDEX ix_jobs_kind_created ON jobs (kind, created_at DESC, id DESC)"

FUNCTIONS = ("auth.roles_held(text)", "auth.job_permission(text)", "auth.permissions()", "auth.may_run(text)",
             "auth.sees_kind(text, text[])", "public.job_kinds()")

STAFF_CALLER = f"(select auth.role()) NOT IN ({_literal(EXTERNAL)})"
MAY_KIND = "auth.job_permission(kind) = ANY ((select auth.permissions())::text[])"
POLICIES: dict[str, list[str]] = {
    "jobs": [f"CREATE POLICY select_by_kind ON jobs FOR SELECT TO {API} USING ({STAFF_CALLER} AND {MAY_KIND})"],
    "schedules": [
        f"CREATE POLICY select_by_kind ON schedules FOR SELECT TO {API} USING ({STAFF_CALLER} AND {MAY_KIND})",
        f"CREATE POLICY update_by_kind ON schedules FOR UPDATE TO {API} "
        f"USING ({STAFF_CALLER} AND {MAY_KIND} AND 'schedules:update' = ANY ((select auth.permissions())::text[]))",
    ],
}
OLD_POLICIES: dict[str, list[str]] = {
    "jobs": ["select_staff"],
    "schedules": ["select_staff", "update_it"],
}
STAFF_0003 = (
    "admin", "accounts_department", "marketing_department", "finance_department", "legal_department",
    "customer_care", "staff_department", "vendor_list", "customer_data", "fo_department", "it_department",
    "super_admin", "ho_details", "corporate_office", "advocate", "ca_cs", "directors", "hr_department",
)
RESTORE_0003 = [
    f"CREATE POLICY select_staff ON jobs AS PERMISSIVE FOR SELECT TO {API} "
    f"USING ((select auth.role()) IN ({_literal(STAFF_0003)}))",
    f"CREATE POLICY select_staff ON schedules AS PERMISSIVE FOR SELECT TO {API} "
    f"USING ((select auth.role()) IN ({_literal(STAFF_0003)}))",
    f"CREATE POLICY update_it ON schedules AS PERMISSIVE FOR UPDATE TO {API} "
    f"USING ((select auth.role()) IN ('it_department')) WITH CHECK ((select auth.role()) IN ('it_department'))",
]


def upgrade() -> None:
    op.execute(_holds_function())
    op.execute(_job_permission_function())
    op.execute(PERMISSIONS_FUNCTION)
    op.execute(MAY_RUN_FUNCTION)
    op.execute(SEES_KIND_FUNCTION)
    op.execute(JOB_KINDS_FUNCTION)
    op.execute(KIND_INDEX)
    op.execute(f"REVOKE ALL ON FUNCTION {', '.join(FUNCTIONS)} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {', '.join(FUNCTIONS)} TO {API}, {WORKER}")
    for table, names in OLD_POLICIES.items():
        for name in names:
            op.execute(f"DROP POLICY {name} ON {table}")
    for statements in POLICIES.values():
        for statement in statements:
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP POLICY select_by_kind ON jobs")
    op.execute("DROP POLICY select_by_kind ON schedules")
    op.execute("DROP POLICY update_by_kind ON schedules")
    for statement in RESTORE_0003:
        op.execute(statement)
    op.execute("DROP INDEX ix_jobs_kind_created")
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {signature}")
