"""Vendor settlements as the caller may see them (a vendor: its own; finance: all)."""

from __future__ import annotations

import uuid
from typing import Any

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from ombaro.models.payments import PaymentSettlement
from web.auth import requires
from web.errors import NotFound
from web.extension import db_session

blp = Blueprint("settlements", __name__, url_prefix="/api/v1/settlements", description="Vendor settlements")


class SettlementSchema(Schema):
    id = fields.UUID()
    vendor_id = fields.UUID()
    settlement_period_start = fields.Date()
    settlement_period_end = fields.Date()
    total_bookings = fields.Integer()
    gross_amount = fields.Decimal(as_string=True, places=2)
    commission_amount = fields.Decimal(as_string=True, places=2)
    tds_amount = fields.Decimal(as_string=True, places=2)
    adjustment_amount = fields.Decimal(as_string=True, places=2)
    net_settlement_amount = fields.Decimal(as_string=True, places=2)
    status = fields.String()


class SettlementQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


@blp.get("")
@requires("settlements", "read")
@blp.arguments(SettlementQuerySchema, location="query", as_kwargs=True)
@blp.response(200, SettlementSchema(many=True))
def list_settlements(limit: int) -> Any:
    return db_session().scalars(
        select(PaymentSettlement).order_by(PaymentSettlement.settlement_period_end.desc()).limit(limit)).all()


@blp.get("/<uuid:settlement_id>")
@requires("settlements", "read")
@blp.response(200, SettlementSchema)
def get_settlement(settlement_id: uuid.UUID) -> Any:
    settlement = db_session().get(PaymentSettlement, settlement_id)
    if settlement is None:
        raise NotFound(f"no settlement {settlement_id}")
    return settlement
