"""The permission matrix: module -> actions per role, kept in `role_permissions`.

`DEFAULT_MATRIX` seeds the table (missing rows only, so a super admin's edits survive upgrades);
the table is the truth at run time. Effective permissions of a role are its own grants and those
of every role it holds (ombaro.access.roles.holds); the super admin may do everything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from ombaro.access.roles import ROLES, holds
from ombaro.models.identity import RolePermission

ACTIONS: tuple[str, ...] = ("read", "create", "update", "delete", "approve", "export")

MODULES: tuple[str, ...] = (
    "access", "assignments", "attendance", "audit", "bank_details", "bookings", "campaigns", "customers",
    "dispatch", "employees", "jobs", "leave", "notifications", "payments", "payroll", "reports", "schedules",
    "settlements", "support", "therapists", "users", "vendors",
)

R, C, U, A, E = "read", "create", "update", "approve", "export"

# Direct grants. Inherited ones (directors hold finance's, finance holds accounts', every staff
# role holds employee's) are not repeated here.
DEFAULT_MATRIX: dict[str, dict[str, tuple[str, ...]]] = {
    "customer": {"bookings": (R, C, U), "payments": (R, C), "assignments": (R,), "vendors": (R,),
                 "therapists": (R,), "notifications": (R, U), "support": (R, C), "jobs": (R,)},
    "vendor": {"bookings": (R, U), "dispatch": (R, C), "therapists": (R, C, U), "assignments": (R, U),
               "settlements": (R, E), "payments": (R, C), "vendors": (R, U), "notifications": (R, U),
               "jobs": (R,)},
    "therapist": {"assignments": (R, U), "bookings": (R,), "therapists": (R,), "notifications": (R, U),
                  "jobs": (R,)},
    "employee": {"attendance": (R, C), "leave": (R, C), "payroll": (R,), "notifications": (R, U),
                 "jobs": (R,)},
    "admin": {"users": (R, U), "access": (R,), "reports": (R, C), "schedules": (R,), "audit": (R,)},
    "finance_department": {"settlements": (A,), "payments": (U, A), "bank_details": (R,), "reports": (R,)},
    "accounts_department": {"settlements": (R, C, E), "payments": (R, E), "bank_details": (R,),
                            "vendors": (R,), "payroll": (R, E), "reports": (R,)},
    "hr_department": {"payroll": (C, A, E), "employees": (C, U), "users": (R, C, U), "leave": (A,),
                     "attendance": (U,), "bank_details": (R,)},
    "staff_department": {"employees": (R,), "attendance": (R, U), "leave": (R,), "payroll": (R,)},
    "legal_department": {"audit": (R,), "vendors": (R,)},
    "advocate": {"vendors": (R,)},
    "ca_cs": {"vendors": (R,), "settlements": (R,), "reports": (R,)},
    "it_department": {"schedules": (R, U), "jobs": (R, C), "reports": (R, C), "audit": (R,), "access": (R,)},
    "marketing_department": {"campaigns": (C, U), "reports": (R,)},
    "customer_data": {"customers": (R, E), "campaigns": (R,)},
    "fo_department": {"bookings": (R, U), "dispatch": (R, C), "assignments": (R, U), "therapists": (R,),
                      "customers": (R,), "support": (R, C, U), "reports": (R, C)},
    "customer_care": {"bookings": (R, U), "assignments": (R,), "payments": (R,), "customers": (R, U),
                      "support": (R, C, U), "therapists": (R,), "dispatch": (R,)},
    "vendor_list": {"vendors": (R, C, U), "therapists": (R, U)},
    "directors": {"campaigns": (A,), "audit": (R,)},
    "ho_details": {"reports": (R,)},
    "corporate_office": {"reports": (R,)},
    "super_admin": {},  # everything, always (see `allowed`)
}


def effective(grants: Mapping[str, Mapping[str, frozenset[str]]], role: str) -> dict[str, frozenset[str]]:
    """module -> actions for `role`, from direct `grants` (role -> module -> actions)."""
    merged: dict[str, set[str]] = {}
    for held in holds(role):
        for module, actions in grants.get(held, {}).items():
            merged.setdefault(module, set()).update(actions)
    return {module: frozenset(actions) for module, actions in merged.items()}


def allowed_by(grants: Mapping[str, Mapping[str, frozenset[str]]], role: str | None, module: str,
               action: str) -> bool:
    if role is None or role not in ROLES:
        return False
    if role == "super_admin":
        return True
    return action in effective(grants, role).get(module, frozenset())


# The answers given for one read of the matrix (allowed_in): GRANTS_CACHE hands out a new dict at every
# read of the table (and none after an edit in this process), so answers kept beside the very dict
# they came from are exactly as fresh as it, and a new read starts them over.
_ANSWERS: tuple[object, dict[tuple[str | None, str, str], bool]] = (None, {})


def allowed_in(grants: Mapping[str, Mapping[str, frozenset[str]]], role: str | None, module: str,
               action: str) -> bool:
    """allowed_by, its answer kept beside `grants` (a matrix GRANTS_CACHE handed out, never changed
    in place): every permission-checked request asks it, and merging the role's hierarchy each time
    was most of the check (issue 16, session 10). Plain dict operations, atomic under the GIL."""
    global _ANSWERS
    read, answers = _ANSWERS
    if read is not grants:
        answers = {}
        _ANSWERS = (grants, answers)
    key = (role, module, action)
    answer = answers.get(key)
    if answer is None:
        answer = answers[key] = allowed_by(grants, role, module, action)
    return answer


def module_of_kind(kind: str) -> str:
    """The module a job kind belongs to: `settlements.run` to settlements; kinds of no module
    (system.*, locations.prune) to `jobs`."""
    prefix = kind.partition(".")[0]
    return prefix if prefix in MODULES else "jobs"


# The permission of the endpoint that starts each kind of job (or, for kinds only the system starts,
# of the people who operate it). A staff role holding it may see jobs of the kind (params, result,
# error), re-run them and list, edit and run the schedules that fire them; others see only the jobs
# they requested themselves. Enforced in the database by row-level security (migration 0009 keeps a
# copy as auth.job_permission(); tests/access/test_job_kinds.py checks that they agree).
JOB_KIND_PERMISSIONS: dict[str, tuple[str, str]] = {
    "campaigns.start": ("campaigns", "update"), "campaigns.send_chunk": ("campaigns", "update"),
    "campaigns.start_due": ("campaigns", "update"), "campaigns.reconcile": ("campaigns", "update"),
    "dispatch.booking": ("dispatch", "create"), "dispatch.batch": ("dispatch", "create"),
    "locations.prune": ("jobs", "create"), "system.ping": ("jobs", "create"),
    "system.housekeeping": ("jobs", "create"),
    "notifications.dispatch": ("jobs", "create"), "notifications.reminders": ("jobs", "create"),
    "payments.webhook": ("payments", "update"), "payments.refund": ("payments", "update"),
    "payroll.run": ("payroll", "create"), "payroll.compute_batch": ("payroll", "create"),
    "payroll.final_settlement": ("payroll", "create"),
    "reports.refresh": ("reports", "create"),
    "settlements.run": ("settlements", "create"), "settlements.run_batch": ("settlements", "create"),
    "settlements.payout": ("settlements", "approve"), "settlements.reconcile": ("settlements", "approve"),
}


def job_permission(kind: str) -> tuple[str, str]:
    """(module, action) a role needs to see, re-run or schedule jobs of `kind`; a kind not declared
    above needs `create` on its module."""
    return JOB_KIND_PERMISSIONS.get(kind, (module_of_kind(kind), "create"))


def default_grants() -> dict[str, dict[str, frozenset[str]]]:
    return {role: {m: frozenset(a) for m, a in modules.items()} for role, modules in DEFAULT_MATRIX.items()}


def seed_permissions(session: Session) -> int:
    """Insert the default matrix's rows that are missing; never overwrite an edited row."""
    rows = [{"role_id": role, "module_id": module, "sub_module_id": None, "permissions": sorted(actions)}
            for role, modules in DEFAULT_MATRIX.items() for module, actions in modules.items()]
    if not rows:
        return 0
    # Counted from RETURNING: SQLAlchemy does not keep an INSERT's rowcount (it reads -1).
    inserted = session.execute(pg_insert(RolePermission).values(rows).on_conflict_do_nothing()
                               .returning(RolePermission.id))
    return len(inserted.all())


