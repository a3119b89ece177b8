"""Exact batch matching per vendor, as an integer program over therapists' chains of bookings.

Booking times are fixed, so a therapist's day is a chain of bookings in time order, and the plan's
travel (as `settle_travel` prices it) is a sum over arcs: from where the chain sets out (the
therapist's position, or the place of their latest existing assignment before it: each existing
assignment with a place starts a new chain, a "vehicle") to its first booking, then from each
booking to the next. Two bookings may follow each other on one chain when the rules' clash test
passes between them (the gap needed grows with the distance and is subadditive, so consecutive
pairs passing implies every pair passing; `violations` checks the decoded plan anyway).

Vehicles whose eligible bookings (and preferred-therapist bookings) are the same share one copy of
the booking-to-booking arcs (a commodity), which keeps the model small: one vendor's day of ~100
bookings and ~100 therapists is tens of thousands of 0/1 arcs, which HiGHS (SciPy's `milp`)
solves in seconds, and whose linear relaxation is a lower bound on the travel of any sound plan
placing the same bookings.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import csr_array

from ombaro.dispatch.rules import Candidate, Need, clash, distance_or_unknown, excluded_by, planned_engagement
from ombaro.geo import Point, haversine_km


def _km(origin: Point | None, place: Point | None) -> float:
    return distance_or_unknown(haversine_km(origin, place) if origin is not None and place is not None else None)


@dataclass
class ChainModel:
    """One vendor's chain model: arcs (columns) with their km, and the rows binding them."""

    rows: list[Need]
    cost: list[float] = field(default_factory=list)
    # per column: (therapist id, first booking index) for an arc out of a vehicle, or
    # (None, from booking index) for an arc between bookings; plus the commodity and the target
    starts: list[tuple[uuid.UUID | None, int, int, int]] = field(default_factory=list)
    cover: list[list[int]] = field(default_factory=list)  # per booking: the arcs into it
    flow: list[tuple[list[int], list[int]]] = field(default_factory=list)  # (out arcs, in arcs)
    vehicles: list[list[int]] = field(default_factory=list)  # arcs out of each vehicle
    missed: list[int] = field(default_factory=list)  # arcs into a preferable booking from a non-preferred
    vehicle_arcs: dict[tuple[uuid.UUID, int], tuple[int, int, int]] = field(default_factory=dict)
    between_arcs: dict[tuple[int, int, int], int] = field(default_factory=dict)  # (commodity, from, to)

    def constraints(self, max_missed: int | None) -> tuple[csr_array, np.ndarray, np.ndarray]:
        data: list[float] = []
        row_of: list[int] = []
        col_of: list[int] = []
        lower: list[float] = []
        upper: list[float] = []

        def add(columns: Iterable[tuple[int, float]], lo: float, hi: float) -> None:
            r = len(lower)
            for column, value in columns:
                row_of.append(r)
                col_of.append(column)
                data.append(value)
            lower.append(lo)
            upper.append(hi)

        for arcs in self.cover:
            add(((a, 1.0) for a in arcs), 1.0, 1.0)
        for outs, ins in self.flow:
            add([*((a, 1.0) for a in outs), *((a, -1.0) for a in ins)], -np.inf, 0.0)
        for arcs in self.vehicles:
            if len(arcs) > 1:
                add(((a, 1.0) for a in arcs), 0.0, 1.0)
        if max_missed is not None and self.missed:
            add(((a, 1.0) for a in self.missed), 0.0, float(max_missed))
        matrix = csr_array((data, (row_of, col_of)), shape=(len(lower), len(self.cost)))
        return matrix, np.array(lower), np.array(upper)


def chain_model(rows: list[Need], pool: list[Candidate], preferable: set[uuid.UUID]) -> ChainModel | None:
    """The model of placing exactly `rows` (one vendor's bookings) with `pool` (its therapists), or
    None when some booking has no eligible therapist at all."""
    rows = sorted(rows, key=lambda n: (n.starts_at, n.booking_number, str(n.booking_id)))
    model = ChainModel(rows)
    n = len(rows)
    planned = [planned_engagement(need) for need in rows]
    # vehicle key -> (therapist, origin, eligible booking indices)
    vehicles: dict[tuple[int, int], tuple[Candidate, Point | None, list[int]]] = {}
    for c_index, candidate in enumerate(pool):
        for j, need in enumerate(rows):
            if excluded_by(need, candidate) is not None:
                continue
            day_start = need.starts_at - dt.timedelta(minutes=need.start_minute)
            segment, latest, origin = -1, None, candidate.position
            for k, engagement in enumerate(candidate.engagements):  # as `origin_of` chooses
                if (engagement.location is not None and day_start <= engagement.ends_at <= need.starts_at
                        and (latest is None or engagement.ends_at > latest)):
                    segment, latest, origin = k, engagement.ends_at, engagement.location
            vehicles.setdefault((c_index, segment), (candidate, origin, []))[2].append(j)
    commodities: dict[tuple[frozenset[int], frozenset[int]],
                      list[tuple[Candidate, Point | None, int]]] = defaultdict(list)
    for (_, segment), (candidate, origin, eligible) in vehicles.items():
        preferred = frozenset(j for j in eligible if candidate.therapist_id in rows[j].preferred)
        commodities[(frozenset(eligible), preferred)].append((candidate, origin, segment))
    follows: dict[tuple[int, int], bool] = {}

    def may_follow(i: int, j: int) -> bool:
        found = follows.get((i, j))
        if found is None:
            found = follows[(i, j)] = (rows[i].ends_at <= rows[j].starts_at
                                       and clash(rows[j], [planned[i]]) is None
                                       and clash(rows[i], [planned[j]]) is None)
        return found

    between: dict[tuple[int, int], float] = {}
    cover: list[list[int]] = [[] for _ in range(n)]
    for commodity, ((eligible_set, preferred), members) in enumerate(commodities.items()):
        eligible = sorted(eligible_set)
        into: dict[int, list[int]] = defaultdict(list)
        out: dict[int, list[int]] = defaultdict(list)
        for candidate, origin, segment in members:
            arcs = []
            for j in eligible:
                column = len(model.cost)
                model.cost.append(_km(origin, rows[j].location))
                model.starts.append((candidate.therapist_id, -1, commodity, j))
                model.vehicle_arcs[(candidate.therapist_id, j)] = (column, commodity, segment)
                arcs.append(column)
                into[j].append(column)
            model.vehicles.append(arcs)
        for a, i in enumerate(eligible):
            for j in eligible[a + 1:]:
                if not may_follow(i, j):
                    continue
                km = between.get((i, j))
                if km is None:
                    km = between[(i, j)] = _km(rows[i].location, rows[j].location)
                column = len(model.cost)
                model.cost.append(km)
                model.starts.append((None, i, commodity, j))
                model.between_arcs[(commodity, i, j)] = column
                out[i].append(column)
                into[j].append(column)
        for j in eligible:
            cover[j].extend(into[j])
            if out[j]:
                model.flow.append((out[j], into[j]))
            if rows[j].booking_id in preferable and j not in preferred:
                model.missed.extend(into[j])
    if any(not arcs for arcs in cover):
        return None
    model.cover = cover
    return model


