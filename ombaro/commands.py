"""The command log: every command is a row in `jobs` before it is a message in the broker.

Flow (docs/architecture.md, "A command, end to end"):
1. `submit` inserts the job in the caller's transaction; the message is sent after commit.
2. If the broker is down the job stays `queued` with no `enqueued_at`; `relay` hands it over later.
3. `execute` claims the job with one UPDATE under its row lock (a redelivered message finds it
   taken and does nothing), runs the handler in a transaction of its own, and records the outcome
   fenced by the attempt number, so a worker that lost its lease cannot overwrite a newer attempt.
4. While the handler runs, a heartbeat thread renews the job's lease on a connection of its own
   every few seconds, whether or not the handler reports progress: a live job is never taken over,
   and a job whose worker died is handed to another by the relay once its lease (a few heartbeats)
   has run out (docs/reliability.md).

The registry (the end of this module) declares every command kind: its typed params (a marshmallow
schema loading into a frozen dataclass, with the domain's rules), queue, permission, attempts,
handler and result. `submit` refuses a kind it does not declare and params its schema refuses; the
workers' routing and tasks are generated from it (docs/architecture.md, "How to add a command").
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import hashlib
import importlib
import json
import logging
import threading
import time
import traceback
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Generic, Protocol, TypedDict, TypeVar, Unpack

from marshmallow import Schema, ValidationError, post_load
from psycopg.types.json import Jsonb
from sqlalchemy import (
    ARRAY,
    CursorResult,
    Engine,
    Text,
    TextualSelect,
    cast,
    event,
    func,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from ombaro import audit, logs, metrics
from ombaro.config import Settings
from ombaro.db import WORKER_ROLE, act_as, fixed_insert
from ombaro.models.jobs import Job

log = logging.getLogger(__name__)

# (job id, kind) -> hands the job to the broker; raises when the broker cannot be reached.
Enqueue = Callable[[uuid.UUID, str], None]


class Progress(Protocol):
    def __call__(self, percent: float, message: str | None = None) -> None: ...


# A handler does the domain work of one job inside the session it is given and returns its result.
Handler = Callable[[Session, Job, Progress], dict[str, Any] | None]


class CommandError(Exception):
    """A command-level error the API maps to an HTTP status in one place (web/errors.py)."""


class IdempotencyConflict(CommandError):
    """The Idempotency-Key was already used with a different request body."""


class JobNotFound(CommandError):
    pass


class RetryLater(Exception):
    """Raised by a handler for a transient failure: the job is queued again after a back-off."""


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool  # False: an earlier request with the same Idempotency-Key made this job


def to_json(value: Any) -> Any:
    """Params and results are stored as JSON: dates as ISO strings, money as decimal strings."""
    return json.loads(json.dumps(value, default=_json_default, sort_keys=True))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def fingerprint(kind: str, params: dict[str, Any]) -> str:
    return stored_fingerprint(kind, to_json(params))


def stored_fingerprint(kind: str, params: dict[str, Any]) -> str:
    """`fingerprint` of params that are JSON already (as `Command.store` gives them): the same text
    hashed, without to_json's round trip again (issue 16, session 9)."""
    canonical = json.dumps({"kind": kind, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# The submit's INSERT as one fixed statement (ombaro.db.fixed_insert: SQLAlchemy's PostgreSQL
# `insert().on_conflict_do_nothing()` has no cache key and was compiled on every submit, ~1 ms of CPU).
_SUBMIT = fixed_insert(
    Job.__table__,
    ("kind", "params", "requested_by", "idempotency_scope", "idempotency_key", "request_hash", "schedule_id",
     "scheduled_for", "max_attempts", "request_id"),
    "ON CONFLICT (kind, idempotency_scope, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
    computed={"enqueued_at": "now()"})


class JobOptions(TypedDict, total=False):
    """What a job is submitted with besides its kind and params (job_values, submit)."""
    key: str | None  # the Idempotency-Key; one job per (kind, scope, key)
    scope: str  # whose keys these are (default "anonymous")
    requested_by: uuid.UUID | None
    schedule_id: uuid.UUID | None
    scheduled_for: dt.datetime | None
    max_attempts: int | None  # the declaration's unless given
    request_id: str | None  # the caller's, else the current context's


def job_values(kind: str, params: Mapping[str, Any] | Params, **options: Unpack[JobOptions]) -> dict[str, Any]:
    """The job row `submit` writes (the values of _SUBMIT), or UnknownCommand / InvalidParams before
    anything is written: the params as the kind's schema loaded and stores them, their fingerprint,
    the declaration's attempts unless given, the request id (the caller's, else the context's)."""
    command = command_of(kind)
    stored = command.store(command.load(params))
    attempts = options.get("max_attempts")
    return {"kind": kind, "params": stored, "requested_by": options.get("requested_by"),
            "idempotency_scope": options.get("scope", "anonymous"), "idempotency_key": options.get("key"),
            "request_hash": stored_fingerprint(kind, stored), "schedule_id": options.get("schedule_id"),
            "scheduled_for": options.get("scheduled_for"),
            "max_attempts": command.max_attempts if attempts is None else attempts,
            "request_id": options.get("request_id") or logs.request_id.get()}


def submit(session: Session, kind: str, params: Mapping[str, Any] | Params, *, enqueue: Enqueue,
           **options: Unpack[JobOptions]) -> Submitted:
    """Record a command in the caller's transaction; it is handed to the broker after commit.

    The kind must be declared (UnknownCommand) and its params must pass the kind's schema
    (InvalidParams, with an error per field): nothing is written otherwise. What is stored is the
    params as the schema loaded them (defaults filled in, absent optional fields left out), and
    `max_attempts` is the declaration's unless given.

    With a key, one job exists per (kind, scope, key): a concurrent second insert waits on the
    unique index and then finds the first one's job (IETF Idempotency-Key draft semantics).
    The request id (the caller's, else the current context's) goes with the job to its worker.
    """
    return submit_values(session, job_values(kind, params, **options), enqueue=enqueue)


def submit_values(session: Session, values: Mapping[str, Any], *, enqueue: Enqueue) -> Submitted:
    """`submit` of a job's checked values (job_values): where they were made already, as for a
    request whose one-statement insert found its key known (web.commanding)."""
    kind, scope, key = values["kind"], values["idempotency_scope"], values["idempotency_key"]
    # RETURNING the row: no second round trip. A Core statement, its row made a Job by hand: the ORM's
    # loading of it (instance processor, identity map) cost a submit ~0.3 ms of CPU (issue 16). The
    # job is therefore not in the session (nothing writes it later in the same transaction).
    inserted = session.execute(_SUBMIT, values).one_or_none()
    if inserted is None:
        existing = session.scalars(
            select(Job).where(Job.kind == kind, Job.idempotency_scope == scope, Job.idempotency_key == key)
        ).one()
        if existing.request_hash != values["request_hash"]:
            raise IdempotencyConflict(
                f"Idempotency-Key {key!r} was already used for a different {kind} request"
            )
        return Submitted(existing, created=False)
    job = Job(**inserted._mapping)
    session.info.setdefault("ombaro.submitted", []).append(kind)  # counted once committed
    enqueue_after_commit(session, job.id, kind, enqueue)
    return Submitted(job, created=True)


# _SUBMIT with the request's audit line (ombaro.audit), which it writes only if the job is new: a
# known key's request is answered by `submit`, which writes its own line (insert_job).
_JOB_COLUMNS = tuple(column.name for column in _SUBMIT.selected_columns)
_SUBMIT_AUDITED = text(f"WITH job AS ({_SUBMIT.element.text}), line AS ({audit.insert_per_row('job', 'line_')}) "
                       f"SELECT {', '.join(_JOB_COLUMNS)} FROM job").columns(*_SUBMIT.selected_columns)

# Runs a statement with values the driver takes as they are, in a transaction of its own committed
# before it returns, and gives its rows (web.extension.caller_changes).
RunStatement = Callable[[TextualSelect, Mapping[str, Any]], Sequence[Sequence[Any]]]


def insert_job(run: RunStatement, values: Mapping[str, Any], *,
               audit_line: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`submit`'s INSERT of `values` (job_values) as one statement run by `run`, with the request's
    audit line (ombaro.audit.values) when one is given, written only if the job is new: no Session,
    and with web.extension.caller_changes the caller's role and claims, the statement and the
    commit in one round trip (issue 16, session 7). Returns the new job's row as a mapping of its
    columns, or None where the key was known (nothing was written: `submit` answers such a request,
    a replay or a refusal). Then `submitted`, once it committed."""
    row = {**values, "params": Jsonb(values["params"])}
    if audit_line is None:
        rows = run(_SUBMIT, row)
    else:
        line = {**audit_line, "details": Jsonb(audit_line["details"])}
        rows = run(_SUBMIT_AUDITED, row | {f"line_{name}": value for name, value in line.items()})
    return dict(zip(_JOB_COLUMNS, rows[0], strict=True)) if rows else None


def submitted(engine: Engine, job_id: uuid.UUID, kind: str, enqueue: Enqueue) -> None:
    """After insert_job's job committed: counted and handed to the broker, as `submit`'s are
    after their session's commit (left to the relay if the broker cannot take it)."""
    _after_commit(engine, [(job_id, kind, enqueue)], [kind])


def enqueue_after_commit(session: Session, job_id: uuid.UUID, kind: str, enqueue: Enqueue) -> None:
    pending: list[tuple[uuid.UUID, str, Enqueue]] = session.info.setdefault("ombaro.enqueue", [])
    pending.append((job_id, kind, enqueue))


# Listened to on every Session once (they cost a dict look-up where nothing was submitted), not
# added to and removed from each submitting session (SQLAlchemy's per-instance listen and remove
# cost a submit ~0.2 ms of CPU).
@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop("ombaro.enqueue", None)
    session.info.pop("ombaro.submitted", None)


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    if "ombaro.enqueue" not in session.info and "ombaro.submitted" not in session.info:
        return
    pending = session.info.pop("ombaro.enqueue", [])
    # A new transaction if a send fails, also when the session is bound to a connection.
    _after_commit(session.get_bind().engine, pending, session.info.pop("ombaro.submitted", []))


def _after_commit(engine: Engine, pending: Sequence[tuple[uuid.UUID, str, Enqueue]], kinds: Sequence[str]) -> None:
    for kind in kinds:
        metrics.inc(metrics.JOBS_SUBMITTED, kind)
    failed = [job_id for job_id, kind, enqueue in pending if not _try_enqueue(job_id, kind, enqueue)]
    if failed:
        # Jobs were inserted as enqueued (the common case costs no second write); undo that so the
        # relay hands them over at its next tick instead of after the stale period.
        with engine.begin() as conn:
            conn.execute(update(Job).where(Job.id.in_(failed)).values(enqueued_at=None))


def _try_enqueue(job_id: uuid.UUID, kind: str, enqueue: Enqueue) -> bool:
    try:
        enqueue(job_id, kind)
    except Exception as exc:  # any broker failure: the job is safe in the database
        log.warning("broker unreachable, job %s (%s) left queued for the relay: %s", job_id, kind, exc)
        return False
    return True


def relay(session: Session, enqueue: Enqueue, *, stale_seconds: int, limit: int = 500) -> int:
    """Hand to the broker the jobs that are due and not in it: never enqueued, enqueued long ago
    and still queued (a message lost), or running with an expired lease (a worker died)."""
    lost = session.execute(
        update(Job)
        .where(Job.status == "running", Job.lease_expires_at < func.now(), Job.attempts >= Job.max_attempts)
        .values(status="failed", finished_at=func.now(),
                error={"type": "WorkerLost", "message": "the job's worker stopped reporting, attempts exhausted"})
        .returning(Job.kind)
    ).scalars().all()
    for kind in lost:
        metrics.inc(metrics.JOBS_FAILED, kind)
    stale = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, stale_seconds)
    due = session.execute(
        select(Job.id, Job.kind)
        .where(Job.run_after <= func.now())
        .where(
            ((Job.status == "queued") & (Job.enqueued_at.is_(None) | (Job.enqueued_at < stale)))
            | ((Job.status == "running") & (Job.lease_expires_at < func.now()))
        )
        .order_by(Job.run_after)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    sent: list[uuid.UUID] = []
    for job_id, kind in due:
        if not _try_enqueue(job_id, kind, enqueue):
            break  # the broker is down: the rest waits for the next tick
        sent.append(job_id)
    if sent:
        session.execute(update(Job).where(Job.id.in_(sent)).values(enqueued_at=func.now()))
    return len(sent)


def get_job(session: Session, job_id: uuid.UUID) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job


def may_run(session: Session, kind: str) -> bool:
    """Whether the caller of this request transaction may start (and so re-run, schedule and read)
    jobs of `kind`: the rule the row-level security policies on jobs and schedules apply
    (migration 0009, docs/security.md), asked of the database so both always agree."""
    return bool(session.scalar(select(func.auth.may_run(kind))))


def list_jobs(
    session: Session, *, kinds: Iterable[str] = (), statuses: Iterable[str] = (),
    before: dt.datetime | None = None, limit: int = 50,
) -> Sequence[Job]:
    """Newest first. Read per kind: the newest `limit` jobs of each kind whose jobs the caller's
    policies can show (auth.sees_kind), and of the caller's own, then the newest `limit` of those.
    Row-level security still decides every row; reading per kind only keeps a role whose kinds are
    rare (HR: monthly payroll) from walking the whole log to find them (docs/benchmarks.md)."""
    statuses = list(statuses)

    def newest(query: Any) -> Any:
        if statuses:
            query = query.where(Job.status.in_(statuses))
        if before is not None:
            query = query.where(Job.created_at < before)
        return query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)

    wanted = list(dict.fromkeys(kinds))
    mine = select(func.auth.permissions()).scalar_subquery()  # read once per listing (an initplan)
    source = func.unnest(cast(wanted, ARRAY(Text))) if wanted else func.job_kinds()
    kind = source.table_valued("kind").render_derived(name="k")
    per_kind = newest(select(Job).where(Job.kind == kind.c.kind)).lateral("per_kind")
    of_kinds = select(per_kind).select_from(kind).join(per_kind, true()).where(func.auth.sees_kind(kind.c.kind, mine))
    # The caller's own jobs of the kinds not listed above (so the two parts never overlap).
    own = newest(select(Job).where(Job.requested_by == func.auth.uid(), ~func.auth.sees_kind(Job.kind, mine)))
    if wanted:
        own = own.where(Job.kind.in_(wanted))
    # Whole rows, not ids joined back to jobs: the planner cannot know how few candidates there are.
    candidates = aliased(Job, union_all(of_kinds, own.subquery().select()).subquery("candidates"))
    query = select(candidates).order_by(candidates.created_at.desc(), candidates.id.desc()).limit(limit)
    return session.scalars(query).all()


# ---- running a job (worker side) -------------------------------------------------------------


def backoff_seconds(attempt: int) -> int:
    doublings = min(max(attempt - 1, 0), 6)  # 15 s, doubled per attempt, at most 600 s
    return min(600, 15 << doublings)


def execute(job_id: uuid.UUID, handler: Handler, *, engine: Engine, lease_seconds: int,
            heartbeat_seconds: float | None = None) -> str:
    """Claim, run and record one job. Returns what happened: 'succeeded', 'failed', 'retrying'
    or 'skipped' (another delivery has it, it is finished, or it is not due yet).

    The lease is renewed every `heartbeat_seconds` (a third of the lease unless given) while the
    handler runs. Every log line of the job carries its job id, kind and the request id it was
    submitted with."""
    beat = heartbeat_seconds if heartbeat_seconds is not None else lease_seconds / 3
    with logs.context(job=str(job_id)):
        return _execute(job_id, handler, engine=engine, lease_seconds=lease_seconds, heartbeat_seconds=beat)


class DatabaseUnavailable(Exception):
    """The database could not be reached for a while: the message must go back to the broker, not
    be acknowledged (its job would wait for the relay's stale period)."""


DATABASE_PATIENCE_SECONDS = 60.0


T = TypeVar("T")


def _patiently(step: Callable[[], T], *, what: str, patience: float = DATABASE_PATIENCE_SECONDS) -> T:
    """Run one short database step, trying again while the database is unreachable (a restart, a
    failover) for up to `patience` seconds; then DatabaseUnavailable."""
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        try:
            return step()
        except OperationalError as exc:
            if time.monotonic() + delay > deadline:
                raise DatabaseUnavailable(f"{what}: the database is unreachable: {exc}") from exc
            log.warning("%s: the database is unreachable, trying again in %.1fs: %s", what, delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _execute(job_id: uuid.UUID, handler: Handler, *, engine: Engine, lease_seconds: int,
             heartbeat_seconds: float) -> str:
    claimed = _patiently(lambda: _claim(engine, job_id, lease_seconds), what=f"claiming job {job_id}")
    if claimed is None:
        log.info("job %s not claimable (finished, running elsewhere or not due): skipped", job_id)
        return "skipped"

    attempt, requested_by, kind, request_id = claimed
    started = time.monotonic()
    with logs.context(request=request_id, kind=kind):
        log.info("job %s (%s) attempt %s started", job_id, kind, attempt)
        with _Heartbeat(engine, job_id, attempt, lease_seconds, heartbeat_seconds):
            outcome = _run_claimed(job_id, handler, engine, lease_seconds, attempt, requested_by)
        seconds = time.monotonic() - started
        metrics.job_finished(kind, outcome, seconds)
        log.info("job %s (%s) attempt %s %s in %.3fs", job_id, kind, attempt, outcome, seconds)
    return outcome


def _claim(engine: Engine, job_id: uuid.UUID, lease_seconds: int) -> Any:
    # One statement is its own transaction: in autocommit it is one round trip, not BEGIN, UPDATE, COMMIT.
    with engine.connect() as conn:
        return conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            update(Job)
            .where(Job.id == job_id, Job.run_after <= func.now(), Job.attempts < Job.max_attempts)
            .where((Job.status == "queued")
                   | ((Job.status == "running") & (Job.lease_expires_at < func.now())))
            .values(status="running", attempts=Job.attempts + 1, progress=0, progress_message=None,
                    started_at=func.coalesce(Job.started_at, func.now()), finished_at=None,
                    lease_expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds))
            .returning(Job.attempts, Job.requested_by, Job.kind, Job.request_id)
        ).one_or_none()


def _run_claimed(job_id: uuid.UUID, handler: Handler, engine: Engine, lease_seconds: int, attempt: int,
                 requested_by: uuid.UUID | None) -> str:
    fenced = (Job.id == job_id, Job.status == "running", Job.attempts == attempt)
    progress = _ProgressReporter(engine, fenced, lease_seconds)
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            # The handler runs as the workers' role and says on whose behalf (docs/access.md).
            act_as(session, WORKER_ROLE, {"role": "worker", "job": str(job_id),
                                          "sub": str(requested_by) if requested_by else None})
            job = session.get_one(Job, job_id)
            result = handler(session, job, progress)
            done = session.execute(
                update(Job).where(*fenced)
                .values(status="succeeded", result=to_json(result or {}), error=None, progress=100,
                        finished_at=func.now(), lease_expires_at=None)
            )
            # An UPDATE returns a CursorResult, which has the row count (Session.execute is typed as Result).
            assert isinstance(done, CursorResult)
            if done.rowcount != 1:
                raise LeaseLost(f"job {job_id} attempt {attempt} lost its lease; its work is rolled back")
        return "succeeded"
    except LeaseLost:
        log.warning("job %s attempt %s lost its lease to another worker; rolled back", job_id, attempt)
        return "skipped"
    except Exception as exc:
        transient = isinstance(exc, RetryLater | OperationalError)
        return _record_failure(engine, fenced, job_id, attempt, exc, transient=transient)


class LeaseLost(Exception):
    pass


def _record_failure(engine: Engine, fenced: tuple[Any, ...], job_id: uuid.UUID, attempt: int,
                    exc: Exception, *, transient: bool) -> str:
    error = {"type": type(exc).__name__, "message": str(exc)[:2000], "attempt": attempt,
             "trace": traceback.format_exc(limit=8)[-4000:]}
    # The handler may have failed because the database went away: wait for it to record the outcome
    # (a transient failure is then retried after its back-off rather than after the lease).
    return _patiently(lambda: _write_failure(engine, fenced, job_id, attempt, exc, error, transient=transient),
                      what=f"recording the failure of job {job_id}")


def _write_failure(engine: Engine, fenced: tuple[Any, ...], job_id: uuid.UUID, attempt: int, exc: Exception,
                   error: dict[str, Any], *, transient: bool) -> str:
    with engine.begin() as conn:
        max_attempts = conn.execute(select(Job.max_attempts).where(Job.id == job_id)).scalar_one()
        if transient and attempt < max_attempts:
            delay = backoff_seconds(attempt)
            conn.execute(update(Job).where(*fenced).values(
                status="queued", error=error, enqueued_at=None, lease_expires_at=None,
                run_after=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, delay)))
            log.warning("job %s attempt %s failed transiently, retry in %ss: %s", job_id, attempt, delay, exc)
            return "retrying"
        conn.execute(update(Job).where(*fenced).values(
            status="failed", error=error, finished_at=func.now(), lease_expires_at=None))
    log.error("job %s attempt %s failed: %s", job_id, attempt, exc)
    return "failed"


