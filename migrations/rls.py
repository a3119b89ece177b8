"""The vocabulary of row-level security policies, shared by the migrations that write policies
(0003 and the capabilities after it: 0004 dispatch, 0005 settlements, 0006 payroll, 0007 campaigns).

Stable on purpose: shipped migrations import it, so changing what a helper emits changes what every
one of them creates. `tests/schema/test_catalog.py` compares the catalog after `upgrade head` with a
snapshot and fails on any such change. A migration that needs different SQL writes its own helper.

Every request transaction runs as `ombaro_api` and every job handler as `ombaro_worker`; the claims
are read through the auth.* helpers wrapped in `(select ...)`, so PostgreSQL evaluates them once per
statement instead of once per row (docs/access.md, "Row-level security")."""

from __future__ import annotations

from typing import NamedTuple

API = "ombaro_api"
WORKER = "ombaro_worker"
REQUEST_ROLES = f"{API}, {WORKER}"

UID = "(select auth.uid())"
ROLE = "(select auth.role())"
VENDOR = "(select auth.vendor_id())"
THERAPIST = "(select auth.therapist_id())"
AUTHENTICATED = f"{UID} IS NOT NULL"

STAFF_OPS = ("fo_department", "customer_care", "vendor_list")
FINANCE = ("finance_department", "accounts_department")
# Every role except the platform's outside parties and the plain employee (docs/access.md).
STAFF = (
    "admin", "accounts_department", "marketing_department", "finance_department", "legal_department",
    "customer_care", "staff_department", "vendor_list", "customer_data", "fo_department", "it_department",
    "super_admin", "ho_details", "corporate_office", "advocate", "ca_cs", "directors", "hr_department",
)


def role_in(*roles: str) -> str:
    return f"{ROLE} IN ({', '.join(repr(r) for r in roles)})"


class Policy(NamedTuple):
    name: str
    command: str  # SELECT, INSERT, UPDATE, DELETE or ALL
    roles: str  # the TO clause
    using: str | None
    check: str | None


def api(name: str, command: str, using: str | None = None, check: str | None = None) -> Policy:
    """A policy for request transactions. UPDATE and ALL check new rows with USING unless told;
    SELECT and DELETE take no WITH CHECK, INSERT no USING."""
    if command in ("UPDATE", "ALL") and check is None:
        check = using
    if command in ("SELECT", "DELETE"):
        check = None
    return Policy(name, command, API, None if command == "INSERT" else using, check)


def own(column: str, who: str, *commands: str) -> list[Policy]:
    """One policy per command on rows where `column` is the caller (uid, vendor_id or therapist_id)."""
    suffix = {UID: "own", VENDOR: "own_vendor", THERAPIST: "own_therapist"}[who]
    return [api(f"{command.lower()}_{suffix}", command, f"{column} = {who}", f"{column} = {who}")
            for command in commands]


def everywhere() -> list[Policy]:
    """On every table: the workers see all rows, and so does the super admin."""
    return [Policy("worker_all", "ALL", WORKER, "true", "true"),
            api("super_admin_all", "ALL", f"{ROLE} = 'super_admin'")]


def of_own_vendors_therapists(column: str = "therapist_id") -> str:
    return f"{column} IN (SELECT id FROM therapists WHERE vendor_id = {VENDOR})"


def of_my_reports(column: str = "employee_id") -> str:
    return f"{column} IN (SELECT id FROM employees WHERE reporting_manager = {UID})"


def policy_sql(table: str, policy: Policy) -> str:
    sql = f"CREATE POLICY {policy.name} ON {table} AS PERMISSIVE FOR {policy.command} TO {policy.roles}"
    if policy.using is not None:
        sql += f"\n    USING ({policy.using})"
    if policy.check is not None:
        sql += f"\n    WITH CHECK ({policy.check})"
    return sql
