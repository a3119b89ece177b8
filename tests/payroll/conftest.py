"""Payroll test helpers: employees, structures and attendance made with plain SQL, and the payroll
commands driven through the real command path (commands.execute: claim, worker role under row-level
security, fenced success) without a broker; batches are run as the relay would hand them over."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine

from tests.payroll.helpers import Driver
from tests.services import migrate


@pytest.fixture
def driver(engine: Engine) -> Driver:
    return Driver(engine)


@pytest.fixture(scope="module")
def private_engine(make_database: Callable[[], str]) -> Iterator[Engine]:
    """A migrated database of this module's own: full runs there see only the employees it makes."""
    url = make_database()
    migrate(url)
    eng = create_engine(url, pool_size=10)
    yield eng
    eng.dispose()
