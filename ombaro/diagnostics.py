"""`system.ping`: a command that exercises the whole pipeline (API, broker, worker, database)
without touching business data. Operators use it to check a deployment end to end. And the
readiness probe's database check."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from ombaro.commands import Progress, RetryLater


def ping(session: Session, params: dict[str, Any], *, progress: Progress) -> dict[str, Any]:
    steps = int(params.get("steps", 1))
    pause = float(params.get("pause_seconds", 0))
    if params.get("fail") == "transient":
        raise RetryLater("asked to fail transiently")
    if params.get("fail") == "permanent":
        raise ValueError("asked to fail")
    for step in range(steps):
        time.sleep(pause)
        progress(100 * (step + 1) / steps, f"step {step + 1} of {steps}")
    database_time = session.execute(select(func.now())).scalar_one()
    return {"pong": True, "worker": f"{socket.gethostname()}:{os.getpid()}",
            "database_time": database_time.isoformat(), "echo": params.get("echo")}


def check_database(engine: Engine, *, timeout_ms: int = 2000) -> None:
    """Raises unless the database answers a trivial query within `timeout_ms`."""
    with engine.connect() as conn:
        conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
        conn.execute(text("SELECT 1"))
