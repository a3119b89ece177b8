"""Putting the sections together: build every row in memory, seal bank details, insert table by
table in foreign-key order."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping

import sqlalchemy as sa

from devtools.demo.bookings import BookingsSection
from devtools.demo.catalogue import CatalogueSection
from devtools.demo.customers import CustomersSection
from devtools.demo.engagement import EngagementSection
from devtools.demo.feedback import FeedbackSection
from devtools.demo.hr import HrSection
from devtools.demo.marketing import MarketingSection
from devtools.demo.payments import PaymentsSection
from devtools.demo.reference import (
    BATCH_ROWS,
    PLATFORM_ZONE,
    Row,
)
from devtools.demo.staff import StaffSection
from devtools.demo.vendors import VendorsSection
from ombaro.config import load_data_keys
from ombaro.identity import crypto


class Builder(CatalogueSection, StaffSection, VendorsSection, CustomersSection, MarketingSection, BookingsSection,
              PaymentsSection, FeedbackSection, HrSection, EngagementSection):
    """Every section of the demo set; `build_demo` runs them in order."""


TABLE_ORDER = (
    "auth.users", "user_profiles", "services", "addon_services", "service_packages", "employees",
    "compensation_structures", "vendors", "vendor_staff", "therapists", "therapist_schedules", "therapist_leaves",
    "therapist_locations",
    "customers", "customer_addresses", "promotions", "campaigns", "bookings", "booking_items",
    "therapist_assignments", "payments", "promotion_usage", "reviews", "loyalty_transactions",
    "leave_requests", "attendance_records", "support_tickets", "ticket_messages", "notifications",
    "analytics_events",
)


def _tables() -> dict[str, sa.Table]:
    from ombaro.models import Base  # registers every model on Base.metadata

    return dict(Base.metadata.tables)


def _analytics_insertable(conn: sa.Connection) -> bool:
    """analytics_events is range-partitioned; rows land only if a partition takes them (the default one)."""
    found = conn.execute(sa.text(
        "SELECT c.relkind, coalesce(p.partdefid, 0) <> 0 FROM pg_class c "
        "LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid "
        "WHERE c.oid = to_regclass('analytics_events')")).first()
    if found is None:
        return False
    kind, has_default = found
    return kind == "r" or bool(has_default)


def _insert(conn: sa.Connection, table: sa.Table, rows: list[Row]) -> None:
    # A JSON column given None would store JSON 'null'; leave the key out so the column is SQL NULL
    # (or its default). executemany needs one key set per statement, hence the grouping.
    json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        clean = {k: v for k, v in row.items() if not (v is None and k in json_columns)}
        groups.setdefault(tuple(clean), []).append(clean)
    statement = sa.insert(table)
    for group in groups.values():
        for start in range(0, len(group), BATCH_ROWS):
            conn.execute(statement, group[start:start + BATCH_ROWS])


# The sections in the order they build: later ones read what earlier ones made (therapists need
# vendors, bookings need both and customers, feedback and HR follow from bookings and employees).
STEPS = ("catalogue", "employees", "vendors", "therapists", "customers", "marketing", "bookings", "feedback", "hr",
         "support", "notifications", "analytics")


def build_demo(
    *,
    seed: int = 20261126,
    today: dt.date,
    scale: float = 1.0,
    data_keys: Mapping[str, bytes] | None = None,
    data_key_id: str | None = None,
) -> dict[str, list[Row]]:
    """Every row of the demo set, in memory, per table (bank details sealed). Same seed, today,
    scale and data key give identical rows."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    builder = Builder(seed, today, scale)
    for step in STEPS:
        getattr(builder, f"build_{step}")()
    if data_keys is None or data_key_id is None:
        data_keys, data_key_id = load_data_keys()
    _seal_bank_details(builder.rows, data_keys, data_key_id)
    return builder.rows


def seed_demo(
    conn: sa.Connection,
    *,
    seed: int = 20261126,
    today: dt.date | None = None,
    scale: float = 1.0,
    progress: Callable[[str], None] | None = None,
    data_keys: Mapping[str, bytes] | None = None,
    data_key_id: str | None = None,
) -> dict[str, int]:
    """Fill an empty, migrated database with the demo marketplace; returns rows inserted per table.

    Runs inside the caller's transaction and never commits. Same seed, today and scale give
    identical rows (under the same data key). `today` defaults to the current date in
    Asia/Kolkata. Bank details are sealed with `data_keys[data_key_id]` (default: the environment's
    keys, as the API seals them), so the API shows them and the payroll bank file opens them.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    if today is None:
        today = dt.datetime.now(PLATFORM_ZONE).date()
    report = progress or (lambda _message: None)
    report("generating demo data")
    rows_of = build_demo(seed=seed, today=today, scale=scale, data_keys=data_keys, data_key_id=data_key_id)
    tables = _tables()
    counts: dict[str, int] = {}
    for name in TABLE_ORDER:
        rows = rows_of.get(name, [])
        if name == "analytics_events" and not _analytics_insertable(conn):
            report("analytics_events: skipped (no partition takes the rows)")
            continue
        _insert(conn, tables[name], rows)
        counts[name] = len(rows)
        report(f"{name}: {len(rows)} rows")
    return counts


# Sealed like the API seals them (ombaro/identity/accounts.py): the context binds a value to its row.
SEALED_BANK_DETAILS = {"therapists": "therapists.bank_details", "employees": "employees.bank_details"}


def _seal_bank_details(rows: dict[str, list[Row]], keys: Mapping[str, bytes], key_id: str) -> None:
    """Seal every demo row's bank details in place. The nonce is derived from the key, the context
    and the plaintext (not drawn at random) so the same seed still gives identical rows; a nonce
    repeats only for an identical value of the same row, which then seals to the same ciphertext."""
    key = keys[key_id]
    for table, context_prefix in SEALED_BANK_DETAILS.items():
        for row in rows.get(table, []):
            details = row.get("bank_details")
            if not details or crypto.is_sealed(details):
                continue
            context = f"{context_prefix}:{row['id']}"
            plaintext = json.dumps(details, sort_keys=True).encode()
            nonce = hmac.new(key, context.encode() + b"\0" + plaintext, hashlib.sha256).digest()[:12]
            row["bank_details"] = crypto.seal(details, keys=keys, key_id=key_id, context=context,
                                              nonce=nonce)

