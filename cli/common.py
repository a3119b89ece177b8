"""What every operator command shares: exit codes, the broker, submitting a job the way the API
does, and waiting for a job with a progress bar.

The operator on the server acts as the system: jobs are submitted with `requested_by` NULL, on the
database owner's connection (like the scheduler), with the idempotency scope `cli`.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from cli.output import ProgressBar, emit_json, job_document, key_values, note
from ombaro import commands
from ombaro.models.jobs import Job

EXIT_OK = 0
EXIT_JOB_FAILED = 1  # the job failed or was cancelled
EXIT_USAGE = 2  # bad arguments, or a refusal: unknown job or schedule, bad period, not retryable
EXIT_DATABASE = 3  # the database cannot be reached (or none is configured)

SCOPE = "cli"
FINISHED = ("succeeded", "failed", "cancelled")
POLL_SECONDS = 0.5


class UsageError(Exception):
    """A bad argument the command found itself (argparse reports its own): exit 2."""


@dataclass
class BrokerEnqueue:
    """The broker's enqueue (built like beat/__main__.py's), remembering whether a send failed:
    `commands` then leaves the job queued for the relay, and the CLI says so."""

    send: commands.Enqueue
    failures: list[str] = field(default_factory=list)

    def __call__(self, job_id: uuid.UUID, kind: str) -> None:
        try:
            self.send(job_id, kind)
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            raise


def broker_enqueue() -> BrokerEnqueue:
    # Imported here, not at module level: `ombaro services up` and friends never load Celery.
    from ombaro.config import load_settings
    from workers.app import enqueuer

    return BrokerEnqueue(enqueuer(load_settings().broker_url))


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    add_json_option(parser)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout (for scripts)")


def job_id_arg(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a job id (a UUID)") from None


def start_job(args: argparse.Namespace, make: Callable[[Session, BrokerEnqueue], Job]) -> int:
    """Run `make` (which submits a job) in one transaction on the owner's session; the job reaches
    the broker after commit. Then wait for it, or print it at once under --no-wait."""
    from ombaro.db import transaction

    enqueue = broker_enqueue()
    with transaction() as session:
        job = make(session, enqueue)
    if enqueue.failures:
        note(f"the broker cannot be reached ({enqueue.failures[0]}); job {job.id} stays queued and the "
             "scheduler's relay (python -m beat) hands it over when the broker is back")
    if args.no_wait:
        if args.json:
            emit_json(job_document(job))
        else:
            print(job.id)
        return EXIT_OK
    note(f"job {job.id} ({job.kind}) submitted; waiting for it (Ctrl-C stops waiting, not the job)")
    return wait_and_report(job.id, as_json=args.json)


def wait_and_report(job_id: uuid.UUID, *, as_json: bool) -> int:
    """Follow the job to its end, then print it; the exit code says how it ended."""
    try:
        job = wait_for(job_id)
    except KeyboardInterrupt:
        note(f"\nstopped waiting; job {job_id} goes on (ombaro jobs watch {job_id})")
        return 130
    document = job_document(job)
    if as_json:
        emit_json(document)
    else:
        summary = {k: document[k] for k in ("id", "kind", "status", "attempts", "duration_seconds")}
        key_values(summary)
        if document["result"]:
            key_values({"result": document["result"]})
        if document["error"]:
            key_values({"error": {k: v for k, v in document["error"].items() if k != "trace"}})
    return EXIT_OK if job.status == "succeeded" else EXIT_JOB_FAILED


def load_job(job_id: uuid.UUID) -> Job:
    from ombaro.db import transaction

    with transaction() as session:
        return commands.get_job(session, job_id)  # JobNotFound: exit 2


def wait_for(job_id: uuid.UUID, *, poll_seconds: float = POLL_SECONDS) -> Job:
    """Poll the job's row until it is finished, drawing its progress on stderr."""
    job = load_job(job_id)
    bar = ProgressBar(f"{job.kind} {str(job.id)[:8]}")
    try:
        while True:
            bar.update(job.status, float(job.progress or 0), _message(job))
            if job.status in FINISHED:
                return job
            time.sleep(poll_seconds)
            job = load_job(job_id)
    finally:
        bar.close()


def _message(job: Job) -> str | None:
    if job.status == "queued" and job.enqueued_at is None:
        return "not in the broker yet: waiting for the scheduler's relay"
    if job.status == "queued":
        return "waiting for a worker"
    if job.status == "failed" and job.error:
        return str(job.error.get("message") or job.error.get("type"))
    return job.progress_message


def refusal_types() -> tuple[type[Exception], ...]:
    """The domain's refusals an operator can provoke, all exit 2 (mapped here, in one place).
    Imported only on the error path."""
    from ombaro.campaigns.lifecycle import CampaignError
    from ombaro.payroll.errors import PayrollError
    from ombaro.schedules import ScheduleError
    from ombaro.settlements.runs import SettlementError

    return (UsageError, commands.CommandError, ScheduleError, SettlementError, PayrollError, CampaignError)


def database_unreachable_types() -> tuple[type[Exception], ...]:
    import psycopg
    from sqlalchemy.exc import InterfaceError, OperationalError

    from ombaro.config import ConfigError

    return (OperationalError, InterfaceError, psycopg.OperationalError, ConfigError)

