"""Small helpers shared by tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text


def job_row(engine: Engine, job_id: uuid.UUID | str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": str(job_id)}).mappings().one())


def wait_until(predicate: Callable[[], Any], timeout: float = 30, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def wait_for_status(engine: Engine, job_id: uuid.UUID | str, statuses: tuple[str, ...] = ("succeeded", "failed"),
                    timeout: float = 30) -> dict[str, Any]:
    return wait_until(lambda: (row := job_row(engine, job_id))["status"] in statuses and row,
                      timeout=timeout, what=f"job {job_id} to reach {statuses}")


def count_jobs(engine: Engine, where: str = "true", **params: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM jobs WHERE {where}"), params).scalar_one()


def traced(pool: Any, path: Any, call: Callable[[], Any]) -> list[str]:
    """libpq's trace of the messages on the connection `call` checks out of `pool`, from checkout to checkin."""
    from sqlalchemy import event

    with path.open("w") as out:
        def start(dbapi_connection: Any, *_: Any) -> None:
            dbapi_connection.pgconn.trace(out.fileno())

        def stop(dbapi_connection: Any, *_: Any) -> None:
            dbapi_connection.pgconn.untrace()

        event.listen(pool, "checkout", start)
        event.listen(pool, "checkin", stop)
        try:
            call()
        finally:
            event.remove(pool, "checkout", start)
            event.remove(pool, "checkin", stop)
    return path.read_text().splitlines()
