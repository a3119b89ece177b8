"""Batch matching: many bookings, many therapists, one plan. Pure functions over the rules' data.

The plan minimises, in this order: bookings left unassigned, customers whose eligible preferred
therapist was passed over, total travel. `plan_assignment` solves linear assignment problems
(SciPy's `linear_sum_assignment`) per vendor (therapists never cross vendors, so the cost matrix is
block diagonal and each block is solved alone) for each wave of bookings starting within the same
hour, in time order: every therapist takes at most one booking of a wave, and later waves see the
bookings placed so far (their places are where the therapist sets out from next). `plan_greedy` is
the one-by-one baseline: bookings in time order, each takes the best-ranked eligible therapist.
`plan_batch` returns the better of the two, so batch matching is never worse than greedy, and
reports both.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ombaro.dispatch.rules import (
    Candidate,
    Engagement,
    Need,
    Score,
    clash,
    distance_or_unknown,
    excluded_by,
    planned_engagement,
    score,
)

# Lexicographic costs in metres: passing over an eligible preferred therapist costs more than any
# travel a vendor's bookings can add up to (checked per block), leaving a booking costs more still.
PREFERENCE_PENALTY_M = 10_000_000.0
WAVE_MINUTES = 60  # bookings starting within the same hour are matched together


@dataclass(frozen=True)
class Pick:
    booking_id: uuid.UUID
    therapist_id: uuid.UUID
    distance_km: float
    preference_missed: bool
    score: Score


@dataclass
class Plan:
    method: str
    picks: dict[uuid.UUID, Pick] = field(default_factory=dict)
    unassigned: list[uuid.UUID] = field(default_factory=list)

    @property
    def total_km(self) -> float:
        return sum(p.distance_km for p in self.picks.values())

    @property
    def preferences_missed(self) -> int:
        return sum(p.preference_missed for p in self.picks.values())

    def objective(self) -> tuple[int, int, int]:
        return len(self.unassigned), self.preferences_missed, round(self.total_km * 1000)

    def summary(self) -> dict[str, object]:
        return {"method": self.method, "assigned": len(self.picks), "unassigned": len(self.unassigned),
                "preferences_missed": self.preferences_missed, "total_travel_km": round(self.total_km, 3)}


@dataclass
class BatchPlans:
    best: Plan
    assignment: Plan
    greedy: Plan


class _State:
    """Engagements planned so far per therapist, and their day's assignment counts."""

    def __init__(self) -> None:
        self.extra: dict[uuid.UUID, list[Engagement]] = defaultdict(list)
        self.extra_count: dict[uuid.UUID, int] = defaultdict(int)

    def eligible(self, need: Need, candidate: Candidate) -> bool:
        return excluded_by(need, candidate, self.extra[candidate.therapist_id]) is None

    def score(self, need: Need, candidate: Candidate) -> Score:
        return score(need, candidate, self.extra[candidate.therapist_id],
                     candidate.assignments_today + self.extra_count[candidate.therapist_id])

    def place(self, need: Need, candidate: Candidate) -> None:
        self.extra[candidate.therapist_id].append(planned_engagement(need))
        self.extra_count[candidate.therapist_id] += 1


