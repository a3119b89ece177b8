"""Monthly payroll runs (docs/payroll.md, "The run").

`start_run` (command `payroll.run`) records the month's run, bumps its generation, and fans the
employees out in keyset ranges of `batch_size` as `payroll.compute_batch` commands. Each batch loads
its employees with one set-based statement per input (attendance aggregated in one statement),
computes its employees in Python (Decimal) a chunk at a time, upserting each chunk's records and
their lines while the next chunk is computed (one statement a chunk, the chunks in one pipeline),
touching only `pending` ones; a failing employee is recorded with the reason and never fails the
batch. The batch that completes the generation writes the run's summary. A batch killed midway
rolls back alone and its job is run again by the relay; the unique (employee, month, year) key
keeps one record per employee whatever runs overlap. `dry_run` computes the same way and writes
nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from psycopg.rows import namedtuple_row
from sqlalchemy import CursorResult, TextClause, any_, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from ombaro import commands
from ombaro.db import driver_pipeline, fixed_insert
from ombaro.identity.administration import made_by
from ombaro.models.hr import Employee, SalaryRecord
from ombaro.models.payroll import PayrollFailure, PayrollRun
from ombaro.payroll import arrears
from ombaro.payroll import preflight as preflight_checks
from ombaro.payroll.arrears import id_array
from ombaro.payroll.calculation import (
    EmployeeMonth,
    History,
    PastMonth,
    Payslip,
    Period,
    Structure,
    TaxDeclaration,
    compute_or_reason,
)
from ombaro.payroll.errors import PayrollForbidden, RunHasFailures, RunInProgress, RunNotFound
from ombaro.payroll.rates import MissingRate, RateBook

RUN_KIND = "payroll.run"
BATCH_KIND = "payroll.compute_batch"
BATCH_SIZE = 500
KEY_SCOPE = "payroll"
FINAL_STATUSES = ("processed", "paid", "hold")  # a run never touches these

def _ids(ids: Iterable[uuid.UUID]) -> Any:
    """A batch's ids as one array parameter (`= ANY(...)`): one short statement text whatever the
    batch size, which psycopg parses and PostgreSQL prepares once, where `IN (...)` of 500
    parameters was a new text to parse per batch (0.6 s of CPU in a 10,000-employee run). The
    array goes as one untyped literal cast by the server (`arrears.id_array`, as the batch's text
    statements do): psycopg dumped a list of UUIDs element by element, ~1 ms a statement of 500."""
    return any_(bindparam(None, id_array(ids), type_=NullType()).cast(ARRAY(UUID(as_uuid=True))))


def _month_of(period: Period) -> Any:
    """The record is `period`'s, written as its month index rather than `year = ... AND month = ...`:
    with these the planner, whose statistics know nothing yet of the month being written, read the
    whole month through idx_salary_records_period and compared each row with the batch's ids (linear
    in the month's records per batch: quadratic over a run). The index expression leaves it the
    employee's index. Equivalent, months being 1 to 12."""
    return SalaryRecord.year * 12 + SalaryRecord.month - 1 == period.index


def no_jit(session: Session) -> None:
    """The batch's attendance statement and the preflight checks look costly enough to the planner
    to be JIT-compiled, for every batch: measured, 23 of the attendance statement's 49 ms per batch
    of 500 went to LLVM. Off for this transaction only (as in ombaro/settlements/runs.py).

    Also custom plans only, in this transaction: a statement psycopg has prepared gets, from its
    sixth execution on, PostgreSQL's generic plan, which guesses ten elements for `= ANY(:ids)`; for
    the attendance statement's joins that guess chose a nested loop of every attendance row against
    every employee of the batch (530 ms a batch of 500 instead of 40). Planning with the batch's
    actual ids costs a millisecond or so a statement. Both settings in one statement."""
    session.execute(text("SELECT set_config('jit', 'off', true), "
                         "set_config('plan_cache_mode', 'force_custom_plan', true)"))


def _noop(percent: float, message: str | None = None) -> None:
    """The default `commands.Progress`: same parameter names, so keyword calls work too."""
    return None


def period_from_params(params: dict[str, Any], scheduled_for: dt.datetime | None, zone: str) -> Period:
    """The month asked for, or, for a scheduled firing without one, the month of the firing time in
    the platform's zone (the last day of the month at 20:00 pays that month)."""
    if params.get("year") and params.get("month"):
        return Period(int(params["year"]), int(params["month"]))
    if scheduled_for is None:
        raise ValueError("a payroll run needs a year and a month")
    local = scheduled_for.astimezone(ZoneInfo(zone)).date()
    return Period(local.year, local.month)


# --- who is paid ------------------------------------------------------------------------------------


def _active(period: Period) -> Any:
    return (Employee.joining_date <= period.end) & (
        Employee.last_working_date.is_(None) | (Employee.last_working_date >= period.start))


