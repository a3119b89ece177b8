"""Dispatch (operations): a day's unassigned bookings, batch dispatch of a city or a vendor, and
the day's assignments on a distance map with the travel planned per therapist."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import redirect, render_template, request, url_for
from markupsafe import Markup

from web.console import bp
from web.console.charts import Point, distance_map
from web.console.session import api, flash_answer, page
from web.extension import Ombaro


@dataclass
class Travel:
    """One therapist's day: how many assignments and the kilometres dispatch planned for them."""

    therapist_id: str
    assignments: int = 0
    planned: list[float] = field(default_factory=list)

    @property
    def total_km(self) -> float | None:
        return round(sum(self.planned), 2) if self.planned else None

    @property
    def average_km(self) -> float | None:
        return round(sum(self.planned) / len(self.planned), 2) if self.planned else None


def today() -> dt.date:
    return dt.datetime.now(Ombaro.get().settings.zone).date()


def _coords(lat: Any, lng: Any) -> tuple[float, float] | None:
    try:
        return (float(lat), float(lng)) if lat is not None and lng is not None else None
    except (TypeError, ValueError):
        return None


def assignment_map(assignments: Sequence[Mapping[str, Any]], unassigned: Sequence[Mapping[str, Any]]) -> Markup:
    """Therapists at their last known fix, bookings at their service location, a line for each
    assignment; unassigned bookings are dots with no line."""
    points: list[Point] = []
    therapist_at: dict[str, int] = {}
    links: list[tuple[int, int]] = []
    for a in assignments:
        place = _coords(a.get("location_latitude"), a.get("location_longitude"))
        if place is None:
            continue
        booking_at = len(points)
        points.append(Point(*place, f"{a['assignment_time'][:5]} {a['location_address']} ({a['status']})", "booking"))
        fix = _coords(a.get("therapist_latitude"), a.get("therapist_longitude"))
        if fix is None:
            continue
        if a["therapist_id"] not in therapist_at:
            therapist_at[a["therapist_id"]] = len(points)
            points.append(Point(*fix, f"therapist {a['therapist_id'][:8]}", "therapist"))
        links.append((therapist_at[a["therapist_id"]], booking_at))
    for b in unassigned:
        location = b.get("service_location") or {}
        if place := _coords(location.get("latitude"), location.get("longitude")):
            points.append(Point(*place, f"{b['booking_number']} unassigned", "booking"))
    return distance_map(points, links)


def travel_by_therapist(assignments: Sequence[Mapping[str, Any]]) -> list[Travel]:
    days: dict[str, Travel] = {}
    for a in assignments:
        day = days.setdefault(a["therapist_id"], Travel(a["therapist_id"]))
        day.assignments += 1
        if a.get("planned_km") is not None:
            day.planned.append(float(a["planned_km"]))
    return sorted(days.values(), key=lambda t: -(t.total_km or 0))


@bp.get("/dispatch")
@page("dispatch")
def dispatch() -> Any:
    day = request.args.get("date") or today().isoformat()
    city = request.args.get("city", "").strip()
    vendor = request.args.get("vendor_id", "").strip()
    waiting = api("GET", "/api/v1/dispatch/unassigned", query={"date": day, "limit": 500})
    bookings = [b for b in (waiting.body if waiting.ok else [])
                if (not city or str((b.get("service_location") or {}).get("city", "")).lower() == city.lower())
                and (not vendor or b["vendor_id"] == vendor)]
    assigned = api("GET", "/api/v1/assignments", query={"date": day, "limit": 200})
    rows = [a for a in (assigned.body if assigned.ok else []) if not vendor or a["vendor_id"] == vendor]
    return render_template(
        "console/dispatch.html", day=day, city=city, vendor=vendor, waiting=waiting, bookings=bookings,
        assigned=assigned, assignments=rows, travel=travel_by_therapist(rows),
        map=assignment_map(rows, bookings) if assigned.ok else None)


@bp.post("/dispatch/batch")
@page("dispatch", "create")
def batch_dispatch() -> Any:
    form = request.form
    scope = {"vendor_id": form["vendor_id"].strip()} if form.get("vendor_id", "").strip() else (
        {"city": form.get("city", "").strip()} if form.get("city", "").strip() else {})
    answer = api("POST", "/api/v1/dispatch/batch", json={"date": form.get("date", ""), **scope})
    if flash_answer(answer, "Batch dispatch started; the job shows the assignments and the travel saved."):
        return redirect(url_for("console.job", job_id=answer.body["id"]))
    return redirect(url_for("console.dispatch", date=form.get("date") or None, city=form.get("city") or None,
                            vendor_id=form.get("vendor_id") or None))
