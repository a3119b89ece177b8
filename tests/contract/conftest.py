"""A real server for the contract tests: the demo data set (small scale) in a database of its own,
gunicorn on a free port, and an access token per demo role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from devtools.demo import enable_demo_logins, seed_demo
from tests.contract.helpers import DEMO_SCALE, DemoWorld, Server, start_server
from tests.services import Database


# One demo world per session. test_client_generated.py runs before test_fuzz.py (file order): the
# fuzzer changes what it may (grants, bookings, settlements), so the client flow goes first.
@pytest.fixture(scope="session")
def demo_world(own_database: Callable[[], Database]) -> DemoWorld:
    """The demo data set at a small scale, taken 'today' by the database's clock."""
    database = own_database()
    with database.engine.begin() as conn:
        today = conn.execute(text("SELECT (now() AT TIME ZONE 'Asia/Kolkata')::date")).scalar_one()
        seed_demo(conn, scale=DEMO_SCALE, today=today)
        logins = {role: email for email, role in enable_demo_logins(conn)}
    return DemoWorld(database, logins)


@pytest.fixture(scope="module")
def server(demo_world: DemoWorld, service_env: dict[str, str], tmp_path_factory: Any) -> Iterator[Server]:
    started = start_server(demo_world, service_env, tmp_path_factory.mktemp("server"), worker=True)
    try:
        yield started
    finally:
        for process in started.processes:
            process.stop()
