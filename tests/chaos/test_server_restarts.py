"""The broker and the database stopped under load, with the real processes (web under gunicorn,
worker, scheduler) on the default settings. Only private servers started by these tests are
stopped; the machine's shared ones are never touched."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from devtools.embedded_services import create_database
from ombaro import commands
from tests.chaos.helpers import PrivatePostgres, PrivateRedis, defaults, gunicorn, measure, only_schedules, start_beat
from tests.factories.accounts import Account
from tests.helpers import wait_until
from tests.services import Process, migrate, start_worker
from workers.app import enqueuer

pytestmark = [pytest.mark.chaos, pytest.mark.db]

REDIS_DOWN_SECONDS = 30
POSTGRES_DOWN_SECONDS = 10


class Load:
    """Commands posted to the web process at a steady rate from a thread, every answer kept."""

    def __init__(self, base_url: str, token: str, per_second: float) -> None:
        self.url = f"{base_url}/api/v1/reports/refresh"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.interval = 1 / per_second
        self.answers: list[tuple[int, str | None, float]] = []  # status, job id, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as http:
            while not self._stop.wait(self.interval):
                began = time.monotonic()
                try:
                    answer = http.post(self.url, json={"views": ["dashboard_stats"]}, timeout=30,
                                       headers={**self.headers, "Idempotency-Key": uuid.uuid4().hex})
                    job = answer.json().get("id") if answer.status_code == 202 else None
                    self.answers.append((answer.status_code, job, time.monotonic() - began))
                except requests.RequestException as exc:  # no answer at all counts as a failure too
                    self.answers.append((0, repr(exc), time.monotonic() - began))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(60)


def test_redis_stopped_under_load_loses_no_command_and_answers_no_5xx(
        engine: Engine, spawn: Callable[..., Process], service_env: dict[str, str], private_redis: PrivateRedis,
        operator: Account, clean_jobs: None) -> None:
    only_schedules(engine)  # the scheduler here is the relay only
    env = defaults({**service_env, "REDIS_URL": private_redis.url})
    base_url = gunicorn(spawn, env)
    start_worker(spawn, env=env)
    start_beat(spawn, "beat", env).wait_for("scheduler leading")

    with Load(base_url, operator.token, per_second=4) as load:
        time.sleep(5)
        private_redis.stop()
        stopped = len(load.answers)
        time.sleep(REDIS_DOWN_SECONDS)
        private_redis.start()
        back_at = time.monotonic()
        during = load.answers[stopped:]
        time.sleep(5)
    statuses = Counter(status for status, _, _ in load.answers)
    assert set(statuses) == {202}, statuses  # no 5xx, no refusal, every request answered
    # The API kept accepting while the broker was down, more than one request a second from one client:
    # after a failed send the broker is left alone for a few seconds (workers/app.py).
    assert len(during) >= REDIS_DOWN_SECONDS * 1.5
    accepted = [job for _, job, _ in load.answers]
    assert len(set(accepted)) == len(accepted)

    def finished() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM jobs WHERE kind = 'reports.refresh' "
                                     "AND status = 'succeeded'")).scalar_one()

    wait_until(lambda: finished() == len(accepted), timeout=120, interval=0.5, what="every accepted command to run")
    recovered = measure("redis down 30 s: every accepted command done after redis is back",
                        time.monotonic() - back_at)
    worst = max(seconds for _, _, seconds in during)
    measure("redis down: slowest accepted request while down", worst)
    assert recovered < 60
    with engine.connect() as conn:
        jobs = conn.execute(text("SELECT id::text, status FROM jobs WHERE kind = 'reports.refresh'")).all()
        runs = Counter(conn.execute(text("SELECT job_id::text FROM view_refreshes")).scalars())
    assert {job_id for job_id, _ in jobs} == set(accepted)  # lost = 0
    assert {job_id: runs[job_id] for job_id in accepted} == dict.fromkeys(accepted, 1)  # doubled = 0


def test_postgres_crashed_with_jobs_in_flight_loses_and_doubles_none(
        spawn: Callable[..., Process], service_env: dict[str, str], private_postgres: PrivatePostgres,
        broker_url: str) -> None:
    database = f"chaos_{uuid.uuid4().hex[:8]}"
    create_database(private_postgres.admin_url, database)
    url = make_url(private_postgres.admin_url).set(database=database).render_as_string(hide_password=False)
    migrate(url)
    engine = create_engine(url, pool_pre_ping=True)
    only_schedules(engine)
    env = defaults({**service_env, "DATABASE_URL": url})
    worker = start_worker(spawn, concurrency=2, env=env)
    beat = start_beat(spawn, "beat", env)
    beat.wait_for("scheduler leading")
    send = enqueuer(broker_url)
    with Session(engine) as session, session.begin():
        jobs = [commands.submit(session, "system.ping", {"steps": 4, "pause_seconds": 1, "echo": n},
                                enqueue=send).job.id for n in range(12)]

    def running() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM jobs WHERE status = 'running'")).scalar_one()

    wait_until(lambda: running() == 2, timeout=60, what="two jobs in flight")
    private_postgres.crash()
    time.sleep(POSTGRES_DOWN_SECONDS)
    private_postgres.start()
    back_at = time.monotonic()

    def done() -> bool:
        try:
            with engine.connect() as conn:
                return conn.execute(text("SELECT bool_and(status = 'succeeded') FROM jobs")).scalar_one()
        except Exception:  # the first pooled connections died with the server
            return False

    try:
        wait_until(done, timeout=150, interval=0.5, what="every job to succeed after the restart")
    except TimeoutError:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, attempts, enqueued_at, lease_expires_at, run_after, now() "
                                     "FROM jobs")).all()
        pytest.fail(f"jobs: {rows}\nworker: {worker.output()[-6000:]}\nbeat: {beat.output()[-4000:]}")
    measure("postgres crashed 10 s: every job done after it is back", time.monotonic() - back_at)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status, attempts FROM jobs")).all()
    engine.dispose()
    assert {r.id for r in rows} == set(jobs)  # lost = 0
    # doubled = 0: each job's handler finished and was recorded by exactly one attempt.
    finished = Counter(re.findall(r"job ([0-9a-f-]{36}) \(system\.ping\) attempt \d+ succeeded", worker.output()))
    assert finished == Counter({str(job): 1 for job in jobs})
    assert time.monotonic() - back_at < 90
