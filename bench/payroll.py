"""A month's payroll run for 10,000 employees with 300,000 attendance rows (a 30-day month), leave,
raises, joiners, leavers and adjustments, against a hand-written floor that writes the same rows, in
the same process, rounds alternating (engine, floor, engine, ...), each figure a median.

The engine goes through the real command path (commands.execute: claim, worker role under row-level
security, fenced success): the run job fans out its batches, which are executed here one after
another as a worker would.

The floor (`floor_round`) writes exactly what the engine's run writes, the month's `salary_records`
and their `salary_record_details` lines (the data has no arrears, so no `payroll_arrears` lines),
with the values the engine computed (kept, untimed, in two snapshot tables after its first round):
per batch of the same size, in one transaction each, it reads the batch's attendance with one
aggregate statement (what reading the month's input costs at all), COPYs the batch's records and
lines in, and commits. It computes nothing, checks nothing, upserts nothing: a lower bound on what
any engine writing these rows pays. Before every round the month's records are truncated (untimed),
so every round writes all of them; after every round the bench checks that it wrote the same number
of records and lines with the same totals (gross, deductions, net, paid days) as the first round.

The process's resident set is sampled after every batch of the first engine round, and its CPU
time is taken over each engine round (the engine's Python; the floor's Python does next to nothing). A last pass (a
re-run: it loads and computes everyone again, and writes nothing since nothing changed) runs under
tracemalloc to show Python's memory per batch stays flat (`--no-rerun` skips it).

Runs against a scratch database (`<db>_payroll_bench`, migrated here, dropped after) on the
configured PostgreSQL server (DATABASE_URL or the embedded one).
Usage: python bench/payroll.py [--employees 10000] [--batch-size 500] [--rounds 3] [--no-rerun] [--keep]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import alembic_config  # noqa: E402
from ombaro import commands  # noqa: E402
from ombaro.config import load_settings  # noqa: E402
from ombaro.models.jobs import Job  # noqa: E402
from ombaro.payroll import runs  # noqa: E402

YEAR, MONTH, START, END = 2026, 6, "2026-06-01", "2026-06-30"

DATA = [
    # Employees: 1% join on the 10th, 1% leave on the 20th.
    """
    WITH u AS (INSERT INTO auth.users (email, encrypted_password)
               SELECT 'bench' || n || '@example.test', 'x' FROM generate_series(1, :n) AS n RETURNING id, email)
    INSERT INTO employees (id, employee_code, name, email, mobile, gender, department, designation, joining_date,
                           last_working_date)
    SELECT id, 'B' || lpad((row_number() OVER ())::text, 6, '0'), 'Bench Person', email, '+919800000000',
           CASE WHEN random() < 0.45 THEN 'female' ELSE 'male' END, 'operations', 'Executive',
           CASE WHEN random() < 0.01 THEN DATE '2026-06-10' ELSE DATE '2025-01-01' END,
           CASE WHEN random() < 0.01 THEN DATE '2026-06-20' END
    FROM u
    """,
    # One structure each; 5% get a raise on the 15th.
    """
    INSERT INTO compensation_structures (employee_id, effective_from, basic, hra, transport, special, pt_state,
                                         esi_applicable, pf_applicable)
    SELECT id, least(joining_date, DATE '2025-01-01'), b, round(b * 0.4, 2), 1600, round(b * 0.1, 2),
           (ARRAY['MH', 'KA', 'TN', 'WB', NULL])[1 + floor(random() * 5)::int], random() < 0.3, random() < 0.9
    FROM (SELECT id, joining_date, round((8000 + random() * 92000)::numeric, 2) AS b FROM employees) AS e
    """,
    """
    INSERT INTO compensation_structures (employee_id, effective_from, basic, hra, transport, special, pt_state)
    SELECT employee_id, DATE '2026-06-15', round(basic * 1.1, 2), round(hra * 1.1, 2), transport, special, pt_state
    FROM compensation_structures WHERE random() < 0.05
    """,
    # A 30-day month of attendance: one row per employee per day (300,000 for 10,000 employees).
    """
    INSERT INTO attendance_records (employee_id, date, status, work_hours)
    SELECT id, day, status, CASE WHEN status IN ('present', 'late', 'work_from_home')
                                 THEN round((7.5 + r2 * 2.5)::numeric, 2)
                                 WHEN status = 'half_day' THEN 4.50 END
    FROM (SELECT e.id, d::date AS day, random() AS r2,
                 CASE WHEN extract(isodow FROM d) = 7 THEN 'holiday'
                      WHEN r < 0.82 THEN 'present' WHEN r < 0.88 THEN 'late' WHEN r < 0.93 THEN 'work_from_home'
                      WHEN r < 0.96 THEN 'half_day' ELSE 'absent' END AS status
          FROM (SELECT id, random() AS r FROM employees) AS e
          CROSS JOIN generate_series(DATE '2026-06-01', DATE '2026-06-30', interval '1 day') AS d) AS x
    """,
    # 10% take two days' approved leave (a fifth of it unpaid); their days are marked leave.
    """
    INSERT INTO leave_requests (employee_id, leave_type, from_date, to_date, reason, status)
    SELECT id, CASE WHEN random() < 0.2 THEN 'unpaid' ELSE 'casual' END, DATE '2026-06-08', DATE '2026-06-09',
           'bench', 'approved'
    FROM employees WHERE random() < 0.1
    """,
    """
    UPDATE attendance_records AS a SET status = 'leave', work_hours = NULL FROM leave_requests AS l
    WHERE l.employee_id = a.employee_id AND a.date BETWEEN l.from_date AND l.to_date
    """,
    """
    INSERT INTO payroll_adjustments (employee_id, year, month, kind, amount)
    SELECT id, 2026, 6, (ARRAY['bonus', 'loan_emi', 'salary_advance'])[1 + floor(random() * 3)::int], 1000
    FROM employees WHERE random() < 0.08
    """,
]

# The floor's read: a batch's attendance per employee, in one hand-written statement.
AGGREGATE = """
SELECT employee_id,
       count(*) FILTER (WHERE status = 'absent') AS absent,
       count(*) FILTER (WHERE status = 'half_day') AS half_days,
       count(*) FILTER (WHERE status = 'leave') AS leave_days,
       coalesce(sum(greatest(work_hours - 8, 0)) FILTER (WHERE status IN ('present', 'late', 'work_from_home')), 0)
           AS overtime_hours