def batch_ranges(session: Session, period: Period, batch_size: int) -> list[tuple[str | None, str | None]]:
    """Keyset ranges (after, through] of employee ids, `batch_size` active employees each; the last
    range is open-ended. One statement: only the boundaries leave the database."""
    numbered = (select(Employee.id, func.row_number().over(order_by=Employee.id).label("n"))
                .where(_active(period)).subquery())
    bounds = [str(i) for i in session.scalars(
        select(numbered.c.id).where(numbered.c.n % batch_size == 0).order_by(numbered.c.id))]
    starts: list[str | None] = [None, *bounds]
    throughs: list[str | None] = [*bounds, None]
    ranges = list(zip(starts, throughs, strict=True))
    total = session.scalar(select(func.count()).select_from(Employee).where(_active(period))) or 0
    if total and total % batch_size == 0:
        ranges.pop()  # the open-ended range after the last full batch would be empty
    return ranges if total else []


def batch_employee_ids(session: Session, period: Period, params: dict[str, Any]) -> list[uuid.UUID]:
    query = select(Employee.id).where(_active(period)).order_by(Employee.id)
    if params.get("employee_ids") is not None:
        query = query.where(Employee.id.in_([uuid.UUID(str(i)) for i in params["employee_ids"]]))
    else:
        if params.get("after"):
            query = query.where(Employee.id > uuid.UUID(params["after"]))
        if params.get("through"):
            query = query.where(Employee.id <= uuid.UUID(params["through"]))
    return list(session.scalars(query))


# --- loading a batch (one statement per input) --------------------------------------------------------

# A batch's attendance, summed in SQL per span that lies within one part of the calculation's month:
# the days of one month under one compensation structure, split at the joining and the last working
# date. The calculation only ever sums the weights and hours of a part's days (`_earnings`), so one
# sum per span, keyed by the span's first day, gives it the same figures to the paisa and the same
# decimal text (exact numeric sums) as every day's value did, with a row or two an employee instead
# of every overtime day (which psycopg parsed into Decimals and dates, and Python summed again).
# The arrays pair days with sums element by element (one aggregate's input order serves both).
#
# A span is the days between two consecutive dates on which something starts: a month, a structure,
# the employment (joining date), the time after it (the day after the last working date). Those
# dates are gathered once per employee (`starts`, sorted, MATERIALIZED so they are not gathered again
# for every attendance row) and a day's span is `width_bucket(day, starts)`: one hash join of the
# batch's rows to 500 small rows and a two-key grouping, where joining every row to the employee
# and to the structure in force (with `lead()`) and grouping by five keys took twice the time
# (docs/benchmarks.md, session 8). The same days go into the same sums either way. The sums now
# take a span's zero weights and hours too (paid leave, short days); a zero is the literal 0 (no
# decimal places) or hours less the standard day (the places of the non-zero hours beside it), so
# it changes neither a sum's value nor its decimal text, and a span of zeros only is still left out
# by `> 0` (tests/payroll/test_attendance_spans.py compares the two statements).
ATTENDANCE = text("""
WITH starts AS MATERIALIZED (
    SELECT e.id AS employee_id,
           array(SELECT DISTINCT d FROM unnest(
                     ARRAY[e.joining_date, e.last_working_date + 1]
                     || array(SELECT c.effective_from FROM compensation_structures AS c WHERE c.employee_id = e.id)
                     || array(SELECT m::date FROM generate_series(date_trunc('month', CAST(:start AS date)),
                                                                  CAST(:end AS date), interval '1 month') AS m)
                 ) AS d
                 WHERE d IS NOT NULL ORDER BY d) AS days
    FROM employees AS e WHERE e.id = ANY(:ids)
)
SELECT s.employee_id,
       coalesce(array_agg(s.day) FILTER (WHERE s.lop > 0), '{}') AS lop_dates,
       coalesce(array_agg(s.lop) FILTER (WHERE s.lop > 0), '{}') AS lop_weights,
       coalesce(array_agg(s.day) FILTER (WHERE s.ot > 0), '{}') AS ot_dates,
       coalesce(array_agg(s.ot) FILTER (WHERE s.ot > 0), '{}') AS ot_hours
FROM (
    SELECT r.employee_id, min(r.date) AS day,
           sum(CASE r.status
                   WHEN 'absent' THEN 1.0
                   WHEN 'half_day' THEN 0.5
                   WHEN 'leave' THEN CASE WHEN EXISTS (
                       SELECT 1 FROM leave_requests AS l
                       WHERE l.employee_id = r.employee_id AND l.status = 'approved' AND l.leave_type = 'unpaid'
                         AND r.date BETWEEN l.from_date AND l.to_date) THEN 1.0 ELSE 0 END
               END) FILTER (WHERE r.status IN ('absent', 'half_day', 'leave')) AS lop,
           sum(greatest(coalesce(r.work_hours, 0) - :standard_hours, 0))
               FILTER (WHERE r.status IN ('present', 'late', 'work_from_home')) AS ot
    FROM attendance_records AS r
    JOIN starts AS b ON b.employee_id = r.employee_id
    WHERE r.employee_id = ANY(:ids) AND r.date BETWEEN :start AND :end
    GROUP BY r.employee_id, width_bucket(r.date, b.days)
) AS s
GROUP BY s.employee_id
""")

