"""Payroll: runs (a command), preflight, approval, holds, the bank file, payslips and the run summary;
and the data HR keeps for it (compensation, adjustments, holidays, statutory rates). Row-level
security decides whose figures a caller sees (docs/payroll.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from flask import Response, stream_with_context
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ombaro.models.hr import SalaryRecord
from ombaro.models.payroll import (
    ADJUSTMENT_KINDS,
    HOLIDAY_KINDS,
    RATE_KINDS,
    TAX_REGIMES,
    PayrollRun,
    SalaryRecordDetail,
)
from ombaro.payroll import commands as payroll_commands
from ombaro.payroll import documents, leave_ledger, preflight, queries, records, runs, statements
from ombaro.payroll.calculation import Period
from ombaro.payroll.errors import RecordNotFound
from web.auth import current_user, current_user_id, requires
from web.commanding import submit
from web.extension import Ombaro, db_session
from web.openapi import idempotent
from web.sanitize import Blueprint
from web.schemas import Boolean, Integer, JobSchema, JsonObject, Money

blp = Blueprint("payroll", __name__, url_prefix="/api/v1/payroll", description="Payroll runs, payslips and inputs")

YEAR = validate.Range(min=2000, max=2100)
MONTH = validate.Range(min=1, max=12)
CSV = "text/csv; charset=utf-8"


def money_in(*, minimum: str = "0", **kwargs: Any) -> Money:
    return Money(minimum=minimum, **kwargs)


def money_out(**kwargs: Any) -> fields.Decimal:
    return fields.Decimal(as_string=True, places=2, dump_only=True, **kwargs)


class PayrollRunRequestSchema(payroll_commands.RunPayrollSchema):
    """The `payroll.run` params (the months a run can serve are the command's rule), year and month required."""

    year = Integer(required=True, validate=YEAR)
    month = Integer(required=True, validate=MONTH, metadata={"description": "from 2000-04 to 2100-03"})
    dry_run = Boolean(load_default=False)
    employee_ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=1000),
                               metadata={"description": "recompute only these employees (e.g. after a failure)"})


class PayrollPeriodQuerySchema(Schema):
    year = Integer(required=True, validate=YEAR)
    month = Integer(required=True, validate=MONTH)


class PayrollFailureSchema(Schema):
    employee_id = fields.UUID()
    employee_code = fields.String(allow_none=True)
    employee_name = fields.String(allow_none=True)
    error_type = fields.String()
    reason = fields.String()
    failed_at = fields.DateTime()


class PayrollRunSchema(Schema):
    id = fields.UUID()
    year = fields.Integer()
    month = fields.Integer()
    status = fields.String()
    generation = fields.Integer()
    batches_total = fields.Integer()
    batches_done = fields.Integer()
    employees = fields.Integer()
    job_id = fields.UUID(allow_none=True)
    requested_by = fields.UUID(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    preflight = fields.Dict()
    summary = fields.Dict()
    bank_files = fields.List(fields.Dict())
    approved_by = fields.UUID(allow_none=True)
    approved_at = fields.DateTime(allow_none=True)
    failures = fields.List(fields.Nested(PayrollFailureSchema),
                           metadata={"description": "up to 500; all in the summary CSV"})


class PayrollRunListSchema(PayrollRunSchema):
    class Meta:
        exclude = ("failures", "preflight")


class PayrollRunQuerySchema(Schema):
    limit = Integer(load_default=24, validate=validate.Range(min=1, max=120))


class PayrollApproveSchema(Schema):
    allow_failures = Boolean(load_default=False, metadata={
        "description": "approve the computed records although some employees failed"})


class PayrollApprovalSchema(Schema):
    run_id = fields.String()
    processed = fields.Integer()
    failures = fields.Integer()
    summary = fields.Dict()


class SalaryRecordSchema(Schema):
    id = fields.UUID()
    employee_id = fields.UUID()
    year = fields.Integer()
    month = fields.Integer()
    basic_salary = money_out()
    allowances = fields.Dict()
    deductions = fields.Dict()
    overtime_hours = fields.Decimal(as_string=True, places=2)
    overtime_amount = money_out()
    bonus = money_out()
    gross_salary = money_out()
    total_deductions = money_out()
    net_salary = money_out()
    status = fields.String()
    payment_date = fields.Date(allow_none=True)
    payment_method = fields.String(allow_none=True)
    payment_reference = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)


