"""A migrated database of the settlement tests' own (tests/settlements/fixtures.py); the helper that
runs the domain as a worker would is tests.settlements.helpers.as_worker."""

from tests.settlements.fixtures import settle_engine, settle_url  # noqa: F401
