"""Statutory settlement reports (docs/settlements.md, "Reports"): the month's GSTR-8 figures (TCS
under s.52 CGST Act) and the quarter's 194-O data per vendor. Both need `settlements:export` and
read through row-level security: a vendor sees its own lines, finance and accounts everyone's."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from ombaro.settlements import reports
from web.auth import requires
from web.extension import db_session
from web.sanitize import Blueprint
from web.schemas import Integer, MoneyAmount

blp = Blueprint("settlement_reports", __name__, url_prefix="/api/v1/settlements/reports",
                description="Statutory settlement reports (GSTR-8, 194-O)")



class Gstr8QuerySchema(Schema):
    month = fields.String(required=True, metadata={"description": "YYYY-MM"})

    @validates("month")
    def month_is_real(self, value: str, **_: Any) -> None:
        try:
            reports.month_range(value)
        except ValueError as exc:
            raise ValidationError("a month is YYYY-MM (2024-07)") from exc


class Gstr8SupplierSchema(Schema):
    vendor_id = fields.UUID()
    business_name = fields.String(allow_none=True)
    gstin = fields.String(allow_none=True)
    gross_supplies = MoneyAmount()
    supplies_returned = MoneyAmount()
    net_taxable = MoneyAmount()
    igst = MoneyAmount()
    cgst = MoneyAmount()
    sgst = MoneyAmount()
    lines = fields.Integer()


class Gstr8TotalsSchema(Schema):
    gross_supplies = MoneyAmount()
    supplies_returned = MoneyAmount()
    net_taxable = MoneyAmount()
    igst = MoneyAmount()
    cgst = MoneyAmount()
    sgst = MoneyAmount()


class Gstr8Schema(Schema):
    month = fields.String()
    suppliers = fields.List(fields.Nested(Gstr8SupplierSchema))
    totals = fields.Nested(Gstr8TotalsSchema)


class Tds194oQuerySchema(Schema):
    financial_year = fields.String(required=True, validate=validate.Regexp(r"^2\d{3}-\d{2}$"),
                                   metadata={"description": "2024-25"})
    quarter = Integer(required=True, validate=validate.Range(min=1, max=4))

    @validates("financial_year")
    def year_is_consecutive(self, value: str, **_: Any) -> None:
        found = re.fullmatch(r"(\d{4})-(\d{2})", value)
        if found and (int(found[1]) + 1) % 100 != int(found[2]):
            raise ValidationError("the second year follows the first (2024-25)")


class Tds194oMonthSchema(Schema):
    month = fields.String()
    tds_rule = fields.String(metadata={"description": "rate, no_operative_pan (s.206AA) or exempt_194o4"})
    tds_rate = fields.Decimal(as_string=True, places=3)
    amount_credited = MoneyAmount()
    tds = MoneyAmount()
    lines = fields.Integer()


class Tds194oDeducteeSchema(Schema):
    vendor_id = fields.UUID()
    business_name = fields.String(allow_none=True)
    pan = fields.String(allow_none=True)
    pan_status = fields.String(allow_none=True)
    pan_status_on = fields.Date(allow_none=True)
    taxpayer_type = fields.String(allow_none=True)
    amount_credited = MoneyAmount()
    tds = MoneyAmount()
    lines = fields.Integer()
    by_month = fields.List(fields.Nested(Tds194oMonthSchema))


class Tds194oTotalsSchema(Schema):
    amount_credited = MoneyAmount()
    tds = MoneyAmount()


class Tds194oSchema(Schema):
    section = fields.String()
    financial_year = fields.String()
    quarter = fields.Integer()
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    deductees = fields.List(fields.Nested(Tds194oDeducteeSchema))
    totals = fields.Nested(Tds194oTotalsSchema)


@blp.get("/gstr8")
@requires("settlements", "export")
@blp.arguments(Gstr8QuerySchema, location="query")
@blp.response(200, Gstr8Schema)
def gstr8(query: dict[str, Any]) -> Any:
    """The month's TCS under s.52 CGST Act per supplier GSTIN (GSTR-8's figures)."""
    return reports.gstr8(db_session(), query["month"])


@blp.get("/tds-194o")
@requires("settlements", "export")
@blp.arguments(Tds194oQuerySchema, location="query")
@blp.response(200, Tds194oSchema)
def tds_194o(query: dict[str, Any]) -> Any:
    """The quarter's 194-O figures per vendor (26Q deductee rows, Form 16A)."""
    result = reports.tds_194o(db_session(), query["financial_year"], query["quarter"])
    return {**result, "from_": result.pop("from")}