class SalaryRecordQuerySchema(Schema):
    year = Integer(validate=YEAR)
    month = Integer(validate=MONTH)
    employee_id = fields.UUID()
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class SalaryHoldSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class BankFileQuerySchema(Schema):
    reference = fields.String(required=True, validate=validate.Regexp(r"^SAL[0-9]{6}-[0-9]{2,}$"))


class CompensationInSchema(Schema):
    employee_id = fields.UUID(required=True)
    effective_from = fields.Date(required=True)
    basic = money_in(required=True)
    hra = money_in(load_default=Decimal(0))
    transport = money_in(load_default=Decimal(0))
    medical = money_in(load_default=Decimal(0))
    special = money_in(load_default=Decimal(0))
    other = money_in(load_default=Decimal(0))
    pf_applicable = Boolean(load_default=True)
    esi_applicable = Boolean(load_default=True)
    pt_state = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^[A-Z]{2}$", error="A two-letter state code (e.g. MH), or null for no professional tax."))
    overtime_eligible = Boolean(load_default=True)
    notes = fields.String(validate=validate.Length(max=1000))


class CompensationSchema(Schema):
    id = fields.UUID()
    employee_id = fields.UUID()
    effective_from = fields.Date()
    basic = money_out()
    hra = money_out()
    transport = money_out()
    medical = money_out()
    special = money_out()
    other = money_out()
    pf_applicable = fields.Boolean()
    esi_applicable = fields.Boolean()
    pt_state = fields.String(allow_none=True)
    overtime_eligible = fields.Boolean()
    notes = fields.String(allow_none=True)


class CompensationQuerySchema(Schema):
    employee_id = fields.UUID()
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class PayrollAdjustmentInSchema(Schema):
    employee_id = fields.UUID(required=True)
    year = Integer(required=True, validate=YEAR)
    month = Integer(required=True, validate=MONTH)
    kind = fields.String(required=True, validate=validate.OneOf(ADJUSTMENT_KINDS))
    amount = money_in(required=True, minimum="0.01")
    note = fields.String(validate=validate.Length(max=500))


class PayrollAdjustmentSchema(Schema):
    id = fields.UUID()
    employee_id = fields.UUID()
    year = fields.Integer()
    month = fields.Integer()
    kind = fields.String()
    amount = money_out()
    note = fields.String(allow_none=True)
    created_by = fields.UUID(allow_none=True)
    created_at = fields.DateTime()


class PayrollAdjustmentQuerySchema(SalaryRecordQuerySchema):
    pass


class HolidayInSchema(Schema):
    date = fields.Date(required=True)
    name = fields.String(required=True, validate=validate.Length(min=2, max=100))
    kind = fields.String(load_default="gazetted", validate=validate.OneOf(HOLIDAY_KINDS))


class HolidaySchema(Schema):
    id = fields.UUID()
    date = fields.Date()
    name = fields.String()
    kind = fields.String()


class HolidayQuerySchema(Schema):
    year = Integer(validate=YEAR)


class StatutoryRateInSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(RATE_KINDS))
    scope = fields.String(load_default="IN", validate=validate.Regexp(r"^[A-Za-z]{2,10}$"))
    effective_from = fields.Date(required=True)
    data = JsonObject(required=True, metadata={"description": "as docs/payroll.md describes for the kind"})
    source = fields.String(validate=validate.Length(max=500))

    @validates_schema
    def _no_floats(self, body: dict[str, Any], **_: Any) -> None:
        def walk(value: Any) -> bool:
            if isinstance(value, float):
                return True
            if isinstance(value, dict):
                return any(walk(v) for v in value.values())
            return isinstance(value, list) and any(walk(v) for v in value)

        if walk(body.get("data")):
            raise ValidationError("Write rates and amounts as decimal strings (\"12\", \"0.75\"), not numbers.",
                                  "data")


class StatutoryRateSchema(Schema):
    id = fields.UUID()
    kind = fields.String()
    scope = fields.String()
    effective_from = fields.Date()
    data = fields.Dict()
    source = fields.String(allow_none=True)


class StatutoryRateQuerySchema(Schema):
    kind = fields.String(validate=validate.OneOf(RATE_KINDS))
    scope = fields.String(validate=validate.Length(max=10))


def _csv_response(lines: Any, filename: str, headers: dict[str, str] | None = None) -> Response:
    return Response(lines, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})})


def _run(run_id: uuid.UUID) -> PayrollRun:
    return runs.get_run(db_session(), run_id)


# --- runs --------------------------------------------------------------------------------------------------


