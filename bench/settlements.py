"""A settlement run over N payments (default 1,000,000) for 1,000 vendors, against the
hand-written SQL that performs the same writes (one aggregate INSERT into payment_settlements and
one INSERT ... SELECT of the item links: the physical floor of the work), in the same run; the
bare aggregate (no writes) is timed too, for scale. Prints the times, the ratio and the Python
memory of the run at two sizes, to show it does not grow with the number of payments.

The engine's run is what the workers do, minus Celery: the vendors are split into batches of
OMBARO_SETTLEMENT_BATCH_VENDORS (200) and each batch is settled in a transaction of its own, as the
workers' role, by ombaro.settlements.runs.settle_batch (per-vendor advisory locks, idempotency
checks against earlier settlements, adjustments, approvals, and the same rows).

With --history H, H older payments, already settled, sit beside the period's (spread over the three
years before the period's look-back bound, as years of a live platform would): the run reads
payments from its look-back bound (OMBARO_SETTLEMENT_LOOKBACK_DAYS, or --lookback-days), so its time
per payment should not move; the floor reads from the same bound (the same writes).

Runs against a scratch database (`<db>_settlements_bench`, migrated here, dropped after).
Usage: python bench/settlements.py [--payments 1000000] [--small 100000] [--vendors 1000] [--rounds 1]
                                   [--history 0] [--lookback-days N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import alembic_config  # noqa: E402
from ombaro.config import load_settings  # noqa: E402
from ombaro.db import WORKER_ROLE, act_as  # noqa: E402
from ombaro.settlements import runs  # noqa: E402
from ombaro.settlements.calculation import lookback_instant  # noqa: E402

PERIOD = runs.Period(dt.date(2025, 3, 3), dt.date(2025, 3, 9))
ZONE = "Asia/Kolkata"
# History: H payments of bookings completed on the 1,095 days before 2024-10-31 (before any
# look-back bound the bench uses), each settled in one archive settlement per vendor.
HISTORY = [
    "INSERT INTO bookings (id, booking_number, customer_id, vendor_id, booking_type, service_location, booking_date, "
    "booking_time, status, payment_status, subtotal_amount, total_amount) SELECT md5('hbooking' || i)::uuid, "
    "'H' || i, md5('customer' || (i % 1000 + 1))::uuid, md5('vendor' || (i % :vendors + 1))::uuid, 'spa_visit', "
    "'{\"city\": \"Pune\"}', DATE '2024-10-31' - (i % 1095), '10:00', 'completed', 'paid', a, a "
    "FROM (SELECT i, 300 + (i::bigint * 7919 % 200000) / 100.0 AS a FROM generate_series(1, :history) AS i) AS s",
    "INSERT INTO payments (id, transaction_id, booking_id, customer_id, vendor_id, amount, total_amount, "
    "payment_method, payment_gateway, status, payment_date) SELECT md5('hpayment' || i)::uuid, 'HT' || i, "
    "md5('hbooking' || i)::uuid, md5('customer' || (i % 1000 + 1))::uuid, md5('vendor' || (i % :vendors + 1))::uuid, "
    "a, a, 'upi', 'razorpay', 'success', (TIMESTAMP '2024-10-31 00:00:00' - (i % 1095) * INTERVAL '1 day' "
    "+ (i % 86400) * INTERVAL '1 second') AT TIME ZONE 'Asia/Kolkata' "
    "FROM (SELECT i, 300 + (i::bigint * 7919 % 200000) / 100.0 AS a FROM generate_series(1, :history) AS i) AS s",
    "INSERT INTO payment_settlements (vendor_id, settlement_period_start, settlement_period_end, total_bookings, "
    "gross_amount, commission_amount, tds_amount, adjustment_amount, net_settlement_amount, status) "
    "SELECT vendor_id, DATE '2021-11-01', DATE '2024-10-31', count(*), sum(total_amount), 0, 0, 0, "
    "sum(total_amount), 'completed' FROM payments WHERE transaction_id LIKE 'HT%' GROUP BY vendor_id",
    "INSERT INTO settlement_items (settlement_id, vendor_id, payment_id, booking_id, kind, item_date, collected_by, "
    "sale_amount, gross_amount, commission_rate, commission_amount, tds_section, tds_rate, tds_amount, net_amount, "
    "tds_base, tds_rule) SELECT s.id, p.vendor_id, p.id, p.booking_id, 'payment', "
    "(p.payment_date AT TIME ZONE 'Asia/Kolkata')::date, 'platform', p.total_amount, p.total_amount, 0, 0, '194-O', "
    "0, 0, p.total_amount, p.total_amount, 'rate' FROM payments AS p JOIN payment_settlements AS s "
    "ON s.vendor_id = p.vendor_id AND s.settlement_period_start = DATE '2021-11-01' WHERE p.transaction_id LIKE 'HT%'",
]

GENERATE = [
    "INSERT INTO auth.users (id, email, encrypted_password) SELECT md5('vendor' || n)::uuid, "
    "'v' || n || '@bench.test', '!' FROM generate_series(1, :vendors) AS n",
    "INSERT INTO auth.users (id, email, encrypted_password) SELECT md5('customer' || n)::uuid, "
    "'c' || n || '@bench.test', '!' FROM generate_series(1, 1000) AS n",
    "INSERT INTO vendors (id, business_name, business_address, contact_person, contact_mobile, contact_email, "
    "commission_rate, pan_number, verification_status) SELECT md5('vendor' || n)::uuid, 'Spa ' || n, "
    "'{\"city\": \"Pune\", \"latitude\": 18.52, \"longitude\": 73.85}', 'Owner', '+919800000000', "
    "'v' || n || '@bench.test', 5 + (n % 21) + (n % 4) * 0.25, CASE WHEN n % 10 = 0 THEN NULL ELSE 'ABCDE1234F' END, "
    "'verified' FROM generate_series(1, :vendors) AS n",
    # Bookings and payments i = 1..N: vendor i % V, spread over the week to the second (platform time).
    "INSERT INTO bookings (id, booking_number, customer_id, vendor_id, booking_type, service_location, booking_date, "
    "booking_time, status, payment_status, subtotal_amount, total_amount) SELECT md5('booking' || i)::uuid, "
    "'B' || i, md5('customer' || (i % 1000 + 1))::uuid, md5('vendor' || (i % :vendors + 1))::uuid, 'spa_visit', "
    "'{\"city\": \"Pune\"}', DATE '2025-03-03' + (i % 7), '10:00', 'completed', 'paid', a, a "
    "FROM (SELECT i, 300 + (i::bigint * 7919 % 200000) / 100.0 AS a FROM generate_series(1, :payments) AS i) AS s",
    "INSERT INTO payments (id, transaction_id, booking_id, customer_id, vendor_id, amount, total_amount, "
    "payment_method, payment_gateway, status, payment_date) SELECT md5('payment' || i)::uuid, 'T' || i, "
    "md5('booking' || i)::uuid, md5('customer' || (i % 1000 + 1))::uuid, md5('vendor' || (i % :vendors + 1))::uuid, "
    "a, a, CASE WHEN i % 10 = 0 THEN 'cash' ELSE 'upi' END, CASE WHEN i % 10 = 0 THEN NULL ELSE 'razorpay' END, "
    "'success', (TIMESTAMP '2025-03-03 00:00:00' + (i % 7) * INTERVAL '1 day' + (i % 86400) * INTERVAL '1 second') "
    "AT TIME ZONE 'Asia/Kolkata' "
    "FROM (SELECT i, 300 + (i::bigint * 7919 % 200000) / 100.0 AS a FROM generate_series(1, :payments) AS i) AS s",
    # One payment in a hundred is partly refunded within the week.
    "INSERT INTO payment_refunds (payment_id, booking_id, vendor_id, amount, reason, status, processed_at) "
    "SELECT id, booking_id, vendor_id, round(total_amount / 4, 2), 'bench', 'processed', payment_date + INTERVAL "
    "'1 hour' FROM payments WHERE payment_method <> 'cash' AND transaction_id LIKE '%01'",
    "UPDATE payments AS p SET refund_amount = r.amount, status = 'partially_refunded' FROM payment_refunds AS r "
    "WHERE r.payment_id = p.id",
]

END_AT = "(DATE '2025-03-10')::timestamp AT TIME ZONE 'Asia/Kolkata'"
SINCE = "CAST(:since AS timestamptz)"  # the run's look-back bound: the floor reads what the run reads
LINES = f"""
    SELECT p.vendor_id, p.id AS payment_id, NULL::uuid AS refund_id, p.booking_id, 'payment' AS kind,
           (p.payment_date AT TIME ZONE 'Asia/Kolkata')::date AS item_date,
           CASE WHEN p.payment_method = 'cash' THEN 'vendor' ELSE 'platform' END AS collected_by,
           p.total_amount AS sale_amount
    FROM payments AS p JOIN bookings AS b ON b.id = p.booking_id
    WHERE p.status IN ('success', 'partially_refunded', 'refunded') AND p.payment_date >= {SINCE}
      AND p.payment_date < {END_AT}
      AND b.status = 'completed' AND b.booking_date <= DATE '2025-03-09'
    UNION ALL
    SELECT r.vendor_id, r.payment_id, r.id, r.booking_id, 'refund', (r.processed_at AT TIME ZONE 'Asia/Kolkata')::date,
           'platform', -r.amount
    FROM payment_refunds AS r WHERE r.status = 'processed' AND r.processed_at < {END_AT}
