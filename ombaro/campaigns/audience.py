"""Who a campaign reaches: `target_audience` turned into SQL over customers and their profiles.

`target_audience` keys (all optional):

- `tier`: a membership tier or a list of them;
- `city`: a city or a list (the profile's address city, compared case-insensitively);
- `age_range`: `{"min": 25, "max": 40}` (or `[25, 40]`), ages in whole years on the platform's date;
- `days_since_last_booking`: `{"min": 60, "max": 365}`, days since the customer last made a booking
  that was not cancelled; customers who never booked are not in such an audience. The older
  `last_booking_days: N` means `{"min": N}` (a win-back audience);
- `customer_ids`: an explicit list, added to whoever the filters select (alone, it is the audience).

Counts shown to people (previews, the approval's spend guard and its stored estimate) never test
chosen people: explicit ids are not looked up but reported as `listed` (each counted as reachable
on every channel, an upper bound), the filters' audience is counted without them, and a count below
SMALL_COUNT is shown as "fewer than 10" (and costed as 9). See docs/security.md.

No key at all means every customer. Always: only active accounts (suspended and inactive ones
are left out), each customer once, and per channel only those who have not opted out of it
(`communication_preferences`: email, SMS, push and in-app unless set to false; WhatsApp only when
set to true, as WhatsApp requires an opt-in) and can be reached on it (push needs a device).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from ombaro.models.customers import MEMBERSHIP_TIERS

# Per channel: may the customer `c` (customers) with profile `p` (user_profiles) get it?
ELIGIBLE: dict[str, str] = {
    "email": "coalesce(c.communication_preferences ->> 'email', 'true') <> 'false'",
    "sms": "coalesce(c.communication_preferences ->> 'sms', 'true') <> 'false' AND p.mobile <> ''",
    "whatsapp": "c.communication_preferences ->> 'whatsapp' = 'true' AND p.mobile <> ''",
    "push": "coalesce(c.communication_preferences ->> 'push', 'true') <> 'false' AND EXISTS "
            "(SELECT 1 FROM push_devices AS pd WHERE pd.user_id = c.id AND pd.disabled_at IS NULL)",
    "in_app": "coalesce(c.communication_preferences ->> 'in_app', 'true') <> 'false'",
}
LOWEST_ID = uuid.UUID(int=0)


class InvalidTarget(ValueError):
    """`target_audience` cannot be understood: the message says which key."""


@dataclass(frozen=True)
class Target:
    tiers: tuple[str, ...] = ()
    cities: tuple[str, ...] = ()
    age_min: int | None = None
    age_max: int | None = None
    lapsed_min_days: int | None = None
    lapsed_max_days: int | None = None
    customer_ids: tuple[uuid.UUID, ...] = ()

    @property
    def filtered(self) -> bool:
        return bool(self.tiers or self.cities or self.age_min is not None or self.age_max is not None
                    or self.lapsed_min_days is not None or self.lapsed_max_days is not None)

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> Target:
        raw = raw or {}
        known = {"tier", "city", "age_range", "days_since_last_booking", "last_booking_days", "customer_ids"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidTarget(f"unknown target_audience keys {unknown}; known: {sorted(known)}")
        tiers = _texts(raw.get("tier"), "tier")
        bad = sorted(set(tiers) - set(MEMBERSHIP_TIERS))
        if bad:
            raise InvalidTarget(f"unknown tiers {bad}; tiers are {', '.join(MEMBERSHIP_TIERS)}")
        cities = tuple(c.strip().lower() for c in _texts(raw.get("city"), "city") if c.strip())
        age_min, age_max = _range(raw.get("age_range"), "age_range")
        lapsed_min, lapsed_max = _range(raw.get("days_since_last_booking"), "days_since_last_booking")
        if raw.get("last_booking_days") is not None:
            if lapsed_min is not None:
                raise InvalidTarget("give days_since_last_booking or last_booking_days, not both")
            lapsed_min, _ = _range({"min": raw["last_booking_days"]}, "last_booking_days")
        try:
            ids = tuple(dict.fromkeys(uuid.UUID(str(i)) for i in raw.get("customer_ids") or ()))
        except (ValueError, TypeError) as exc:
            raise InvalidTarget("customer_ids must be a list of customer ids (UUIDs)") from exc
        return cls(tuple(dict.fromkeys(tiers)), tuple(dict.fromkeys(cities)), age_min, age_max, lapsed_min,
                   lapsed_max, ids)


def _texts(value: Any, key: str) -> tuple[str, ...]:
    if value is None or value == []:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidTarget(f"{key} must be text or a list of text")


def _range(value: Any, key: str) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        low, high = value
    elif isinstance(value, Mapping) and set(value) <= {"min", "max"}:
        low, high = value.get("min"), value.get("max")
    else:
        raise InvalidTarget(f"{key} must be {{\"min\": n, \"max\": n}}")
    for bound in (low, high):
        if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool) or bound < 0):
            raise InvalidTarget(f"{key} bounds must be whole numbers >= 0")
    if low is not None and high is not None and low > high:
        raise InvalidTarget(f"{key}: min is above max")
    return low, high


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


def audience_where(target: Target, *, today: dt.date, now: dt.datetime, params: dict[str, Any]) -> str:
    """The WHERE condition over `c` (customers) and `p` (user_profiles); fills `params`."""
    filters: list[str] = []
    if target.tiers:
        filters.append("c.membership_tier = ANY(CAST(:aud_tiers AS text[]))")
        params["aud_tiers"] = list(target.tiers)
    if target.cities:
        filters.append("lower(p.address ->> 'city') = ANY(CAST(:aud_cities AS text[]))")
        params["aud_cities"] = list(target.cities)
    if target.age_min is not None:  # at least age_min years old today
        filters.append("p.date_of_birth <= :aud_born_by")
        params["aud_born_by"] = _years_before(today, target.age_min)
    if target.age_max is not None:  # not yet age_max + 1
        filters.append("p.date_of_birth > :aud_born_after")
        params["aud_born_after"] = _years_before(today, target.age_max + 1)
    if target.lapsed_min_days is not None or target.lapsed_max_days is not None:
        last = ("(SELECT max(b.created_at) FROM bookings AS b "
                "WHERE b.customer_id = c.id AND b.status <> 'cancelled')")
        if target.lapsed_min_days is not None:
            filters.append(f"{last} <= :aud_lapsed_since")
            params["aud_lapsed_since"] = now - dt.timedelta(days=target.lapsed_min_days)
        if target.lapsed_max_days is not None:
            filters.append(f"{last} >= :aud_lapsed_within")
            params["aud_lapsed_within"] = now - dt.timedelta(days=target.lapsed_max_days)
    chosen = "true"
    if filters and target.customer_ids:
        chosen = f"(({' AND '.join(filters)}) OR c.id = ANY(CAST(:aud_ids AS uuid[])))"
    elif filters:
        chosen = f"({' AND '.join(filters)})"
    elif target.customer_ids:
        chosen = "c.id = ANY(CAST(:aud_ids AS uuid[]))"
    if target.customer_ids:
        params["aud_ids"] = list(target.customer_ids)
    return f"p.status = 'active' AND {chosen}"


def eligible_any(channels: Sequence[str]) -> str:
    return "(" + " OR ".join(f"({ELIGIBLE[ch]})" for ch in channels) + ")"


def eligible_case(column: str, channels: Sequence[str]) -> str:
    """A condition true when the customer may get the channel named by `column`."""
    whens = " ".join(f"WHEN '{ch}' THEN ({ELIGIBLE[ch]})" for ch in channels)
    return f"(CASE {column} {whens} ELSE false END)"


FROM_CUSTOMERS = "customers AS c JOIN user_profiles AS p ON p.id = c.id"


def count_by_channel(session: Session, target: Target, channels: Sequence[str], *, today: dt.date,
                     now: dt.datetime) -> dict[str, int]:
    """How many customers each channel reaches, and `customers`: how many get at least one."""
    params: dict[str, Any] = {}
    where = audience_where(target, today=today, now=now, params=params)
    columns = ", ".join(f"count(*) FILTER (WHERE {ELIGIBLE[ch]}) AS {ch}" for ch in channels)
    row = session.execute(text(
        f"SELECT {columns}, count(*) FILTER (WHERE {eligible_any(channels)}) AS customers "
        f"FROM {FROM_CUSTOMERS} WHERE {where}"), params).mappings().one()
    return {key: int(value) for key, value in row.items()}


@dataclass(frozen=True)
class Estimate:
    counts: dict[str, int]
    unit_costs: dict[str, Decimal]
    costs: dict[str, Decimal]
    total: Decimal
    shown: dict[str, int | str] | None = None  # what people see instead of `counts` (preview_estimate)
    listed: int = 0

    def as_dict(self) -> dict[str, Any]:
        shown: Mapping[str, int | str] = self.shown if self.shown is not None else self.counts
        return {"customers": shown.get("customers", 0), "listed": self.listed,
                "channels": {ch: {"recipients": shown[ch], "unit_cost": str(self.unit_costs[ch]),
                                  "cost": str(self.costs[ch])} for ch in self.costs},
                "total_cost": str(self.total)}


SMALL_COUNT = 10


@dataclass(frozen=True)
class Counted:
    """What a preview may count of an audience: its filters' audience (exact), and how many explicit
    ids were listed (never looked up). `counted` is False when there are only ids."""

    counts: dict[str, int]
    listed: int = 0
    counted: bool = True


def preview_counts(session: Session, target: Target, channels: Sequence[str], *, today: dt.date,
                   now: dt.datetime) -> Counted:
    """Counts that cannot tell whether a chosen customer matches a filter, is active or opted out:
    the explicit ids are not part of any count (a union of ids with a filter would be one)."""
    listed = len(target.customer_ids)
    if listed and not target.filtered:
        return Counted(dict.fromkeys([*channels, "customers"], 0), listed, counted=False)
    exact = count_by_channel(session, replace(target, customer_ids=()), channels, today=today, now=now)
    return Counted(exact, listed)


def shown_count(count: int) -> int | str:
    return count if count >= SMALL_COUNT else f"fewer than {SMALL_COUNT}"


def preview_estimate(found: Counted, unit_costs: Mapping[str, Decimal], channels: Sequence[str]) -> Estimate:
    """The figures people see and the spend guard decides on: small counts as a floor (costed at
    its upper bound), listed ids added as reachable on every channel. Never below the real spend."""
    def bound(count: int) -> int:
        if not found.counted:
            return found.listed
        return (count if count >= SMALL_COUNT else SMALL_COUNT - 1) + found.listed

    shown: dict[str, int | str] = {key: shown_count(value) if found.counted else 0
                                   for key, value in found.counts.items()}
    exact = estimate({key: bound(value) for key, value in found.counts.items()}, unit_costs, channels)
    return replace(exact, shown=shown, listed=found.listed)


def estimate(counts: Mapping[str, int], unit_costs: Mapping[str, Decimal], channels: Sequence[str]) -> Estimate:
    """Cost per channel = recipients x unit cost, rounded half-up to the paisa once per channel;
    the total is the sum of those lines."""
    costs = {ch: (Decimal(counts[ch]) * unit_costs[ch]).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
             for ch in channels}
    return Estimate(dict(counts), {ch: unit_costs[ch] for ch in channels}, costs, sum(costs.values(), Decimal("0.00")))