def load_grants(session: Session) -> dict[str, dict[str, frozenset[str]]]:
    grants: dict[str, dict[str, frozenset[str]]] = {}
    for row in session.scalars(select(RolePermission)):
        modules = grants.setdefault(row.role_id, {})
        actions = set(modules.get(row.module_id, frozenset())) | set(row.permissions or ())
        modules[row.module_id] = frozenset(actions)
    return grants


def set_role_permissions(session: Session, role: str, modules: Mapping[str, Iterable[str]]) -> None:
    """Replace `role`'s direct grants with `modules` (module -> actions)."""
    unknown = [m for m in modules if m not in MODULES]
    bad = sorted({a for actions in modules.values() for a in actions} - set(ACTIONS))
    if role not in ROLES or unknown or bad:
        raise ValueError(f"unknown role, modules or actions: {role}, {unknown}, {bad}")
    session.query(RolePermission).filter(RolePermission.role_id == role).delete()
    session.add_all(RolePermission(role_id=role, module_id=m, sub_module_id=None, permissions=sorted(set(a)))
                    for m, a in modules.items() if a)
    session.flush()
    GRANTS_CACHE.invalidate()


class GrantsCache:
    """The matrix as read from the database, for a few seconds: edits reach every process within
    `ttl` seconds, and at once in the process that made them."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._grants: dict[str, dict[str, frozenset[str]]] | None = None
        self._loaded = 0.0
        self._lock = threading.Lock()

    def get(self, session: Session) -> dict[str, dict[str, frozenset[str]]]:
        with self._lock:
            if self._grants is None or time.monotonic() - self._loaded > self.ttl:
                self._grants = load_grants(session)
                self._loaded = time.monotonic()
            return self._grants

    def fresh(self) -> dict[str, dict[str, frozenset[str]]] | None:
        """The matrix if it was read less than `ttl` seconds ago (no session needed), else None."""
        grants = self._grants
        if grants is None or time.monotonic() - self._loaded > self.ttl:
            return None
        return grants

    def invalidate(self) -> None:
        with self._lock:
            self._grants = None


GRANTS_CACHE = GrantsCache()
