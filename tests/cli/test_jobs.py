"""`ombaro jobs list|show|watch|retry` against the real database, with a real Celery worker where a
command waits for a job to finish."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ombaro import commands
from tests.cli.helpers import Ran
from tests.factories.jobs import add_job
from tests.helpers import job_row
from tests.services import Process
from workers.app import enqueuer


def submit_ping(engine: Engine, redis_url: str, **params: object) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        return commands.submit(session, "system.ping", dict(params), enqueue=enqueuer(redis_url)).job.id


def test_jobs_list_filters_by_status_and_kind_and_prints_one_json_document(
        engine: Engine, clean_jobs: None, cli: Callable[..., Ran]) -> None:
    failed = add_job(engine, status="failed", error={"type": "ValueError", "message": "asked to fail"})
    queued = add_job(engine, "reports.refresh", {"views": ["dashboard_stats"]})

    listed = cli("jobs", "list", "--status", "failed", "--json")
    assert listed.code == 0
    assert [job["id"] for job in listed.json()] == [str(failed)]
    assert listed.json()[0]["error"]["message"] == "asked to fail"

    by_kind = cli("jobs", "list", "--kind", "reports.refresh", "--kind", "system.ping", "--limit", "1", "--json")
    assert [job["id"] for job in by_kind.json()] == [str(queued)]  # newest first, one

    table = cli("jobs", "list")
    header, *rows = table.out.splitlines()
    assert header.split() == ["ID", "KIND", "STATUS", "PROGRESS", "ATTEMPTS", "CREATED_AT", "DURATION_SECONDS"]
    assert {row.split()[0] for row in rows} == {str(failed), str(queued)}


def test_jobs_show_prints_the_job_as_the_api_does(engine: Engine, clean_jobs: None, cli: Callable[..., Ran]) -> None:
    job_id = add_job(engine, "reports.refresh", {"views": ["daily_booking_stats"]})
    shown = cli("jobs", "show", str(job_id), "--json")
    assert shown.code == 0 and shown.err == ""
    document = shown.json()
    assert (document["id"], document["kind"], document["status"], document["params"]) == (
        str(job_id), "reports.refresh", "queued", {"views": ["daily_booking_stats"]})
    assert document["requested_by"] is None and document["progress"] == 0

    readable = cli("jobs", "show", str(job_id))
    assert "kind" in readable.out and "reports.refresh" in readable.out and "views" in readable.out


def test_unknown_job_is_a_usage_error(clean_jobs: None, cli: Callable[..., Ran]) -> None:
    missing = uuid.uuid4()
    for action in ("show", "watch", "retry"):
        ran = cli("jobs", action, str(missing))
        assert ran.code == 2, action
        assert f"no job {missing}" in ran.err and ran.out == ""
    assert cli("jobs", "show", "not-a-uuid").code == 2


def test_watch_exits_0_when_the_job_succeeds_and_1_when_it_fails(
        engine: Engine, redis_url: str, worker: Process, cli: Callable[..., Ran]) -> None:
    good = submit_ping(engine, redis_url, steps=3, pause_seconds=0.4)
    watched = cli("jobs", "watch", str(good), "--json")
    assert watched.code == 0, watched.err
    assert watched.json()["status"] == "succeeded" and watched.json()["result"]["pong"] is True
    # Not a terminal: one progress line per change, on stderr, ending at 100%.
    progress = [line for line in watched.err.splitlines() if "system.ping" in line]
    assert progress and "100.0% succeeded" in progress[-1]

    bad = submit_ping(engine, redis_url, fail="permanent")
    failed = cli("jobs", "watch", str(bad))
    assert failed.code == 1
    assert "failed" in failed.out and "asked to fail" in failed.out


def test_retry_of_a_failed_job_requeues_it_and_a_worker_runs_it(
        engine: Engine, worker: Process, cli: Callable[..., Ran]) -> None:
    job_id = add_job(engine, params={"echo": "again"}, status="failed",
                     error={"type": "ValueError", "message": "the first time"})
    retried = cli("jobs", "retry", str(job_id), "--json")
    assert retried.code == 0, retried.err
    assert retried.json()["result"]["echo"] == "again"
    row = job_row(engine, job_id)
    assert (row["status"], row["attempts"], row["error"]) == ("succeeded", 1, None)


def test_retry_of_a_succeeded_job_is_refused_with_exit_2(
        engine: Engine, clean_jobs: None, cli: Callable[..., Ran]) -> None:
    job_id = add_job(engine, status="succeeded")
    refused = cli("jobs", "retry", str(job_id))
    assert refused.code == 2
    assert "only a failed or cancelled job can be retried" in refused.err
    assert job_row(engine, job_id)["status"] == "succeeded"


def test_no_wait_with_the_broker_down_leaves_the_job_for_the_relay_and_says_so(
        engine: Engine, clean_jobs: None, cli: Callable[..., Ran], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    ran = cli("refresh", "--no-wait")
    assert ran.code == 0
    job_id = uuid.UUID(ran.out.strip())  # stdout: the job id alone
    assert "broker cannot be reached" in ran.err and "relay" in ran.err
    row = job_row(engine, job_id)
    assert (row["status"], row["enqueued_at"]) == ("queued", None)  # the relay's to hand over


def test_database_down_is_exit_3(cli: Callable[..., Ran], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    ran = cli("jobs", "list")
    assert ran.code == 3 and "cannot reach the database" in ran.err and ran.out == ""



def test_the_console_script_works_as_a_real_process(engine: Engine, clean_jobs: None,
                                                    service_env: dict[str, str]) -> None:
    job_id = add_job(engine, status="failed", error={"type": "ValueError", "message": "boom"})
    script = str(Path(sys.executable).parent / "ombaro")
    shown = subprocess.run([script, "jobs", "show", str(job_id), "--json"], env=service_env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["error"]["message"] == "boom"
    refused = subprocess.run([script, "jobs", "retry", str(uuid.uuid4()), "--no-wait"], env=service_env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "no job" in refused.stderr
    down = subprocess.run([script, "jobs", "list"], env={**service_env, "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"},
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 3 and "cannot reach the database" in down.stderr


def test_building_the_command_line_loads_no_celery() -> None:
    # `ombaro services up` must work without the workers' stack: Celery is imported only to enqueue.
    probe = "import sys; from cli import build_parser; build_parser(); print('celery' in sys.modules)"
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert ran.stdout.strip() == "False", ran.stderr