class _Heartbeat:
    """Renews a running job's lease every `interval` seconds on its own short transactions, fenced
    by the attempt, from a thread of its own: a handler busy inside one long statement (a settlement
    batch, a provider call) keeps its lease. It stops when the job ends, or when the renewal finds
    the attempt no longer running (taken over or cancelled). A renewal that fails (the database is
    unreachable for a moment) is tried again at the next beat; the lease is several beats long."""

    def __init__(self, engine: Engine, job_id: uuid.UUID, attempt: int, lease_seconds: int, interval: float) -> None:
        self._engine, self._job_id, self._attempt = engine, job_id, attempt
        self._lease, self._interval = lease_seconds, interval
        self._stop = threading.Event()
        context = contextvars.copy_context()  # the beat's log lines carry the job's ids
        self._thread = threading.Thread(target=context.run, args=(self._run,), name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(self._interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self.renew():
                    if not self._stop.is_set():  # else it just finished: its outcome took the row
                        log.warning("job %s attempt %s is no longer ours; heartbeat stopped", self._job_id,
                                    self._attempt)
                    return
            except Exception as exc:  # the database away for a moment: the next beat tries again
                log.warning("job %s heartbeat failed: %s", self._job_id, exc)

    def renew(self) -> bool:
        with self._engine.begin() as conn:
            renewed = conn.execute(
                update(Job).where(Job.id == self._job_id, Job.status == "running", Job.attempts == self._attempt)
                .values(lease_expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, self._lease))
            )
        return renewed.rowcount == 1


class _ProgressReporter:
    """Writes progress on its own short transaction (visible while the job's own is open),
    extends the lease, and writes at most twice a second."""

    def __init__(self, engine: Engine, fenced: tuple[Any, ...], lease_seconds: int) -> None:
        self._engine, self._fenced, self._lease = engine, fenced, lease_seconds
        self._last = 0.0

    def __call__(self, percent: float, message: str | None = None) -> None:
        now = time.monotonic()
        if now - self._last < 0.5 and percent < 100:
            return
        self._last = now
        with self._engine.begin() as conn:
            conn.execute(update(Job).where(*self._fenced).values(
                progress=max(0.0, min(100.0, round(percent, 2))), progress_message=message,
                lease_expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, self._lease)))


