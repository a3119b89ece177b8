"""Batch matching: many bookings, many therapists, one plan. Pure functions over the rules' data.

The plan minimises, in this order: bookings left unassigned, customers whose eligible preferred
therapist was passed over, total travel. `plan_assignment` solves linear assignment problems
(SciPy's `linear_sum_assignment`) per vendor (therapists never cross vendors, so the cost matrix is
block diagonal and each block is solved alone) for each wave of bookings starting within the same
hour, in time order: every therapist takes at most one booking of a wave, and later waves see the
bookings placed so far (their places are where the therapist sets out from next); `optimise_chains`
then re-solves each vendor's day exactly (`chains`), placing the same bookings. `plan_greedy` is
the one-by-one baseline: bookings in time order, each takes the best-ranked eligible therapist.
`plan_batch` returns the better of the two, so batch matching is never worse than greedy, and
reports both.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import defaultdict
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ombaro.dispatch import chains
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
from ombaro.geo import Point, gap_needed, haversine_km

# Lexicographic costs in metres: passing over an eligible preferred therapist costs more than any
# travel a vendor's bookings can add up to (checked per block), leaving a booking costs more still.
PREFERENCE_PENALTY_M = 10_000_000.0
WAVE_MINUTES = 60  # bookings starting within the same hour are matched together
EXACT_SECONDS = 120.0  # the relaxations' and integer programs' budget for a whole batch (`optimise_chains`)
# Each vendor's integer program may take this long whatever is left of the budget (wall clock: at
# load 15 on 2 cores, 2 s was too little for some; at load 9 they take 0.1-1 s).
MIN_EXACT_SECONDS = 10.0


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
    waves: Plan  # the assignment before local search
    bound_km: float | None = None  # `chain_lower_bound` of the best plan's bookings, when computed


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


def _placed_by_vendor(needs: Iterable[Need], placed: Container[uuid.UUID]) -> dict[uuid.UUID, list[Need]]:
    """The needs whose booking is in `placed`, grouped by vendor (in the order given)."""
    grouped: dict[uuid.UUID, list[Need]] = defaultdict(list)
    for need in needs:
        if need.booking_id in placed:
            grouped[need.vendor_id].append(need)
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


def plan_batch(needs: Iterable[Need], candidates: Iterable[Candidate], *,
               exact_seconds: float = EXACT_SECONDS) -> BatchPlans:
    needs, candidates = list(needs), list(candidates)
    waves = settle_travel(plan_assignment(needs, candidates), needs, candidates)
    # The chains place the bookings their start placed: when the waves left some out, local search
    # (which first places what now fits) is the start; else the waves are (same optimum, less time).
    start = improve(waves, needs, candidates) if waves.unassigned else waves
    assignment, bound, solved = optimise_chains(start, needs, candidates, seconds=exact_seconds)
    if not solved and start is waves:  # some vendor's integer program gave nothing in time
        assignment = improve(assignment, needs, candidates)
        if set(assignment.picks) != set(start.picks):
            bound = None  # computed for the bookings the start placed
    greedy = settle_travel(plan_greedy(needs, candidates), needs, candidates)
    if assignment.objective() <= greedy.objective():
        return BatchPlans(assignment, assignment, greedy, waves, bound)
    return BatchPlans(greedy, assignment, greedy, waves)


def _preferable(needs: list[Need], pool: list[Candidate]) -> set[uuid.UUID]:
    """Bookings with a preferred therapist eligible before the batch (whose passing over counts)."""
    return {n.booking_id for n in needs
            if any(c.therapist_id in n.preferred and excluded_by(n, c) is None for c in pool)}


def optimise_chains(plan: Plan, needs: Iterable[Need], candidates: Iterable[Candidate], *,
                    seconds: float = EXACT_SECONDS) -> tuple[Plan, float | None, bool]:
    """The plan re-solved exactly per vendor (`chains`: each therapist's day a chain of bookings, an
    integer program over the arcs the linear relaxation prices near its optimum plus the plan's own),
    placing the same bookings with no more preferences passed over; and the relaxation's bound on the
    travel of any sound plan placing them (None when some vendor's could not be computed); and whether
    every vendor's integer program gave a plan. A vendor's new chains are taken only when they lower
    its (preferences passed over, km). `seconds` is shared by the vendors' relaxations and integer
    programs (each integer program gets at least `MIN_EXACT_SECONDS`, so every vendor is tried)."""
    needs, pool = list(needs), list(candidates)
    preferable = _preferable(needs, pool)
    pools = _by_vendor(pool)
    by_vendor = _placed_by_vendor(needs, plan.picks)
    owner = {p.booking_id: p.therapist_id for p in plan.picks.values()}
    spent = 0.0
    bound: float | None = 0.0
    changed, solved = False, True
    for number, (vendor_id, rows) in enumerate(sorted(by_vendor.items(), key=lambda item: str(item[0]))):
        model = chains.chain_model(rows, pools.get(vendor_id, []), preferable)
        if model is None:
            bound, solved = None, False
            continue
        mine = {n.booking_id: owner[n.booking_id] for n in rows}
        missed = sum(plan.picks[b].preference_missed for b in mine)
        share = max(MIN_EXACT_SECONDS, (seconds - spent) / (len(by_vendor) - number))
        began = time.monotonic()
        found = chains.optimise(model, mine, max_missed=missed, time_limit=share)
        spent += time.monotonic() - began
        if found.owner is not None:
            owner.update(found.owner)
            changed = True
        solved = solved and found.owner is not None
        vendor_bound = found.bound_km
        bound = None if bound is None or vendor_bound is None else bound + vendor_bound
    if not changed:
        return plan, bound, solved
    better = _priced(Plan(plan.method, unassigned=list(plan.unassigned)), owner, needs, pool)
    if violations(needs, pool, better) or not better.objective() < plan.objective():
        return plan, bound, solved and not violations(needs, pool, better)
    return better, bound, solved


def chain_lower_bound(needs: Iterable[Need], candidates: Iterable[Candidate],
                      placed: Iterable[uuid.UUID]) -> float | None:
    """A lower bound (km) on the total travel of any sound plan placing exactly the bookings
    `placed`: the linear relaxation of the chain model (`chains`), per vendor; None when some
    vendor's bookings cannot all be placed at all."""
    needs, pool = list(needs), list(candidates)
    pools = _by_vendor(pool)
    by_vendor = _placed_by_vendor(needs, set(placed))
    total = 0.0
    for vendor_id, rows in by_vendor.items():
        model = chains.chain_model(rows, pools.get(vendor_id, []), set())
        found = None if model is None else chains.relaxation_bound(model)
        if found is None:
            return None
        total += found
    return total


def _priced(plan: Plan, owner: dict[uuid.UUID, uuid.UUID], needs: list[Need], pool: list[Candidate]) -> Plan:
    by_need = {n.booking_id: n for n in needs}
    by_id = {c.therapist_id: c for c in pool}
    for booking_id, therapist_id in owner.items():
        need = by_need[booking_id]
        plan.picks[booking_id] = Pick(booking_id, therapist_id, 0.0, False, score(need, by_id[therapist_id]))
    return settle_travel(plan, needs, pool)


class _Day:
    """One vendor's day under local search: who takes which booking, each therapist's bookings and
    their cost (preferences passed over, km), priced exactly as `settle_travel` prices a plan."""

    def __init__(self, needs: list[Need], pool: list[Candidate], preferable: set[uuid.UUID]) -> None:
        self.needs, self.pool = needs, pool
        self.by_id = {c.therapist_id: c for c in pool}
        self.planned = {n.booking_id: planned_engagement(n) for n in needs}
        self.preferable = preferable  # bookings with an eligible preferred therapist before the batch
        self.static: dict[tuple[int, int], bool] = {}  # keyed by id(): hashing UUIDs dominated the search
        self.apart: dict[tuple[int, int], bool] = {}
        self.distances: dict[tuple[int, int], float] = {}
        self.ends = {id(n): n.ends_at for n in needs}
        self.wants_preferred = {id(n) for n in needs if n.booking_id in preferable}
        self.times = {id(n): (n.starts_at, n.starts_at - dt.timedelta(minutes=n.start_minute)) for n in needs}
        self.taken: dict[uuid.UUID, list[Need]] = defaultdict(list)
        self.cost: dict[uuid.UUID, tuple[int, float]] = {}

    def allowed(self, need: Need, candidate: Candidate) -> bool:
        """Every rule but the batch's own clashes (those `fits` checks against the chain)."""
        key = (id(need), id(candidate))
        found = self.static.get(key)
        if found is None:
            found = self.static[key] = excluded_by(need, candidate) is None
        return found

    def fits(self, need: Need, candidate: Candidate, chain: list[Need]) -> bool:
        if not self.allowed(need, candidate):
            return False
        return all(self.compatible(need, other) for other in chain)

    def compatible(self, need: Need, other: Need) -> bool:
        """Whether one therapist can take both (the rules' clash test, both ways): the same for
        every therapist, so computed once per pair."""
        key = (id(need), id(other)) if id(need) < id(other) else (id(other), id(need))
        found = self.apart.get(key)
        if found is None:
            found = self.apart[key] = (clash(need, [self.planned[other.booking_id]]) is None
                                       and clash(other, [self.planned[need.booking_id]]) is None)
        return found

    def price(self, candidate: Candidate, chain: list[Need]) -> tuple[int, float]:
        """`origin_of` and `score`'s travel, summed over the chain, with times and distances cached."""
        missed, km = 0, 0.0
        for need in chain:
            starts, day_start = self.times[id(need)]
            latest: dt.datetime | None = None
            origin = candidate.position
            for engagement in candidate.engagements:
                if (engagement.location is not None and day_start <= engagement.ends_at <= starts
                        and (latest is None or engagement.ends_at > latest)):
                    latest, origin = engagement.ends_at, engagement.location
            for other in chain:
                ends = self.ends[id(other)]
                if other is not need and day_start <= ends <= starts and (latest is None or ends > latest):
                    latest, origin = ends, other.location
            km += self.km(origin, need.location)
            if id(need) in self.wants_preferred:
                missed += candidate.therapist_id not in need.preferred
        return missed, km

    def km(self, origin: Point | None, place: Point | None) -> float:
        if origin is None or place is None:
            return distance_or_unknown(None)
        key = (id(origin), id(place))
        found = self.distances.get(key)
        if found is None:
            found = self.distances[key] = haversine_km(origin, place)
        return found

    def priced(self, therapist_id: uuid.UUID) -> tuple[int, float]:
        found = self.cost.get(therapist_id)
        if found is None:
            found = self.cost[therapist_id] = self.price(self.by_id[therapist_id], self.taken[therapist_id])
        return found

    def set(self, therapist_id: uuid.UUID, chain: list[Need], cost: tuple[int, float]) -> None:
        self.taken[therapist_id], self.cost[therapist_id] = chain, cost


def _better(new: tuple[int, float], old: tuple[int, float]) -> bool:
    return new[0] < old[0] or (new[0] == old[0] and new[1] < old[1] - 1e-9)


def _add(a: tuple[int, float], b: tuple[int, float]) -> tuple[int, float]:
    return a[0] + b[0], a[1] + b[1]


def _local_search(day: _Day, owner: dict[uuid.UUID, uuid.UUID], rounds: int) -> None:
    """Local search: for each booking in turn, the best of moving it to another therapist or
    swapping it with a booking of another therapist, taken when it lowers (preferences passed
    over, km); passes over the day until one changes nothing or `rounds` are done."""
    allowed = {id(n): [c for c in day.pool if day.allowed(n, c)] for n in day.needs}
    for _ in range(rounds):
        improved = False
        for need in day.needs:
            a_id = owner.get(need.booking_id)
            if a_id is None:
                continue
            a = day.by_id[a_id]
            a_chain = [o for o in day.taken[a_id] if o is not need]
            a_without = day.price(a, a_chain)
            a_before = day.priced(a_id)
            best: tuple[tuple[int, float], Candidate, list[Need], tuple[int, float], list[Need],
                        tuple[int, float], Need | None] | None = None
            for b in allowed[id(need)]:
                b_id = b.therapist_id
                if b_id == a_id:
                    continue
                b_chain = day.taken[b_id]
                before = _add(a_before, day.priced(b_id))
                if all(day.compatible(need, o) for o in b_chain):  # move
                    b_new = [*b_chain, need]
                    b_cost = day.price(b, b_new)
                    total = _add(a_without, b_cost)
                    gain = (total[0] - before[0], total[1] - before[1])
                    if _better(total, before) and (best is None or _better(gain, best[0])):
                        best = (gain, b, a_chain, a_without, b_new, b_cost, None)
                for other in b_chain:  # swap
                    if not day.allowed(other, a) or not all(day.compatible(other, o) for o in a_chain):
                        continue
                    b_rest = [o for o in b_chain if o is not other]
                    if not all(day.compatible(need, o) for o in b_rest):
                        continue
                    a_new, b_new = [*a_chain, other], [*b_rest, need]
                    a_cost, b_cost = day.price(a, a_new), day.price(b, b_new)
                    total = _add(a_cost, b_cost)
                    gain = (total[0] - before[0], total[1] - before[1])
                    if _better(total, before) and (best is None or _better(gain, best[0])):
                        best = (gain, b, a_new, a_cost, b_new, b_cost, other)
            if best is not None:
                _, b, a_new, a_cost, b_new, b_cost, swapped = best
                day.set(a_id, a_new, a_cost)
                day.set(b.therapist_id, b_new, b_cost)
                owner[need.booking_id] = b.therapist_id
                if swapped is not None:
                    owner[swapped.booking_id] = a_id
                improved = True
        improved = _exchange_tails(day, owner) or improved
        if not improved:
            return


def _exchange_tails(day: _Day, owner: dict[uuid.UUID, uuid.UUID]) -> bool:
    """2-opt* between two therapists' days: from some start time on, each takes the other's later
    bookings (a whole day, or a tail moved to a therapist with nothing then). Taken when it lowers
    (preferences passed over, km)."""
    improved = False
    pool = day.pool
    for i, a in enumerate(pool):
        for b in pool[i + 1:]:
            a_chain, b_chain = day.taken[a.therapist_id], day.taken[b.therapist_id]
            if not a_chain and not b_chain:
                continue
            before = _add(day.priced(a.therapist_id), day.priced(b.therapist_id))
            for cut in sorted({day.times[id(n)][0] for n in (*a_chain, *b_chain)}):
                a_head = [n for n in a_chain if day.times[id(n)][0] < cut]
                b_head = [n for n in b_chain if day.times[id(n)][0] < cut]
                a_tail = [n for n in a_chain if day.times[id(n)][0] >= cut]
                b_tail = [n for n in b_chain if day.times[id(n)][0] >= cut]
                if not a_tail and not b_tail:
                    continue
                if not (all(day.allowed(n, b) for n in a_tail) and all(day.allowed(n, a) for n in b_tail)):
                    continue
                if not (all(day.compatible(n, o) for n in b_tail for o in a_head)
                        and all(day.compatible(n, o) for n in a_tail for o in b_head)):
                    continue
                a_new, b_new = [*a_head, *b_tail], [*b_head, *a_tail]
                a_cost, b_cost = day.price(a, a_new), day.price(b, b_new)
                if _better(_add(a_cost, b_cost), before):
                    day.set(a.therapist_id, a_new, a_cost)
                    day.set(b.therapist_id, b_new, b_cost)
                    for n in b_tail:
                        owner[n.booking_id] = a.therapist_id
                    for n in a_tail:
                        owner[n.booking_id] = b.therapist_id
                    improved = True
                    break
    return improved


def improve(plan: Plan, needs: Iterable[Need], candidates: Iterable[Candidate], *, rounds: int = 3) -> Plan:
    """The plan after local search (moves and swaps of bookings between a vendor's therapists under
    the same rules), first placing any booking left out that now fits somewhere. Never worse on the
    objective: a change is taken only when it lowers it."""
    needs, pool = list(needs), list(candidates)
    preferable = {n.booking_id for n in needs
                  if any(c.therapist_id in n.preferred and excluded_by(n, c) is None for c in pool)}
    owner = {p.booking_id: p.therapist_id for p in plan.picks.values()}
    by_vendor: dict[uuid.UUID, list[Need]] = defaultdict(list)
    for need in needs:
        by_vendor[need.vendor_id].append(need)
    pools = _by_vendor(pool)
    unassigned = set(plan.unassigned)
    for vendor_id, wanted in by_vendor.items():
        day = _Day(_ordered(wanted), pools.get(vendor_id, []), preferable)
        for need in day.needs:
            if need.booking_id in owner:
                day.taken[owner[need.booking_id]].append(need)
        for need in day.needs:  # a booking left out by the plan, where it now fits at least cost
            if need.booking_id not in unassigned:
                continue
            options = [(_add(day.price(c, [*day.taken[c.therapist_id], need]),
                             (-day.priced(c.therapist_id)[0], -day.priced(c.therapist_id)[1])), c)
                       for c in day.pool if day.fits(need, c, day.taken[c.therapist_id])]
            if options:
                _, chosen = min(options, key=lambda pair: (pair[0], str(pair[1].therapist_id)))
                day.set(chosen.therapist_id, [*day.taken[chosen.therapist_id], need],
                        day.price(chosen, [*day.taken[chosen.therapist_id], need]))
                owner[need.booking_id] = chosen.therapist_id
                unassigned.discard(need.booking_id)
        _local_search(day, owner, rounds)
    by_need = {n.booking_id: n for n in needs}
    by_id = {c.therapist_id: c for c in pool}
    better = Plan(plan.method, unassigned=[b for b in plan.unassigned if b in unassigned])
    for booking_id, therapist_id in owner.items():
        need = by_need[booking_id]
        better.picks[booking_id] = Pick(booking_id, therapist_id, 0.0, False, score(need, by_id[therapist_id]))
    better = settle_travel(better, needs, pool)
    return better if better.objective() <= plan.objective() else plan


Node = tuple[str, uuid.UUID, int]  # ("t", therapist, engagement index or -1) or ("b", booking, 0)


def _origins(rows: list[Need], pool: list[Candidate]) -> float:
    """The optimum (km) of the origins assignment of one vendor's bookings (see `travel_lower_bound`)."""
    eligible = [{c.therapist_id for c in pool if excluded_by(need, c) is None} for need in rows]
    columns: dict[Node, int] = {}
    arcs: list[dict[int, float]] = []
    for r, need in enumerate(rows):
        found: dict[int, float] = {}
        day_start = need.starts_at - dt.timedelta(minutes=need.start_minute)
        for candidate in pool:
            if candidate.therapist_id not in eligible[r]:
                continue
            before = [(e.ends_at, k) for k, e in enumerate(candidate.engagements)
                      if day_start <= e.ends_at <= need.starts_at and e.location is not None]
            if before:  # their latest assignment before it (as `origin_of` chooses)
                k = max(before, key=lambda pair: pair[0])[1]
                node: Node = ("t", candidate.therapist_id, k)
                place = candidate.engagements[k].location
            else:
                node, place = ("t", candidate.therapist_id, -1), candidate.position
            column = columns.setdefault(node, len(columns))
            km = distance_or_unknown(haversine_km(place, need.location) if place and need.location else None)
            found[column] = min(km, found.get(column, km))
        for q, earlier in enumerate(rows):
            if earlier.ends_at > need.starts_at or not eligible[q] & eligible[r]:
                continue
            # The rules' clash test: the earlier booking's busy period and the drive between them.
            between = haversine_km(earlier.location, need.location) if earlier.location and need.location else None
            if earlier.ends_at + dt.timedelta(minutes=gap_needed(between)) > need.starts_at:
                continue
            column = columns.setdefault(("b", earlier.booking_id, 0), len(columns))
            found[column] = distance_or_unknown(between)
        arcs.append(found)
    forbidden = 1e12
    cost = np.full((len(rows), max(1, len(columns))), forbidden)
    for r, found in enumerate(arcs):
        for column, km in found.items():
            cost[r, column] = km
    chosen_rows, chosen_columns = linear_sum_assignment(cost)
    return float(cost[chosen_rows, chosen_columns].sum())


def travel_lower_bound(needs: Iterable[Need], candidates: Iterable[Candidate], placed: Iterable[uuid.UUID]) -> float:
    """A lower bound (km) on the total travel of any sound plan placing exactly the bookings
    `placed`. Each booking's travel starts from one origin: its therapist's position, one of their
    existing assignments, or the previous booking of the batch they take; and each origin starts at
    most one booking (the next one in that therapist's day). Choosing origins under only those
    constraints (a booking may follow any earlier booking of its vendor far enough before it that
    some therapist may take both; eligibility along a chain and the chains of one therapist
    overlapping dropped) is a linear assignment whose optimum, solved exactly per vendor, no plan
    can beat."""
    pools = _by_vendor(candidates)
    by_vendor = _placed_by_vendor(needs, set(placed))
    return sum(_origins(rows, pools.get(vendor_id, [])) for vendor_id, rows in by_vendor.items())


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