STRUCTURES = text("""
SELECT c.employee_id, c.effective_from, c.basic, c.hra, c.transport, c.medical, c.special, c.other,
       c.pf_applicable, c.esi_applicable, c.pt_state, c.overtime_eligible
FROM compensation_structures AS c
WHERE c.employee_id = ANY(:ids) AND c.effective_from <= :end
  AND c.effective_from >= coalesce((SELECT max(p.effective_from) FROM compensation_structures AS p
                                    WHERE p.employee_id = c.employee_id AND p.effective_from <= :start),
                                   '-infinity'::date)
ORDER BY c.employee_id, c.effective_from
""")

ADJUSTMENTS = text("""
SELECT employee_id, kind, sum(amount) AS amount FROM payroll_adjustments
WHERE employee_id = ANY(:ids) AND year = :year AND month = :month
GROUP BY employee_id, kind
""")

# The twelve months before: the financial year so far, the ESI period and a PT half year lie within.
HISTORY = text("""
SELECT employee_id, year * 12 + month - 1 AS month_index, gross_salary,
       coalesce((deductions ->> 'tds')::numeric, 0) AS tds, coalesce((deductions ->> 'esi')::numeric, 0) AS esi
FROM salary_records
WHERE employee_id = ANY(:ids) AND year * 12 + month - 1 BETWEEN :from_index AND :before_index
ORDER BY employee_id, month_index
""")


# The employee's declaration for the month's financial year: regime, Form 12B income and TDS.
DECLARATIONS = text("""
SELECT employee_id, regime, previous_income, previous_tds FROM tax_declarations
WHERE employee_id = ANY(:ids) AND financial_year = :financial_year
""")


@dataclass(frozen=True)
class Loaded:
    employees: list[EmployeeMonth]
    kept: dict[uuid.UUID, str]  # employees whose record is final this month: id -> status


def load_batch(session: Session, period: Period, ids: Sequence[uuid.UUID], book: RateBook) -> Loaded:
    """Everything the calculation needs for these employees, in seven set-based statements (more
    for employees with approved months a backdated change may reach)."""
    # The employees with the status of a final record of the month they may have: one statement.
    rows = session.execute(
        select(Employee.id, Employee.employee_code, Employee.name, Employee.gender, Employee.department,
               Employee.designation, Employee.joining_date, Employee.last_working_date,
               SalaryRecord.status.label("final_status"))
        .outerjoin(SalaryRecord, (SalaryRecord.employee_id == Employee.id) & _month_of(period)
                   & SalaryRecord.status.in_(FINAL_STATUSES))
        .where(Employee.id == _ids(ids)).order_by(Employee.id)).tuples().all()
    # Plain tuples, unpacked by position below: a Row's attribute costs ~0.4 us, some 15 an employee.
    kept = {row[0]: row[-1] for row in rows if row[-1] is not None}
    people = [row[:-1] for row in rows if row[-1] is None]
    todo = [p[0] for p in people]
    if not todo:
        return Loaded([], kept)
    todo_ids = id_array(todo)
    window = {"ids": todo_ids, "start": period.start, "end": period.end}

    try:
        standard_hours = book.overtime(period.start).standard_hours_per_day
    except MissingRate:
        standard_hours = Decimal(24)  # no policy: every employee fails on it below; count no overtime
    # The inputs in one pipeline: one round trip for the five statements instead of five.
    with _pipelined(session) as fetch:
        structure_rows = fetch(STRUCTURES, window)
        adjustment_rows = fetch(ADJUSTMENTS, {"ids": todo_ids, "year": period.year, "month": period.month})
        history_rows = fetch(HISTORY, {"ids": todo_ids, "from_index": period.index - 12,
                                       "before_index": period.index - 1})
        declaration_rows = fetch(DECLARATIONS, {"ids": todo_ids, "financial_year": period.fy_start.year})
        attendance_rows = fetch(ATTENDANCE, {**window, "standard_hours": standard_hours})

        structures: dict[uuid.UUID, list[Structure]] = defaultdict(list)
        for row in structure_rows():
            structures[row.employee_id].append(Structure(
                row.effective_from, row.basic, row.hra, row.transport, row.medical, row.special, row.other,
                row.pf_applicable, row.esi_applicable, row.pt_state, row.overtime_eligible))
        adjustments: dict[uuid.UUID, dict[str, Decimal]] = defaultdict(dict)
        for row in adjustment_rows():
            adjustments[row.employee_id][row.kind] = row.amount
        histories = _histories(history_rows())
        declarations = {row.employee_id: TaxDeclaration(row.regime, row.previous_income, row.previous_tds)
                        for row in declaration_rows()}
        attendance = {row.employee_id: row for row in attendance_rows()}
    approved = arrears.approved_months(session, period, todo)
    if approved:  # their structures and attendance from the earliest such month on
        earlier = {"ids": id_array(approved), "start": min(m.period.start for ms in approved.values() for m in ms),
                   "end": period.end}
        for employee_id in approved:
            structures.pop(employee_id, None)
        for row in session.execute(STRUCTURES, earlier):
            structures[row.employee_id].append(Structure(
                row.effective_from, row.basic, row.hra, row.transport, row.medical, row.special, row.other,
                row.pf_applicable, row.esi_applicable, row.pt_state, row.overtime_eligible))
        attendance.update({row.employee_id: row for row in session.execute(
            ATTENDANCE, {**earlier, "standard_hours": standard_hours})})

    none: dict[str, Decimal] = {}
    zero, no_history = Decimal(0), History()  # immutable: shared by every employee without one
    employees = [EmployeeMonth(
        employee_id=employee_id, code=code, name=name, gender=gender, department=department,
        designation=designation, joining_date=joining_date, last_working_date=last_working_date,
        structures=tuple(structures.get(employee_id, ())), lop=_by_date(spans, "lop"),
        overtime=_by_date(spans, "ot"), bonus=adjusted.get("bonus", zero),
        incentive=adjusted.get("incentive", zero), loan_emi=adjusted.get("loan_emi", zero),
        salary_advance=adjusted.get("salary_advance", zero), cooperative_dues=adjusted.get("cooperative_dues", zero),
        history=histories.get(employee_id, no_history), tax=declarations.get(employee_id),
        approved=approved.get(employee_id, ()),
    ) for employee_id, code, name, gender, department, designation, joining_date, last_working_date in people
        for adjusted, spans in ((adjustments.get(employee_id, none), attendance.get(employee_id)),)]
    return Loaded(employees, kept)