"""
# The bench's sales show no GST separately and its vendors have no GSTIN and no exemption: the 194-O
# base is the sale, there is no TCS, and GST on the commission is 9% CGST + 9% SGST (the platform's state).
PRICED = f"""
    SELECT l.*, CASE WHEN l.collected_by = 'platform' THEN l.sale_amount ELSE 0 END AS gross_amount,
           coalesce(v.commission_rate, 15) AS commission_rate,
           round(l.sale_amount * coalesce(v.commission_rate, 15) / 100, 2) AS commission_amount,
           t.rate_percent AS tds_rate, round(l.sale_amount * t.rate_percent / 100, 2) AS tds_amount,
           CASE WHEN t.pan_available THEN 'rate' ELSE 'no_operative_pan' END AS tds_rule
    FROM ({LINES}) AS l JOIN vendors AS v ON v.id = l.vendor_id
    JOIN tds_rates AS t ON t.section = '194-O' AND t.pan_available = (nullif(btrim(v.pan_number), '') IS NOT NULL)
     AND l.item_date >= t.effective_from AND (t.effective_to IS NULL OR l.item_date <= t.effective_to)
"""
BARE_AGGREGATE = f"""
    SELECT vendor_id, count(DISTINCT booking_id) FILTER (WHERE kind = 'payment'), sum(gross_amount),
           sum(commission_amount), sum(tds_amount) FROM ({PRICED}) AS x GROUP BY vendor_id
