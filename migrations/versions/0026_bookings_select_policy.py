"""The bookings SELECT policies as one policy in a cheap order, and the therapist arm through a
helper (issue 16, row-level security on hot listings).

0003 gave bookings four permissive SELECT policies: select_own (customer_id = uid),
select_own_vendor (vendor_id = vendor), select_staff (a role list) and select_assigned_therapist
(id IN the caller's therapist_assignments). PostgreSQL ORs permissive policies in reverse order of
their names, so for every row of a customer's listing it first read the role twice and called
auth.vendor_id() (a PL/pgSQL SECURITY DEFINER call) before reaching `customer_id = uid`; and the
therapist arm put a subquery on therapist_assignments, with that table's own five policies and
six InitPlans, into every bookings plan: planned on every custom plan (each vendor listing) and
initialised by every execution, though never run for a customer or a vendor.

Here the four are one policy, `select_visible`, the same OR written in the order that costs least:
the uid (an inlined SQL InitPlan) first, then the vendor, then the staff roles, then the therapist.
OR stops at the first true arm, and an InitPlan runs only when its value is first needed, so a
customer's listing evaluates the uid alone and a vendor's the uid and the vendor.

The therapist arm reads `auth.assigned_booking_ids()`, a SECURITY DEFINER helper returning the
booking ids of the caller's assignments (none unless the caller is a therapist), instead of the
table under its policies. The rows are the same: the subquery asked for the assignments whose
therapist_id is the caller's therapist, and therapist_assignments' own `select_own_therapist`
(therapist_id = therapist) shows a therapist every such row, so its policies removed nothing.
`tests/access/test_rls.py::test_bookings_select_policy_shows_what_the_four_policies_of_0003_showed`
compares the rows every kind of caller sees under both.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations.rls import API, FINANCE, REQUEST_ROLES, THERAPIST, UID, VENDOR, api, own, policy_sql, role_in

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAFF_READERS = ("customer_care", "fo_department", *FINANCE, "directors")

ASSIGNED_BOOKING_IDS = """
    CREATE FUNCTION auth.assigned_booking_ids() RETURNS SETOF uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, auth AS $$
    DECLARE
        me uuid := auth.therapist_id();
    BEGIN
        IF me IS NULL THEN
            RETURN;
        END IF;
        RETURN QUERY SELECT a.booking_id FROM public.therapist_assignments AS a WHERE a.therapist_id = me;
    END
    $$"""

# The order of the arms is the point (see above); the meaning is the OR of 0003's four policies.
SELECT_VISIBLE = (
    f"CREATE POLICY select_visible ON bookings AS PERMISSIVE FOR SELECT TO {API}\n"
    f"    USING (customer_id = {UID} OR vendor_id = {VENDOR} OR {role_in(*STAFF_READERS)}\n"
    f"           OR id IN (SELECT auth.assigned_booking_ids()))"
)

# 0003's four, as 0003 made them (downgrade).
SELECT_POLICIES_0003 = [
    *own("customer_id", UID, "SELECT"),
    *own("vendor_id", VENDOR, "SELECT"),
    api("select_assigned_therapist", "SELECT",
        f"id IN (SELECT booking_id FROM therapist_assignments WHERE therapist_id = {THERAPIST})"),
    api("select_staff", "SELECT", role_in(*STAFF_READERS)),
]


def upgrade() -> None:
    op.execute(ASSIGNED_BOOKING_IDS)
    op.execute("REVOKE ALL ON FUNCTION auth.assigned_booking_ids() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION auth.assigned_booking_ids() TO {REQUEST_ROLES}")
    for policy in SELECT_POLICIES_0003:
        op.execute(f"DROP POLICY {policy.name} ON bookings")
    op.execute(SELECT_VISIBLE)


def downgrade() -> None:
    op.execute("DROP POLICY select_visible ON bookings")
    for policy in SELECT_POLICIES_0003:
        op.execute(policy_sql("bookings", policy))
    op.execute("DROP FUNCTION auth.assigned_booking_ids()")
