"""Each eligibility rule excludes the therapist it should, on rows in the database, and the
decision counts them; plus the edges of the rules on plain data."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import Engine

from ombaro.dispatch import candidates as loading
from ombaro.dispatch.rules import RULES, Candidate, Engagement, Need, Shift, clash, evaluate, excluded_by
from ombaro.dispatch.service import LOOKAROUND
from ombaro.geo import Point, drive_minutes, haversine_km
from tests.factories import dispatch as factory

ZONE = "Asia/Kolkata"


@dataclass(frozen=True)
class RuleWorld:
    booking: uuid.UUID
    therapists: dict[str, uuid.UUID]  # what each one is meant to show -> id
    day: dt.date


@pytest.fixture(scope="module")
def rule_world(engine: Engine) -> RuleWorld:
    """A booking 10:00-11:00 near the vendor, and one therapist per rule (plus the edge cases)."""
    vendor = factory.vendor(engine)
    service, code = factory.service(engine)
    day = factory.a_day_ahead(10)
    weekday = (day.weekday() + 1) % 7
    customer = factory.customer(engine)
    booking = factory.booking(engine, vendor_id=vendor, customer_id=customer, day=day, at="10:00", service_id=service)
    t = {}
    t["eligible"] = factory.therapist(engine, vendor, codes=[code])
    t["ends_at_shift_end"] = factory.therapist(engine, vendor, codes=[code], shift=("08:00", "11:00"), rest=None)
    t["status"] = factory.therapist(engine, vendor, codes=[code], status="inactive")
    t["specialisation"] = factory.therapist(engine, vendor, codes=["OTHER"])
    t["schedule_one_minute_short"] = factory.therapist(engine, vendor, codes=[code], shift=("08:00", "10:59"),
                                                       rest=None)
    t["schedule_day_off"] = factory.therapist(engine, vendor, codes=[code], days=[d for d in range(7) if d != weekday])
    t["break"] = factory.therapist(engine, vendor, codes=[code], rest=("10:45", "11:15"))
    t["break_touching"] = factory.therapist(engine, vendor, codes=[code], rest=("11:00", "11:30"))
    t["leave"] = factory.therapist(engine, vendor, codes=[code])
    factory.leave(engine, t["leave"], day - dt.timedelta(days=1), day)
    t["leave_pending"] = factory.therapist(engine, vendor, codes=[code])
    factory.leave(engine, t["leave_pending"], day, day, status="pending")
    # Busy 08:30-09:30 twenty km away: 30 minutes is less than the drive (about an hour).
    t["overlap_travel"] = factory.therapist(engine, vendor, codes=[code])
    earlier = factory.booking(engine, vendor_id=vendor, customer_id=customer, day=day, at="08:30", service_id=service)
    factory.assignment(engine, booking_id=earlier, therapist_id=t["overlap_travel"], day=day, at="08:30",
                       point=factory.km_east(factory.PUNE, 20))
    # Busy 08:30-09:30 next door: 30 minutes is enough.
    t["overlap_next_door"] = factory.therapist(engine, vendor, codes=[code])
    nearby = factory.booking(engine, vendor_id=vendor, customer_id=customer, day=day, at="08:30", service_id=service)
    factory.assignment(engine, booking_id=nearby, therapist_id=t["overlap_next_door"], day=day, at="08:30")
    # Busy 10:30-11:30: plain overlap.
    t["overlap_direct"] = factory.therapist(engine, vendor, codes=[code])
    direct = factory.booking(engine, vendor_id=vendor, customer_id=customer, day=day, at="10:30", service_id=service)
    factory.assignment(engine, booking_id=direct, therapist_id=t["overlap_direct"], day=day, at="10:30")
    return RuleWorld(booking, t, day)


def _evaluate(engine: Engine, world: RuleWorld) -> tuple[Need, list[Candidate]]:
    with factory.as_worker(engine) as session:
        (need,) = loading.load_needs(session, [world.booking], zone=ZONE)
        found = loading.load_candidates(session, [need.vendor_id], need.local_date,
                                        window=(need.starts_at - LOOKAROUND, need.ends_at + LOOKAROUND),
                                        now=dt.datetime.now(dt.UTC))
    return need, found


@pytest.mark.parametrize(("therapist", "rule"), [
    ("eligible", None),
    ("ends_at_shift_end", None),  # the window ends exactly at the shift's last minute
    ("status", "status"),
    ("specialisation", "specialisation"),
    ("schedule_one_minute_short", "schedule"),
    ("schedule_day_off", "schedule"),
    ("break", "break"),
    ("break_touching", None),
    ("leave", "leave"),
    ("leave_pending", None),
    ("overlap_travel", "overlap"),
    ("overlap_next_door", None),
    ("overlap_direct", "overlap"),
])
def test_each_rule_excludes_the_therapist_it_should(engine: Engine, rule_world: RuleWorld, therapist: str,
                                                   rule: str | None) -> None:
    need, found = _evaluate(engine, rule_world)
    (candidate,) = [c for c in found if c.therapist_id == rule_world.therapists[therapist]]
    assert excluded_by(need, candidate) == rule


def test_the_decision_counts_each_rule_once_per_excluded_candidate(engine: Engine, rule_world: RuleWorld) -> None:
    need, found = _evaluate(engine, rule_world)
    evaluation = evaluate(need, found)
    assert evaluation.pool == len(rule_world.therapists)
    assert evaluation.excluded == {"status": 1, "specialisation": 1, "schedule": 2, "break": 1, "leave": 1,
                                   "overlap": 2}
    assert {c.therapist_id for c, _ in evaluation.ranked} == {
        rule_world.therapists[n] for n in ("eligible", "ends_at_shift_end", "break_touching", "leave_pending",
                                           "overlap_next_door")}
    assert set(evaluation.explanation()["excluded"]) == set(RULES)


# --- the same edges on plain data ------------------------------------------------------------------

START = dt.datetime(2026, 12, 1, 4, 30, tzinfo=dt.UTC)  # 10:00 in Asia/Kolkata
HERE = Point(18.5204, 73.8567)


def need(**changes: object) -> Need:
    base = Need(uuid.uuid4(), "OBO-20261201-0001", uuid.UUID(int=1), uuid.uuid4(), dt.date(2026, 12, 1), 600, 60,
                START, HERE, frozenset({"SWD"}))
    return replace(base, **changes)


def candidate(**changes: object) -> Candidate:
    base = Candidate(uuid.uuid4(), uuid.UUID(int=1), "Asha", "active", frozenset({"SWD", "ARO"}), 4.5, "female",
                     shift=Shift(9 * 60, 21 * 60, True, 14 * 60, 15 * 60), position=HERE, position_source="live")
    return replace(base, **changes)


def busy(start_minute: int, minutes: int, place: Point | None = HERE, buffer: int = 0) -> Engagement:
    starts = START + dt.timedelta(minutes=start_minute - 600)
    ends = starts + dt.timedelta(minutes=minutes)
    return Engagement(starts, ends, ends + dt.timedelta(minutes=buffer), place)


def test_a_window_ending_at_the_shift_end_fits_and_one_minute_more_does_not() -> None:
    assert excluded_by(need(), candidate(shift=Shift(9 * 60, 11 * 60))) is None
    assert excluded_by(need(minutes=61), candidate(shift=Shift(9 * 60, 11 * 60))) == "schedule"
    assert excluded_by(need(), candidate(shift=Shift(10 * 60 + 1, 21 * 60))) == "schedule"


def test_gender_preference_and_declined_therapists_are_rules_too() -> None:
    assert excluded_by(need(gender="male"), candidate()) == "gender"
    assert excluded_by(need(gender="female"), candidate()) is None
    someone = candidate()
    assert excluded_by(need(declined=frozenset({someone.therapist_id})), someone) == "declined"


def test_travel_time_between_assignments_is_respected_both_ways() -> None:
    far = Point(18.5204, 73.8567 + 20 / 105.6)  # about 20 km east
    drive = drive_minutes(haversine_km(far, HERE))
    assert drive > 45
    # before: a session far away must end `drive` minutes before 10:00
    assert clash(need(), [busy(600 - drive - 60, 60, far)]) is None
    assert clash(need(), [busy(600 - drive - 59, 60, far)]) is not None
    # after: the next session far away may start `drive` minutes after 11:00, not one minute sooner
    assert clash(need(), [busy(660 + drive, 60, far)]) is None
    assert clash(need(), [busy(660 + drive - 1, 60, far)]) is not None
    # next door: the turnaround (15 minutes) still applies
    assert clash(need(), [busy(660 + 14, 60)]) is not None
    assert clash(need(), [busy(660 + 15, 60)]) is None


def test_a_stored_buffer_longer_than_the_travel_is_honoured() -> None:
    # An assignment written elsewhere with a 45-minute buffer holds the therapist until 09:45.
    assert clash(need(), [busy(8 * 60, 60, buffer=45)]) is None
    assert clash(need(), [busy(8 * 60 + 30, 60, buffer=45)]) is not None


def test_ranking_prefers_preference_then_distance_then_rating_then_fewer_assignments() -> None:
    near, far = candidate(name="near"), candidate(name="far", position=Point(18.60, 73.90))
    assert [c.name for c, _ in evaluate(need(), [far, near]).ranked] == ["near", "far"]
    chosen = need(preferred=frozenset({far.therapist_id}))
    assert [c.name for c, _ in evaluate(chosen, [far, near]).ranked] == ["far", "near"]
    better, busier = candidate(name="better", rating=4.9), candidate(name="busier", rating=4.9, assignments_today=3)
    worse = candidate(name="worse", rating=4.1)
    assert [c.name for c, _ in evaluate(need(), [worse, busier, better]).ranked] == ["better", "busier", "worse"]


def test_distance_is_from_the_previous_assignment_when_there_is_one_that_day() -> None:
    elsewhere = Point(18.60, 73.90)
    someone = candidate(position=elsewhere, engagements=[busy(8 * 60, 60, HERE)])
    (_, score), = evaluate(need(), [someone]).ranked
    assert score.origin == "previous_assignment" and score.distance_km == pytest.approx(0, abs=1e-6)