"""
FLOOR = [
    f"""INSERT INTO payment_settlements (vendor_id, settlement_period_start, settlement_period_end, total_bookings,
                                      gross_amount, commission_amount, tds_amount, adjustment_amount,
                                      net_settlement_amount, commission_gst_amount, status)
        SELECT vendor_id, DATE '2025-03-03', DATE '2025-03-09', bookings, gross, commission, tds, 0,
               gross - commission - 2 * round(commission * 9 / 100, 2) - tds, 2 * round(commission * 9 / 100, 2),
               'pending'
        FROM (SELECT vendor_id, count(DISTINCT booking_id) FILTER (WHERE kind = 'payment') AS bookings,
                     sum(gross_amount) AS gross, sum(commission_amount) AS commission, sum(tds_amount) AS tds
              FROM ({PRICED}) AS x GROUP BY vendor_id) AS s""",
    f"""INSERT INTO settlement_items (settlement_id, vendor_id, payment_id, refund_id, booking_id, kind, item_date,
                                   collected_by, sale_amount, gross_amount, commission_rate, commission_amount,
                                   tds_section, tds_rate, tds_amount, net_amount, tds_base, tds_rule)
        SELECT s.id, x.vendor_id, x.payment_id, x.refund_id, x.booking_id, x.kind, x.item_date, x.collected_by,
               x.sale_amount, x.gross_amount, x.commission_rate, x.commission_amount, '194-O', x.tds_rate,
               x.tds_amount, x.gross_amount - x.commission_amount - x.tds_amount, x.sale_amount, x.tds_rule
        FROM ({PRICED}) AS x JOIN payment_settlements AS s ON s.vendor_id = x.vendor_id
         AND s.settlement_period_start = DATE '2025-03-03' AND s.settlement_period_end = DATE '2025-03-09'""",
    """INSERT INTO tax_document_counters (document_type, financial_year, last_serial)
        SELECT 'invoice', '2024-25', count(*) FROM payment_settlements WHERE commission_amount > 0""",
    """INSERT INTO settlement_tax_documents (settlement_id, vendor_id, document_type, financial_year, serial, number,
                                           document_date, supplier_state, recipient_state, taxable_amount, gst_rate,
                                           cgst, sgst)
        SELECT id, vendor_id, 'invoice', '2024-25', n, 'CI2425/' || lpad(CAST(n AS text), 7, '0'), DATE '2025-03-09',
               '27', '27', commission_amount, 18, commission_gst_amount / 2, commission_gst_amount / 2
        FROM (SELECT *, row_number() OVER (ORDER BY vendor_id) AS n FROM payment_settlements
              WHERE commission_amount > 0) AS s""",
]
RESET = ("TRUNCATE settlement_items, settlement_approvals, settlement_adjustments, payouts, settlement_tax_documents, "
         "tax_document_counters, payment_settlements CASCADE")
# With history: only this period's settlements go (then VACUUM, untimed, so no round reads the dead rows).
RESET_PERIOD = [
    "TRUNCATE settlement_approvals, settlement_adjustments, payouts, settlement_tax_documents, tax_document_counters",
    "DELETE FROM settlement_items WHERE settlement_id IN (SELECT id FROM payment_settlements "
    "WHERE settlement_period_start = DATE '2025-03-03')",
    "DELETE FROM payment_settlements WHERE settlement_period_start = DATE '2025-03-03'",
]
CHECK = ("SELECT count(*), sum(net_settlement_amount), (SELECT count(*) FROM settlement_items), "
         "(SELECT sum(net_amount) FROM settlement_items), "
         "(SELECT sum(cgst + sgst + igst) FROM settlement_tax_documents), "
         "(SELECT md5(string_agg(vendor_id || number, ',' ORDER BY vendor_id)) FROM settlement_tax_documents), "
         # the period's rows themselves, column by column (the columns both sides write; status and
         # notes differ by design: the floor leaves every settlement pending)
         "(SELECT md5(string_agg(concat_ws('|', vendor_id, total_bookings, gross_amount, commission_amount, "
         "tds_amount, adjustment_amount, net_settlement_amount, commission_gst_amount), ',' ORDER BY vendor_id)) "
         "FROM payment_settlements WHERE settlement_period_start = DATE '2025-03-03'), "
         "(SELECT md5(string_agg(concat_ws('|', s.vendor_id, i.vendor_id, i.payment_id, i.refund_id, i.booking_id, "
         "i.kind, i.item_date, i.collected_by, i.sale_amount, i.gross_amount, i.commission_rate, i.commission_amount, "
         "i.tds_section, i.tds_rate, i.tds_amount, i.net_amount, i.tds_base, i.tds_rule), ',' "
         "ORDER BY i.payment_id, i.refund_id NULLS FIRST)) FROM settlement_items AS i JOIN payment_settlements AS s "
         "ON s.id = i.settlement_id AND s.settlement_period_start = DATE '2025-03-03') "
         "FROM payment_settlements")


CPU: list[float] = []  # PostgreSQL backend CPU seconds of the last timed action (local server only)


def backend_cpu(conn: Any) -> float:
    """CPU time the connection's PostgreSQL backend has used (from /proc; 0 for a remote server):
    on a shared machine the load moves wall times by tens of percent, the backend's CPU much less."""
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except OSError:
        return 0.0


