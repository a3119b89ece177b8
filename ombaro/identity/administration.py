"""Who may administer which accounts (docs/security.md).

Three rules, checked before anything is written:

- nobody creates, suspends, re-activates or otherwise administers an account whose role's
  permissions exceed their own (the super admin's exceed everyone's; a role's permissions are the
  effective ones: its grants and those of every role it holds);
- HR administers employee accounts only (staff roles), never customers, vendors or therapists;
- only the super admin edits the permission matrix (editing a role's grants elevates every
  account of that role and of every role above it at once).

Customers, vendors and therapists hold grants over their own rows only (row-level security), so
their permissions count as exceeding no staff role's; who may touch them is the role's business
(the super admin creates vendors; `users:update` suspends them).

A separate question is whether an approver may approve a maker's work: `made_by` says whether an
account was created by the maker, directly or through accounts the maker created.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from ombaro.access.permissions import effective
from ombaro.access.roles import CREATABLE_ROLES, EXTERNAL_ROLES, STAFF_ROLES
from ombaro.identity.errors import NotAllowed

Grants = Mapping[str, Mapping[str, frozenset[str]]]
Action = Literal["create", "suspend", "activate"]

SUPER_ADMIN = "super_admin"
HR = "hr_department"


class AdministrationRefused(NotAllowed):
    """403: the caller may not administer this account (or the permission matrix)."""


def excess(grants: Grants, actor_role: str, target_role: str) -> list[str]:
    """The `module:action`s the target role holds and the actor's role does not (empty: no excess)."""
    if actor_role == SUPER_ADMIN:
        return []
    if target_role == SUPER_ADMIN:
        return ["everything (super admin)"]
    if target_role in EXTERNAL_ROLES:
        return []
    mine = effective(grants, actor_role)
    theirs = effective(grants, target_role)
    return sorted(f"{module}:{action}" for module, actions in theirs.items()
                  for action in actions - mine.get(module, frozenset()))


def check_may_administer(grants: Grants, *, actor_role: str, target_role: str, action: Action,
                         actor_id: uuid.UUID | None = None, target_id: uuid.UUID | None = None) -> None:
    """Raise AdministrationRefused unless `actor_role` may `action` an account of `target_role`."""
    if actor_id is not None and actor_id == target_id:
        raise AdministrationRefused("nobody changes the status of their own account")
    if action == "create" and target_role not in CREATABLE_ROLES.get(actor_role, frozenset()):
        raise AdministrationRefused(f"a {actor_role} may not create {target_role} accounts")
    if actor_role == HR and target_role not in STAFF_ROLES:
        raise AdministrationRefused(f"HR administers employee accounts only, not {target_role} accounts")
    if over := excess(grants, actor_role, target_role):
        shown = ", ".join(over[:5]) + (f" and {len(over) - 5} more" if len(over) > 5 else "")
        raise AdministrationRefused(f"a {target_role} account holds permissions a {actor_role} does not ({shown}); "
                                    f"a {actor_role} may not {action} it")


def check_may_edit_grants(actor_role: str) -> None:
    if actor_role != SUPER_ADMIN:
        raise AdministrationRefused("only the super admin edits the permission matrix")


MADE_BY = text("SELECT auth.made_by(:account, :maker)")  # migration 0010: walks the chain of creators


def made_by(session: Session, account: uuid.UUID, maker: uuid.UUID) -> bool:
    """Whether `maker` created `account`, directly or through accounts they created (a chain of
    puppets counts as one). A SECURITY DEFINER function, so it sees the whole chain on a request
    role's connection too."""
    return bool(session.execute(MADE_BY, {"account": account, "maker": maker}).scalar())