# ---- operators (console, API, CLI) -----------------------------------------------------------


class JobNotRetryable(CommandError):
    """409: only a failed or cancelled job can be run again."""


RETRYABLE = ("failed", "cancelled")


def retry(session: Session, job_id: uuid.UUID, *, enqueue: Enqueue) -> Job:
    """Run a failed job again from the start, with fresh attempts. Safe because every handler is
    idempotent: what the failed run already finished is found done and not repeated."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    command_of(job.kind)  # a kind no longer declared is refused, the job left as it is
    if job.status not in RETRYABLE:
        raise JobNotRetryable(f"job {job_id} is {job.status}; only a failed or cancelled job can be retried")
    job.status, job.attempts, job.progress, job.progress_message = "queued", 0, 0, None
    job.error = job.result = job.started_at = job.finished_at = job.lease_expires_at = None
    job.run_after = job.enqueued_at = func.now()
    session.flush()
    enqueue_after_commit(session, job.id, job.kind, enqueue)
    return job


# ---- the registry: every command kind, declared once by its capability ------------------------

# The modules that declare commands, one per capability (docs/architecture.md): a package's
# `commands.py`, or `<module>_commands.py` beside a capability that is a single module.
CAPABILITIES: tuple[str, ...] = (
    "ombaro.campaigns.commands",
    "ombaro.dispatch.commands",
    "ombaro.payroll.commands",
    "ombaro.settlements.commands",
    "ombaro.payments.commands",
    "ombaro.notifications_commands",
    "ombaro.locations.commands",
    "ombaro.reporting_commands",
    "ombaro.diagnostics_commands",
    "ombaro.housekeeping_commands",
)

QUEUES = ("dispatch", "bulk", "maintenance")


class UnknownCommand(CommandError):
    """422: no capability declares this kind."""


class InvalidParams(CommandError):
    """422: the params do not pass the kind's schema; `errors` names each field and what is wrong."""

    def __init__(self, kind: str, errors: Mapping[str, Any]) -> None:
        self.kind, self.errors = kind, dict(errors)
        described = "; ".join(f"{name}: {' '.join(map(str, m)) if isinstance(m, list) else m}"
                              for name, m in sorted(self.errors.items()))
        super().__init__(f"invalid params for {kind}: {described}")