def _by_date(row: Any, which: str) -> dict[dt.date, Decimal]:
    """The employee's lop weights or overtime hours, summed per span (ATTENDANCE), keyed by its first day."""
    if row is None:
        return {}
    dates, values = (row.lop_dates, row.lop_weights) if which == "lop" else (row.ot_dates, row.ot_hours)
    return dict(zip(dates, values, strict=True))  # numeric[]: psycopg gives Decimals already


def _histories(rows: Sequence[Any]) -> dict[uuid.UUID, History]:
    months: dict[uuid.UUID, list[PastMonth]] = defaultdict(list)
    for row in rows:
        months[row.employee_id].append(PastMonth(row.month_index, row.gross_salary, row.tds, row.esi))
    return {e: History(tuple(m)) for e, m in months.items()}


@functools.cache
def _pyformat(statement: TextClause) -> str:
    """A `text()` statement as psycopg's own text (`:ids` as `%(ids)s`), compiled once."""
    return str(statement.compile(dialect=PGDialect_psycopg()))  # type: ignore[no-untyped-call]


Fetch = Callable[[TextClause, dict[str, Any]], Callable[[], list[Any]]]


@contextmanager
def _pipelined(session: Session) -> Iterator[Fetch]:
    """Statements sent together in one pipeline on the session's connection (inside its transaction):
    `fetch(statement, params)` sends one and returns what reads its rows (named tuples, the values
    as psycopg gives them, as through the session). The server runs them back to back: one round
    trip for all (the first read waits for every statement sent before it), where each statement
    through the session was one, and under load each costs a wake-up of this process."""
    with driver_pipeline(session) as pipe:  # an error raised as the session would have raised it

        def fetch(statement: TextClause, params: dict[str, Any]) -> Callable[[], list[Any]]:
            cursor = pipe.cursor(row_factory=namedtuple_row)
            cursor.execute(_pyformat(statement), params)
            return cursor.fetchall

        yield fetch


# --- computing and writing a batch --------------------------------------------------------------------


@dataclass(frozen=True)
class BatchOutcome:
    payslips: list[tuple[EmployeeMonth, Payslip]]
    failures: list[tuple[EmployeeMonth, str, str]]  # employee, error type, reason
    kept: dict[uuid.UUID, str]


def compute_employees(session: Session, period: Period, ids: Sequence[uuid.UUID], book: RateBook) -> BatchOutcome:
    """The batch loaded and computed whole (a dry run, the preflight, a settlement: nothing written)."""
    loaded = load_batch(session, period, ids, book)
    outcome = BatchOutcome([], [], loaded.kept)
    _compute_into(outcome, loaded.employees, period, book)
    return outcome


