"""The audit log, read-only, for the roles that oversee the platform."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from ombaro import audit
from web.auth import requires
from web.extension import db_session
from web.sanitize import Blueprint
from web.schemas import Integer

blp = Blueprint("audit", __name__, url_prefix="/api/v1/audit", description="Who changed what, when, from where")


class AuditSchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor_id = fields.UUID(allow_none=True)
    actor_role = fields.String(allow_none=True)
    method = fields.String()
    path = fields.String()
    endpoint = fields.String(allow_none=True)
    status = fields.Integer()
    ip = fields.String(allow_none=True)
    details = fields.Dict()


class AuditQuerySchema(Schema):
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=1000))


@blp.get("")
@requires("audit", "read")
@blp.arguments(AuditQuerySchema, location="query", as_kwargs=True)
@blp.response(200, AuditSchema(many=True))
def list_audit(limit: int) -> Any:
    return audit.latest(db_session(), limit)
