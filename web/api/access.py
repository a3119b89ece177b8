"""The role hierarchy and the permission matrix; the super admin edits the matrix."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from ombaro.access import permissions
from ombaro.access.roles import HIERARCHY, ROLES, STAFF_ROLES
from ombaro.identity import administration
from web.audit import audit_target
from web.auth import current_user, requires
from web.errors import NotFound
from web.extension import Ombaro
from web.sanitize import Blueprint

blp = Blueprint("access", __name__, url_prefix="/api/v1/access", description="Roles and permissions")


class RolesSchema(Schema):
    roles = fields.List(fields.String())
    staff_roles = fields.List(fields.String())
    hierarchy = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class GrantsSchema(Schema):
    modules = fields.Dict(
        required=True, keys=fields.String(validate=validate.OneOf(permissions.MODULES)),
        values=fields.List(fields.String(validate=validate.OneOf(permissions.ACTIONS))),
        metadata={"description": "module -> actions granted directly to the role"})

    @validates("modules")
    def not_empty_actions(self, value: dict[str, list[str]], **_: Any) -> None:
        if any(len(set(actions)) != len(actions) for actions in value.values()):
            raise ValidationError("An action is listed twice.")


class RoleGrantsSchema(Schema):
    role = fields.String()
    direct = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    effective = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


@blp.get("/roles")
@requires("access", "read")
@blp.response(200, RolesSchema)
def roles() -> Any:
    """The 22 roles and who stands over whom (a role holds the permissions of those below it)."""
    return {"roles": list(ROLES), "staff_roles": sorted(STAFF_ROLES),
            "hierarchy": {parent: list(children) for parent, children in HIERARCHY.items()}}


@blp.get("/permissions/<role>")
@requires("access", "read")
@blp.response(200, RoleGrantsSchema)
def role_permissions(role: str) -> Any:
    """A role's direct grants and what it may do in effect."""
    return _describe(role)


@blp.put("/permissions/<role>")
@requires("access", "update")
@blp.arguments(GrantsSchema)
@blp.response(200, RoleGrantsSchema)
def set_role_permissions(body: dict[str, Any], role: str) -> Any:
    """Replace a role's direct grants (super admin only, whatever the matrix grants: an edit
    elevates every account of the role and of the roles above it)."""
    if role not in ROLES:
        raise NotFound(f"no role {role}")
    audit_target(role=role)
    administration.check_may_edit_grants(str(current_user().role))
    with Ombaro.get().sessions() as session, session.begin():
        permissions.set_role_permissions(session, role, body["modules"])
    return _describe(role)


def _describe(role: str) -> dict[str, Any]:
    if role not in ROLES:
        raise NotFound(f"no role {role}")
    with Ombaro.get().sessions() as session:
        grants = permissions.load_grants(session)
    return {"role": role,
            "direct": {m: sorted(a) for m, a in grants.get(role, {}).items()},
            "effective": ({m: list(permissions.ACTIONS) for m in permissions.MODULES} if role == "super_admin"
                          else {m: sorted(a) for m, a in permissions.effective(grants, role).items()})}
