"""The builder's shared state and helpers (ids, clocks, people, addresses, accounts)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from devtools.demo.reference import (
    BUILDINGS,
    CITIES,
    FEMALE_FIRST,
    HISTORY_DAYS,
    LANDMARKS,
    MALE_FIRST,
    PLATFORM_ZONE,
    STREETS,
    SURNAMES,
    UNUSABLE_PASSWORD,
    UTC,
    Customer,
    Employee,
    Promotion,
    Row,
    Vendor,
)


def new_uid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def clock_time(minutes: int) -> dt.time:
    return dt.time(minutes // 60, minutes % 60)


def ascii_name(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def weighted(rng: random.Random, pairs: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


class BuilderBase:
    """The state every section builds on and the helpers they share; each section is a mixin
    of its own module, and `devtools.demo.seed.Builder` puts them together."""

    def __init__(self, seed: int, today: dt.date, scale: float) -> None:
        self.seed = seed
        self.today = today
        self.scale = scale
        self.anchor = self.at(today, 23 * 60)
        self.first_day = today - dt.timedelta(days=HISTORY_DAYS - 1)
        self.rows: dict[str, list[Row]] = defaultdict(list)
        self._emails: set[str] = set()
        self._mobiles: set[str] = set()
        self._codes: set[str] = set()
        self.services: dict[str, Row] = {}
        self.addons: list[Row] = []
        self.vendors: list[Vendor] = []
        self.customers: list[Customer] = []
        self.employees: list[Employee] = []
        self.promotions: list[Promotion] = []
        # One draft per booking: its row plus items, assignments, payments and the plan behind them.
        self.bookings: list[Row] = []


    def rng(self, section: str) -> random.Random:
        # A string seed is hashed with SHA-512 by random.Random: stable across processes.
        return random.Random(f"{self.seed}:{section}")

    def account_number(self, owner: uuid.UUID, last4: int) -> str:
        """A 12-digit account number (the bank file takes 9 to 18 digits) ending in `last4`; the
        leading digits come from the owner's own stream, so the section's stream does not move."""
        return f"{self.rng(f'account:{owner}').randrange(10**7, 10**8)}{last4:04d}"

    def staff_of(self, department: str) -> list[Employee]:
        """The employees of a department still with the company (StaffSection builds them)."""
        return [e for e in self.employees if e.department == department and e.last_day is None]

    def count(self, at_full_scale: int, minimum: int) -> int:
        return max(minimum, round(at_full_scale * self.scale))

    @staticmethod
    def at(day: dt.date, minutes: int) -> dt.datetime:
        """A platform-zone wall clock (minutes after midnight on `day`) as a UTC instant."""
        local = dt.datetime.combine(day, dt.time(0, 0), tzinfo=PLATFORM_ZONE) + dt.timedelta(minutes=minutes)
        return local.astimezone(UTC)

    def days_ago(self, rng: random.Random, low: int, high: int) -> dt.datetime:
        """A UTC instant between `high` and `low` days before the anchor, whole seconds."""
        seconds = rng.randint(low * 86400, high * 86400)
        return self.anchor - dt.timedelta(seconds=seconds)

    def mobile(self, rng: random.Random) -> str:
        while True:
            number = f"+91{rng.choice('6789')}{rng.randrange(10**9):09d}"
            if number not in self._mobiles:
                self._mobiles.add(number)
                return number

    def email(self, local: str, domain: str) -> str:
        candidate, n = f"{local}@{domain}", 1
        while candidate in self._emails:
            n += 1
            candidate = f"{local}{n}@{domain}"
        self._emails.add(candidate)
        return candidate

    def unique_code(self, rng: random.Random, prefix: str, length: int) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out over the phone
        while True:
            code = prefix + "".join(rng.choice(alphabet) for _ in range(length))
            if code not in self._codes:
                self._codes.add(code)
                return code

    def person(self, rng: random.Random, *, female: bool, surnames: Sequence[str] = SURNAMES) -> str:
        return f"{rng.choice(FEMALE_FIRST if female else MALE_FIRST)} {rng.choice(surnames)}"

    def point_near(self, rng: random.Random, city: str, spread: float) -> tuple[Decimal, Decimal]:
        c = CITIES[city]
        lat = c.latitude + rng.uniform(-spread, spread)
        lon = c.longitude + rng.uniform(-spread, spread)
        return Decimal(f"{lat:.6f}"), Decimal(f"{lon:.6f}")

    def street_address(self, rng: random.Random, city: str) -> dict[str, Any]:
        locality, pincode = rng.choice(CITIES[city].localities)
        lat, lon = self.point_near(rng, city, 0.12)
        return {
            "line1": f"{rng.choice(('Flat', 'Flat', 'House No.', 'Apt'))} "
                     f"{rng.randint(1, 30)}{rng.randint(1, 12):02d}, {rng.choice(BUILDINGS)}",
            "line2": f"{rng.choice(STREETS)}, {locality}",
            "landmark": rng.choice(LANDMARKS),
            "locality": locality,
            "city": city,
            "state": CITIES[city].state,
            "pincode": pincode,
            "latitude": lat,
            "longitude": lon,
        }

    def add_user(self, rng: random.Random, *, user_id: uuid.UUID, email: str, name: str, mobile: str,
                 role: str, gender: str | None, created_at: dt.datetime, address: dict[str, Any] | None,
                 department: str | None = None, dob: dt.date | None = None, status: str = "active",
                 confirmed: bool = True) -> None:
        """auth.users + user_profiles: every person who can sign in has both."""
        app_meta: dict[str, Any] = {"provider": "email", "providers": ["email"], "role": role}
        if department:
            app_meta["department"] = department
        last_seen = min(self.anchor, created_at + dt.timedelta(seconds=rng.randint(0, 400 * 86400)))
        self.rows["auth.users"].append({
            "id": user_id,
            "email": email,
            "encrypted_password": UNUSABLE_PASSWORD,
            "email_confirmed_at": created_at + dt.timedelta(minutes=rng.randint(1, 90)) if confirmed else None,
            "last_sign_in_at": last_seen if confirmed else None,
            "raw_app_meta_data": app_meta,
            "raw_user_meta_data": {"name": name, "mobile": mobile},
            "created_at": created_at,
            "updated_at": last_seen,
        })
        self.rows["user_profiles"].append({
            "id": user_id,
            "name": name,
            "mobile": mobile,
            "gender": gender,
            "date_of_birth": dob,
            "role": role,
            "status": status,
            "address": address,
            "preferences": {"language": "en", "theme": "light"},
            "created_at": created_at,
            "updated_at": created_at,
        })

