"""A command submitted with nothing else in the request's transaction (web.commanding._submit_alone,
issue 16, session 7): the job and the request's audit line written by one statement, sent with the
caller's role and claims between BEGIN and COMMIT as one query, no Session; the answer the same as the
session's path gives."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy import exc as sa_exc

from ombaro.db import API_ROLE
from tests.factories.accounts import Account, client_for
from tests.helpers import count_jobs, job_row, traced
from web.auth import resolve_user

AUDITED = "actor_id, actor_role, method, path, endpoint, status, ip, user_agent, request_id, details"


def audit_lines(engine: Engine, actor: Account) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(
            text(f"SELECT {AUDITED} FROM audit_log WHERE actor_id = :a ORDER BY at, id"), {"a": actor.id}).mappings()]


def test_the_202_is_byte_for_byte_the_answer_of_the_sessions_path(
        app: Any, engine: Engine, operator: Account, clean_jobs: None) -> None:
    """The new job's 202 (written without a Session) is the same bytes as the replay of its key
    (answered by the session's path, the job loaded through the ORM) and as GET /api/v1/jobs/<id>;
    one job, and one audit line per request, the same line on both paths."""
    client = client_for(app, operator)
    before = len(audit_lines(engine, operator))
    body = {"views": ["dashboard_stats"]}
    headers = {"Idempotency-Key": "alone-1", "User-Agent": "probe/1.0", "X-Request-Id": "req-alone-1"}
    first = client.post("/api/v1/reports/refresh?note=x", json=body, headers=headers)
    again = client.post("/api/v1/reports/refresh?note=x", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert first.headers["Location"] == again.headers["Location"] == f"/api/v1/jobs/{first.json['id']}"
    assert first.content_type == again.content_type
    assert first.data == again.data
    assert client.get(first.headers["Location"]).data == first.data
    assert count_jobs(engine) == 1
    row = job_row(engine, first.json["id"])
    assert row["params"] == body and row["enqueued_at"] is not None and row["request_id"] == "req-alone-1"
    lines = audit_lines(engine, operator)[before:]
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0] | {"actor_id": None, "ip": None} == {
        "actor_id": None, "actor_role": "it_department", "method": "POST", "path": "/api/v1/reports/refresh",
        "endpoint": "reports.refresh", "status": 202, "ip": None, "user_agent": "probe/1.0",
        "request_id": "req-alone-1", "details": {"query": {"note": ["x"]}}}


def test_a_submit_is_one_round_trip_with_its_commit(app: Any, engine: Engine, operator: Account, clean_jobs: None,
                                               tmp_path: Any) -> None:
    """The caller's role and claims and the job's INSERT with its audit line go to the server as one
    simple query between BEGIN and COMMIT (one round trip, committed there), both statements run by
    name, prepared once on the pooled connection (issue 16, session 11: as caller_rows reads), and
    nothing else is sent for the submit: no extended-protocol message, no second query."""
    from web.extension import Ombaro

    client = client_for(app, operator)
    for n in range(2):  # the token looked up, the statement prepared on the pooled connection
        assert client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": f"warm-{n}"}).status_code \
            == 202
    with app.app_context():
        pool = Ombaro.get().engine.pool
    answers: list[Any] = []
    sent = traced(pool, tmp_path / "submit.trace",
                  lambda: answers.append(client.post("/api/v1/reports/refresh", json={})))
    assert answers[0].status_code == 202
    to_server = [line for line in sent if "\tF\t" in line]
    # From the query that takes the request role on (authentication's own look-up may come first).
    to_server = to_server[next(n for n, line in enumerate(to_server) if API_ROLE in line):]
    assert len(to_server) == 1, to_server
    assert "\tQuery\t" in to_server[0], to_server
    query = to_server[0].split("\t", 4)[-1].strip().strip('"')
    assert query.startswith(f"BEGIN; EXECUTE ombaro_act_as('{API_ROLE}', ") and query.endswith("); COMMIT"), query
    assert query.count("; EXECUTE ombaro_rows_") == 1 and query.count("EXECUTE") == 2, query
    assert count_jobs(engine) == 3


def test_refused_params_write_nothing_and_are_audited_with_the_refusal(
        app: Any, engine: Engine, operator: Account, clean_jobs: None) -> None:
    client = client_for(app, operator)
    before = len(audit_lines(engine, operator))
    refused = client.post("/api/v1/reports/refresh", json={"views": ["nope"]})
    assert refused.status_code == 422 and refused.content_type == "application/problem+json"
    assert count_jobs(engine) == 0
    assert [line["status"] for line in audit_lines(engine, operator)[before:]] == [422]


def test_a_key_reused_with_another_body_writes_no_line_of_a_202(
        app: Any, engine: Engine, operator: Account, clean_jobs: None) -> None:
    """The second request's statement wrote nothing (its key was known), so its only line is the
    refusal's, written after the answer."""
    key = "k-conflict"
    client = client_for(app, operator)
    before = len(audit_lines(engine, operator))
    assert client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": key}).status_code == 202
    conflict = client.post("/api/v1/reports/refresh", json={"views": ["dashboard_stats"]},
                           headers={"Idempotency-Key": key})
    assert conflict.status_code == 422
    assert [line["status"] for line in audit_lines(engine, operator)[before:]] == [202, 422]
    assert count_jobs(engine) == 1


def test_a_replay_checks_and_fingerprints_its_params_once(
        app: Any, engine: Engine, operator: Account, clean_jobs: None, monkeypatch: Any) -> None:
    """A known key's request is answered by the session's path with the values the first statement
    was sent with: the params are loaded and fingerprinted once a request, not again there."""
    from ombaro import commands

    fingerprints: list[str] = []
    real = commands.stored_fingerprint  # what every fingerprint is hashed by (commands.fingerprint too)
    monkeypatch.setattr(commands, "stored_fingerprint",
                        lambda kind, params: fingerprints.append(kind) or real(kind, params))
    client = client_for(app, operator)
    headers = {"Idempotency-Key": "once-1"}
    first = client.post("/api/v1/reports/refresh", json={}, headers=headers)
    assert first.status_code == 202 and fingerprints == ["reports.refresh"]
    again = client.post("/api/v1/reports/refresh", json={}, headers=headers)
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.data == first.data
    assert fingerprints == ["reports.refresh"] * 2
    assert count_jobs(engine) == 1


def pooled_connections(app: Any) -> list[Any]:
    """Every connection idle in the app's pool, checked out (close each to give it back)."""
    from web.extension import Ombaro

    with app.app_context():
        engine = Ombaro.get().engine
        return [engine.raw_connection() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]


@pytest.mark.parametrize("lost", ["ombaro_rows_%", "ombaro_act_as"])
def test_a_submit_whose_prepared_statements_were_lost_prepares_them_again_and_writes_once(
        app: Any, engine: Engine, operator: Account, clean_jobs: None, lost: str) -> None:
    """caller_changes prepares its statements once a pooled connection (issue 16, session 11): a
    connection that lost one (DEALLOCATE, DISCARD ALL, psycopg's DEALLOCATE ALL after a rollback)
    prepares it again and the submit is written, once (the EXECUTE that failed wrote nothing)."""
    client = client_for(app, operator)
    for n in range(3):
        assert client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": f"w-{n}"}).status_code == 202
    held = pooled_connections(app)
    assert held
    for pooled in held:
        driver = pooled.driver_connection
        for (name,) in driver.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE %s", (lost,)).fetchall():
            driver.execute(f"DEALLOCATE {name}")
        driver.commit()
        pooled.close()
    for n in range(4):
        answer = client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": f"after-{n}"})
        assert answer.status_code == 202, answer.json
        assert job_row(engine, answer.json["id"])["idempotency_key"] == f"after-{n}"
    assert count_jobs(engine) == 7


def test_a_write_whose_connection_the_server_ended_is_not_sent_again(
        app: Any, engine: Engine, operator: Account, clean_jobs: None) -> None:
    """A disconnect during the submit's query may come after its COMMIT: the write is not sent
    again on another connection (a read would be); the caller gets the outage's 503 problem, the
    pool is dropped, and the next submit is written on a new connection."""
    client = client_for(app, operator)
    for n in range(2):
        assert client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": f"w-{n}"}).status_code == 202
    held = pooled_connections(app)
    pids = [pooled.driver_connection.info.backend_pid for pooled in held]
    for pooled in held:
        pooled.close()
    with engine.connect() as conn:
        for pid in pids:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    ended = client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": "ended"})
    assert ended.status_code == 503 and ended.content_type == "application/problem+json", ended.json
    assert count_jobs(engine) == 2  # not sent again on a new connection (where it would be written)
    again = client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": "ended"})
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    assert count_jobs(engine) == 3


def test_behind_a_transaction_pooler_a_submit_prepares_nothing(
        app_factory: Any, engine: Engine, operator: Account, clean_jobs: None) -> None:
    """OMBARO_DATABASE_POOLER=transaction: the submit's statements go as text in the one query
    (a prepared statement would not follow the client to the pooler's next server connection)."""
    pooled_app = app_factory(OMBARO_DATABASE_POOLER="transaction")
    client = client_for(pooled_app, operator)
    for n in range(3):
        assert client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": f"p-{n}"}).status_code \
            == 202
    assert count_jobs(engine) == 3
    held = pooled_connections(pooled_app)
    try:
        assert held
        assert sum(pooled.driver_connection.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'ombaro_%'").fetchone()[0]
                   for pooled in held) == 0
    finally:
        for pooled in held:
            pooled.driver_connection.rollback()
            pooled.close()


@pytest.mark.parametrize("pooler", ["", "transaction"])
def test_a_write_the_server_refuses_raises_sqlalchemys_error_and_the_connection_writes_on(
        app_factory: Any, engine: Engine, operator: Account, clean_jobs: None, pooler: str) -> None:
    """caller_changes raises a refused statement as the Session would, SQLAlchemy's class for it
    (web/errors.py maps them), its transaction rolled back; the connection serves the next submit."""
    from web.extension import caller_changes

    writing = app_factory(OMBARO_DATABASE_POOLER=pooler) if pooler else app_factory()
    client = client_for(writing, operator)
    assert client.post("/api/v1/reports/refresh", json={}).status_code == 202
    # Not the request role's to write: the row-level security policy refuses it (RLS as the caller).
    refused = text("INSERT INTO jobs (kind, params, requested_by) VALUES (:kind, '{}', NULL) RETURNING id")
    with writing.test_request_context("/api/v1/reports/refresh", method="POST", headers=operator.headers):
        resolve_user()
        with pytest.raises(sa_exc.ProgrammingError) as raised:
            caller_changes(refused, {"kind": "reports.refresh"})
    assert isinstance(raised.value.orig, psycopg.errors.InsufficientPrivilege)
    for _ in range(3):
        assert client.post("/api/v1/reports/refresh", json={}).status_code == 202
    assert count_jobs(engine) == 4