def _compute_into(outcome: BatchOutcome, employees: Sequence[EmployeeMonth], period: Period, book: RateBook) -> None:
    """Each employee's payslip, or the reason it could not be computed, added to `outcome`."""
    for employee in employees:
        result = compute_or_reason(employee, period, book)
        if isinstance(result, Payslip):
            outcome.payslips.append((employee, result))
        else:
            outcome.failures.append((employee, *result))


def _computed_chunks(outcome: BatchOutcome, employees: Sequence[EmployeeMonth], period: Period,
                     book: RateBook) -> Iterator[list[tuple[EmployeeMonth, Payslip]]]:
    """The employees computed WRITE_CHUNK at a time into `outcome`, each chunk's payslips yielded as
    soon as they are computed (in employee order), so the write of one overlaps the computing of
    the next (`_upsert_records`)."""
    for first in range(0, len(employees), WRITE_CHUNK):
        done = len(outcome.payslips)
        _compute_into(outcome, employees[first:first + WRITE_CHUNK], period, book)
        yield outcome.payslips[done:]


RECORD_COLUMNS = ("status", "notes", "basic_salary", "allowances", "deductions", "overtime_hours",
                  "overtime_amount", "bonus", "gross_salary", "total_deductions", "net_salary")
DETAIL_COLUMNS = ("employee_code", "employee_name", "department", "designation", "paid_days", "lop_days",
                  "explanation", "employer_contributions")
# Per upsert statement of a batch: a batch of 500 goes as ten statements in one pipeline (below). The
# server writes each chunk while the next is computed, so only the last chunk's write is waited for:
# with 125 a chunk that wait was ~8 ms a batch, with 50 ~3.5 ms, for no more CPU (docs/benchmarks.md,
# session 11).
WRITE_CHUNK = 50

# A chunk's records and their lines in one statement. Rows travel as one JSON parameter each, so the
# statement is one short cached text whatever the chunk (a multi-row VALUES of 500 rows costs more to
# compile than to run). Money goes as decimal strings: jsonb_to_recordset reads them into numeric
# exactly. A record whose deductions exceed the Payment of Wages Act limit is written as `hold` with
# the reason in `notes` (and, being final, stays so until HR releases it). Only `pending` records
# whose figures changed are written (a re-run that changes nothing writes nothing, not even
# `updated_at`), and a record's lines are written when it is. Rows go in employee order, so
# concurrent batches over the same employees lock their records in the same order.
UPSERT = f"""
WITH records AS (
    INSERT INTO salary_records (employee_id, year, month, {", ".join(RECORD_COLUMNS)})
    SELECT r.employee_id, %(year)s, %(month)s, {", ".join("r." + c for c in RECORD_COLUMNS)}
    FROM jsonb_to_recordset(CAST(%(rows)s AS jsonb)) AS r(
        employee_id uuid, status text, notes text, basic_salary numeric, allowances jsonb, deductions jsonb,
        overtime_hours numeric, overtime_amount numeric, bonus numeric, gross_salary numeric,
        total_deductions numeric, net_salary numeric)
    ORDER BY r.employee_id
    ON CONFLICT (employee_id, month, year) DO UPDATE
    SET {", ".join(f"{c} = EXCLUDED.{c}" for c in RECORD_COLUMNS)}, updated_at = now()
    WHERE salary_records.status = 'pending'
      AND ({", ".join("salary_records." + c for c in RECORD_COLUMNS)})
          IS DISTINCT FROM ({", ".join("EXCLUDED." + c for c in RECORD_COLUMNS)})
    RETURNING id, employee_id
), details AS (
    INSERT INTO salary_record_details (salary_record_id, run_id, days_in_month, {", ".join(DETAIL_COLUMNS)})
    SELECT records.id, %(run_id)s, %(days)s, {", ".join("d." + c for c in DETAIL_COLUMNS)}
    FROM records JOIN jsonb_to_recordset(CAST(%(details)s AS jsonb)) AS d(
        employee_id uuid, employee_code text, employee_name text, department text, designation text,
        paid_days numeric, lop_days numeric, explanation jsonb, employer_contributions jsonb)
      ON d.employee_id = records.employee_id
    ORDER BY records.id
    ON CONFLICT (salary_record_id) DO UPDATE
    SET run_id = EXCLUDED.run_id, days_in_month = EXCLUDED.days_in_month,
        {", ".join(f"{c} = EXCLUDED.{c}" for c in DETAIL_COLUMNS)}, computed_at = now()
)
SELECT employee_id FROM records
"""

INSERT_FAILURES = text("""
INSERT INTO payroll_failures (run_id, employee_id, employee_code, employee_name, error_type, reason)
SELECT :run_id, r.employee_id, r.employee_code, r.employee_name, r.error_type, r.reason
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    employee_id uuid, employee_code text, employee_name text, error_type text, reason text)
""")


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=str)


