"""A command submitted with nothing else in the request's transaction (web.commanding._submit_alone,
issue 16, session 7): the job and the request's audit line written by one statement, sent with the
caller's role and claims and the COMMIT as one query, no Session; the answer the same as the
session's path gives."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from ombaro.db import API_ROLE
from tests.factories.accounts import Account, client_for
from tests.helpers import count_jobs, job_row, traced

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
    """The caller's role and claims and the job's INSERT with its audit line go to the server in one
    pipeline with one Sync (one round trip; the pipeline's own transaction, committed there), and
    nothing else is sent for the submit: no BEGIN or COMMIT statement, no third statement."""
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
    # From the statement that takes the request role on (authentication's own look-up may come first).
    to_server = to_server[next(n for n, line in enumerate(to_server) if "\tBind\t" in line and API_ROLE in line):]
    assert sum("\tExecute\t" in line for line in to_server) == 2, to_server
    assert sum("\tSync" in line for line in to_server) == 1, to_server
    assert not [line for line in to_server if "BEGIN" in line or "COMMIT" in line], to_server
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
