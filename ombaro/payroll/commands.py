"""Payroll's commands (docs/payroll.md): the monthly run, which fans out, one batch of it, and a
leaver's full and final settlement."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ombaro import commands
from ombaro.payroll import final_settlement, runs

# The months a run can serve: every lookup a month makes (the month before, the financial year's
# April, the ESI contribution period's and the professional tax half-year's first month, the
# financial year's March) must itself be a payroll month (calculation.Period: years 2000 to 2100).
# So the first is April 2000 and the last March 2100 (issue 15: January 2000 failed on 1999-12).
FIRST_MONTH = (2000, 4)
LAST_MONTH = (2100, 3)
MAX_EMPLOYEES = 1000


def check_month(data: dict[str, Any]) -> None:
    year, month = data.get("year"), data.get("month")
    if (year is None) != (month is None):
        raise ValidationError("give both year and month, or neither (a scheduled run pays the month it fires in)",
                              "month" if year is not None else "year")
    if year is not None and month is not None and not FIRST_MONTH <= (year, month) <= LAST_MONTH:
        raise ValidationError(f"a payroll month is from {FIRST_MONTH[0]}-{FIRST_MONTH[1]:02d} to "
                              f"{LAST_MONTH[0]}-{LAST_MONTH[1]:02d}", "month")


class MonthSchema(commands.ParamsSchema):
    year = fields.Integer(strict=True, validate=validate.Range(min=FIRST_MONTH[0], max=LAST_MONTH[0]))
    month = fields.Integer(strict=True, validate=validate.Range(min=1, max=12))

    @validates_schema
    def month_is_served(self, data: dict[str, Any], **_: Any) -> None:
        check_month(data)


# --- payroll.run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPayroll(commands.Params):
    year: int | None = None
    month: int | None = None
    dry_run: bool = False
    employee_ids: list[uuid.UUID] | None = None


class RunPayrollSchema(MonthSchema):
    model = RunPayroll
    dry_run = fields.Boolean(load_default=False)
    employee_ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=MAX_EMPLOYEES),
                               metadata={"description": "recompute only these employees (e.g. after a failure)"})


class RunPayrollResultSchema(Schema):
    """A real run: `run_id`, its generation and batches; a dry run: every employee against last month."""

    run_id = fields.UUID()
    year = fields.Integer()
    month = fields.Integer()
    generation = fields.Integer()
    batches = fields.Integer()
    preflight_issues = fields.Dict(keys=fields.String(), values=fields.Integer())
    dry_run = fields.Boolean()
    preflight = fields.Dict()
    employees = fields.Integer()
    kept_final = fields.Integer()
    failures = fields.List(fields.Dict())
    totals = fields.Dict(keys=fields.String(), values=fields.String())
    changes = fields.List(fields.Dict())


def run_payroll(params: RunPayroll, ctx: commands.Context) -> dict[str, Any]:
    raw: dict[str, Any] = {"year": params.year, "month": params.month, "dry_run": params.dry_run}
    if params.employee_ids is not None:
        raw["employee_ids"] = [str(e) for e in params.employee_ids]
    return runs.start_run(ctx.session, raw, job_id=ctx.job.id, requested_by=ctx.job.requested_by,
                          scheduled_for=ctx.job.scheduled_for, zone=ctx.env.settings.timezone,
                          enqueue=ctx.env.enqueue, progress=ctx.progress)


# --- payroll.compute_batch -------------------------------------------------------------------------


@dataclass(frozen=True)
class ComputeBatch(commands.Params):
    run_id: uuid.UUID
    generation: int
    year: int
    month: int
    after: uuid.UUID | None = None
    through: uuid.UUID | None = None
    employee_ids: list[uuid.UUID] | None = None


class ComputeBatchSchema(MonthSchema):
    model = ComputeBatch
    year = fields.Integer(strict=True, required=True)
    month = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=12))
    run_id = fields.UUID(required=True)
    generation = fields.Integer(strict=True, required=True, validate=validate.Range(min=1))
    after = fields.UUID(allow_none=True, metadata={"description": "employees after this id"})
    through = fields.UUID(allow_none=True, metadata={"description": "up to this id (open-ended when absent)"})
    employee_ids = fields.List(fields.UUID(), validate=validate.Length(min=1, max=MAX_EMPLOYEES))


class ComputeBatchResultSchema(Schema):
    computed = fields.Integer()
    changed = fields.Integer()
    failed = fields.Integer()
    kept = fields.Integer()
    superseded = fields.Boolean(metadata={"description": "a newer generation of the run took over"})


def compute_batch(params: ComputeBatch, ctx: commands.Context) -> dict[str, Any]:
    raw: dict[str, Any] = {"run_id": str(params.run_id), "generation": params.generation, "year": params.year,
                           "month": params.month}
    if params.employee_ids is not None:
        raw["employee_ids"] = [str(e) for e in params.employee_ids]
    raw.update({k: str(v) for k, v in (("after", params.after), ("through", params.through)) if v is not None})
    return runs.run_batch(ctx.session, raw, progress=ctx.progress)


# --- payroll.final_settlement ----------------------------------------------------------------------

FINAL_SETTLEMENT_KIND = "payroll.final_settlement"


@dataclass(frozen=True)
class FinalSettlementParams(commands.Params):
    employee_id: uuid.UUID
    earned_leave_days: Decimal | None = None  # None: the earned-leave ledger's balance
    resignation_date: dt.date | None = None
    leave_override_reason: str | None = None


def half_days(value: Decimal) -> None:
    if not value.is_finite() or (value * 2) % 1:
        raise ValidationError("leave is counted in whole or half days")


class FinalSettlementSchema(commands.ParamsSchema):
    model = FinalSettlementParams
    employee_id = fields.UUID(required=True,
                              metadata={"description": "the leaver (an employee with a last working day)"})
    earned_leave_days = fields.Decimal(load_default=None, allow_none=True, as_string=True,
                                       validate=[validate.Range(min=0, max=1000), half_days],
                                       metadata={"description": "HR's earned leave balance on the last working "
                                                                "day, overriding the ledger's (needs "
                                                                "leave_override_reason); omitted: the ledger's"})
    resignation_date = fields.Date(allow_none=True,
                                   metadata={"description": "the day notice was given (none: no notice owed)"})
    leave_override_reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500),
                                          metadata={"description": "why HR's balance replaces the ledger's "
                                                                   "(recorded)"})

    @validates_schema
    def _reason_with_override(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("earned_leave_days") is not None and not (data.get("leave_override_reason") or "").strip():
            raise ValidationError("entering the earned leave balance needs a reason (without it the ledger's "
                                  "balance is used)", "leave_override_reason")


class FinalSettlementResultSchema(Schema):
    """The settlement as recorded (money as decimal strings)."""

    id = fields.UUID()
    employee_id = fields.UUID()
    status = fields.String()
    last_working_date = fields.Date()
    resignation_date = fields.Date(allow_none=True)
    earned_leave_days = fields.String()
    service_years = fields.Integer()
    service_days = fields.Integer()
    counted_years = fields.Integer()
    last_wage = fields.String()
    gratuity = fields.String()
    leave_encashment = fields.String()
    notice_shortfall_days = fields.Integer()
    notice_recovery = fields.String()
    gratuity_exempt = fields.String()
    gratuity_taxable = fields.String()
    encashment_exempt = fields.String()
    encashment_taxable = fields.String()
    tds = fields.String()
    net_amount = fields.String()
    explanation = fields.Dict()
    approved_by = fields.String(allow_none=True)
    approved_at = fields.String(allow_none=True)
    payment_date = fields.String(allow_none=True)
    payment_reference = fields.String(allow_none=True)
    ledger_leave_days = fields.String(allow_none=True)
    leave_override_reason = fields.String(allow_none=True)


def settle_leaver(params: FinalSettlementParams, ctx: commands.Context) -> dict[str, Any]:
    return final_settlement.settle_employee(ctx.session, params.employee_id,
                                            earned_leave_days=params.earned_leave_days,
                                            leave_override_reason=params.leave_override_reason,
                                            resignation_date=params.resignation_date, job_id=ctx.job.id,
                                            computed_by=ctx.job.requested_by)


commands.declare(
    commands.Command(
        kind=runs.RUN_KIND, params=RunPayrollSchema, handler=run_payroll, queue="bulk",
        permission=("payroll", "create"), result=RunPayrollResultSchema,
        description="Compute a month's payroll (dry run: everyone against last month), fanning out "
                    "payroll.compute_batch jobs.",
        example={"year": 2026, "month": 6, "dry_run": True}),
    commands.Command(
        kind=runs.BATCH_KIND, params=ComputeBatchSchema, handler=compute_batch, queue="bulk",
        permission=("payroll", "create"), result=ComputeBatchResultSchema,
        description="Compute and write one batch of a payroll run.",
        example={"run_id": "00000000-0000-0000-0000-000000000001", "generation": 1, "year": 2026, "month": 6}),
    commands.Command(
        kind=FINAL_SETTLEMENT_KIND, params=FinalSettlementSchema, handler=settle_leaver, queue="bulk",
        permission=("payroll", "create"), result=FinalSettlementResultSchema,
        description="Compute and record a leaver's full and final settlement: gratuity, leave encashment, "
                    "notice-pay recovery, beside the salary to the last working day.",
        example={"employee_id": "00000000-0000-0000-0000-000000000001", "earned_leave_days": "12.5",
                 "leave_override_reason": "leave taken before the ledger was kept", "resignation_date": "2026-05-01"}),
)
