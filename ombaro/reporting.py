"""Reporting: the materialized views behind the dashboards, refreshed without blocking readers."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ombaro.commands import Progress
from ombaro.models.jobs import ViewRefresh

# Refreshed in this order; each must have a unique index on plain columns (concurrent refresh).
VIEWS: tuple[str, ...] = ("dashboard_stats", "daily_booking_stats")


class UnknownView(ValueError):
    pass


@dataclass(frozen=True)
class RefreshOutcome:
    view: str
    concurrent: bool
    duration_ms: int
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return {"view": self.view, "concurrent": self.concurrent, "duration_ms": self.duration_ms,
                "rows": self.rows}


def refresh_views(session: Session, views: Sequence[str] | None = None, *, zone: str = "Asia/Kolkata",
                  job_id: uuid.UUID | None = None, progress: Progress | None = None) -> dict[str, Any]:
    chosen = list(views) if views else list(VIEWS)
    unknown = sorted(set(chosen) - set(VIEWS))
    if unknown:
        raise UnknownView(f"unknown views: {', '.join(unknown)}")
    outcomes = []
    for done, view in enumerate(chosen):
        outcomes.append(refresh_view(session, view, zone=zone, job_id=job_id))
        if progress:
            progress(100 * (done + 1) / len(chosen), f"refreshed {view}")
    return {"views": [o.as_dict() for o in outcomes]}


def refresh_view(session: Session, view: str, *, zone: str = "Asia/Kolkata",
                 job_id: uuid.UUID | None = None) -> RefreshOutcome:
    """Refresh one view and record it. Two refreshes of one view never overlap: the second waits
    on a transaction-level advisory lock keyed by the view's name. CONCURRENTLY keeps readers
    served; a view never populated cannot be refreshed concurrently, so its first refresh is plain."""
    if view not in VIEWS:
        raise UnknownView(f"unknown view: {view}")
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('ombaro.refresh.' || :view))"), {"view": view})
    # The views count "today" in the platform's zone (docs/schema.md): set it for this transaction.
    session.execute(text("SELECT set_config('ombaro.timezone', :zone, true)"), {"zone": zone})
    populated = session.execute(
        text("SELECT ispopulated FROM pg_matviews WHERE schemaname = 'public' AND matviewname = :v"), {"v": view},
    ).scalar_one()
    started_at = session.execute(select(func.clock_timestamp())).scalar_one()
    began = time.perf_counter()
    # Only the owner may refresh; workers go through its SECURITY DEFINER function (migration 0003).
    session.execute(text("SELECT refresh_materialized_view(:v, :concurrent)"), {"v": view, "concurrent": populated})
    rows = session.execute(text(f"SELECT count(*) FROM {view}")).scalar_one()
    duration_ms = round((time.perf_counter() - began) * 1000)
    session.add(ViewRefresh(view_name=view, job_id=job_id, concurrent=bool(populated), started_at=started_at,
                            finished_at=started_at + dt.timedelta(milliseconds=duration_ms),
                            duration_ms=duration_ms, row_count=rows))
    session.flush()
    return RefreshOutcome(view, bool(populated), duration_ms, rows)


def last_refresh(session: Session, view: str) -> ViewRefresh | None:
    return session.scalars(
        select(ViewRefresh).where(ViewRefresh.view_name == view).order_by(ViewRefresh.started_at.desc()).limit(1)
    ).first()


def dashboard(session: Session, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The 30-day dashboard figures and how fresh they are (None until the first refresh)."""
    populated = session.execute(
        text("SELECT ispopulated FROM pg_matviews WHERE schemaname = current_schema() "
             "AND matviewname = 'dashboard_stats'")
    ).scalar_one()
    stats = None
    if populated:
        row = session.execute(text(
            "SELECT confirmed_bookings, completed_bookings, cancelled_bookings, total_bookings, total_revenue, "
            "window_start, window_end FROM dashboard_stats")).mappings().first()
        stats = dict(row) if row else None
    last = last_refresh(session, "dashboard_stats")
    current = now or session.execute(select(func.now())).scalar_one()
    return {
        "stats": stats,
        "refreshed_at": last.finished_at if last else None,
        "age_seconds": round((current - last.finished_at).total_seconds()) if last else None,
        "refresh_duration_ms": last.duration_ms if last else None,
    }


def booking_trend(session: Session, *, start: dt.date, end: dt.date, city: str | None = None,
                  vendor_id: uuid.UUID | None = None, top: int = 10) -> dict[str, Any]:
    """Bookings, completions, cancellations and revenue per day from `daily_booking_stats`, and
    the same totals by city and by vendor (the `top` largest by bookings). Empty until the view's
    first refresh. A vendor's name comes only if the caller's policies show the vendor."""
    populated = session.execute(text(
        "SELECT ispopulated FROM pg_matviews WHERE schemaname = current_schema() "
        "AND matviewname = 'daily_booking_stats'")).scalar_one()
    if not populated:
        return {"days": [], "by_city": [], "by_vendor": []}
    where = ("s.booking_date BETWEEN :start AND :end AND (CAST(:city AS text) IS NULL OR s.city = :city) "
             "AND (CAST(:vendor AS uuid) IS NULL OR s.vendor_id = :vendor)")
    figures = ("sum(s.bookings)::int AS bookings, sum(s.completed)::int AS completed, "
               "sum(s.cancelled)::int AS cancelled, sum(s.revenue) AS revenue")
    args = {"start": start, "end": end, "city": city, "vendor": vendor_id, "top": top}
    days = session.execute(text(
        f"SELECT s.booking_date AS day, {figures} FROM daily_booking_stats AS s WHERE {where} "
        "GROUP BY 1 ORDER BY 1"), args).mappings().all()
    by_city = session.execute(text(
        f"SELECT s.city, {figures} FROM daily_booking_stats AS s WHERE {where} "
        "GROUP BY 1 ORDER BY bookings DESC, 1 LIMIT :top"), args).mappings().all()
    by_vendor = session.execute(text(
        f"SELECT s.vendor_id, v.business_name, {figures} FROM daily_booking_stats AS s "
        f"LEFT JOIN vendors AS v ON v.id = s.vendor_id WHERE {where} "  # a name the caller may not read: NULL
        "GROUP BY 1, 2 ORDER BY bookings DESC, 2 LIMIT :top"), args).mappings().all()
    return {"days": [dict(r) for r in days], "by_city": [dict(r) for r in by_city],
            "by_vendor": [dict(r) for r in by_vendor]}
