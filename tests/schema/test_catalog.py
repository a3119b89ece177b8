"""The shipped migrations create the same catalog as when the snapshot was taken
(`tests/schema/catalog.txt`; how to regenerate it: `tests/schema/catalog.py`)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.schema.catalog import catalog_lines
from tests.services import migrate

SNAPSHOT = Path(__file__).with_name("catalog.txt")


@pytest.fixture(scope="module")
def migrated(make_database: Callable[[], str]) -> Iterator[psycopg.Connection]:
    url = make_database()
    migrate(url)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        yield conn


def test_upgrade_head_creates_the_snapshot_catalog(migrated: psycopg.Connection) -> None:
    expected = SNAPSHOT.read_text().splitlines()
    actual = catalog_lines(migrated)
    diff = list(difflib.unified_diff(expected, actual, "catalog.txt", "upgrade head", lineterm="", n=0))
    assert not diff, "the migrations no longer create the snapshot's catalog:\n" + "\n".join(diff[:80])


def test_a_changed_policy_shows_in_the_catalog(migrated: psycopg.Connection) -> None:
    """The comparison can fail: one policy's condition changed is one line changed."""
    before = catalog_lines(migrated)
    try:
        migrated.execute("ALTER POLICY select_visible ON bookings USING (false)")
        after = catalog_lines(migrated)
    finally:
        migrated.rollback()
    changed = sorted(set(before) ^ set(after))
    assert len(changed) == 2, changed
    assert all(line.startswith("policy | bookings | select_visible |") for line in changed)
    assert catalog_lines(migrated) == before