FROM attendance_records
WHERE employee_id = ANY(%(ids)s::uuid[]) AND date BETWEEN %(start)s AND %(end)s
GROUP BY employee_id
"""

RECORD_COLUMNS = ("id", "employee_id", "year", "month", "status", "notes", "basic_salary", "allowances", "deductions",
                  "overtime_hours", "overtime_amount", "bonus", "gross_salary", "total_deductions", "net_salary")
DETAIL_COLUMNS = ("salary_record_id", "run_id", "employee_code", "employee_name", "department", "designation",
                  "days_in_month", "paid_days", "lop_days", "explanation", "employer_contributions")
SNAPSHOT = [
    "DROP TABLE IF EXISTS floor_records, floor_details",
    f"CREATE TABLE floor_records AS SELECT {', '.join(RECORD_COLUMNS)} FROM salary_records "
    f"WHERE year = {YEAR} AND month = {MONTH}",
    "CREATE INDEX ON floor_records (employee_id)",
    f"CREATE TABLE floor_details AS SELECT {', '.join('d.' + c for c in DETAIL_COLUMNS)} "
    "FROM salary_record_details AS d JOIN floor_records AS r ON r.id = d.salary_record_id",
    "CREATE INDEX ON floor_details (salary_record_id)",
    "ANALYZE floor_records, floor_details",
]
# What each round must have written, the same every round: counts, totals, and an md5 over every
# column of every record and line but the generated ids and the run (to compare runs to the byte).
WRITTEN = text(f"""
SELECT count(*) AS records, count(d.id) AS lines, sum(r.gross_salary) AS gross,
       sum(r.total_deductions) AS deductions, sum(r.net_salary) AS net, sum(d.paid_days) AS paid_days,
       (SELECT count(*) FROM payroll_arrears) AS arrears,
       md5(string_agg(row_to_json(x)::text, '|' ORDER BY x.employee_id)) AS digest
FROM salary_records AS r LEFT JOIN salary_record_details AS d ON d.salary_record_id = r.id
CROSS JOIN LATERAL (SELECT {", ".join("r." + c for c in RECORD_COLUMNS[1:])},
                           {", ".join("d." + c for c in DETAIL_COLUMNS[2:])}) AS x