@blp.post("/runs")
@requires("payroll", "create")
@idempotent
@blp.arguments(PayrollRunRequestSchema)
@blp.response(202, JobSchema)
def start_run(body: payroll_commands.RunPayroll) -> Any:
    """Compute the month's payroll (a job; its result names the run). `dry_run` computes everyone and
    writes nothing: the job's result lists each employee against last month. `employee_ids` recomputes
    just those employees. Processed and paid records are never changed."""
    return submit(runs.RUN_KIND, body)


@blp.get("/runs")
@requires("payroll", "read")
@blp.arguments(PayrollRunQuerySchema, location="query", as_kwargs=True)
@blp.response(200, PayrollRunListSchema(many=True))
def list_runs(limit: int) -> Any:
    """The latest months' runs (HR and finance)."""
    return queries.latest_runs(db_session(), limit)


@blp.get("/runs/<uuid:run_id>")
@requires("payroll", "read")
@blp.response(200, PayrollRunSchema)
def get_run(run_id: uuid.UUID) -> Any:
    """A run with its progress (batches done of total), preflight, summary, bank files and failures."""
    return queries.run_with_failures(db_session(), run_id)


@blp.get("/preflight")
@requires("payroll", "create")
@blp.arguments(PayrollPeriodQuerySchema, location="query", as_kwargs=True)
@blp.response(200)
@blp.doc(responses={"200": {"description": "the month's findings, by kind",
                            "content": {"application/json": {"schema": {"type": "object"}}}}})
def run_preflight(year: int, month: int) -> Any:
    """What would make the month's run wrong: employees without compensation, working days without
    an attendance mark, leave still pending, missing statutory data, leavers without a last day."""
    today = dt.datetime.now(Ombaro.get().settings.zone).date()
    return preflight.preflight(db_session(), Period(year, month), as_of=today)


@blp.post("/runs/<uuid:run_id>/approve")
@requires("payroll", "approve")
@blp.arguments(PayrollApproveSchema, required=False)
@blp.response(200, PayrollApprovalSchema)
def approve_run(body: dict[str, Any], run_id: uuid.UUID) -> Any:
    """HR approves the month: its pending records become processed."""
    session = db_session()
    with session.begin():
        return runs.approve(session, run_id, approver=current_user().id,
                            allow_failures=bool((body or {}).get("allow_failures")))


@blp.post("/runs/<uuid:run_id>/bank-file")
@requires("payroll", "export")
@blp.doc(responses={"200": {"description": "the bank transfer file (CSV: account_number, ifsc, amount, "
                                           "reference, beneficiary_name, employee_code)",
                            "content": {"text/csv": {}}, "headers": {
                                "X-Bank-File-Reference": {"description": "the file's reference",
                                                          "schema": {"type": "string"}},
                                "X-Skipped": {"description": "records left out (no usable bank details)",
                                              "schema": {"type": "integer", "minimum": 0}}}}})
def make_bank_file(run_id: uuid.UUID) -> Any:
    """Pay the month's processed records: they become paid, and the file lists each transfer. A
    record is in one file only; records without usable bank details stay processed (header
    `X-Skipped`, and the run's `bank_files`)."""
    ombaro, user = Ombaro.get(), current_user()
    visible = _visible_record_ids(run_id, "processed")
    # Owner session: the exporting roles may neither read employees' bank details nor mark salaries
    # paid under their own policies; the records are the ones the caller's policies show (above).
    with ombaro.sessions() as owner, owner.begin():
        bank_file = documents.pay_by_bank_file(
            owner, run_id=run_id, record_ids=visible, keys=ombaro.settings.data_keys,
            paid_on=dt.datetime.now(ombaro.settings.zone).date(), generated_by=user.id)
    return _csv_response(bank_file.csv(), f"{bank_file.reference}.csv",
                         {"X-Bank-File-Reference": bank_file.reference, "X-Skipped": str(len(bank_file.skipped))})


@blp.get("/runs/<uuid:run_id>/bank-file")
@requires("payroll", "export")
@blp.arguments(BankFileQuerySchema, location="query", as_kwargs=True)
@blp.doc(responses={"200": {"description": "an earlier bank file, again", "content": {"text/csv": {}}, "headers": {
                                "X-Bank-File-Reference": {"description": "the file's reference",
                                                          "schema": {"type": "string"}},
                                "X-Skipped": {"description": "records left out (no usable bank details)",
                                              "schema": {"type": "integer", "minimum": 0}}}}})
