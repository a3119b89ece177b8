"""The lease of a running job: renewed by a heartbeat independent of progress, so a live job is never
taken over however long it stays silent, and a dead one is handed over once a few beats are missed."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from ombaro.config import ConfigError, load_settings
from ombaro.models.jobs import Job
from tests.helpers import job_row, wait_until


def submit(engine: Engine, kind: str = "system.ping") -> uuid.UUID:
    with Session(engine) as session, session.begin():
        return commands.submit(session, kind, {}, enqueue=lambda *_: None).job.id


def test_a_silent_job_keeps_its_lease_far_beyond_the_lease_length(engine: Engine, clean_jobs: None) -> None:
    job_id = submit(engine)
    release = threading.Event()

    def silent(session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        release.wait(30)  # one long statement, no progress reported
        return {"done": True}

    outcomes: list[str] = []
    runner = threading.Thread(target=lambda: outcomes.append(
        commands.execute(job_id, silent, engine=engine, lease_seconds=2, heartbeat_seconds=0.4)))
    runner.start()
    relayed: list[uuid.UUID] = []
    try:
        wait_until(lambda: job_row(engine, job_id)["status"] == "running", what="the job to start")
        deadline = time.monotonic() + 6  # three leases long
        while time.monotonic() < deadline:
            with Session(engine) as session, session.begin():
                commands.relay(session, lambda i, k: relayed.append(i), stale_seconds=300)
            # A redelivered message in the meantime finds the job taken.
            assert commands.execute(job_id, silent, engine=engine, lease_seconds=2) == "skipped"
            time.sleep(0.3)
    finally:
        release.set()
        runner.join(30)
    assert relayed == []
    assert outcomes == ["succeeded"]
    row = job_row(engine, job_id)
    assert (row["status"], row["attempts"], row["lease_expires_at"]) == ("succeeded", 1, None)


def test_a_job_whose_heartbeat_stopped_is_handed_over_after_its_lease(engine: Engine, clean_jobs: None) -> None:
    job_id = submit(engine)
    # A worker that claimed the job and died at once: the claim as execute makes it, no heartbeat after.
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'running', attempts = 1, "
                          "lease_expires_at = now() + interval '2 seconds' WHERE id = :id"), {"id": job_id})
    relayed: list[uuid.UUID] = []

    def relay_once() -> int:
        with Session(engine) as session, session.begin():
            return commands.relay(session, lambda i, k: relayed.append(i), stale_seconds=300)

    assert relay_once() == 0  # still leased
    began = time.monotonic()
    wait_until(lambda: relay_once() == 1, timeout=10, interval=0.2, what="the relay to hand the job over")
    assert 1 <= time.monotonic() - began <= 4
    assert relayed == [job_id]
    assert commands.execute(job_id, lambda s, j, p: {"ok": True}, engine=engine, lease_seconds=2) == "succeeded"
    assert job_row(engine, job_id)["attempts"] == 2


def test_the_previous_attempt_cannot_renew_a_lease_it_lost(engine: Engine, clean_jobs: None) -> None:
    job_id = submit(engine)
    beat_of_attempt_one = commands._Heartbeat(engine, job_id, 1, 30, 1)
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'running', attempts = 2, lease_expires_at = now() "
                          "WHERE id = :id"), {"id": job_id})
    assert beat_of_attempt_one.renew() is False
    assert commands._Heartbeat(engine, job_id, 2, 30, 1).renew() is True


def test_default_lease_and_heartbeat_meet_the_recovery_goal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMBARO_JOB_LEASE_SECONDS", "OMBARO_JOB_HEARTBEAT_SECONDS", "OMBARO_RELAY_INTERVAL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    # A dead worker's job is claimable at most one lease after its last beat and is relayed within
    # one relay tick after that: under a minute with room for the claim.
    assert settings.job_lease_seconds + settings.relay_interval_seconds <= 45
    assert settings.job_heartbeat_seconds * 3 <= settings.job_lease_seconds
    monkeypatch.setenv("OMBARO_JOB_LEASE_SECONDS", "3")
    assert load_settings().job_heartbeat_seconds == 1  # a short lease beats faster
    monkeypatch.setenv("OMBARO_JOB_LEASE_SECONDS", "1")
    with pytest.raises(ConfigError, match="OMBARO_JOB_LEASE_SECONDS"):
        load_settings()


def test_a_database_away_for_a_moment_is_waited_for_and_one_away_too_long_gives_the_message_back() -> None:
    from sqlalchemy.exc import OperationalError

    calls: list[float] = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("server restarting"))
        return "claimed"

    assert commands._patiently(flaky, what="claiming", patience=10) == "claimed"
    assert len(calls) == 3 and calls[-1] - calls[0] >= 1.0  # backed off 0.5 s, then 1 s

    def down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("server down"))

    began = time.monotonic()
    with pytest.raises(commands.DatabaseUnavailable, match="claiming"):
        commands._patiently(down, what="claiming", patience=1.2)
    assert time.monotonic() - began < 3
