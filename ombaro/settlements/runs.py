"""Settlement runs: a dry run computes and writes nothing; a real run is split into batches of
vendors, each settled in one transaction of its own (a job), so a killed worker loses at most the
batch it was in, which leaves nothing behind and runs again.

Idempotent by construction: a batch takes a transaction-level advisory lock per vendor, then one
statement (calculation.SETTLE) skips vendors already settled for the period (unique per vendor
and period) and lines already settled (unique per payment and per refund). Re-running a period,
or running overlapping periods, finds nothing new to write.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.db import fixed_insert
from ombaro.models.settlements import SettlementAdjustment, SettlementRun
from ombaro.models.vendors import Vendor
from ombaro.settlements.calculation import (
    DEFAULT_COMMISSION_RATE,
    DRY_RUN,
    SETTLE,
    SMALL_SELLER_LIMIT,
    TDS_SECTION,
    UNRATED_CHECK,
    financial_year,
    lookback_instant,
    lookback_year_start,
    period_end_instant,
)

BATCH_KIND = "settlements.run_batch"
MAX_PERIOD_DAYS = 92
# Payments a run reads start this many days before its period; 0: no bound. The deployment's value
# is OMBARO_SETTLEMENT_LOOKBACK_DAYS (92 unless set), passed in by the commands.
DEFAULT_LOOKBACK_DAYS = 0
# Memory for the sorts, hashes and materialised lines of one batch's statement (per transaction).
SETTLE_WORK_MEM = "64MB"


class SettlementError(Exception):
    """Base of the settlement errors the API maps to statuses (web/errors.py)."""


class InvalidPeriod(SettlementError):
    pass


class InvalidRequest(SettlementError):
    pass


class MissingTdsRate(SettlementError):
    pass


class SettlementNotFound(SettlementError):
    pass


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidPeriod(f"the period ends ({self.end}) before it starts ({self.start})")
        if (self.end - self.start).days + 1 > MAX_PERIOD_DAYS:
            raise InvalidPeriod(f"a settlement period is at most {MAX_PERIOD_DAYS} days")

    def as_dict(self) -> dict[str, str]:
        return {"period_start": self.start.isoformat(), "period_end": self.end.isoformat()}


def previous_week(moment: dt.datetime, zone: str) -> Period:
    """Monday to Sunday of the week before `moment`'s week, in the platform zone (the weekly
    schedule fires Monday 02:00 and settles the week that just ended)."""
    today = moment.astimezone(ZoneInfo(zone)).date()
    monday = today - dt.timedelta(days=today.weekday())
    return Period(monday - dt.timedelta(days=7), monday - dt.timedelta(days=1))


def period_of(params: dict[str, Any], scheduled_for: dt.datetime | None, zone: str) -> Period:
    if params.get("period_start") and params.get("period_end"):
        return Period(dt.date.fromisoformat(str(params["period_start"])),
                      dt.date.fromisoformat(str(params["period_end"])))
    if scheduled_for is not None:
        return previous_week(scheduled_for, zone)
    raise InvalidPeriod("a run needs period_start and period_end (or a scheduled time)")


def _bind(period: Period, vendor_ids: Sequence[uuid.UUID], zone: str, lookback_days: int) -> dict[str, Any]:
    return {"vendors": list(vendor_ids), "period_start": period.start, "period_end": period.end,
            "since": lookback_instant(period.start, lookback_days, zone),
            "fy_floor": lookback_year_start(period.start, lookback_days),
            "end_at": period_end_instant(period.end, zone), "zone": zone, "section": TDS_SECTION,
            "default_rate": DEFAULT_COMMISSION_RATE, "exemption": SMALL_SELLER_LIMIT,
            "financial_year": financial_year(period.end)[0], "fy_code": financial_year(period.end)[1]}


def _no_jit(session: Session) -> None:
    """The settling statement is large and its plan's estimated cost high, so PostgreSQL would
    compile it with LLVM for every batch: measured, that took 17 of its 19 seconds (bench 100,000
    payments). Off for this transaction only. Its materialised lines (about 6 MB a batch of 20,000
    payments) spilled to temporary files under the default work_mem: raised for this transaction."""
    session.execute(text("SELECT set_config('jit', 'off', true), set_config('work_mem', :work_mem, true)"),
                    {"work_mem": SETTLE_WORK_MEM})


def _missing_rate(vendor_id: Any, day: Any) -> MissingTdsRate:
    return MissingTdsRate(f"no tax rate ({TDS_SECTION} TDS, s.52 TCS or GST on the commission) in force on {day} "
                          f"(vendor {vendor_id}); add it to tds_rates or gst_rates")


# A payment that succeeded but has no payment date (or a processed refund without its date) can be
# placed in no period: no run settles it and no report sees it, so every run names them. So does
# every payment a run would settle but for its look-back bound (:since; NULL: not asked).
UNSETTLEABLE = """
SELECT p.vendor_id, p.id AS payment_id, CAST(NULL AS uuid) AS refund_id, p.total_amount AS amount,
       'a successful payment without a payment date' AS reason
