"""Housekeeping: the retention policies (`retention_policies`, migration 0022) enforced in bounded
batches (docs/retention.md).

For `jobs` a policy names a kind (`settlements.run`), a family (`settlements.*`) or every kind
(`*`), and an outcome (`succeeded`, `failed`, `cancelled`) or every one (`*`); the most specific
policy for a (kind, outcome) wins, the kind before the outcome. A finished job is deleted once both
its creation and its end are older than the policy's `keep_for`; a kind no policy covers is kept, a
queued or running job is never touched, and neither is a job a row that must stay still refers to
(a settlement or payroll run, a payment webhook event, a message being sent).

Each batch is one short transaction on the owner's connection: `DELETE ... WHERE id IN (SELECT id
... LIMIT n FOR UPDATE SKIP LOCKED)`, so the relay, the claim and the job listing never wait behind
it, and a row locked by any of them is simply left for the next batch or the next night."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

FINISHED = ("succeeded", "failed", "cancelled")

# A job some row still refers to without a foreign key stays while that row does.
JOB_REFERENCED = (
    "EXISTS (SELECT 1 FROM settlement_runs AS r WHERE r.job_id = j.id)",
    "EXISTS (SELECT 1 FROM payroll_runs AS r WHERE r.job_id = j.id)",
    "EXISTS (SELECT 1 FROM webhook_events AS e WHERE e.job_id = j.id)",
    "EXISTS (SELECT 1 FROM message_deliveries AS d WHERE d.sending_job_id = j.id "
    "AND d.status IN ('sending', 'unknown'))",
)

# created_at < cutoff lets the range scan of ix_jobs_kind_created find the old rows of one kind.
DELETE_JOBS = text(
    "DELETE FROM jobs WHERE id IN ("
    "SELECT j.id FROM jobs AS j WHERE j.kind = :kind AND j.status = :status "
    "AND j.created_at < :cutoff AND coalesce(j.finished_at, j.updated_at) < :cutoff "
    + "".join(f"AND NOT {guard} " for guard in JOB_REFERENCED)
    + "LIMIT :batch FOR UPDATE OF j SKIP LOCKED)"
)

# The latest refresh of each view is what the dashboards' freshness reads: always kept.
DELETE_VIEW_REFRESHES = text(
    "DELETE FROM view_refreshes WHERE id IN ("
    "SELECT v.id FROM view_refreshes AS v WHERE v.started_at < :cutoff "
    "AND v.started_at < (SELECT max(w.started_at) FROM view_refreshes AS w WHERE w.view_name = v.view_name) "
    "LIMIT :batch FOR UPDATE OF v SKIP LOCKED)"
)


@dataclass(frozen=True)
class Policy:
    id: int
    table_name: str
    kind: str
    status: str
    keep_for: str | None  # as PostgreSQL writes the interval ('8 years', '30 days'); None: for ever
    reason: str
    cutoff: dt.datetime | None  # finished before this, the row may go (the database's now() - keep_for)

    def covers(self, kind: str) -> bool:
        return self.kind in ("*", kind) or (self.kind.endswith(".*") and kind.startswith(self.kind[:-1]))

    def rank(self) -> tuple[int, int]:
        """Most specific first: a kind over a family over `*`, then an outcome over `*`."""
        kind_rank = 0 if self.kind == "*" else 1 if self.kind.endswith(".*") else 2
        return kind_rank, 0 if self.status == "*" else 1


@dataclass(frozen=True)
class Sweep:
    """One (policy, kind, outcome) the run deletes from: `kind` and `status` are None for a
    table-wide policy."""

    policy: Policy
    kind: str | None
    status: str | None


def load_policies(conn: Connection) -> list[Policy]:
    """The policies, each with its cutoff from the database's clock (interval arithmetic stays
    PostgreSQL's: '8 years' is calendar years, not 96 months of 30 days)."""
    rows = conn.execute(text(
        "SELECT id, table_name, kind, status, keep_for::text, reason, now() - keep_for "
        "FROM retention_policies ORDER BY id")).all()
    return [Policy(*row) for row in rows]


