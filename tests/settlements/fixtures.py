"""The settlement tests' own migrated database (runs settle every vendor they are given, so they
keep away from the session database): fixtures the payment tests share (conftest modules import
them from here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine

from tests.services import migrate


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