def _upsert_records(session: Session, period: Period, run_id: uuid.UUID,
                    chunks: Iterable[Sequence[tuple[EmployeeMonth, Payslip]]]) -> int:
    """UPSERT, chunk by chunk, in one pipeline on the session's connection (inside its transaction):
    each chunk's statement goes to the server as soon as the chunk is computed and its JSON built,
    so PostgreSQL writes one chunk while Python computes the next, where computing the batch, then
    writing it, left each side idle while the other worked. `chunks` is consumed inside the
    pipeline: an error computing a chunk, or the server refusing one, leaves the pipeline and the
    batch's transaction rolls back whole (chunks sent before it included). Returns how many records
    changed."""
    common = {"year": period.year, "month": period.month, "run_id": run_id, "days": period.days}
    with driver_pipeline(session, UPSERT) as pipe:
        cursors = []
        for chunk in chunks:
            if not chunk:
                continue
            records = [{"employee_id": e.employee_id, **p.record_values()} for e, p in chunk]
            details = [{"employee_id": e.employee_id, "employee_code": e.code, "employee_name": e.name,
                        "department": e.department, "designation": e.designation, "paid_days": p.paid_days,
                        "lop_days": p.lop_days, "explanation": p.explanation, "employer_contributions": p.employer}
                       for e, p in chunk]
            cursor = pipe.cursor()
            cursor.execute(UPSERT, {**common, "rows": _json(records), "details": _json(details)})
            cursors.append(cursor)
        pipe.sync()  # the rowcounts are known once the statements ran
        return sum(cursor.rowcount for cursor in cursors)


def _write_rest(session: Session, period: Period, run_id: uuid.UUID, outcome: BatchOutcome,
               ids: Sequence[uuid.UUID], *, changed: int) -> dict[str, int]:
    """After the computed records (pending ones only, and only when a figure changed, `changed` of
    them): their arrears lines, and the failures; a failed employee's stale pending record is
    removed so it cannot be approved. The batch's counts."""
    arrears.write_lines(session, period, [p for _, p in outcome.payslips])
    session.execute(delete(PayrollFailure).where(PayrollFailure.run_id == run_id,
                                                 PayrollFailure.employee_id == _ids(ids)))
    if outcome.failures:
        failed = [e.employee_id for e, _, _ in outcome.failures]
        session.execute(delete(SalaryRecord).where(
            SalaryRecord.employee_id == _ids(failed), _month_of(period), SalaryRecord.status == "pending"))
        session.execute(INSERT_FAILURES, {"run_id": run_id, "rows": _json([
            {"employee_id": e.employee_id, "employee_code": e.code, "employee_name": e.name, "error_type": kind,
             "reason": reason[:2000]} for e, kind, reason in outcome.failures])})
    return {"computed": len(outcome.payslips), "changed": changed, "failed": len(outcome.failures),
            "kept": len(outcome.kept), "held": sum(1 for _, p in outcome.payslips if p.hold_reason)}


# --- the commands ----------------------------------------------------------------------------------------


# The month's run, made or found; the row lock of the upsert serialises concurrent starts for one month.
_START_RUN = select(PayrollRun).from_statement(fixed_insert(
    PayrollRun.__table__, ("year", "month", "status"), "ON CONFLICT (year, month) DO UPDATE SET updated_at = now()"))


