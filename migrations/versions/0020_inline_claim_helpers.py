"""The claim helpers auth.jwt(), auth.uid() and auth.role() as SQL functions the planner inlines
(issue 16, row-level security on hot listings).

They were PL/pgSQL with `SET search_path`: every call entered the function manager's
configuration path (a GUC save and restore) and PL/pgSQL, and the bookings policies call them
through several InitPlans a statement (auth.vendor_id() and auth.therapist_id() call both again):
about 0.18 ms of a customer's 0.3 ms listing on PostgreSQL 15. A `RETURN` body (PostgreSQL 14+)
is parsed once, here, with the search path pinned to pg_catalog, so no SET clause is needed to
keep a caller's search path out of it, and a STABLE SQL function without SET or SECURITY DEFINER
is inlined: `(select auth.uid())` becomes one InitPlan evaluating the expression. The bodies are
those of 0003 unchanged; vendor_id() and therapist_id() stay PL/pgSQL SECURITY DEFINER.

Revision ID: 0020
Revises: 0018
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIMS = "nullif(current_setting('request.jwt.claims', true), '')::jsonb"
INLINED = {
    "auth.jwt()": ("jsonb", f"coalesce({CLAIMS}, '{{}}'::jsonb)"),
    "auth.uid()": ("uuid", f"nullif({CLAIMS} ->> 'sub', '')::uuid"),
    "auth.role()": ("text", f"nullif({CLAIMS} ->> 'role', '')"),
}
PLPGSQL = "LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public, auth"


def upgrade() -> None:
    op.execute("SET LOCAL search_path = pg_catalog")  # what the bodies are parsed with, once
    for name, (returns, body) in INLINED.items():
        op.execute(f"CREATE OR REPLACE FUNCTION {name} RETURNS {returns} LANGUAGE sql STABLE RETURN {body}")
    op.execute("RESET search_path")


def downgrade() -> None:
    for name, (returns, body) in INLINED.items():
        op.execute(f"CREATE OR REPLACE FUNCTION {name} RETURNS {returns} {PLPGSQL} AS $$\n"
                   f"        BEGIN\n            RETURN {body};\n        END\n        $$")
