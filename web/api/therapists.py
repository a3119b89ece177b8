"""Therapists: a vendor creates and sees its own; bank details only in full to those who pay them."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from marshmallow import Schema, fields, validate

from ombaro.access.roles import STAFF_ROLES
from ombaro.identity import accounts, crypto, queries
from ombaro.models.vendors import Therapist
from web.auth import current_user, may, requires
from web.errors import NotFound
from web.extension import Ombaro, db_session
from web.sanitize import Blueprint
from web.schemas import GENDERS, MOBILE, PASSWORD, BankDetailsSchema, Integer

log = logging.getLogger(__name__)
blp = Blueprint("therapists", __name__, url_prefix="/api/v1/therapists", description="Therapists")


class CreateTherapistSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    mobile = fields.String(required=True, validate=MOBILE)
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    gender = fields.String(validate=validate.OneOf(GENDERS))
    specialization = fields.List(fields.String(validate=validate.Regexp(r"^[A-Z]{2,5}$")), load_default=list)
    experience_years = Integer(validate=validate.Range(min=0, max=60))
    languages = fields.List(fields.String(validate=validate.Length(min=2, max=40)), load_default=list)
    bank_details = fields.Nested(BankDetailsSchema)


class TherapistSchema(Schema):
    id = fields.UUID()
    vendor_id = fields.UUID()
    user_id = fields.UUID(allow_none=True)
    name = fields.String()
    email = fields.String()
    mobile = fields.String()
    gender = fields.String(allow_none=True)
    specialization = fields.List(fields.String())
    rating = fields.Decimal(as_string=True, places=2, allow_none=True)
    status = fields.String()
    availability_status = fields.String()
    bank_details = fields.Method("shown_bank_details", allow_none=True)

    def shown_bank_details(self, therapist: Therapist) -> dict[str, Any] | None:
        """In full to those who pay or are paid (the therapist, their vendor, roles holding
        bank_details:read); masked to other staff; not at all to customers."""
        user = current_user()
        full = user.id == therapist.user_id or user.role == "vendor" or may("bank_details", "read")
        if not therapist.bank_details or not (full or user.role in STAFF_ROLES):
            return None
        settings = Ombaro.get().settings
        try:
            details = crypto.unseal(therapist.bank_details, keys=settings.data_keys,
                                    context=f"therapists.bank_details:{therapist.id}")
        except crypto.SealError:
            log.error("bank details of therapist %s do not open", therapist.id)
            return None
        return details if full else crypto.masked_bank_details(details)


class TherapistQuerySchema(Schema):
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=500))


@blp.get("")
@requires("therapists", "read")
@blp.arguments(TherapistQuerySchema, location="query", as_kwargs=True)
@blp.response(200, TherapistSchema(many=True))
def list_therapists(limit: int) -> Any:
    """A vendor's own therapists; the operations desks see all."""
    return queries.list_therapists(db_session(), limit)


@blp.get("/<uuid:therapist_id>")
@requires("therapists", "read")
@blp.response(200, TherapistSchema)
def get_therapist(therapist_id: uuid.UUID) -> Any:
    therapist = db_session().get(Therapist, therapist_id)
    if therapist is None:
        raise NotFound(f"no therapist {therapist_id}")
    return therapist


@blp.post("")
@requires("therapists", "create")
@blp.arguments(CreateTherapistSchema)
@blp.response(201, TherapistSchema)
def create_therapist(body: dict[str, Any]) -> Any:
    """A vendor adds a therapist to its own business, with a login for the therapist app. The
    vendor is the caller's; a `vendor_id` in the body is refused."""
    ombaro = Ombaro.get()
    with ombaro.sessions() as session, session.begin():
        user_id = current_user().id
        vendor_id = accounts.vendor_of(session, user_id) if user_id else None
        if vendor_id is None:
            raise accounts.NotAllowed("only a vendor (or its staff) adds therapists to its business")
        details: dict[str, Any] = {k: body[k] for k in ("gender", "specialization", "experience_years", "languages",
                                        "bank_details") if k in body}
        therapist = accounts.create_therapist(session, ombaro.settings, vendor_id=vendor_id, email=body["email"],
                                              mobile=body["mobile"], password=body["password"], name=body["name"],
                                              details=details)
        therapist_id = therapist.id
    return db_session().get(Therapist, therapist_id)