@dataclass(frozen=True)
class JobRef:
    """What a handler may know of its job besides the params: never the row itself."""

    id: uuid.UUID
    kind: str
    params: dict[str, Any]  # as stored (JSON); the typed params are the handler's first argument
    requested_by: uuid.UUID | None
    scheduled_for: dt.datetime | None
    attempts: int


@dataclass(frozen=True, eq=False)
class Environment:
    """What the worker process provides to handlers: its settings, its database and its broker."""

    settings: Settings
    engine: Engine
    enqueue: Enqueue


@dataclass(frozen=True)
class Context:
    """A handler's second argument: the job's transaction (it runs as the workers' role), the
    progress reporter, the job's identity and the worker's environment."""

    session: Session
    progress: Progress
    job: JobRef
    env: Environment


class Params:
    """Base of a command's typed params: a frozen dataclass (declare it `@dataclass(frozen=True)`)."""


P = TypeVar("P", bound=Params)


class ParamsSchema(Schema):
    """A command's params schema: loads JSON into the frozen dataclass named by `model` (which must
    take every field as a keyword), refusing unknown fields. Rules that involve several fields go in a
    `@validates_schema` method here, once: the API, the CLI, the scheduler and the workers all load
    through it."""

    model: ClassVar[type[Params]]

    @post_load
    def _typed(self, data: dict[str, Any], **_: Any) -> Params:
        return self.model(**data)


