"""Batch matching on random inputs (property-based): never worse than greedy one-by-one matching,
and never a plan that breaks a rule."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ombaro.dispatch.matching import (
    Plan,
    _priced,
    chain_lower_bound,
    optimise_chains,
    plan_assignment,
    plan_batch,
    plan_greedy,
    settle_travel,
    travel_lower_bound,
    violations,
)
from ombaro.dispatch.rules import Candidate, Engagement, Need, Shift
from ombaro.geo import Point

VENDOR = uuid.UUID(int=7)
DAY = dt.date(2026, 12, 1)
MIDNIGHT_UTC = dt.datetime(2026, 11, 30, 18, 30, tzinfo=dt.UTC)  # 00:00 in Asia/Kolkata
CODES = ("SWD", "ARO", "DPT")
points = st.builds(Point, st.floats(18.40, 18.65), st.floats(73.70, 74.00))


@st.composite
def needs(draw: st.DrawFn, *, overlapping: bool = False) -> list[Need]:
    found = []
    for number in range(draw(st.integers(1, 7))):
        start = 10 * 60 if overlapping else draw(st.integers(8, 19)) * 60 + draw(st.sampled_from((0, 30)))
        minutes = draw(st.sampled_from((60, 90, 120)))
        found.append(Need(
            uuid.UUID(int=1000 + number), f"OBO-20261201-{number:04d}", VENDOR, uuid.UUID(int=5000 + number), DAY,
            start, minutes, MIDNIGHT_UTC + dt.timedelta(minutes=start), draw(points),
            frozenset(draw(st.sets(st.sampled_from(CODES), min_size=1, max_size=2))),
            gender=draw(st.sampled_from((None, None, "female"))),
            preferred=frozenset(draw(st.sets(st.sampled_from([uuid.UUID(int=n) for n in range(100, 106)]),
                                             max_size=1)))))
    return found


@st.composite
def therapists(draw: st.DrawFn) -> list[Candidate]:
    found = []
    for number in range(draw(st.integers(1, 6))):
        existing = []
        if draw(st.booleans()):
            begins = draw(st.integers(8, 19)) * 60
            starts = MIDNIGHT_UTC + dt.timedelta(minutes=begins)
            existing.append(Engagement(starts, starts + dt.timedelta(minutes=60), starts + dt.timedelta(minutes=75),
                                       draw(points)))
        shift_start = draw(st.sampled_from((8, 9, 12))) * 60
        found.append(Candidate(
            uuid.UUID(int=100 + number), VENDOR, f"T{number}", draw(st.sampled_from(("active", "active", "inactive"))),
            frozenset(draw(st.sets(st.sampled_from(CODES), min_size=1))), draw(st.sampled_from((3.5, 4.2, 4.8))),
            draw(st.sampled_from(("female", "male"))),
            shift=Shift(shift_start, shift_start + draw(st.sampled_from((8, 10, 12))) * 60),
            position=draw(points), position_source="live", engagements=existing,
            assignments_today=draw(st.integers(0, 3))))
    return found


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(needs(), therapists())
def test_batch_is_never_worse_than_greedy_and_never_breaks_a_rule(wanted: list[Need], pool: list[Candidate]) -> None:
    plans = plan_batch(wanted, pool)
    assert plans.best.objective() <= plans.greedy.objective()
    assert plans.best.total_km <= plans.greedy.total_km + 1e-9 or \
        plans.best.objective()[:2] < plans.greedy.objective()[:2]
    assert violations(wanted, pool, plans.best) == []
    assert violations(wanted, pool, plans.assignment) == []
    assert set(plans.best.picks) | set(plans.best.unassigned) == {n.booking_id for n in wanted}


@FAST
@given(needs(), therapists())
def test_no_plan_travels_less_than_the_lower_bound(wanted: list[Need], pool: list[Candidate]) -> None:
    plans = plan_batch(wanted, pool)
    for plan in (plans.best, plans.greedy, plans.waves):
        assert travel_lower_bound(wanted, pool, plan.picks) <= plan.total_km + 1e-6


@FAST
@given(needs(overlapping=True), therapists())
def test_the_assignment_alone_is_optimal_when_each_therapist_can_take_one(wanted: list[Need],
                                                                         pool: list[Candidate]) -> None:
    """All bookings at the same hour: one round, where the linear assignment is exact, so it beats
    or equals greedy on its own, before the best-of-both safety net."""
    assignment = settle_travel(plan_assignment(wanted, pool), wanted, pool)
    greedy = settle_travel(plan_greedy(wanted, pool), wanted, pool)
    assert assignment.objective() <= greedy.objective()


def test_a_crossing_that_greedy_gets_wrong() -> None:
    here, east = Point(18.52, 73.85), Point(18.52, 73.95)
    wanted = [Need(uuid.UUID(int=1), "A", VENDOR, uuid.uuid4(), DAY, 600, 60, MIDNIGHT_UTC + dt.timedelta(hours=10),
                   here, frozenset({"SWD"})),
              Need(uuid.UUID(int=2), "B", VENDOR, uuid.uuid4(), DAY, 610, 60,
                   MIDNIGHT_UTC + dt.timedelta(hours=10, minutes=10), east, frozenset({"SWD"}))]
    shift = Shift(8 * 60, 20 * 60)
    pool = [Candidate(uuid.UUID(int=10), VENDOR, "between", "active", frozenset({"SWD"}), shift=shift,
                      position=Point(18.52, 73.87)),
            Candidate(uuid.UUID(int=11), VENDOR, "west", "active", frozenset({"SWD"}), shift=shift,
                      position=Point(18.52, 73.80))]
    plans = plan_batch(wanted, pool)
    assert plans.best.method == "assignment"
    assert plans.best.total_km < plans.greedy.total_km
    assert {p.booking_id: p.therapist_id for p in plans.best.picks.values()} == {
        uuid.UUID(int=1): uuid.UUID(int=11), uuid.UUID(int=2): uuid.UUID(int=10)}


@FAST
@given(needs(), therapists())
def test_exact_chains_never_break_a_rule_nor_cost_more_than_the_plan_they_start_from(
        wanted: list[Need], pool: list[Candidate]) -> None:
    for start in (settle_travel(plan_greedy(wanted, pool), wanted, pool),
                  settle_travel(plan_assignment(wanted, pool), wanted, pool)):
        exact, bound, _ = optimise_chains(start, wanted, pool)
        assert violations(wanted, pool, exact) == []
        assert exact.objective() <= start.objective()
        assert set(exact.picks) == set(start.picks)
        assert exact.preferences_missed <= start.preferences_missed
        if bound is not None:
            assert bound <= exact.total_km + 1e-6


@FAST
@given(needs(), therapists())
def test_no_sound_plan_placing_the_same_bookings_travels_less_than_the_chain_bound(
        wanted: list[Need], pool: list[Candidate]) -> None:
    """Against every sound plan (brute force over who takes which placed booking, on at most four of each)."""
    wanted, pool = wanted[:4], pool[:4]
    plan = settle_travel(plan_greedy(wanted, pool), wanted, pool)
    placed = sorted(plan.picks)
    bound = chain_lower_bound(wanted, pool, placed)
    assert bound is not None
    least = min(
        (candidate.total_km for owners in itertools.product([c.therapist_id for c in pool], repeat=len(placed))
         if not violations(wanted, pool, candidate := _priced(Plan("brute"), dict(zip(placed, owners, strict=True)),
                                                               wanted, pool))),
        default=None)
    assert least is not None  # the greedy plan itself is one
    assert bound <= least + 1e-6
    exact, _, _ = optimise_chains(plan, wanted, pool)
    assert least <= exact.total_km + 1e-6