def start_run(session: Session, params: dict[str, Any], *, job_id: uuid.UUID | None,
              requested_by: uuid.UUID | None, scheduled_for: dt.datetime | None, zone: str,
              enqueue: commands.Enqueue, today: dt.date | None = None, batch_size: int = BATCH_SIZE,
              progress: commands.Progress = _noop) -> dict[str, Any]:
    """Command `payroll.run`: a dry run computes and reports; a real run records the run and fans out
    its batches (or, with `employee_ids`, one batch of just those employees)."""
    period = period_from_params(params, scheduled_for, zone)
    no_jit(session)
    as_of = today or dt.datetime.now(ZoneInfo(zone)).date()
    book = RateBook.load(session)
    checks = preflight_checks.preflight(session, period, as_of=as_of, book=book)
    only = params.get("employee_ids")
    if params.get("dry_run"):
        return dry_run(session, period, book, checks, only=only, batch_size=batch_size, progress=progress)

    run: PayrollRun = session.scalars(_START_RUN, {"year": period.year, "month": period.month, "status": "computing"},
                                      execution_options={"populate_existing": True}).one()
    if only is None:
        ranges: list[dict[str, Any]] = [{"after": a, "through": t}
                                        for a, t in batch_ranges(session, period, batch_size)]
        session.execute(delete(PayrollFailure).where(PayrollFailure.run_id == run.id))
    else:
        ids = [str(i) for i in only]
        ranges = [{"employee_ids": ids[i:i + batch_size]} for i in range(0, len(ids), batch_size)]
    generation = run.generation + 1
    session.execute(update(PayrollRun).where(PayrollRun.id == run.id).values(
        generation=generation, status="computing", batches_total=len(ranges), batches_done=0, employees=0,
        job_id=job_id,
        requested_by=requested_by, started_at=func.now(), finished_at=None, preflight=checks))
    for number, scope in enumerate(ranges):
        commands.submit(session, BATCH_KIND, {"run_id": str(run.id), "generation": generation,
                                              "year": period.year, "month": period.month, **scope},
                        enqueue=enqueue, key=f"{run.id}:{generation}:{number}", scope=KEY_SCOPE,
                        requested_by=requested_by)
    if not ranges:
        finalize(session, run.id)
    progress(100, f"{len(ranges)} batches submitted")
    return {"run_id": str(run.id), "year": period.year, "month": period.month, "generation": generation,
            "batches": len(ranges), "preflight_issues": checks["counts"]}


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off for a batch's computing and writing, back on after.

    A batch allocates some hundred containers an employee (its inputs, the payslip, the explanation's
    dicts), none of them in a reference cycle and all alive until the batch is written: they are
    freed by their reference counts, so the collector's passes over them find nothing. Worse, they
    survive its young generations and count towards the next full collection, which walks the whole
    worker heap (SQLAlchemy, the models, the loaded modules): four to six of those per 10,000-employee
    run, a tenth of the run's CPU (measured, docs/benchmarks.md, session 7). Re-enabled only if it
    was enabled, so a caller that turned it off keeps it off; the collector is process-wide, so a
    concurrent batch in another thread may see it on again before it ends, which costs only time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compute_and_write(session: Session, period: Period, run_id: uuid.UUID, ids: Sequence[uuid.UUID],
                       book: RateBook, progress: commands.Progress) -> dict[str, int]:
    """A batch loaded, then computed and upserted chunk by chunk (the writes overlapping the
    computing, `_upsert_records`), then its lines and failures written (`_write_rest`); its
    payslips are freed on return (before the collector is back on, so none of them is ever traced)."""
    progress(10, f"computing and writing {len(ids)} employees")
    loaded = load_batch(session, period, ids, book)
    outcome = BatchOutcome([], [], loaded.kept)
    changed = _upsert_records(session, period, run_id, _computed_chunks(outcome, loaded.employees, period, book))
    return _write_rest(session, period, run_id, outcome, ids, changed=changed)


def run_batch(session: Session, params: dict[str, Any], *, progress: commands.Progress = _noop) -> dict[str, Any]:
    """Command `payroll.compute_batch`: compute and write one batch, then count it done; the batch
    that completes its generation writes the run's summary."""
    period = Period(int(params["year"]), int(params["month"]))
    run_id = uuid.UUID(params["run_id"])
    no_jit(session)
    book = RateBook.load(session)
    ids = batch_employee_ids(session, period, params)
    with no_cyclic_gc():
        counts = _compute_and_write(session, period, run_id, ids, book, progress)
    progress(90, f"{counts['computed']} computed, {counts['failed']} failed")
    done = session.execute(
        update(PayrollRun).where(PayrollRun.id == run_id, PayrollRun.generation == params["generation"])
        .values(batches_done=PayrollRun.batches_done + 1, employees=PayrollRun.employees + len(ids),
                updated_at=func.now())
        .returning(PayrollRun.batches_done, PayrollRun.batches_total)).one_or_none()
    if done is not None and done.batches_done >= done.batches_total:
        finalize(session, run_id)
    return {**counts, "superseded": done is None}


def summarise(session: Session, run: PayrollRun) -> dict[str, Any]:
    """The run's summary, from the month's records and failures as they now stand."""
    by_status = session.execute(
        select(SalaryRecord.status, func.count(), func.coalesce(func.sum(SalaryRecord.gross_salary), 0),
               func.coalesce(func.sum(SalaryRecord.total_deductions), 0),
               func.coalesce(func.sum(SalaryRecord.net_salary), 0))
        .where(SalaryRecord.year == run.year, SalaryRecord.month == run.month)
        .group_by(SalaryRecord.status)).all()
    failures = session.scalar(select(func.count()).select_from(PayrollFailure)
                              .where(PayrollFailure.run_id == run.id)) or 0
    return {
        "records": {status: {"count": count, "gross": str(gross), "deductions": str(deductions), "net": str(net)}
                    for status, count, gross, deductions, net in by_status},
        "failures": failures,
        "total_net": str(sum((net for *_, net in by_status), Decimal(0))),
    }


def finalize(session: Session, run_id: uuid.UUID) -> dict[str, Any]:
    """The generation is complete: summarise and mark the run computed (HR approves next)."""
    run = session.get_one(PayrollRun, run_id)
    summary = summarise(session, run)
    session.execute(update(PayrollRun).where(PayrollRun.id == run_id).values(
        status="computed", summary=summary, finished_at=func.now(), updated_at=func.now()))
    return summary


