"""Payroll: a leaver's full and final settlement (a command, `payroll.final_settlement`) and the
settlement as recorded (docs/payroll.md, "Full and final settlement"). Permissions are payroll's;
row-level security decides whose settlement a caller sees (the employee's own, HR, finance)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import Response
from flask_smorest import abort
from marshmallow import Schema, fields, validate

from ombaro.payroll import commands as payroll_commands
from ombaro.payroll import documents, final_settlement
from web.auth import current_user_id, requires
from web.commanding import submit
from web.extension import Ombaro, db_session
from web.openapi import idempotent
from web.sanitize import Blueprint
from web.schemas import JobSchema, Money, MoneyAmount

blp = Blueprint("payroll_settlements", __name__, url_prefix="/api/v1/payroll/final-settlements",
                description="Full and final settlement of leavers")


class FinalSettlementRequestSchema(payroll_commands.FinalSettlementSchema):
    """The `payroll.final_settlement` params."""

    earned_leave_days = Money(minimum=0, maximum=1000, load_default=None, allow_none=True,
                              validate=payroll_commands.half_days,
                              metadata={"description": "HR's earned leave balance on the last working day (days), "
                                                       "overriding the ledger's; needs leave_override_reason. "
                                                       "Omitted: the earned-leave ledger's balance"})


class FinalSettlementSchema(Schema):
    id = fields.UUID()
    employee_id = fields.UUID()
    status = fields.String()
    last_working_date = fields.Date()
    resignation_date = fields.Date(allow_none=True)
    earned_leave_days = fields.Decimal(as_string=True, places=2)
    service_years = fields.Integer()
    service_days = fields.Integer(metadata={"description": "days after the last completed year"})
    counted_years = fields.Integer(metadata={"description": "years gratuity counts (a part over six months is one)"})
    last_wage = MoneyAmount(metadata={"description": "monthly basic and DA on the last working day"})
    gratuity = MoneyAmount()
    leave_encashment = MoneyAmount()
    notice_shortfall_days = fields.Integer()
    notice_recovery = MoneyAmount()
    gratuity_exempt = MoneyAmount(metadata={"description": "exempt under Income-tax Act s.10(10)(ii), or (iii) for "
                                                          "an employee the Payment of Gratuity Act does not cover"})
    gratuity_taxable = MoneyAmount(metadata={"description": "gratuity beyond the exemption (salary income)"})
    encashment_exempt = MoneyAmount(metadata={"description": "exempt under Income-tax Act s.10(10AA)(ii)"})
    encashment_taxable = MoneyAmount(metadata={"description": "leave encashment beyond the exemption"})
    tds = MoneyAmount(metadata={"description": "TDS (s.192) on the taxable parts: the year's tax with them less "
                                               "without them"})
    net_amount = MoneyAmount(metadata={"description": "gratuity + encashment - notice recovery - TDS (beyond the "
                                                      "last month's salary; negative: owed by the leaver)"})
    approved_by = fields.UUID(allow_none=True)
    approved_at = fields.DateTime(allow_none=True)
    payment_date = fields.Date(allow_none=True)
    payment_reference = fields.String(allow_none=True)
    ledger_leave_days = fields.Decimal(as_string=True, places=2, allow_none=True, metadata={
        "description": "the earned-leave ledger's balance on the last working day"})
    leave_override_reason = fields.String(allow_none=True, metadata={
        "description": "HR's reason for entering earned_leave_days instead of the ledger's balance (null: the "
                       "ledger's was used)"})
    explanation = fields.Dict(metadata={"description": "service, rates used, the salary to the last working day, "
                                                       "the earned-leave ledger's years, gratuity_act_covered"})


class SettlementBankFileQuerySchema(Schema):
    reference = fields.String(required=True, validate=validate.Regexp(r"^FNF[0-9]{8}-[0-9]{2,}$"),
                              metadata={"description": "the file's reference (header X-Bank-File-Reference)"})


BANK_FILE_HEADERS = {
    "X-Bank-File-Reference": {"description": "the file's reference", "schema": {"type": "string"}},
    "X-Skipped": {"description": "approved settlements left out (nothing to pay, no usable bank details)",
                  "schema": {"type": "integer", "minimum": 0}}}


@blp.post("")
@requires("payroll", "create")
@idempotent
@blp.arguments(FinalSettlementRequestSchema)
@blp.response(202, JobSchema)
def start_final_settlement(body: payroll_commands.FinalSettlementParams) -> Any:
    """Compute and record a leaver's full and final settlement (a job; its result is the settlement):
    gratuity (Payment of Gratuity Act s.4), leave encashment and notice-pay recovery by policy. The
    employee must have a last working day; a settlement already paid is not recomputed."""
    session = db_session()
    try:
        final_settlement.check_leaver(session, body.employee_id, body.resignation_date, body.earned_leave_days,
                                      body.leave_override_reason)
    except final_settlement.NotALeaver as exc:
        abort(422, message=str(exc), messages={"json": {exc.field: [exc.message]}})
    session.rollback()  # end the read: the job is recorded in a transaction of its own
    return submit(payroll_commands.FINAL_SETTLEMENT_KIND, body)


@blp.get("/<uuid:employee_id>")
@requires("payroll", "read")
@blp.response(200, FinalSettlementSchema)
def get_final_settlement(employee_id: uuid.UUID) -> Any:
    """A leaver's settlement as last computed (the employee's own, HR, finance and accounts)."""
    return final_settlement.get(db_session(), employee_id)


@blp.get("/<uuid:employee_id>/statement")
@requires("payroll", "read")
@blp.doc(responses={"200": {"description": "the settlement statement", "content": {"application/pdf": {}}}})
def final_settlement_statement(employee_id: uuid.UUID) -> Any:
    """The settlement as a PDF statement (whoever may read the settlement)."""
    row = final_settlement.get(db_session(), employee_id)
    name, code = final_settlement.who(row)
    return Response(documents.final_settlement_pdf(row, name=name, code=code), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="final-settlement-{employee_id}.pdf"'})


@blp.post("/<uuid:employee_id>/approve")
@requires("payroll", "approve")
@blp.response(200, FinalSettlementSchema)
def approve_final_settlement(employee_id: uuid.UUID) -> Any:
    """HR approves a computed settlement for payment: not whoever computed it (403), only once (409)."""
    session = db_session()
    with session.begin():
        row = final_settlement.approve(session, employee_id, approver=current_user_id())
        session.expunge(row)  # loaded in full: shown after the commit without a read outside it
    return row


def _csv(bank_file: documents.BankFile) -> Response:
    return Response(bank_file.csv(), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{bank_file.reference}.csv"',
        "X-Bank-File-Reference": bank_file.reference, "X-Skipped": str(len(bank_file.skipped))})


def _visible(status: str) -> list[uuid.UUID]:
    session = db_session()
    ids = final_settlement.visible_ids(session, status)
    session.rollback()  # end the read before the owner's transaction
    return ids


@blp.post("/bank-file")
@requires("payroll", "export")
@blp.doc(responses={"200": {"description": "the bank transfer file (CSV: account_number, ifsc, amount, reference, "
                                           "beneficiary_name, employee_code), the payroll bank file's format",
                            "content": {"text/csv": {}}, "headers": BANK_FILE_HEADERS}})
def make_settlement_bank_file() -> Any:
    """Pay the approved settlements: they become paid and the file lists each transfer. A settlement is
    in one file only (a second call finds nothing to pay: 409); one owed by the leaver or without usable
    bank details stays approved (header `X-Skipped`)."""
    ombaro = Ombaro.get()
    visible = _visible("approved")
    # Owner session, as the payroll bank file: the exporting roles may neither read bank details nor
    # update settlements under their own policies; the settlements are those their policies show.
    with ombaro.sessions() as owner, owner.begin():
        bank_file = documents.pay_settlements_by_bank_file(
            owner, settlement_ids=visible, keys=ombaro.settings.data_keys,
            paid_on=dt.datetime.now(ombaro.settings.zone).date())
    return _csv(bank_file)


@blp.get("/bank-file")
@requires("payroll", "export")
@blp.arguments(SettlementBankFileQuerySchema, location="query", as_kwargs=True)
@blp.doc(responses={"200": {"description": "an earlier settlement bank file, again", "content": {"text/csv": {}},
                            "headers": BANK_FILE_HEADERS}})
@blp.alt_response(404, description="No settlement bank file with that reference among those the caller may see.")
def get_settlement_bank_file(reference: str) -> Any:
    """An earlier settlement bank file, rebuilt from the settlements it paid (nothing changes)."""
    ombaro = Ombaro.get()
    visible = _visible("paid")
    with ombaro.sessions() as owner:
        bank_file = documents.settlement_bank_file_again(owner, reference=reference, settlement_ids=visible,
                                                         keys=ombaro.settings.data_keys)
    return _csv(bank_file)