WHERE r.year = {YEAR} AND r.month = {MONTH}
""")


class Bench:
    def __init__(self, engine: Engine, batch_size: int) -> None:
        self.engine, self.batch_size = engine, batch_size
        self.queued: list[uuid.UUID] = []
        self.batch_samples: list[tuple[int, int]] = []  # (traced now, traced peak) after each batch
        self.rss_samples: list[int] = []  # the process's resident set after each batch, bytes

    def enqueue(self, job_id: uuid.UUID, _kind: str) -> None:
        self.queued.append(job_id)

    def handler(self, session: Session, job: Job, progress: commands.Progress) -> dict[str, Any]:
        if job.kind == runs.RUN_KIND:
            return runs.start_run(session, job.params, job_id=job.id, requested_by=None, scheduled_for=None,
                                  zone="Asia/Kolkata", enqueue=self.enqueue, batch_size=self.batch_size)
        return runs.run_batch(session, job.params)

    def run(self, *, trace: bool = False) -> float:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            job = commands.submit(session, runs.RUN_KIND, {"year": YEAR, "month": MONTH},
                                  enqueue=lambda *_: None).job
        began = time.perf_counter()
        assert commands.execute(job.id, self.handler, engine=self.engine, lease_seconds=600) == "succeeded"
        while self.queued:
            outcome = commands.execute(self.queued.pop(0), self.handler, engine=self.engine, lease_seconds=600)
            assert outcome == "succeeded", outcome
            self.rss_samples.append(rss_now())
            if trace:
                self.batch_samples.append(tracemalloc.get_traced_memory())
                tracemalloc.reset_peak()
        return time.perf_counter() - began


def rss_now() -> int:
    """The process's resident set now (ru_maxrss is only ever the peak)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def clear_month(engine: Engine) -> None:
    """Untimed, before every round: the month's records (and, by cascade, their lines) go."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE salary_records, payroll_failures CASCADE"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE salary_records, salary_record_details"))


def floor_round(url: str, batch_size: int) -> float:
    """The floor: per batch, read its attendance (one aggregate) and COPY its records and lines, in
    one transaction. Only the read, the COPYs and the commit are timed; taking the batch's rows out
    of the snapshot is not."""
    seconds, after = 0.0, None
    with psycopg.connect(url) as conn:
        while True:
            where = "" if after is None else "WHERE employee_id > %(after)s"
            records = conn.execute(
                f"SELECT {', '.join(c + '::text' for c in RECORD_COLUMNS)} FROM floor_records {where} "
                "ORDER BY employee_id LIMIT %(n)s", {"after": after, "n": batch_size}).fetchall()
            if not records:
                break
            details = conn.execute(
                f"SELECT {', '.join('d.' + c + '::text' for c in DETAIL_COLUMNS)} FROM floor_details AS d "
                "WHERE d.salary_record_id = ANY(%(ids)s::uuid[])", {"ids": [r[0] for r in records]}).fetchall()
            ids = [r[1] for r in records]
            after = ids[-1]
            conn.commit()
            began = time.perf_counter()
            conn.execute(AGGREGATE, {"ids": ids, "start": START, "end": END}).fetchall()
            with conn.cursor() as cur:
                with cur.copy(f"COPY salary_records ({', '.join(RECORD_COLUMNS)}) FROM STDIN") as copy:
                    for row in records:
                        copy.write_row(row)
                with cur.copy(f"COPY salary_record_details ({', '.join(DETAIL_COLUMNS)}) FROM STDIN") as copy:
                    for row in details:
                        copy.write_row(row)
            conn.commit()
            seconds += time.perf_counter() - began
    return seconds


def written(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(WRITTEN).one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=runs.BATCH_SIZE)
    parser.add_argument("--rounds", type=int, default=3, help="engine and floor rounds, alternating")
    parser.add_argument("--no-rerun", action="store_true",
                        help="skip the re-run under tracemalloc (which slows Python about fourfold)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    url = make_url(load_settings().database_url)
    bench_db = f"{url.database}_payroll_bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    from alembic import command

    cfg = alembic_config(bench_url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
    engine = create_engine(bench_url)
    try:
        began = time.perf_counter()
        with engine.begin() as conn:
            for statement in DATA:
                conn.execute(text(statement), {"n": args.employees})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        with engine.connect() as conn:
            attendance = conn.execute(text("SELECT count(*) FROM attendance_records")).scalar_one()
            leaves = conn.execute(text("SELECT count(*) FROM leave_requests")).scalar_one()
        print(f"data: {args.employees} employees, {attendance} attendance rows, {leaves} leave requests "
              f"({time.perf_counter() - began:.1f} s to generate)", flush=True)

        bench = Bench(engine, args.batch_size)
        psycopg_url = url.set(drivername="postgresql", database=bench_db).render_as_string(hide_password=False)
        runs_s: list[float] = []
        cpus: list[float] = []  # this process's CPU in each engine round (Python's share, load-proof)
        floors: list[float] = []
        expected: tuple[Any, ...] | None = None
        rss_first = (0, 0)
        rss_batches: list[int] = []
        for number in range(args.rounds):
            for kind in ("engine", "floor"):
                clear_month(engine)
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                if kind == "engine":
                    cpu = time.process_time()
                    runs_s.append(bench.run())
                    cpus.append(time.process_time() - cpu)
                else:
                    floors.append(floor_round(psycopg_url, args.batch_size))
                if number == 0 and kind == "engine":
                    rss_first = (rss_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
                    rss_batches = list(bench.rss_samples)
                    with engine.begin() as conn:
                        for statement in SNAPSHOT:
                            conn.execute(text(statement))
                got = written(engine)
                if expected is None:
                    expected = got
                assert got == expected, f"the {kind} wrote {got}, the first round {expected}"
                print(f"round {number + 1} {kind}: {(runs_s if kind == 'engine' else floors)[-1]:.2f} s"
                      + (f" (process CPU {cpus[-1]:.2f} s)" if kind == "engine" else ""), flush=True)
        assert expected is not None
        seconds, floor = statistics.median(runs_s), statistics.median(floors)
        with engine.connect() as conn:
            failures = conn.execute(text("SELECT count(*) FROM payroll_failures")).scalar_one()
            run = conn.execute(text("SELECT batches_total, status FROM payroll_runs")).one()
        records, lines, gross, deductions, net, paid_days, arrears, digest = expected
        print(f"each round wrote {records} records and {lines} lines ({arrears} arrears lines): gross {gross}, "
              f"deductions {deductions}, net {net}, paid days {paid_days}, md5 {digest}; engine and floor alike")
        print(f"floor (per batch: one attendance aggregate, COPY of the records and lines, commit): "
              f"median {floor:.2f} s of {', '.join(f'{f:.2f}' for f in floors)}")
        print(f"payroll run: median {seconds:.2f} s of {', '.join(f'{r:.2f}' for r in runs_s)} for {records} records, "
              f"{failures} failures, {run.batches_total} batches of {args.batch_size} "
              f"({seconds / max(1, records) * 1000:.3f} ms per employee); run {run.status}; "
              f"process CPU median {statistics.median(cpus):.2f} s (the engine's Python; the rest is the server's)")
        print(f"ratio run / floor: {seconds / floor:.2f} (load average {Path('/proc/loadavg').read_text().split()[0]})")

        print(f"process RSS during the first run: {rss_batches[0] / 2**20:.0f} MiB after batch 1, "
              f"{rss_batches[len(rss_batches) // 2] / 2**20:.0f} MiB after batch {len(rss_batches) // 2 + 1}, "
              f"{rss_batches[-1] / 2**20:.0f} MiB after batch {len(rss_batches)}, "
              f"{max(rss_batches) / 2**20:.0f} MiB at most")
        print(f"process max RSS: {rss_first[0] / 1024:.0f} MiB before the first run, {rss_first[1] / 1024:.0f} MiB "
              f"after it, {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB after all rounds",
              flush=True)
        if args.no_rerun:
            return
        tracemalloc.start()
        rerun = bench.run(trace=True)
        tracemalloc.stop()
        peaks = [peak for _, peak in bench.batch_samples]
        held = [now for now, _ in bench.batch_samples]
        print(f"re-run (nothing changes, nothing written): {rerun:.2f} s (under tracemalloc)")
        print(f"memory per batch (tracemalloc): peak {max(peaks) / 2**20:.1f} MiB at most, "
              f"first batch {peaks[0] / 2**20:.1f} MiB, last {peaks[-1] / 2**20:.1f} MiB; "
              f"held after batch 1 {held[0] / 2**20:.2f} MiB, after batch {len(held)} {held[-1] / 2**20:.2f} MiB")
    finally:
        engine.dispose()
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
