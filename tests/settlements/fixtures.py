"""The settlement tests' own migrated database (runs settle every vendor they are given, so they
keep away from the session database): fixtures the payment tests share (conftest modules import
them from here), and the two worlds of the worker kill tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine

from tests.services import migrate
from tests.settlements.worlds import seed


@pytest.fixture(scope="session")
def settle_url(make_database: Callable[[], str]) -> str:
    url = make_database()
    migrate(url)
    return url


@pytest.fixture(scope="session")
def settle_engine(settle_url: str) -> Iterator[Engine]:
    engine = create_engine(settle_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture
def two_worlds(make_database: Callable[[], str]) -> tuple[str, Engine, Engine]:
    killed_url, calm_url = make_database(), make_database()
    migrate(killed_url)
    migrate(calm_url)
    killed, calm = create_engine(killed_url), create_engine(calm_url)
    assert seed(killed) == seed(calm)
    yield killed_url, killed, calm
    killed.dispose()
    calm.dispose()