@dataclass(frozen=True)
class Optimised:
    owner: dict[uuid.UUID, uuid.UUID] | None  # booking -> therapist; None when no plan was found in time
    bound_km: float | None  # the linear relaxation's optimum: no sound plan placing these bookings travels less


# Arcs whose reduced cost in the linear relaxation exceeds this (km) are left out of the integer
# program: on the bench's input the relaxation is integral or nearly so, and the integer optimum
# over the arcs within 1 km of it equalled the full program's (which takes 10-100x longer).
REDUCED_COST_KM = 1.0


def _relaxation(model: ChainModel, max_missed: int | None) -> Any:
    matrix, lower, upper = model.constraints(max_missed)
    equal = lower == upper
    return linprog(np.array(model.cost), A_ub=matrix[~equal], b_ub=upper[~equal], A_eq=matrix[equal],
                   b_eq=lower[equal], bounds=(0, None), method="highs")


def optimise(model: ChainModel, current: dict[uuid.UUID, uuid.UUID], *, max_missed: int | None,
             time_limit: float) -> Optimised:
    """The least-travel plan of the model's bookings (at most `max_missed` preferable bookings given to a
    non-preferred therapist), searched among the arcs the linear relaxation prices within
    `REDUCED_COST_KM` of its optimum plus the arcs of the `current` plan (booking -> therapist), so the
    integer program always has a solution at least as good as the current plan."""
    relaxed = _relaxation(model, None)
    bound = float(relaxed.fun) if relaxed.status == 0 else None
    if max_missed is not None and model.missed:
        relaxed = _relaxation(model, max_missed)
    if relaxed.status != 0:
        return Optimised(None, bound)
    keep = set(np.flatnonzero(relaxed.lower.marginals <= REDUCED_COST_KM + 1e-9).tolist())
    mine: dict[uuid.UUID, list[int]] = defaultdict(list)
    index = {need.booking_id: j for j, need in enumerate(model.rows)}
    for booking_id, therapist_id in current.items():
        if booking_id in index:
            mine[therapist_id].append(index[booking_id])
    for therapist_id, chain in mine.items():
        previous: tuple[int, int, int] | None = None  # (booking, commodity, segment)
        for j in sorted(chain):  # rows are in time order
            arc = model.vehicle_arcs.get((therapist_id, j))
            if arc is None:
                return Optimised(None, bound)  # the current plan is not in the model: leave it
            column, commodity, segment = arc
            if previous is not None and previous[2] == segment:
                column = model.between_arcs.get((commodity, previous[0], j), -1)
                if column < 0:
                    return Optimised(None, bound)
            keep.add(column)
            previous = (j, commodity, segment)
    columns = np.array(sorted(keep))
    matrix, lower, upper = model.constraints(max_missed)
    cost = np.array(model.cost)[columns]
    result = milp(cost, constraints=LinearConstraint(matrix[:, columns], lower, upper),
                  integrality=np.ones(len(columns), dtype=np.int64), bounds=Bounds(0, 1),
                  options={"time_limit": max(0.1, time_limit), "mip_rel_gap": 1e-6})
    if result.x is None:
        return Optimised(None, bound)
    chosen = columns[np.flatnonzero(result.x > 0.5)]
    successor: dict[tuple[int, int], int] = {}
    firsts: list[tuple[uuid.UUID, int, int]] = []
    for column in chosen:
        therapist, origin, commodity, target = model.starts[column]
        if therapist is None:
            successor[(commodity, origin)] = target
        else:
            firsts.append((therapist, commodity, target))
    owner: dict[uuid.UUID, uuid.UUID] = {}
    for therapist, commodity, target in firsts:
        at: int | None = target
        while at is not None:
            owner[model.rows[at].booking_id] = therapist
            at = successor.get((commodity, at))
    if len(owner) != len(model.rows):  # not decomposable into chains: do not use it
        return Optimised(None, bound)
    return Optimised(owner, bound)


def relaxation_bound(model: ChainModel) -> float | None:
    """The linear relaxation's optimum (km): no sound plan placing the model's bookings travels less."""
    relaxed = _relaxation(model, None)
    return float(relaxed.fun) if relaxed.status == 0 else None