def timed(action: Any) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def run_floor(engine: Engine, since: dt.datetime) -> None:
    with engine.begin() as conn:
        began = backend_cpu(conn)
        for statement in FLOOR:
            conn.execute(text(statement), {"since": since})
        CPU.append(backend_cpu(conn) - began)


def run_bare(engine: Engine, since: dt.datetime) -> None:
    with engine.connect() as conn:
        conn.execute(text(BARE_AGGREGATE), {"since": since}).all()


def reset(engine: Engine, history: int) -> None:
    if not history:
        with engine.begin() as conn:
            conn.execute(text(RESET))
        return
    with engine.begin() as conn:
        for statement in RESET_PERIOD:
            conn.execute(text(statement))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM settlement_items, payment_settlements"))


def run_engine(engine: Engine, batch: int, lookback_days: int) -> dict[str, Any]:
    """What the workers do for one run: plan, then one transaction per batch of vendors."""
    cpu = 0.0
    with Session(engine) as session, session.begin():
        began = backend_cpu(session)
        act_as(session, WORKER_ROLE, {"role": "worker"})
        vendors = runs.vendors_to_settle(session, PERIOD, None)
        cpu += backend_cpu(session) - began
    created = 0
    for start in range(0, len(vendors), batch):
        with Session(engine) as session, session.begin():
            began = backend_cpu(session)
            act_as(session, WORKER_ROLE, {"role": "worker"})
            created += runs.settle_batch(session, run_id=None, period=PERIOD, vendor_ids=vendors[start:start + batch],
                                         requested_by=None, zone=ZONE, lookback_days=lookback_days
                                         )["settlements_created"]
            cpu += backend_cpu(session) - began
    CPU.append(cpu)
    return {"vendors": len(vendors), "settlements": created}


