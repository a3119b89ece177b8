"""The demo rows are pinned: `build_demo` at a fixed seed, day, scale and data key gives exactly these
rows per table (count and a digest of every column of every row). Moving or splitting the demo code
must not change them; a deliberate change to the data set updates DIGESTS (print them with
`print_digests()` below) and says so in its commit.

Every time the builder sees is derived from TODAY, passed explicitly: the fixed date is not the clock."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from devtools.demo import build_demo

SEED = 20261126
TODAY = dt.date(2026, 11, 26)
SCALE = 0.05
KEYS = {"test": bytes(32)}  # bank details are sealed; a fixed key makes the sealed values fixed too

# table: (rows, first 16 hex digits of the SHA-256 of the rows as sorted-key JSON), taken from
# ombaro/demo.py before it moved to devtools/demo/.
DIGESTS = {
    "addon_services": (8, "2e38981fed21b8e1"),
    "analytics_events": (2478, "1edce0a63b61dfe5"),
    "attendance_records": (693, "f1f686158d4b37d2"),
    "auth.users": (187, "5aba73b1da43098d"),
    "booking_items": (1208, "7e137a8d59feb4da"),
    "bookings": (1044, "9f141465372fc4e0"),
    "campaigns": (5, "f04eac1500127221"),
    "compensation_structures": (9, "37935bf24f9f59a3"),
    "customer_addresses": (209, "aa00ab525284b2fc"),
    "customers": (150, "f2f513ccdffc32b3"),
    "employees": (9, "bc926e9c57215082"),
    "leave_requests": (4, "bb72eabb95e58c87"),
    "loyalty_transactions": (908, "d370797ff6dd1da1"),
    "notifications": (136, "90b0fdf035a99e94"),
    "payments": (989, "5b012adcfc653c4e"),
    "promotion_usage": (111, "490c6cc066be43b8"),
    "promotions": (6, "9c57a6b5539d5066"),
    "reviews": (84, "26ef83261331ea12"),
    "service_packages": (4, "9afaf15544357b70"),
    "services": (16, "a68132cdd256994b"),
    "support_tickets": (3, "51a206a587df845c"),
    "therapist_assignments": (1086, "641155faaa877c73"),
    "therapist_locations": (66, "189ee3f5ea0626d9"),
    "therapist_schedules": (146, "784c03cca473f11b"),
    "therapists": (26, "35f7c70e81a4b3e0"),
    "ticket_messages": (8, "44ca679b23dfc555"),
    "user_profiles": (187, "ef6207ad2b139bfc"),
    "vendors": (2, "14bc9bb6e89edf7b"),
}


def digests() -> dict[str, tuple[int, str]]:
    rows = build_demo(seed=SEED, today=TODAY, scale=SCALE, data_keys=KEYS, data_key_id="test")
    return {table: (len(found), hashlib.sha256(json.dumps(found, sort_keys=True, default=str).encode())
                    .hexdigest()[:16]) for table, found in rows.items() if found}


def print_digests() -> None:  # pragma: no cover - a tool for updating DIGESTS on purpose
    for table, pinned in sorted(digests().items()):
        print(f"    {table!r}: {pinned},")


def test_the_demo_rows_are_the_pinned_ones() -> None:
    found = digests()
    changed = {t: (DIGESTS.get(t), found.get(t)) for t in DIGESTS.keys() | found.keys()
               if DIGESTS.get(t) != found.get(t)}
    assert not changed, f"demo rows changed (pinned, now): {changed}"


def test_another_seed_changes_the_digests() -> None:
    """The pin can fail: one seed more and the people and bookings are others."""
    rows = build_demo(seed=SEED + 1, today=TODAY, scale=SCALE, data_keys=KEYS, data_key_id="test")
    other = hashlib.sha256(json.dumps(rows["bookings"], sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert other != DIGESTS["bookings"][1]
