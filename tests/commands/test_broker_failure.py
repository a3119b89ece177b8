"""A submit whose message cannot reach the broker, and the back-off of a transient failure."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ombaro import commands
from tests.helpers import job_row


def broker_down(job_id: uuid.UUID, kind: str) -> None:
    raise ConnectionError("the broker is unreachable")


def test_a_failed_send_leaves_the_job_to_the_relay_when_the_session_is_bound_to_a_connection(
        engine: Engine, clean_jobs: None) -> None:
    # The undo after a failed send opens a transaction of its own on the session's engine: a session
    # bound to a connection once made that a Transaction, and its commit raised AttributeError.
    with engine.connect() as conn, Session(bind=conn) as session:
        job_id = commands.submit(session, "system.ping", {}, enqueue=broker_down).job.id
        session.commit()
    row = job_row(engine, job_id)
    assert row["status"] == "queued" and row["enqueued_at"] is None  # the relay hands it over at its next tick


def test_backoff_doubles_from_15_seconds_up_to_10_minutes() -> None:
    assert [commands.backoff_seconds(attempt) for attempt in range(1, 10)] == [
        15, 30, 60, 120, 240, 480, 600, 600, 600]
    assert commands.backoff_seconds(0) == 15  # never a fraction of a second