@dataclass(frozen=True)
class NoParams(Params):
    """The params of a command that takes none."""


class NoParamsSchema(ParamsSchema):
    model = NoParams


@dataclass(frozen=True)
class Command(Generic[P]):
    """One command kind. `handler(params, context)` does the domain work in the job's transaction
    and returns the result (described by `result` in the OpenAPI document); `after` runs once the
    outcome `succeeded` is recorded, outside the job's transaction (e.g. completing a campaign)."""

    kind: str
    params: type[ParamsSchema]
    handler: Callable[[P, Context], Mapping[str, Any]]
    queue: str
    permission: tuple[str, str]
    max_attempts: int = 3
    result: type[Schema] | None = None
    description: str = ""
    example: Mapping[str, Any] = field(default_factory=dict)
    after: Callable[[uuid.UUID, Environment], None] | None = None

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"{self.kind}: no queue {self.queue!r} (one of {', '.join(QUEUES)})")

    @functools.cached_property
    def schema(self) -> ParamsSchema:
        """One instance of the params schema, reused: marshmallow's load and dump keep no state in
        the instance, and building one (its fields bound and copied) cost a submit three times."""
        return self.params()

    def load(self, params: Mapping[str, Any] | Params) -> P:
        """Typed params from JSON-like input (dates and UUIDs may still be Python objects), or
        InvalidParams naming each field and what is wrong with it."""
        if isinstance(params, Params):  # typed already (the API's schema): checked again as stored
            dumped: dict[str, Any] = self.schema.dump(params)
            params = dumped
        # An optional field given as null is an optional field not given (as the row stores it).
        raw = {key: value for key, value in to_json(dict(params)).items() if value is not None}
        try:
            loaded = self.schema.load(raw)
        except ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
            raise InvalidParams(self.kind, messages) from None
        # The schema's `model` is this command's params class: they are declared together.
        assert isinstance(loaded, self.params.model)
        return typing.cast(P, loaded)

    def store(self, params: Params) -> dict[str, Any]:
        """The params as the job row keeps them: JSON, with optional fields left unset omitted."""
        dumped = self.schema.dump(params)
        stored: dict[str, Any] = to_json({key: value for key, value in dumped.items() if value is not None})
        return stored

    def run(self, env: Environment) -> Handler:
        """The low-level handler `execute` runs: typed params from the row, then the declared handler."""

        def handler(session: Session, job: Job, progress: Progress) -> dict[str, Any]:
            ref = JobRef(id=job.id, kind=job.kind, params=dict(job.params or {}), requested_by=job.requested_by,
                         scheduled_for=job.scheduled_for, attempts=job.attempts)
            return dict(self.handler(self.load(ref.params), Context(session, progress, ref, env)))

        return handler


_REGISTRY: dict[str, Command[Any]] = {}
_LOADED = False


def declare(*declared: Command[Any]) -> None:
    """Called by a capability's commands module at import: a kind is declared once."""
    for command in declared:
        if command.kind in _REGISTRY and _REGISTRY[command.kind] is not command:
            raise ValueError(f"command {command.kind} is declared twice")
        _REGISTRY[command.kind] = command


def registry() -> dict[str, Command[Any]]:
    """Every declared command by kind (the capabilities' modules are imported on first use)."""
    global _LOADED
    if not _LOADED:
        for module in CAPABILITIES:
            importlib.import_module(module)
        _LOADED = True
    return dict(sorted(_REGISTRY.items()))


def command_of(kind: str) -> Command[Any]:
    if not _LOADED:
        registry()
    found = _REGISTRY.get(kind)  # not registry()'s sorted copy: every submit asks
    if found is None:
        raise UnknownCommand(f"no command kind {kind!r}")
    return found


def validate_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params as `submit` would store them, or UnknownCommand / InvalidParams (a schedule's
    params are checked when it is saved)."""
    command = command_of(kind)
    return command.store(command.load(params))


def queue_of(kind: str) -> str:
    return command_of(kind).queue