def get_bank_file(reference: str, run_id: uuid.UUID) -> Any:
    ombaro = Ombaro.get()
    visible = _visible_record_ids(run_id, "paid")
    with ombaro.sessions() as owner:  # read-only; owner for the same reason as above
        bank_file = documents.bank_file_again(owner, run_id=run_id, reference=reference, record_ids=visible,
                                              keys=ombaro.settings.data_keys)
    return _csv_response(bank_file.csv(), f"{bank_file.reference}.csv",
                         {"X-Bank-File-Reference": bank_file.reference, "X-Skipped": str(len(bank_file.skipped))})


def _visible_record_ids(run_id: uuid.UUID, status: str) -> list[uuid.UUID]:
    session = db_session()
    ids = queries.run_record_ids(session, run_id, status)
    session.rollback()  # end the read before the owner's transaction locks the run
    return ids


@blp.get("/runs/<uuid:run_id>/summary.csv")
@requires("payroll", "export")
@blp.doc(responses={"200": {"description": "every record of the month, line by line, then the failures",
                            "content": {"text/csv": {}}}})
def run_summary(run_id: uuid.UUID) -> Any:
    run = _run(run_id)
    lines = documents.csv_lines(documents.SUMMARY_HEADER, documents.summary_rows(db_session(), run))
    return _csv_response(stream_with_context(lines), f"payroll-{run.year}-{run.month:02d}.csv")


# --- records and payslips ----------------------------------------------------------------------------------


@blp.get("/records")
@requires("payroll", "read")
@blp.arguments(SalaryRecordQuerySchema, location="query", as_kwargs=True)
@blp.response(200, SalaryRecordSchema(many=True))
def list_records(limit: int, year: int | None = None, month: int | None = None,
                 employee_id: uuid.UUID | None = None) -> Any:
    """Salary records: an employee sees their own; HR, finance and the super admin see all."""
    return records.list_records(db_session(), year=year, month=month, employee_id=employee_id, limit=limit)


@blp.post("/records/<uuid:record_id>/hold")
@requires("payroll", "approve")
@blp.arguments(SalaryHoldSchema)
@blp.response(200, SalaryRecordSchema)
def hold_record(body: dict[str, Any], record_id: uuid.UUID) -> Any:
    """Hold one employee's pay (pending or processed) with a reason: out of approval and the bank file."""
    session = db_session()
    with session.begin():
        return records.hold(session, record_id, body["reason"])


@blp.post("/records/<uuid:record_id>/release")
@requires("payroll", "approve")
@blp.response(200, SalaryRecordSchema)
def release_record(record_id: uuid.UUID) -> Any:
    """A held record goes back to pending (recomputed by the next run, then approved again)."""
    session = db_session()
    with session.begin():
        return records.release(session, record_id)


@blp.get("/payslip")
@requires("payroll", "read")
@blp.arguments(PayrollPeriodQuerySchema, location="query", as_kwargs=True)
@blp.doc(responses={"200": {"description": "the caller's payslip", "content": {"application/pdf": {}}}})
@blp.alt_response(404, description="No approved payslip of the caller's for that month.")
def payslip(year: int, month: int) -> Any:
    """The caller's own payslip for the month, once HR has approved it."""
    return _payslip_response(*queries.own_payslip(db_session(), current_user_id(), year, month), suffix="")


@blp.get("/records/<uuid:record_id>/payslip")
@requires("payroll", "export")
@blp.doc(responses={"200": {"description": "an employee's payslip", "content": {"application/pdf": {}}}})
def employee_payslip(record_id: uuid.UUID) -> Any:
    """An employee's payslip for HR (for the record's month, once computed), read under the
    caller's policies: a role that may not read salary records finds none."""
    return _payslip_response(*queries.record_payslip(db_session(), record_id), suffix=f"-{record_id}")


