"""ombaro.db.driver_pipeline: the one way the domain sends statements in a psycopg pipeline on the
session's connection (record_pings, the payroll batch's inputs and upserts). Inside the session's
transaction, its cursors closed at the end, a server error raised as the session raises it."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine, exc, text
from sqlalchemy.orm import Session

from ombaro.db import driver_pipeline

FAILING = "SELECT 1 / %(zero)s"


def test_statements_run_in_the_sessions_transaction_and_their_cursors_are_closed(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        session.execute(text("SELECT set_config('ombaro.probe', 'inside', true)"))
        with driver_pipeline(session) as pipe:
            plain, named = pipe.cursor(), pipe.cursor(row_factory=namedtuple_row)
            plain.execute("SELECT current_setting('ombaro.probe')")
            named.execute("SELECT 2 AS two UNION ALL SELECT 3")
            pipe.sync()
            assert named.rowcount == 2  # known once synced, inside the pipeline
            assert plain.fetchone() == ("inside",)
            assert [row.two for row in named.fetchall()] == [2, 3]
        assert plain.closed and named.closed
        session.rollback()


def test_a_server_error_is_raised_as_the_session_would_naming_the_statement(engine: Engine) -> None:
    cursors: list[Any] = []
    with Session(engine) as session, session.begin():
        with pytest.raises(exc.DataError) as raised, driver_pipeline(session, FAILING) as pipe:
            cursors.append(pipe.cursor())
            cursors[0].execute(FAILING, {"zero": 0})
            pipe.sync()
        session.rollback()
    assert raised.value.statement == FAILING
    assert "division by zero" in str(raised.value.orig)
    assert cursors[0].closed


def test_an_error_outside_the_database_passes_unchanged_and_closes_the_cursors(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        with pytest.raises(LookupError), driver_pipeline(session) as pipe:
            cursor = pipe.cursor()
            cursor.execute("SELECT 1")
            raise LookupError("computing a chunk failed")
        assert cursor.closed
        session.rollback()
