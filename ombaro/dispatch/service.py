"""Single and batch dispatch: choose, then write the assignment with its decision record.

The database is the guard against double booking: an exclusion constraint over (therapist,
busy period) of live assignments refuses a second overlapping one whatever wrote it. Dispatch
also takes a transaction-level advisory lock per therapist before writing and checks that
therapist's assignments again under it, so the travel time between two nearby-in-time
assignments (which a range constraint cannot express) is respected under concurrency as well.
A refusal moves on to the next-ranked therapist.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import Session

from ombaro.bookings import DISPATCHABLE
from ombaro.db import fixed_insert
from ombaro.dispatch.candidates import (
    LIVE,
    apply_live,
    engagements_of,
    live_positions,
    load_candidates,
    load_needs,
)
from ombaro.dispatch.matching import plan_batch, travel_lower_bound, violations
from ombaro.dispatch.rules import RANKING, RULES, Candidate, Need, Score, clash, evaluate
from ombaro.geo import TURNAROUND_MINUTES
from ombaro.models.bookings import Booking, TherapistAssignment
from ombaro.models.support import Notification

log = logging.getLogger(__name__)

LOOKAROUND = dt.timedelta(hours=12)  # assignments this close to the window can clash with it
EXCLUSION_CONSTRAINT = "ex_therapist_assignments_busy_period"  # (therapist, busy period) of live ones


# The assignment's INSERT as one fixed statement (ombaro.db.fixed_insert: SQLAlchemy's PostgreSQL
# insert() has no cache key and was compiled on every assignment; issue 16, single dispatch). ON
# CONFLICT on the exclusion constraint alone, instead of a savepoint around the INSERT (two round
# trips fewer): a refusal inserts nothing and returns no row; any other error still raises.
_INSERT_ASSIGNMENT = select(TherapistAssignment).from_statement(fixed_insert(
    TherapistAssignment.__table__,
    ("booking_id", "therapist_id", "vendor_id", "customer_id", "service_id", "assignment_date", "assignment_time",
     "status", "location_address", "location_latitude", "location_longitude", "estimated_duration", "travel_time",
     "travel_buffer_minutes", "dispatch_decision"),
    f"ON CONFLICT ON CONSTRAINT {EXCLUSION_CONSTRAINT} DO NOTHING"))


def _zone_setting(zone: str) -> ColumnElement[str]:
    # The busy-period trigger reads the platform zone from this setting (migration 0004).
    return func.set_config("ombaro.timezone", zone, True)


def _set_zone(session: Session, zone: str) -> None:
    session.execute(select(_zone_setting(zone)))


def _window(need: Need) -> tuple[dt.datetime, dt.datetime]:
    return need.starts_at - LOOKAROUND, need.ends_at + LOOKAROUND


def _lock_therapist(session: Session, therapist_id: uuid.UUID) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                    {"key": f"dispatch.therapist:{therapist_id}"})


def _notify_assigned(session: Session, need: Need, candidate: Candidate, assignment: TherapistAssignment) -> None:
    data = {"booking_id": str(need.booking_id), "booking_number": need.booking_number,
            "assignment_id": str(assignment.id), "therapist_id": str(candidate.therapist_id)}
    when = f"{need.local_date:%d %b} at {need.start_minute // 60:02d}:{need.start_minute % 60:02d}"
    session.add(Notification(user_id=need.customer_id, type="therapist_assigned", title="Your therapist is confirmed",
                             message=f"{candidate.name} will attend booking {need.booking_number} on {when}.",
                             data=data))
    if candidate.user_id is not None:
        session.add(Notification(user_id=candidate.user_id, type="therapist_assigned", title="New assignment",
                                 message=f"Booking {need.booking_number} on {when}, {need.minutes} minutes.",
                                 data=data))


def assign(session: Session, need: Need, candidate: Candidate, chosen: Score, decision: dict[str, Any]
           ) -> TherapistAssignment | None:
    """Write the assignment unless the therapist was taken meanwhile (then None)."""
    _lock_therapist(session, candidate.therapist_id)
    if clash(need, engagements_of(session, candidate.therapist_id, _window(need))) is not None:
        return None  # another dispatch committed an assignment for them after we loaded
    assignment: TherapistAssignment | None = session.scalars(_INSERT_ASSIGNMENT, {
        "booking_id": need.booking_id, "therapist_id": candidate.therapist_id, "vendor_id": need.vendor_id,
        "customer_id": need.customer_id, "service_id": need.service_id, "assignment_date": need.local_date,
        "assignment_time": dt.time(need.start_minute // 60, need.start_minute % 60), "status": "assigned",
        "location_address": need.address or need.booking_number,
        "location_latitude": None if need.location is None else round(need.location.latitude, 8),
        "location_longitude": None if need.location is None else round(need.location.longitude, 8),
        "estimated_duration": need.minutes, "travel_time": chosen.travel_minutes,
        "travel_buffer_minutes": TURNAROUND_MINUTES, "dispatch_decision": decision}).first()
    if assignment is None:
        log.info("therapist %s refused by the exclusion constraint for %s", candidate.therapist_id,
                 need.booking_number)
        return None
    _notify_assigned(session, need, candidate, assignment)
    return assignment


def _decision(mode: str, need: Need, explanation: dict[str, Any], winner: Score, *, job_id: uuid.UUID | None,
              now: dt.datetime, others: list[Score] | None = None, plan: str | None = None) -> dict[str, Any]:
    decision: dict[str, Any] = {
        "mode": mode, "job_id": str(job_id) if job_id else None, "decided_at": now.isoformat(),
        "rules": list(RULES), "ranking": list(RANKING), **explanation, "winner": winner.as_dict(),
    }
    if others:
        decision["runners_up"] = [s.as_dict() for s in others[:2]]
    if plan:
        decision["plan"] = plan
    return decision


def _note(outcome: str, *, job_id: uuid.UUID | None, now: dt.datetime, **details: Any) -> dict[str, Any]:
    return {"outcome": outcome, "job_id": str(job_id) if job_id else None, "at": now.isoformat(), **details}


def _candidates_for(session: Session, needs: list[Need], *, now: dt.datetime, redis: Any,
                    near_one: bool) -> list[Candidate]:
    day = needs[0].local_date
    window = (min(n.starts_at for n in needs) - LOOKAROUND, max(n.ends_at for n in needs) + LOOKAROUND)
    candidates = load_candidates(session, {n.vendor_id for n in needs}, day, window=window, now=now)
    ids = [c.therapist_id for c in candidates]
    if near_one and needs[0].location is not None:
        live = live_positions(redis, ids, vendor_id=needs[0].vendor_id, near=needs[0].location)
    else:
        live = live_positions(redis, ids)
    apply_live(candidates, live)
    return candidates


def dispatch_booking(session: Session, booking_id: uuid.UUID, *, zone: str, redis: Any = None,
                     exclude: frozenset[uuid.UUID] = frozenset(), job_id: uuid.UUID | None = None,
                     now: dt.datetime | None = None) -> dict[str, Any]:
    """Find and assign the therapist for one confirmed booking. Idempotent: a booking already
    assigned (or no longer dispatchable) is reported, not dispatched again. When nobody fits the
    job still succeeds, saying how many candidates each rule eliminated; the booking stays
    unassigned (with that explanation in `dispatch_note`) for operations to see."""
    now = now or dt.datetime.now(dt.UTC)
    # The zone is set by the statement that locks the booking (one round trip fewer); see _set_zone.
    booking = session.scalars(select(Booking).where(Booking.id == booking_id).with_for_update()
                              .add_columns(_zone_setting(zone))).first()
    if booking is None:
        raise LookupError(f"no booking {booking_id}")
    live = session.scalars(select(TherapistAssignment).where(
        TherapistAssignment.booking_id == booking_id, TherapistAssignment.status.in_(LIVE))).first()
    if live is not None:
        return {"outcome": "already_assigned", "booking_id": str(booking_id), "booking_number": booking.booking_number,
                "assignment_id": str(live.id), "therapist_id": str(live.therapist_id)}
    if booking.status not in DISPATCHABLE:
        return {"outcome": "skipped", "booking_id": str(booking_id), "booking_number": booking.booking_number,
                "reason": f"booking is {booking.status}"}
    (need,) = load_needs(session, [booking_id], zone=zone, declined={booking_id: frozenset(exclude)})
    candidates = _candidates_for(session, [need], now=now, redis=redis, near_one=True)
    evaluation = evaluate(need, candidates)
    explanation = evaluation.explanation()
    taken = 0
    for rank, (candidate, chosen) in enumerate(evaluation.ranked):
        others = [s for _, s in evaluation.ranked[rank + 1:rank + 3]]
        decision = _decision("single", need, {**explanation, "taken_meanwhile": taken}, chosen, job_id=job_id,
                             now=now, others=others)
        assignment = assign(session, need, candidate, chosen, decision)
        if assignment is None:
            taken += 1
            continue
        booking.dispatch_note = _note("assigned", job_id=job_id, now=now, assignment_id=str(assignment.id),
                                      therapist_id=str(candidate.therapist_id))
        session.flush()
        # The job's result is the requester's to read (often the customer): the other candidates
        # stay in the assignment's decision record, which only the vendor and operations see.
        shown = {k: v for k, v in decision.items() if k != "runners_up"}
        return {"outcome": "assigned", "booking_id": str(booking_id), "booking_number": need.booking_number,
                "assignment_id": str(assignment.id), "therapist_id": str(candidate.therapist_id),
                "decision": shown}
    booking.dispatch_note = _note("unassigned", job_id=job_id, now=now, taken_meanwhile=taken, **explanation)
    session.flush()
    return {"outcome": "unassigned", "booking_id": str(booking_id), "booking_number": need.booking_number,
            "taken_meanwhile": taken, **explanation}


def dispatch_batch(session: Session, *, day: dt.date, zone: str, vendor_id: uuid.UUID | None = None,
                   city: str | None = None, redis: Any = None, job_id: uuid.UUID | None = None,
                   now: dt.datetime | None = None, progress: Callable[[float, str | None], None] | None = None
                   ) -> dict[str, Any]:
    """Assign every unassigned confirmed booking of a vendor (or a city) on `day` at once, minimising
    total travel under the same rules, and report the total against greedy one-by-one matching on
    the same input. Bookings another dispatch holds right now are skipped (SKIP LOCKED)."""
    if (vendor_id is None) == (city is None):
        raise ValueError("give a vendor or a city")
    now = now or dt.datetime.now(dt.UTC)
    def report(percent: float, message: str | None = None) -> None:
        if progress is not None:
            progress(percent, message)

    _set_zone(session, zone)
    began = time.perf_counter()
    where = "b.vendor_id = :vendor" if vendor_id else (
        "lower(coalesce(nullif(b.service_location ->> 'city', ''), v.business_address ->> 'city')) = lower(:city)")
    booking_ids = list(session.execute(text(
        f"SELECT b.id FROM bookings AS b JOIN vendors AS v ON v.id = b.vendor_id "
        f"WHERE b.booking_date = :day AND b.status = ANY(:dispatchable) AND {where} "
        f"AND NOT EXISTS (SELECT 1 FROM therapist_assignments AS a WHERE a.booking_id = b.id "
        f"                AND a.status = ANY(:live)) "
        f"ORDER BY b.booking_time, b.booking_number FOR UPDATE OF b SKIP LOCKED"),
        {"day": day, "dispatchable": list(DISPATCHABLE), "vendor": vendor_id, "city": city,
         "live": list(LIVE)}).scalars())
    scope = {"date": day.isoformat(), "vendor_id": str(vendor_id) if vendor_id else None, "city": city}
    if not booking_ids:
        return {**scope, "bookings": 0, "assigned": 0, "unassigned": 0, "total_travel_km": 0.0,
                "greedy_total_travel_km": 0.0}
    needs = load_needs(session, booking_ids, zone=zone)
    candidates = _candidates_for(session, needs, now=now, redis=redis, near_one=False)
    report(20, f"{len(needs)} bookings, {len(candidates)} therapists loaded")
    solving = time.perf_counter()
    plans = plan_batch(needs, candidates)
    solve_ms = round((time.perf_counter() - solving) * 1000)
    problems = violations(needs, candidates, plans.best)
    if problems:  # a bug in matching, never a reason to write a bad plan
        raise RuntimeError(f"batch plan breaks the rules: {problems[:5]}")
    report(50, f"plan: {plans.best.method}, {len(plans.best.picks)} of {len(needs)} placed")

    by_need = {n.booking_id: n for n in needs}
    by_id = {c.therapist_id: c for c in candidates}
    pools: dict[uuid.UUID, list[Candidate]] = {}
    for candidate in candidates:
        pools.setdefault(candidate.vendor_id, []).append(candidate)
    bookings = {b.id: b for b in session.scalars(select(Booking).where(Booking.id.in_(booking_ids)))}
    assigned, conflicts = 0, 0
    picks = sorted(plans.best.picks.values(), key=lambda p: (str(p.therapist_id), str(p.booking_id)))
    for number, pick in enumerate(picks, start=1):
        need = by_need[pick.booking_id]
        explanation = evaluate(need, pools.get(need.vendor_id, [])).explanation()
        decision = _decision("batch", need, explanation, pick.score, job_id=job_id, now=now, plan=plans.best.method)
        assignment = assign(session, need, by_id[pick.therapist_id], pick.score, decision)
        if assignment is None:
            conflicts += 1
            bookings[need.booking_id].dispatch_note = _note("unassigned", job_id=job_id, now=now,
                                                            reason="therapist taken meanwhile", **explanation)
            continue
        assigned += 1
        bookings[need.booking_id].dispatch_note = _note("assigned", job_id=job_id, now=now,
                                                        assignment_id=str(assignment.id),
                                                        therapist_id=str(pick.therapist_id))
        if number % 100 == 0:
            report(50 + 45 * number / len(picks), f"{number} of {len(picks)} written")
    for booking_id in plans.best.unassigned:
        need = by_need[booking_id]
        bookings[booking_id].dispatch_note = _note("unassigned", job_id=job_id, now=now,
                                                   **evaluate(need, pools.get(need.vendor_id, [])).explanation())
    session.flush()
    greedy, chosen = plans.greedy, plans.best
    # The chain relaxation's bound when the plan came from it (tighter), else the origins assignment's.
    bound = plans.bound_km if plans.bound_km is not None else travel_lower_bound(needs, candidates, chosen.picks)
    return {
        **scope, "bookings": len(needs), "therapists": len(candidates), "plan": chosen.method,
        "assigned": assigned, "unassigned": len(needs) - assigned, "taken_meanwhile": conflicts,
        "total_travel_km": round(chosen.total_km, 3),
        "greedy_total_travel_km": round(greedy.total_km, 3),
        "travel_saved_km": round(greedy.total_km - chosen.total_km, 3),
        "travel_lower_bound_km": round(bound, 3),
        "assignment": plans.assignment.summary(), "greedy": greedy.summary(), "waves": plans.waves.summary(),
        "solve_ms": solve_ms, "duration_ms": round((time.perf_counter() - began) * 1000),
    }