FROM payments AS p
WHERE p.status IN ('success', 'partially_refunded', 'refunded') AND p.payment_date IS NULL
  AND (CAST(:vendors AS uuid[]) IS NULL OR p.vendor_id = ANY (CAST(:vendors AS uuid[])))
  AND NOT EXISTS (SELECT 1 FROM settlement_items AS si WHERE si.payment_id = p.id AND si.refund_id IS NULL)
UNION ALL
SELECT p.vendor_id, p.id, NULL, p.total_amount,
       'a payment made before the run''s look-back bound (OMBARO_SETTLEMENT_LOOKBACK_DAYS)'
FROM payments AS p JOIN bookings AS b ON b.id = p.booking_id
WHERE CAST(:since AS timestamptz) IS NOT NULL
  AND p.status IN ('success', 'partially_refunded', 'refunded') AND p.payment_date < CAST(:since AS timestamptz)
  AND b.status = 'completed' AND b.booking_date <= CAST(:period_end AS date)
  AND (CAST(:vendors AS uuid[]) IS NULL OR p.vendor_id = ANY (CAST(:vendors AS uuid[])))
  AND NOT EXISTS (SELECT 1 FROM settlement_items AS si WHERE si.payment_id = p.id AND si.refund_id IS NULL)
UNION ALL
SELECT r.vendor_id, r.payment_id, r.id, -r.amount, 'a processed refund without its processed date'
FROM payment_refunds AS r
WHERE r.status = 'processed' AND r.processed_at IS NULL
  AND (CAST(:vendors AS uuid[]) IS NULL OR r.vendor_id = ANY (CAST(:vendors AS uuid[])))
  AND NOT EXISTS (SELECT 1 FROM settlement_items AS si WHERE si.refund_id = r.id)
ORDER BY 1, 2, 3 NULLS FIRST
"""
UNSETTLEABLE_LISTED = 100


def unsettleable(session: Session, vendor_ids: Sequence[uuid.UUID] | None, period: Period | None = None, *,
                 zone: str = "Asia/Kolkata", lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> dict[str, Any]:
    """Every payment (and refund) of these vendors (None: all) that no run can settle, and, given
    the run's period, every payment it would settle but for its look-back bound; counted, the
    first UNSETTLEABLE_LISTED of them listed. Read once per run (not per batch): it is the one
    place that reads the payments older than the bound."""
    rows = session.execute(text(UNSETTLEABLE), {
        "vendors": list(vendor_ids) if vendor_ids is not None else None,
        "since": lookback_instant(period.start, lookback_days, zone) if period is not None else None,
        "period_end": period.end if period is not None else None}).mappings().all()
    return {"count": len(rows), "amount": sum((r["amount"] for r in rows), Decimal("0.00")),
            "listed": [{"vendor_id": str(r["vendor_id"]), "payment_id": str(r["payment_id"]),
                        "refund_id": str(r["refund_id"]) if r["refund_id"] else None, "amount": r["amount"],
                        "reason": r["reason"]} for r in rows[:UNSETTLEABLE_LISTED]]}


def vendors_to_settle(session: Session, period: Period, vendor_ids: Sequence[uuid.UUID] | None) -> list[uuid.UUID]:
    """Every vendor (or the ones asked for) without a settlement for this exact period yet."""
    return list(session.execute(text("""
        SELECT v.id FROM vendors AS v
        WHERE (CAST(:vendors AS uuid[]) IS NULL OR v.id = ANY (CAST(:vendors AS uuid[])))
          AND NOT EXISTS (SELECT 1 FROM payment_settlements AS s WHERE s.vendor_id = v.id
                          AND s.settlement_period_start = :start AND s.settlement_period_end = :end)
        ORDER BY v.id"""), {"vendors": list(vendor_ids) if vendor_ids is not None else None,
                            "start": period.start, "end": period.end}).scalars())


def vendor_names(session: Session, vendor_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Business names of the vendors the caller's policies show (others are left out)."""
    if not vendor_ids:
        return {}
    found = session.execute(select(Vendor.id, Vendor.business_name).where(Vendor.id.in_(set(vendor_ids))))
    return {vendor_id: name for vendor_id, name in found}


