"""Payroll fixtures: the driver that runs payroll commands through the real command path in this
process (tests/payroll/helpers.py) and a database of a module's own. Employees, structures and
attendance come from tests.factories.payroll."""

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