def check(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(text(CHECK)).one())


def measure(engine: Engine, payments: int, vendors: int, rounds: int, batch: int, history: int,
            lookback_days: int) -> dict[str, Any]:
    since = lookback_instant(PERIOD.start, lookback_days, ZONE)
    with engine.begin() as conn:
        conn.execute(text(RESET))
        conn.execute(text("TRUNCATE payment_refunds, payments, bookings, vendors, auth.users CASCADE"))
        began = time.perf_counter()
        for statement in GENERATE + (HISTORY if history else []):
            conn.execute(text(statement), {"vendors": vendors, "payments": payments, "history": history})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    print(f"  generated {payments:,} payments (and {history:,} settled before) for {vendors:,} vendors in "
          f"{time.perf_counter() - began:.1f} s; look-back {lookback_days} days", flush=True)
    timings: dict[str, list[float]] = {"bare": [], "floor": [], "engine": [], "floor_cpu": [], "engine_cpu": []}
    memory: list[tuple[int, int]] = []
    run_bare(engine, since)  # warm the cache once, untimed
    results = {}
    for round_no in range(rounds):
        timings["bare"].append(timed(lambda: run_bare(engine, since)))
        for name in ("floor", "engine") if round_no % 2 == 0 else ("engine", "floor"):
            reset(engine, history)
            if name == "floor":
                timings[name].append(timed(lambda: run_floor(engine, since)))
            else:
                gc.collect()
                tracemalloc.start()
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                timings[name].append(timed(lambda: run_engine(engine, batch, lookback_days)))
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                memory.append((peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before))
            timings[f"{name}_cpu"].append(CPU[-1])
            results[name] = check(engine)
            print(f"  round {round_no + 1}: {name:<6} {timings[name][-1]:7.2f} s (backend CPU {CPU[-1]:6.2f} s)  "
                  f"settlements, net, items, items net, GST, documents, md5 of the rows = {results[name]}", flush=True)
    if results["floor"] != results["engine"]:
        raise SystemExit(f"the run and the floor wrote different things: {results}")
    return {name: statistics.median(values) for name, values in timings.items()} | {
        "peak_python_kib": max(p for p, _ in memory) // 1024, "rss_growth_kib": max(r for _, r in memory),
        "items": results["engine"][2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="a smaller run, to compare memory")
    parser.add_argument("--vendors", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--history", type=int, default=0, help="settled payments before the look-back bound")
    parser.add_argument("--lookback-days", type=int, default=None,
                        help="the run's look-back (default OMBARO_SETTLEMENT_LOOKBACK_DAYS; 0: no bound)")
    args = parser.parse_args()

    settings = load_settings()
    lookback = settings.settlement_lookback_days if args.lookback_days is None else args.lookback_days
    url = make_url(settings.database_url)
    bench_db = f"{url.database}_settlements_bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    engine = create_engine(bench_url)
    try:
        from alembic import command

        cfg = alembic_config(bench_url)
        cfg.attributes["configure_logger"] = False
        command.upgrade(cfg, "heads")
        figures = {}
        for size in (args.small, args.payments):
            print(f"{size:,} payments:", flush=True)
            figures[size] = measure(engine, size, args.vendors, args.rounds, settings.settlement_batch_vendors,
                                    args.history, lookback)
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
    print()
    print(f"{'payments':>10} {'history':>9} {'items':>10} {'bare agg s':>11} {'floor s':>8} {'run s':>7} "
          f"{'run/floor':>9} {'run us/pay':>10} {'cpu floor':>9} {'cpu run':>8} {'cpu ratio':>9} "
          f"{'py peak KiB':>11} {'RSS +KiB':>9}")
    for size, f in figures.items():
        cpu_ratio = f["engine_cpu"] / f["floor_cpu"] if f["floor_cpu"] else float("nan")
        print(f"{size:>10,} {args.history:>9,} {f['items']:>10,} {f['bare']:>11.2f} {f['floor']:>8.2f} "
              f"{f['engine']:>7.2f} {f['engine'] / f['floor']:>9.2f} {f['engine'] / size * 1e6:>10.1f} "
              f"{f['floor_cpu']:>9.2f} {f['engine_cpu']:>8.2f} {cpu_ratio:>9.2f} "
              f"{f['peak_python_kib']:>11,} {f['rss_growth_kib']:>9,}")


if __name__ == "__main__":
    main()
