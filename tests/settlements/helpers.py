"""Running the settlement domain as a worker would."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ombaro.db import WORKER_ROLE, act_as


def as_worker(engine: Engine, work: Callable[[Session], Any]) -> Any:
    """One transaction as a job handler runs it: the workers' role, committed at the end."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        act_as(session, WORKER_ROLE, {"role": "worker", "job": str(uuid.uuid4()), "sub": None})
        return work(session)