def dry_run(session: Session, period: Period, vendor_ids: Sequence[uuid.UUID] | None, *, zone: str,
            lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> dict[str, Any]:
    """What a run would create, vendor by vendor, computed by the very statement a run uses; no
    row is written (the caller's transaction only reads)."""
    vendors = vendors_to_settle(session, period, vendor_ids)
    _no_jit(session)
    bind = _bind(period, vendors, zone, lookback_days)
    rows = session.execute(text(DRY_RUN), bind).mappings().all() if vendors else []
    unrated = [r for r in rows if r["unrated"]]
    if unrated:
        raise _missing_rate(unrated[0]["vendor_id"], unrated[0]["first_unrated"])
    names = vendor_names(session, [r["vendor_id"] for r in rows])
    settlements = [{
        "vendor_id": str(r["vendor_id"]), "vendor_name": names.get(r["vendor_id"]),
        "total_bookings": r["total_bookings"], "items": r["items"],
        "gross_amount": r["gross"], "commission_amount": r["commission"],
        "commission_gst_amount": r["commission_gst"], "tds_amount": r["tds"], "tcs_amount": r["tcs"],
        "adjustment_amount": r["adjustment"], "net_settlement_amount": r["net"],
        "status": "pending" if r["net"] > 0 else "completed"} for r in rows]
    return {"dry_run": True, **period.as_dict(), "vendors_considered": len(vendors),
            "settlements": settlements, "totals": _totals(settlements),
            "unsettleable": unsettleable(session, vendor_ids, period, zone=zone, lookback_days=lookback_days)}


def _totals(settlements: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("gross_amount", "commission_amount", "commission_gst_amount", "tds_amount", "tcs_amount",
            "adjustment_amount", "net_settlement_amount")
    totals: dict[str, Any] = {key: sum((Decimal(s[key]) for s in settlements), Decimal("0.00")) for key in keys}
    totals["settlements"] = len(settlements)
    totals["items"] = sum(int(s["items"]) for s in settlements)
    return totals


def start_run(session: Session, job: commands.JobRef, period: Period, vendor_ids: Sequence[uuid.UUID] | None, *,
              batch_size: int, enqueue: commands.Enqueue, zone: str = "Asia/Kolkata",
              lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> dict[str, Any]:
    """Record the run and submit one job per batch of vendors (they reach the broker after this
    transaction commits). A parent re-run after a crash starts from nothing: its first attempt's
    rows were never committed."""
    vendors = vendors_to_settle(session, period, vendor_ids)
    batches = [vendors[i:i + batch_size] for i in range(0, len(vendors), max(1, batch_size))]
    run = SettlementRun(period_start=period.start, period_end=period.end,
                        vendor_ids=list(vendor_ids) if vendor_ids is not None else None,
                        requested_by=job.requested_by, job_id=job.id, batches_total=len(batches),
                        vendors_total=len(vendors), status="running" if batches else "completed",
                        finished_at=None if batches else func.now())
    session.add(run)
    session.flush()
    for number, batch in enumerate(batches):
        commands.submit(session, BATCH_KIND, {"run_id": str(run.id), "batch": number, **period.as_dict(),
                                              "vendor_ids": [str(v) for v in batch]},
                        enqueue=enqueue, key=f"{run.id}:{number}", scope="settlements",
                        requested_by=job.requested_by)
    return {"run_id": str(run.id), **period.as_dict(), "vendors": len(vendors), "batches": len(batches),
            "unsettleable": unsettleable(session, vendor_ids, period, zone=zone, lookback_days=lookback_days)}


def settle_batch(session: Session, *, run_id: uuid.UUID | None, period: Period, vendor_ids: Sequence[uuid.UUID],
                 requested_by: uuid.UUID | None, zone: str, lookback_days: int = DEFAULT_LOOKBACK_DAYS,
                 progress: commands.Progress | None = None) -> dict[str, Any]:
    """Settle one batch of vendors in the caller's transaction: a few statements, however many
    payments. Vendors are locked in a fixed order, so concurrent batches and overlapping runs wait
    for each other instead of both counting a payment (the unique keys would refuse that anyway).
    Progress is reported between the statements; the job's lease is kept by its worker's heartbeat,
    however long one statement (or a lock wait) takes."""
    ordered = sorted(set(vendor_ids))
    if progress is not None:
        progress(0, f"locking {len(ordered)} vendors")
    session.execute(text(
        "SELECT pg_advisory_xact_lock(hashtextextended('ombaro.settle:' || v::text, 0)) "
        "FROM (SELECT v FROM unnest(CAST(:vendors AS uuid[])) AS v ORDER BY v) AS ordered"), {"vendors": ordered})
    if progress is not None:
        progress(20, f"settling {len(ordered)} vendors")
    bind = {**_bind(period, ordered, zone, lookback_days), "run_id": run_id, "requested_by": requested_by}
    _no_jit(session)
    try:
        with session.begin_nested():
            created, net = session.execute(text(SETTLE), bind).one()
    except IntegrityError as exc:
        unrated = session.execute(text(UNRATED_CHECK), bind).first()
        if unrated is not None:
            raise _missing_rate(unrated.vendor_id, unrated.first_unrated) from exc
        raise
    if run_id is not None:
        session.execute(text("""
            UPDATE settlement_runs
            SET batches_done = batches_done + 1, settlements_created = settlements_created + :created,
                status = CASE WHEN batches_done + 1 >= batches_total THEN 'completed' ELSE status END,
                finished_at = CASE WHEN batches_done + 1 >= batches_total THEN now() ELSE finished_at END
            WHERE id = :run"""), {"created": created, "run": run_id})
    return {"run_id": str(run_id) if run_id else None, **period.as_dict(), "vendors": len(ordered),
            "settlements_created": created, "net": net}


def run_summary(session: Session, run_id: uuid.UUID) -> dict[str, Any]:
    """A run with its totals and how its batch jobs stand (a failed batch fails the run's view)."""
    run = session.get(SettlementRun, run_id)
    if run is None:
        raise SettlementNotFound(f"no settlement run {run_id}")
    jobs: dict[str, int] = {status: count for status, count in session.execute(text(
        "SELECT status, count(*) FROM jobs WHERE kind = :kind AND idempotency_scope = 'settlements' "
        "AND params ->> 'run_id' = :run GROUP BY status"), {"kind": BATCH_KIND, "run": str(run_id)})}
    totals = session.execute(text("""
        SELECT count(*) AS settlements, coalesce(sum(s.gross_amount), 0) AS gross_amount,
               coalesce(sum(s.commission_amount), 0) AS commission_amount,
               coalesce(sum(s.tds_amount), 0) AS tds_amount, coalesce(sum(s.tcs_amount), 0) AS tcs_amount,
               coalesce(sum(s.commission_gst_amount), 0) AS commission_gst_amount,
               coalesce(sum(s.adjustment_amount), 0) AS adjustment_amount,
               coalesce(sum(s.net_settlement_amount), 0) AS net_settlement_amount
        FROM settlement_approvals AS a JOIN payment_settlements AS s ON s.id = a.settlement_id
        WHERE a.run_id = :run"""), {"run": run_id}).mappings().one()
    status = "failed" if jobs.get("failed") and run.status != "completed" else run.status
    return {"id": run.id, "period_start": run.period_start, "period_end": run.period_end,
            "vendor_ids": run.vendor_ids, "requested_by": run.requested_by, "job_id": run.job_id, "status": status,
            "batches_total": run.batches_total, "batches_done": run.batches_done,
            "vendors_total": run.vendors_total, "settlements_created": run.settlements_created,
            "batch_jobs": jobs, "totals": dict(totals), "created_at": run.created_at, "finished_at": run.finished_at}


# One adjustment per creator's Idempotency-Key.
_ADD_ADJUSTMENT = select(SettlementAdjustment).from_statement(fixed_insert(
    SettlementAdjustment.__table__, ("vendor_id", "amount", "kind", "reason", "created_by", "idempotency_key"),
    "ON CONFLICT (created_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"))


def add_adjustment(session: Session, *, vendor_id: uuid.UUID, amount: Decimal, reason: str,
                   created_by: uuid.UUID | None,
                   idempotency_key: str | None = None) -> tuple[SettlementAdjustment, bool]:
    """A manual adjustment by finance, applied to the vendor's next settlement; with whether it is
    new. With an Idempotency-Key, one adjustment per (creator, key): a repeated or racing request
    gets the first one back (the second insert waits on the unique index, then finds it); the same
    key with another body is an IdempotencyConflict."""
    if amount == 0:
        raise InvalidRequest("an adjustment of zero changes nothing")
    if not reason.strip():
        raise InvalidRequest("an adjustment needs a reason")
    if session.get(Vendor, vendor_id) is None:
        raise SettlementNotFound(f"no vendor {vendor_id}")
    values = {"vendor_id": vendor_id, "amount": amount, "kind": "manual", "reason": reason.strip(),
              "created_by": created_by, "idempotency_key": idempotency_key}
    if idempotency_key is None:
        adjustment = SettlementAdjustment(**values)
        session.add(adjustment)
        session.flush()
        return adjustment, True
    made = session.scalars(_ADD_ADJUSTMENT, values).one_or_none()
    if made is not None:
        return made, True
    first = session.scalars(select(SettlementAdjustment).where(
        SettlementAdjustment.created_by == created_by, SettlementAdjustment.idempotency_key == idempotency_key)).one()
    if (first.vendor_id, first.amount, first.reason) != (vendor_id, amount, reason.strip()):
        raise commands.IdempotencyConflict(f"Idempotency-Key {idempotency_key!r} was already used for a different "
                                           "adjustment")
    return first, False
