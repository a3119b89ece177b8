"""A migrated database of the settlement tests' own (runs settle every vendor they are given, so
they keep away from the session database), and helpers to run the domain as a worker would."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from ombaro.db import WORKER_ROLE, act_as
from tests.conftest import migrate


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


def as_worker(engine: Engine, work: Callable[[Session], Any]) -> Any:
    """One transaction as a job handler runs it: the workers' role, committed at the end."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        act_as(session, WORKER_ROLE, {"role": "worker", "job": str(uuid.uuid4()), "sub": None})
        return work(session)