def _by_vendor(candidates: Iterable[Candidate]) -> dict[uuid.UUID, list[Candidate]]:
    grouped: dict[uuid.UUID, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        grouped[candidate.vendor_id].append(candidate)
    return grouped


def _ordered(needs: Iterable[Need]) -> list[Need]:
    return sorted(needs, key=lambda n: (n.starts_at, n.booking_number, str(n.booking_id)))


def _pick(need: Need, chosen: Score, eligible_scores: list[Score]) -> Pick:
    missed = not chosen.preferred and any(s.preferred for s in eligible_scores)
    return Pick(need.booking_id, chosen.therapist_id, distance_or_unknown(chosen.distance_km), missed, chosen)


def plan_greedy(needs: Iterable[Need], candidates: Iterable[Candidate]) -> Plan:
    pools, state, plan = _by_vendor(candidates), _State(), Plan("greedy")
    for need in _ordered(needs):
        options = [(c, state.score(need, c)) for c in pools.get(need.vendor_id, []) if state.eligible(need, c)]
        if not options:
            plan.unassigned.append(need.booking_id)
            continue
        candidate, best = min(options, key=lambda pair: pair[1].key())
        plan.picks[need.booking_id] = _pick(need, best, [s for _, s in options])
        state.place(need, candidate)
    return plan


def plan_assignment(needs: Iterable[Need], candidates: Iterable[Candidate]) -> Plan:
    """Per vendor, the day in waves of bookings starting within the same hour, in time order; each
    wave is a linear assignment (repeated while it places more), with origins and busy times
    reflecting the waves before it, so a therapist can chain bookings through the day as they
    would one by one, while bookings competing for the same hour are matched jointly."""
    pools, state, plan = _by_vendor(candidates), _State(), Plan("assignment")
    waves: dict[tuple[uuid.UUID, int], list[Need]] = defaultdict(list)
    for need in _ordered(needs):
        waves[(need.vendor_id, need.start_minute // WAVE_MINUTES)].append(need)
    for (vendor_id, _hour), wave in sorted(waves.items(), key=lambda item: (str(item[0][0]), item[0][1])):
        pool = pools.get(vendor_id, [])
        while wave:
            placed = _assignment_round(wave, pool, state, plan)
            wave = [n for n in wave if n.booking_id not in placed]
            if not placed:
                break
        plan.unassigned.extend(n.booking_id for n in wave)
    return plan


def _assignment_round(needs: list[Need], pool: list[Candidate], state: _State, plan: Plan) -> set[uuid.UUID]:
    """One linear assignment over (bookings x therapists): each therapist takes at most one."""
    options: list[dict[int, Score]] = []
    for need in needs:
        options.append({j: state.score(need, c) for j, c in enumerate(pool) if state.eligible(need, c)})
    rows = [i for i, found in enumerate(options) if found]
    if not rows:
        return set()
    columns = sorted({j for i in rows for j in options[i]})
    column_of = {j: k for k, j in enumerate(columns)}
    cost = np.full((len(rows), len(columns) + len(rows)), np.inf)
    for r, i in enumerate(rows):
        has_preferred = any(s.preferred for s in options[i].values())
        for j, s in options[i].items():
            missed = has_preferred and not s.preferred
            cost[r, column_of[j]] = distance_or_unknown(s.distance_km) * 1000 + (PREFERENCE_PENALTY_M if missed else 0)
    finite = cost[np.isfinite(cost)]
    # Leaving a booking out must cost more than any rearrangement of the others could save.
    leave_out = (len(rows) + 1) * (float(finite.max()) + 1.0)
    for r in range(len(rows)):
        cost[r, len(columns) + r] = leave_out
    chosen_rows, chosen_columns = linear_sum_assignment(cost)
    placed: set[uuid.UUID] = set()
    for row, k in zip(chosen_rows, chosen_columns, strict=True):
        if k >= len(columns):
            continue
        i, j = rows[row], columns[k]
        need = needs[i]
        plan.picks[need.booking_id] = _pick(need, options[i][j], list(options[i].values()))
        placed.add(need.booking_id)
    for row, k in zip(chosen_rows, chosen_columns, strict=True):  # placed after the round: one each
        if k < len(columns):
            state.place(needs[rows[row]], pool[columns[k]])
    return placed


def settle_travel(plan: Plan, needs: Iterable[Need], candidates: Iterable[Candidate]) -> Plan:
    """Recompute each pick's travel from where the therapist really comes from in the finished plan
    (a booking placed in a later round may precede an earlier round's in the day), and whether it
    passed over a preferred therapist who was eligible before the batch began: the same yardstick
    for every plan, so their objectives compare."""
    by_need = {n.booking_id: n for n in needs}
    pool = list(candidates)
    by_id = {c.therapist_id: c for c in pool}
    mine: dict[uuid.UUID, list[Pick]] = defaultdict(list)
    for pick in plan.picks.values():
        mine[pick.therapist_id].append(pick)
    for therapist_id, picks in mine.items():
        candidate = by_id[therapist_id]
        for pick in picks:
            need = by_need[pick.booking_id]
            others = [planned_engagement(by_need[o.booking_id]) for o in picks if o is not pick]
            settled = score(need, candidate, others, candidate.assignments_today + len(others))
            missed = not settled.preferred and any(
                c.therapist_id in need.preferred and excluded_by(need, c) is None for c in pool)
            plan.picks[pick.booking_id] = Pick(pick.booking_id, therapist_id, distance_or_unknown(settled.distance_km),
                                               missed, settled)
    return plan


def plan_batch(needs: Iterable[Need], candidates: Iterable[Candidate]) -> BatchPlans:
    needs, candidates = list(needs), list(candidates)
    assignment = settle_travel(plan_assignment(needs, candidates), needs, candidates)
    greedy = settle_travel(plan_greedy(needs, candidates), needs, candidates)
    best = assignment if assignment.objective() <= greedy.objective() else greedy
    return BatchPlans(best, assignment, greedy)


def violations(needs: Iterable[Need], candidates: Iterable[Candidate], plan: Plan) -> list[str]:
    """Every way the plan breaks a rule (empty for a sound plan): used by the tests and, before
    writing, as a last check."""
    by_need = {n.booking_id: n for n in needs}
    by_id = {c.therapist_id: c for c in candidates}
    found: list[str] = []
    placed: dict[uuid.UUID, list[Need]] = defaultdict(list)
    for pick in plan.picks.values():
        need, candidate = by_need[pick.booking_id], by_id[pick.therapist_id]
        rule = excluded_by(need, candidate)
        if rule is not None:
            found.append(f"{need.booking_number}: {candidate.name} excluded by {rule}")
        placed[candidate.therapist_id].append(need)
    for therapist_id, taken in placed.items():
        for k, need in enumerate(taken):
            others = [planned_engagement(o) for o in taken[:k] + taken[k + 1:]]
            if clash(need, others) is not None:
                found.append(f"{need.booking_number}: {by_id[therapist_id].name} double-booked")
    return found
