"""bookings' read policies read the claims themselves instead of through auth.uid() / auth.role()
(issue 16, row-level security on hot listings, session 3).

Every listing is planned again (psycopg's prepared statement takes a custom plan for the skewed
vendors, and a pooled deployment prepares nothing), and planning `(select auth.uid())` inlines the
SQL function: PostgreSQL 15 fetches its `RETURN` body from pg_proc and turns it back into a node
tree on every plan. Measured on the 1,000,000-booking data of bench/access.py (a server-side loop,
policies swapped in a rolled-back transaction, load 6-7): four such subselects in a policy cost
about 330 us more a plan than none, the same four with the expression written out about 110 us.
A bookings listing planned three: super_admin_all's role, select_visible's uid and its staff role.

Here `select_visible` and bookings' `super_admin_all` are those of 0026 and 0003 with the claims
read by the very expressions the functions return (0020's bodies), still in a scalar subselect so
each is one InitPlan evaluated once a statement, and still in the same order. The rows are the same:
`tests/access/test_rls.py::test_bookings_select_policy_shows_what_the_four_policies_of_0003_showed`
compares what 30 callers read and update under these and under 0003's policies.
The vendor arm keeps `(select auth.vendor_id())` (a PL/pgSQL lookup, never inlined).

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from migrations.rls import API, everywhere, policy_sql

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# auth.uid() and auth.role() as 0020 defines them, each in a subselect: one InitPlan a statement.
CLAIMS = "nullif(current_setting('request.jwt.claims', true), '')::jsonb"
CLAIMED_UID = f"(select nullif({CLAIMS} ->> 'sub', '')::uuid)"
CLAIMED_ROLE = f"(select nullif({CLAIMS} ->> 'role', ''))"

STAFF_READERS = ("customer_care", "fo_department", "finance_department", "accounts_department", "directors")


def claimed_role_in(*roles: str) -> str:
    return f"{CLAIMED_ROLE} IN ({', '.join(repr(r) for r in roles)})"


# A vendor account listing its own bookings: bookings.vendor_id is NOT NULL and references vendors,
# so vendor_id = uid means a vendor with that id exists, and auth.vendor_id() returns uid. The arm
# shows no row the next one does not, and spares the vendor's own listing that lookup.
VENDOR_ITSELF = f"(select CASE WHEN {CLAIMS} ->> 'role' = 'vendor' THEN nullif({CLAIMS} ->> 'sub', '')::uuid END)"

SELECT_VISIBLE = (
    f"CREATE POLICY select_visible ON bookings AS PERMISSIVE FOR SELECT TO {API}\n"
    f"    USING (customer_id = {CLAIMED_UID} OR vendor_id = {VENDOR_ITSELF} OR vendor_id = (select auth.vendor_id())\n"
    f"           OR {claimed_role_in(*STAFF_READERS)} OR id IN (SELECT auth.assigned_booking_ids()))"
)
SUPER_ADMIN = f"{CLAIMED_ROLE} = 'super_admin'"
SUPER_ADMIN_ALL = (
    f"CREATE POLICY super_admin_all ON bookings AS PERMISSIVE FOR ALL TO {API}\n"
    f"    USING ({SUPER_ADMIN})\n    WITH CHECK ({SUPER_ADMIN})"
)


def upgrade() -> None:
    op.execute("DROP POLICY select_visible ON bookings")
    op.execute("DROP POLICY super_admin_all ON bookings")
    op.execute(SUPER_ADMIN_ALL)
    op.execute(SELECT_VISIBLE)


def downgrade() -> None:
    from importlib import import_module

    previous = import_module("migrations.versions.0026_bookings_select_policy")
    op.execute("DROP POLICY select_visible ON bookings")
    op.execute("DROP POLICY super_admin_all ON bookings")
    op.execute(policy_sql("bookings", everywhere()[1]))
    op.execute(previous.SELECT_VISIBLE)