def dry_run(session: Session, period: Period, book: RateBook, checks: dict[str, Any], *,
            only: Sequence[str] | None, batch_size: int, progress: commands.Progress) -> dict[str, Any]:
    """Compute everyone (in batches) and write nothing: each employee's figures against last month's."""
    previous = period.previous()
    scopes: list[dict[str, Any]]
    if only is None:
        scopes = [{"after": a, "through": t} for a, t in batch_ranges(session, period, batch_size)]
    else:
        scopes = [{"employee_ids": list(only)}]
    lines: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    totals = {"gross": Decimal(0), "deductions": Decimal(0), "net": Decimal(0)}
    kept = 0
    for done, scope in enumerate(scopes):
        ids = batch_employee_ids(session, period, scope)
        outcome = compute_employees(session, period, ids, book)
        kept += len(outcome.kept)
        last = {row.employee_id: row for row in session.execute(
            select(SalaryRecord.employee_id, SalaryRecord.gross_salary, SalaryRecord.net_salary).where(
                SalaryRecord.employee_id.in_([e.employee_id for e, _ in outcome.payslips]),
                SalaryRecord.year == previous.year, SalaryRecord.month == previous.month))}
        for employee, payslip in outcome.payslips:
            before = last.get(employee.employee_id)
            totals["gross"] += payslip.gross
            totals["deductions"] += payslip.total_deductions
            totals["net"] += payslip.net
            lines.append({
                "employee_id": str(employee.employee_id), "employee_code": employee.code, "name": employee.name,
                "paid_days": str(payslip.paid_days), "gross": str(payslip.gross), "net": str(payslip.net),
                "last_month_gross": str(before.gross_salary) if before else None,
                "last_month_net": str(before.net_salary) if before else None,
                "net_change": str(payslip.net - before.net_salary) if before else None,
                "hold_reason": payslip.hold_reason, "arrears": [a.as_dict() for a in payslip.arrears],
            })
        failures += [{"employee_id": str(e.employee_id), "employee_code": e.code, "name": e.name,
                      "error_type": kind, "reason": reason} for e, kind, reason in outcome.failures]
        progress(100 * (done + 1) / max(1, len(scopes)), f"batch {done + 1} of {len(scopes)}")
    return {"dry_run": True, "year": period.year, "month": period.month, "preflight": checks,
            "employees": len(lines), "kept_final": kept, "failures": failures,
            "held": [line for line in lines if line["hold_reason"]],
            "totals": {k: str(v) for k, v in totals.items()}, "changes": lines}


# --- HR's decisions on a computed run ---------------------------------------------------------------------


def get_run(session: Session, run_id: uuid.UUID, *, lock: bool = False) -> PayrollRun:
    query = select(PayrollRun).where(PayrollRun.id == run_id)
    run = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if run is None:
        raise RunNotFound(f"no payroll run {run_id}")
    return run


def check_checker(session: Session, *, maker: uuid.UUID | None, approver: uuid.UUID | None) -> None:
    """Whoever started the run may not approve it through an account they created (directly or
    through accounts they created); ombaro.identity.administration."""
    if maker is not None and approver is not None and maker != approver and made_by(session, approver, maker):
        raise PayrollForbidden("the approver's account was created by the person who ran this payroll (or by an "
                               "account they created); another HR officer must approve it")


def approve(session: Session, run_id: uuid.UUID, *, approver: uuid.UUID | None,
            allow_failures: bool = False) -> dict[str, Any]:
    """HR approves the month: every pending record becomes processed. Refused while batches are
    outstanding, and while employees failed unless HR approves the rest knowingly."""
    run = get_run(session, run_id, lock=True)
    check_checker(session, maker=run.requested_by, approver=approver)
    if run.status == "computing":
        raise RunInProgress(f"run {run_id} is still computing ({run.batches_done} of {run.batches_total} batches)")
    failures = session.scalar(select(func.count()).select_from(PayrollFailure)
                              .where(PayrollFailure.run_id == run_id)) or 0
    if failures and not allow_failures:
        raise RunHasFailures(f"{failures} employees could not be computed: fix and re-run them, or approve "
                             "with allow_failures")
    # An UPDATE returns a CursorResult, which has the row count (Session.execute is typed as Result).
    processed = cast(CursorResult[Any], session.execute(
        update(SalaryRecord).where(SalaryRecord.year == run.year, SalaryRecord.month == run.month,
                                   SalaryRecord.status == "pending")
        .values(status="processed", updated_at=func.now()))).rowcount
    summary = summarise(session, run)
    session.execute(update(PayrollRun).where(PayrollRun.id == run_id).values(
        status="approved", approved_by=approver, approved_at=func.now(), summary=summary, updated_at=func.now()))
    return {"run_id": str(run_id), "processed": processed, "failures": failures, "summary": summary}
