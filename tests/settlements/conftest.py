"""A migrated database of the settlement tests' own and the two worlds of the worker kill tests
(tests/settlements/fixtures.py); the helper that runs the domain as a worker would is
tests.settlements.helpers.as_worker."""

from tests.settlements.fixtures import settle_engine, settle_url, two_worlds  # noqa: F401