def _payslip_response(record: SalaryRecord, detail: SalaryRecordDetail | None, *, suffix: str) -> Response:
    """The record's payslip as a PDF download."""
    return Response(documents.payslip_pdf(record, detail), mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="payslip-{record.year}-{record.month:02d}{suffix}.pdf"'})


# --- HR's inputs -------------------------------------------------------------------------------------------


@blp.get("/compensation")
@requires("payroll", "read")
@blp.arguments(CompensationQuerySchema, location="query", as_kwargs=True)
@blp.response(200, CompensationSchema(many=True))
def list_compensation(limit: int, employee_id: uuid.UUID | None = None) -> Any:
    """Compensation structures, newest first (an employee sees their own)."""
    return records.list_compensation(db_session(), employee_id, limit)


@blp.post("/compensation")
@requires("payroll", "create")
@blp.arguments(CompensationInSchema)
@blp.response(201, CompensationSchema)
def set_compensation(body: dict[str, Any]) -> Any:
    """An employee's structure from `effective_from` (a raise on the 15th is prorated); one starting
    the same day is replaced."""
    session = db_session()
    with session.begin():
        values = {k: v for k, v in body.items() if k not in ("employee_id", "effective_from")}
        return records.set_compensation(session, employee_id=body["employee_id"],
                                        effective_from=body["effective_from"], values=values,
                                        created_by=current_user().id)


@blp.get("/adjustments")
@requires("payroll", "read")
@blp.arguments(PayrollAdjustmentQuerySchema, location="query", as_kwargs=True)
@blp.response(200, PayrollAdjustmentSchema(many=True))
def list_adjustments(limit: int, year: int | None = None, month: int | None = None,
                     employee_id: uuid.UUID | None = None) -> Any:
    return records.list_adjustments(db_session(), year=year, month=month, employee_id=employee_id, limit=limit)


@blp.post("/adjustments")
@requires("payroll", "create")
@blp.arguments(PayrollAdjustmentInSchema)
@blp.response(201, PayrollAdjustmentSchema)
def add_adjustment(body: dict[str, Any]) -> Any:
    """A bonus, loan EMI or salary advance recovery for one employee and month."""
    session = db_session()
    with session.begin():
        return records.add_adjustment(session, created_by=current_user().id, **body)


@blp.delete("/adjustments/<uuid:adjustment_id>")
@requires("payroll", "create")
@blp.response(204)
def delete_adjustment(adjustment_id: uuid.UUID) -> None:
    session = db_session()
    with session.begin():
        records.delete_adjustment(session, adjustment_id)


@blp.get("/holidays")
@requires("payroll", "read")
@blp.arguments(HolidayQuerySchema, location="query", as_kwargs=True)
@blp.response(200, HolidaySchema(many=True))
def list_holidays(year: int | None = None) -> Any:
    return records.list_holidays(db_session(), year)


@blp.post("/holidays")
@requires("payroll", "create")
@blp.arguments(HolidayInSchema)
@blp.response(201, HolidaySchema)
def add_holiday(body: dict[str, Any]) -> Any:
    session = db_session()
    with session.begin():
        return records.add_holiday(session, **body)


@blp.get("/rates")
@requires("payroll", "read")
@blp.arguments(StatutoryRateQuerySchema, location="query", as_kwargs=True)
@blp.response(200, StatutoryRateSchema(many=True))
def list_rates(kind: str | None = None, scope: str | None = None) -> Any:
    """Statutory rates, slabs and policies with the date each is in force from."""
    return records.list_rates(db_session(), kind, scope)


@blp.post("/rates")
@requires("payroll", "create")
@blp.arguments(StatutoryRateInSchema)
@blp.response(201, StatutoryRateSchema)
def add_rate(body: dict[str, Any]) -> Any:
    """A new effective-dated rate (e.g. next year's slabs); rows already in force are superseded, not
    edited."""
    session = db_session()
    with session.begin():
        return records.add_rate(session, kind=body["kind"], scope=body["scope"],
                                effective_from=body["effective_from"], data=body["data"], source=body.get("source"))


# --- income-tax declarations (regime, Form 12B) -----------------------------------------------------------


class TaxDeclarationInSchema(Schema):
    employee_id = fields.UUID(required=True)
    financial_year = Integer(required=True, validate=YEAR,
                             metadata={"description": "the year the financial year starts in: 2026 is FY 2026-27"})
    regime = fields.String(load_default="new", validate=validate.OneOf(TAX_REGIMES))
    previous_income = money_in(load_default=Decimal(0), maximum="9999999999.99",
                               metadata={"description": "income before this payroll in the year (Form 12B)"})
    previous_tds = money_in(load_default=Decimal(0), maximum="9999999999.99",
                            metadata={"description": "TDS deducted on it (Form 12B)"})
    notes = fields.String(allow_none=True, validate=validate.Length(max=500))


class TaxDeclarationSchema(Schema):
    id = fields.UUID()
    employee_id = fields.UUID()
    financial_year = fields.Integer()
    regime = fields.String()
    previous_income = money_out()
    previous_tds = money_out()
    notes = fields.String(allow_none=True)
    created_by = fields.UUID(allow_none=True)
    updated_at = fields.DateTime()


class TaxDeclarationQuerySchema(Schema):
    financial_year = Integer(validate=YEAR)
    employee_id = fields.UUID()
    limit = Integer(load_default=100, validate=validate.Range(min=1, max=1000))


@blp.get("/tax-declarations")
@requires("payroll", "read")
@blp.arguments(TaxDeclarationQuerySchema, location="query", as_kwargs=True)
@blp.response(200, TaxDeclarationSchema(many=True))
def list_tax_declarations(limit: int, financial_year: int | None = None, employee_id: uuid.UUID | None = None) -> Any:
    """Income-tax declarations, newest year first (an employee sees their own)."""
    return records.list_tax_declarations(db_session(), financial_year=financial_year, employee_id=employee_id,
                                         limit=limit)


@blp.put("/tax-declarations")
@requires("payroll", "create")
@blp.arguments(TaxDeclarationInSchema)
@blp.response(200, TaxDeclarationSchema)
def set_tax_declaration(body: dict[str, Any]) -> Any:
    """An employee's regime and previous-employer income and TDS (Form 12B) for a financial year,
    replacing what was declared; the next run's TDS follows it."""
    session = db_session()
    with session.begin():
        return records.set_tax_declaration(session, created_by=current_user().id, **body)


class TaxStatementsQuerySchema(Schema):
    financial_year = Integer(required=True, validate=YEAR,
                             metadata={"description": "the year the financial year starts in: 2026 is FY 2026-27"})


class TaxStatementsSchema(Schema):
    financial_year = fields.String()
    employees = fields.List(fields.Dict(), metadata={
        "description": "per employee: form16_part_b (salary paid under s.17(1) with a paid full and final "
                       "settlement's gratuity and leave encashment, final_settlement_paid, their exempt parts "
                       "exempt_gratuity_s10_10 and exempt_leave_encashment_s10_10aa, Form 12B income, standard "
                       "deduction, total income, tax, 87A rebate, surcharge, cess, TDS (the months' and the "
                       "settlement's), balance) and form24q (per quarter: amount paid, TDS deducted; a settlement "
                       "in the quarter of its payment date); money as decimal strings"})
    totals = fields.Dict()


@blp.get("/tax-statements")
@requires("payroll", "export")
@blp.arguments(TaxStatementsQuerySchema, location="query", as_kwargs=True)
@blp.response(200, TaxStatementsSchema)
def tax_statements(financial_year: int) -> Any:
    """Form 16 Part B and Form 24Q quarterly figures of a financial year, from the salary and the full and
    final settlements paid."""
    return statements.tax_statements(db_session(), financial_year)


class LeaveLedgerQuerySchema(Schema):
    on = fields.Date(required=True, validate=validate.Range(min=dt.date(2000, 1, 1), max=dt.date(2100, 12, 31)),
                     metadata={"description": "the day the balance is asked for (the last working day, if earlier)"})


class LeaveYearSchema(Schema):
    year = fields.Integer(metadata={"description": "the leave year (a calendar year)"})
    opening = fields.String(metadata={"description": "days brought forward, within the carry-forward cap"})
    lapsed = fields.String(metadata={"description": "days beyond the cap at the end of the year before"})
    accrued = fields.String(metadata={"description": "days accrued: the policy's days per month employed throughout"})
    taken = fields.String(metadata={"description": "approved earned leave taken (calendar days)"})
    closing = fields.String()


class LeaveLedgerSchema(Schema):
    employee_id = fields.UUID()
    on = fields.Date()
    balance = fields.String(metadata={"description": "the last year's closing balance (days; negative: overdrawn)"})
    years = fields.List(fields.Nested(LeaveYearSchema))


@blp.get("/leave-ledger/<uuid:employee_id>")
@requires("payroll", "read")
@blp.arguments(LeaveLedgerQuerySchema, location="query", as_kwargs=True)
@blp.response(200, LeaveLedgerSchema)
def get_leave_ledger(employee_id: uuid.UUID, on: dt.date) -> Any:
    """An employee's earned-leave ledger up to a day, by the company's dated policy (the employee's own,
    HR; whoever's employee row the caller's policies show). The full and final settlement takes its
    balance on the last working day."""
    years = leave_ledger.ledgers(db_session(), [employee_id], on).get(employee_id)
    if not years:
        raise RecordNotFound(f"no earned-leave ledger for employee {employee_id} on {on.isoformat()}")
    return {"employee_id": employee_id, "on": on, "balance": str(leave_ledger.balance(years)),
            "years": [y.explain() for y in years]}