def policy_for(policies: Iterable[Policy], kind: str, status: str) -> Policy | None:
    """The policy that decides how long finished jobs of `kind` with outcome `status` are kept;
    None: no policy covers them, they are kept."""
    matching = [p for p in policies
                if p.table_name == "jobs" and p.covers(kind) and p.status in ("*", status)]
    return max(matching, key=Policy.rank, default=None)


def plan(policies: list[Policy], kinds: Iterable[str]) -> tuple[list[Sweep], list[str]]:
    """What to delete from: one sweep per kind and outcome with a finite policy, one per other
    table's policy; and the kinds no policy covers at all (kept)."""
    sweeps: list[Sweep] = []
    uncovered: list[str] = []
    for kind in sorted(set(kinds)):
        decided = {status: policy_for(policies, kind, status) for status in FINISHED}
        if all(p is None for p in decided.values()):
            uncovered.append(kind)
        sweeps += [Sweep(p, kind, status) for status, p in decided.items() if p is not None and p.keep_for]
    sweeps += [Sweep(p, None, None) for p in policies if p.table_name != "jobs" and p.keep_for]
    return sweeps, uncovered


def known_kinds(conn: Connection) -> list[str]:
    """The kinds present in the job log (a skip scan of the kind index, migration 0009)."""
    return list(conn.execute(text("SELECT k FROM job_kinds() AS k")).scalars())


def enforce(engine: Engine, declared_kinds: Iterable[str], *, batch_rows: int = 5000, max_batches: int = 2000,
            pause_seconds: float = 0.0, lock_timeout_ms: int = 2000,
            progress: Callable[[float, str | None], None] | None = None) -> dict[str, Any]:
    """Delete what the retention policies let go, at most `max_batches` batches of `batch_rows`
    rows (a batch: a statement that deleted something), each in its own transaction on the owner's
    connection (`engine`). Every cutoff is taken from the database's clock once, at the start, so a
    run is one consistent decision."""
    began = time.monotonic()
    with engine.connect() as conn:
        now: dt.datetime = conn.execute(text("SELECT now()")).scalar_one()
        policies = load_policies(conn)
        sweeps, uncovered = plan(policies, [*declared_kinds, *known_kinds(conn)])
    outcome: list[dict[str, Any]] = []
    batches = 0
    stopped = False  # at max_batches: the rest waits for the next run
    for done, sweep in enumerate(sweeps):
        cutoff = sweep.policy.cutoff
        deleted = 0
        while not stopped:
            with engine.begin() as conn:
                conn.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": f"{lock_timeout_ms}ms"})
                if sweep.kind is None:
                    count = conn.execute(DELETE_VIEW_REFRESHES, {"cutoff": cutoff, "batch": batch_rows}).rowcount
                else:
                    count = conn.execute(DELETE_JOBS, {"kind": sweep.kind, "status": sweep.status,
                                                       "cutoff": cutoff, "batch": batch_rows}).rowcount
            batches += 1 if count else 0  # an empty probe of a kind with nothing to delete is not a batch
            deleted += count
            if count < batch_rows:
                break
            stopped = batches >= max_batches
            if pause_seconds and not stopped:
                time.sleep(pause_seconds)
        outcome.append({"sweep": sweep, "cutoff": cutoff, "deleted": deleted})
        if progress is not None:
            progress(100.0 * (done + 1) / len(sweeps),
                     f"{sweep.policy.table_name} {sweep.kind or '*'} {sweep.status or '*'}: {deleted} deleted")
    by_policy: dict[int, dict[str, Any]] = {}
    for item in outcome:
        policy = item["sweep"].policy
        entry = by_policy.setdefault(policy.id, {
            "policy_id": policy.id, "table": policy.table_name, "kind": policy.kind, "status": policy.status,
            "keep_for": policy.keep_for, "cutoff": item["cutoff"], "deleted": 0})
        entry["deleted"] += item["deleted"]
    return {
        "now": now,
        "deleted": sum(item["deleted"] for item in outcome),
        "batches": batches,
        "batch_rows": batch_rows,
        "complete": not stopped,
        "by_policy": list(by_policy.values()),
        "by_kind": [{"kind": item["sweep"].kind, "status": item["sweep"].status, "deleted": item["deleted"]}
                    for item in outcome if item["deleted"] and item["sweep"].kind is not None],
        "kept_without_policy": uncovered,
        "duration_ms": round((time.monotonic() - began) * 1000),
    }
