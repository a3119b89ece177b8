"""The 22 roles of the schema document and the department hierarchy it draws."""

from __future__ import annotations

from functools import cache

from ombaro.models.identity import USER_ROLES

ROLES: tuple[str, ...] = USER_ROLES

# Parent -> children. A role holds its own permissions and those of every role below it.
# The schema document's "Operations" box is not a role: its three desks report to the directors.
HIERARCHY: dict[str, tuple[str, ...]] = {
    "super_admin": ("directors", "admin"),
    "directors": ("finance_department", "hr_department", "legal_department", "it_department",
                  "marketing_department", "fo_department", "customer_care", "vendor_list",
                  "ho_details", "corporate_office"),
    "finance_department": ("accounts_department",),
    "hr_department": ("staff_department",),
    "legal_department": ("advocate", "ca_cs"),
    "marketing_department": ("customer_data",),
}

# People outside the platform's staff. Everyone else is an employee of the platform and also
# holds the `employee` role's self-service permissions (attendance, leave, own payslip).
EXTERNAL_ROLES: frozenset[str] = frozenset({"customer", "vendor", "therapist"})
STAFF_ROLES: frozenset[str] = frozenset(ROLES) - EXTERNAL_ROLES

# Who may create accounts of which roles (POST /api/v1/users). Vendors create therapist accounts
# for their own business through POST /api/v1/therapists instead.
CREATABLE_ROLES: dict[str, frozenset[str]] = {
    "super_admin": frozenset(ROLES) - {"customer"},
    "hr_department": STAFF_ROLES - {"super_admin", "directors", "admin"},
}


@cache
def descendants(role: str) -> frozenset[str]:
    below: set[str] = set()
    for child in HIERARCHY.get(role, ()):
        below |= {child, *descendants(child)}
    return frozenset(below)


@cache
def holds(role: str) -> frozenset[str]:
    """Every role whose permissions `role` has: itself, those below it, and `employee` for staff."""
    roles = {role, *descendants(role)}
    if role in STAFF_ROLES:
        roles.add("employee")
    return frozenset(roles)
