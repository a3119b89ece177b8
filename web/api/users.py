"""Accounts created by the roles allowed to (super admin: any; HR: employees), and their status."""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import Schema, fields, validate

from ombaro.access import permissions
from ombaro.access.roles import ROLES
from ombaro.identity import accounts
from ombaro.models.hr import EMPLOYEE_TYPES
from ombaro.models.identity import ACCOUNT_STATUSES
from ombaro.models.vendors import BUSINESS_TYPES
from web.audit import audit_target
from web.auth import current_user, requires
from web.errors import NotFound
from web.extension import Ombaro
from web.sanitize import Blueprint
from web.schemas import MOBILE, PASSWORD, BankDetailsSchema

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="Staff, vendor and therapist accounts")


class EmployeeDetailsSchema(Schema):
    department = fields.String(required=True, validate=validate.Length(min=2, max=60))
    designation = fields.String(required=True, validate=validate.Length(min=2, max=100))
    employee_type = fields.String(validate=validate.OneOf(EMPLOYEE_TYPES))
    joining_date = fields.Date(required=True)
    reporting_manager = fields.UUID()
    bank_details = fields.Nested(BankDetailsSchema)


class BusinessAddressSchema(Schema):
    """A vendor's address. `latitude` and `longitude` place the vendor for dispatch (the GiST index
    `idx_vendors_location` casts them to numbers, docs/schema.md); `city` matches bookings to it."""

    street = fields.String(validate=validate.Length(max=300))
    line1 = fields.String(validate=validate.Length(max=200))
    line2 = fields.String(validate=validate.Length(max=200))
    landmark = fields.String(validate=validate.Length(max=200))
    city = fields.String(required=True, validate=validate.Length(min=2, max=100))
    state = fields.String(validate=validate.Length(max=100))
    pincode = fields.String(validate=validate.Regexp(r"^[1-9][0-9]{5}$"))
    country = fields.String(validate=validate.Length(max=100))
    latitude = fields.Float(validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(validate=validate.Range(min=-180, max=180))


class VendorDetailsSchema(Schema):
    business_name = fields.String(required=True, validate=validate.Length(min=2, max=200))
    business_type = fields.String(required=True, validate=validate.OneOf(BUSINESS_TYPES))
    business_address = fields.Nested(BusinessAddressSchema, required=True)
    contact_person = fields.String(required=True)
    contact_mobile = fields.String(required=True, validate=MOBILE)
    contact_email = fields.Email(required=True)
    gst_number = fields.String(validate=validate.Length(equal=15))
    pan_number = fields.String(validate=validate.Regexp(r"^[A-Z]{5}[0-9]{4}[A-Z]$"))
    commission_rate = fields.Decimal(places=2, validate=validate.Range(min=0, max=100))


class CreateUserSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    mobile = fields.String(required=True, validate=MOBILE)
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    employee = fields.Nested(EmployeeDetailsSchema)
    vendor = fields.Nested(VendorDetailsSchema)


class UserSchema(Schema):
    id = fields.UUID()
    email = fields.String()
    role = fields.String()
    status = fields.String()


class StatusSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(ACCOUNT_STATUSES))


@blp.post("")
@requires("users", "create")
@blp.arguments(CreateUserSchema)
@blp.response(201, UserSchema)
def create_user(body: dict[str, Any]) -> Any:
    """Super admin creates any account but a customer's; HR creates employees' accounts whose
    permissions do not exceed HR's own (docs/security.md). A refusal is audited."""
    ombaro = Ombaro.get()
    caller = current_user()
    audit_target(role=body["role"])
    with ombaro.sessions() as session, session.begin():
        user = accounts.create_staff_account(session, ombaro.settings, creator_role=str(caller.role),
                                             creator_id=caller.id, grants=permissions.GRANTS_CACHE.get(session),
                                             **body)
        audit_target(id=str(user.id))
        return {"id": user.id, "email": user.email, "role": body["role"], "status": "active"}


@blp.put("/<uuid:user_id>/status")
@requires("users", "update")
@blp.arguments(StatusSchema)
@blp.response(200, UserSchema)
def set_status(body: dict[str, Any], user_id: uuid.UUID) -> Any:
    """Suspend or re-activate an account whose permissions do not exceed the caller's (HR: employees
    only); a suspended user is refused at their next request. A refusal is audited."""
    caller = current_user()
    audit_target(id=str(user_id), status=body["status"])
    with Ombaro.get().sessions() as session, session.begin():
        target = accounts.principal_of(session, user_id)
        if target is None:
            raise NotFound(f"no user {user_id}")
        audit_target(role=target.role)
        accounts.set_status(session, user_id, body["status"], actor_id=caller.id, actor_role=str(caller.role),
                            grants=permissions.GRANTS_CACHE.get(session))
        return {"id": user_id, "role": target.role, "status": body["status"]}
