"""Fifty identical requests at once with one Idempotency-Key, through the web process as it runs in
production (gunicorn, several processes and threads): one job, run once; every answer the same."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
import requests
from sqlalchemy import Engine, text

from tests.chaos.helpers import defaults, gunicorn
from tests.factories.accounts import Account
from tests.helpers import wait_for_status
from tests.services import Process, start_worker

pytestmark = [pytest.mark.chaos, pytest.mark.db]

REQUESTS = 50


def test_fifty_concurrent_requests_with_one_key_make_one_job_run_once(
        engine: Engine, spawn: Callable[..., Process], service_env: dict[str, str], operator: Account,
        clean_jobs: None) -> None:
    env = defaults(service_env)
    base_url = gunicorn(spawn, env, workers=3, threads=8)
    start_worker(spawn, env=env)
    barrier = threading.Barrier(REQUESTS)
    answers: list[tuple[int, str | None, str | None]] = []

    def post() -> None:
        with requests.Session() as http:
            barrier.wait()
            answer = http.post(f"{base_url}/api/v1/reports/refresh", json={"views": ["dashboard_stats"]},
                               headers={**operator.headers, "Idempotency-Key": '"storm-1"'}, timeout=60)
        answers.append((answer.status_code, answer.json().get("id"), answer.headers.get("Idempotent-Replayed")))

    threads = [threading.Thread(target=post) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert Counter(status for status, _, _ in answers) == {202: REQUESTS}
    assert len({job for _, job, _ in answers}) == 1
    assert sum(1 for *_, replayed in answers if replayed != "true") == 1  # one made it, the others replayed
    (job_id,) = {job for _, job, _ in answers}
    assert wait_for_status(engine, job_id, timeout=60)["status"] == "succeeded"
    with engine.connect() as conn:
        jobs = conn.execute(text("SELECT count(*) FROM jobs")).scalar_one()
        runs = conn.execute(text("SELECT count(*) FROM view_refreshes WHERE job_id = :j"), {"j": job_id}).scalar_one()
    assert (jobs, runs) == (1, 1)  # doubled = 0
