"""A campaign to N customers over email and SMS through the local provider server (the real
`sendgrid` and `twilio` SDKs in real Celery workers), end to end: messages per second from the
start command to the campaign's completion, against the same number of HTTP requests sent by a
bare `http.client` loop to the same server in the same run; and the peak memory of the worker
processes, which must stay flat as the audience grows.

Each audience size runs on a scratch database (`<db>_campaigns_bench`, migrated here, dropped
after) on the configured PostgreSQL server and a Redis database of the configured server (3 unless
--redis-db says otherwise; it is flushed before and after). The
customers live where it is early afternoon now (their profile's zone), so quiet hours never
apply whatever the time of the run.

Usage: python bench/campaigns.py [--audience 10000] [--audience 100000 ...] [--workers 2]
       [--threads 8] [--chunk 5000] [--redis-db 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from base64 import b64encode
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import alembic_config  # noqa: E402
from ombaro import commands  # noqa: E402
from ombaro.campaigns import sending  # noqa: E402
from ombaro.config import load_settings  # noqa: E402

ACCOUNT = "AC" + "0" * 30
RATES = "sendgrid=1000000,twilio_sms=1000000,twilio_whatsapp=1000000,fcm=1000000,outbox=1000000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def daytime_zone() -> str:
    ahead = (13 - dt.datetime.now(dt.UTC).hour) % 24
    ahead = ahead - 24 if ahead > 14 else ahead
    return f"Etc/GMT{-ahead:+d}" if ahead else "UTC"


def seed(url: str, n: int) -> tuple[Any, float]:
    """N customers (auth user, profile, customer), set-based; returns the campaign id and seconds."""
    began = time.monotonic()
    zone = json.dumps({"timezone": daytime_zone()})
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE ids AS SELECT i, gen_random_uuid() AS id FROM generate_series(1, %s) AS i",
                     (n,))
        conn.execute("INSERT INTO auth.users (id, email, encrypted_password) "
                     "SELECT id, 'c' || i || '@bench.test', '!' FROM ids")
        conn.execute("INSERT INTO user_profiles (id, name, mobile, role, address, preferences) "
                     "SELECT id, 'Bench Customer ' || i, '+91' || (7000000000 + i)::text, 'customer', "
                     "'{\"city\": \"Pune\"}', %s::jsonb FROM ids", (zone,))
        conn.execute("INSERT INTO customers (id, membership_tier, communication_preferences) "
                     "SELECT id, 'gold', '{\"email\": true, \"sms\": true}' FROM ids")
        creator = conn.execute(
            "WITH u AS (INSERT INTO auth.users (email, encrypted_password) VALUES ('mkt@bench.test', '!') "
            "RETURNING id) INSERT INTO employees (id, employee_code, name, email, mobile, department, designation, "
            "joining_date) SELECT id, 'E-BENCH', 'Meena', 'mkt@bench.test', '+919800000000', "
            "'marketing_department', 'Manager', '2025-04-01' FROM u RETURNING id").fetchone()[0]
        campaign = conn.execute(
            "INSERT INTO campaigns (name, type, status, target_audience, content, start_date, budget, created_by, "
            "approved_by) VALUES ('Bench', 'multi_channel', 'scheduled', '{\"city\": [\"Pune\"]}', %s::jsonb, now(), "
            "10000000, %s, %s) RETURNING id",
            (json.dumps({"email": {"subject": "Hi $first_name", "body": "Your $tier offer in $city: 20% off."},
                         "sms": {"body": "Hi $first_name, 20% off at OMBARO in $city."}}), creator, creator)
        ).fetchone()[0]
        conn.execute("VACUUM ANALYZE")
    return campaign, time.monotonic() - began


class Relay(threading.Thread):
    def __init__(self, url: str, redis_url: str) -> None:
        super().__init__(daemon=True)
        from workers.app import enqueuer

        self.engine, self.enqueue, self.stop = create_engine(url), enqueuer(redis_url), threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1):
            try:
                with Session(self.engine) as session, session.begin():
                    commands.relay(session, self.enqueue, stale_seconds=30)
            except Exception:
                pass


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def admin(port: int, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST" if body is not None or path != "/_admin/stats" else "GET", path,
                 body=json.dumps(body or {}), headers={"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer


def bare_loop(port: int, n: int) -> float:
    """The same requests the campaign makes (n SMS, n/1000 emails of 1000 personalizations) from
    one keep-alive http.client connection; returns seconds."""
    auth = "Basic " + b64encode(f"{ACCOUNT}:token".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    began = time.monotonic()
    for start in range(0, n, 1000):
        body = json.dumps({"from": {"email": "offers@ombaro.test"}, "subject": "Hi", "content": [
            {"type": "text/plain", "value": "Your [%tier%] offer"}], "personalizations": [
            {"to": [{"email": f"c{i}@bench.test"}], "subject": f"Hi {i}", "custom_args": {"delivery_id": str(i)},
             "substitutions": {"[%tier%]": "Gold"}} for i in range(start, min(n, start + 1000))]})
        conn.request("POST", "/v3/mail/send", body=body, headers={
            "Authorization": "Bearer SG.bench", "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 202, response.status
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    for i in range(n):
        body = urllib.parse.urlencode({"To": f"+91{7000000001 + i}", "From": "+15005550006",
                                       "Body": f"Hi {i}, 20% off at OMBARO in Pune."})
        conn.request("POST", path, body=body, headers={
            "Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        assert response.status == 201, response.status
    conn.close()
    return time.monotonic() - began


def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings()
    url = make_url(settings.database_url)
    bench_db = f"{url.database}_campaigns_bench"
    admin_url = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    plain_url = make_url(bench_url).set(drivername="postgresql").render_as_string(hide_password=False)
    redis_url = settings.redis_url.rsplit("/", 1)[0] + f"/{args.redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    from alembic import command

    cfg = alembic_config(bench_url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
    campaign, seeded = seed(plain_url, n)
    print(f"[{n:,}] seeded {n:,} customers in {seeded:.1f}s", flush=True)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.campaigns.provider_server", "--port", str(port),
                               "--record", "keys", "--invalid-suffix", "none"],
                              cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE)
    assert server.stdout is not None
    server.stdout.readline()  # "listening on ..."
    env = {**os.environ, "DATABASE_URL": bench_url, "REDIS_URL": redis_url, "OMBARO_LOG_LEVEL": "WARNING",
           "SENDGRID_API_KEY": "SG.bench", "OMBARO_SENDGRID_HOST": f"http://127.0.0.1:{port}",
           "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "token",
           "OMBARO_TWILIO_API_BASE": f"http://127.0.0.1:{port}", "OMBARO_SMS_FROM": "+15005550006",
           "OMBARO_PROVIDER_RATES": RATES, "OMBARO_PROVIDER_CONCURRENCY": str(args.threads),
           "OMBARO_PUBLIC_BASE_URL": "https://ops.ombaro.test"}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel=WARNING",
                               "-Q", "bulk", f"--concurrency={args.workers}", "--without-heartbeat",
                               "--without-gossip", "--without-mingle", "-n", f"bench-{port}@%h"],
                              cwd=ROOT, env=env, start_new_session=True)
    relay = Relay(bench_url, redis_url)
    relay.start()
    engine = create_engine(bench_url)
    result: dict[str, Any] = {"audience": n}
    try:
        time.sleep(4)  # the worker's processes start
        from workers.app import enqueuer

        began = time.monotonic()
        with Session(engine) as session, session.begin():
            sending.submit_start(session, enqueuer(redis_url), campaign, key="bench", chunk_size=args.chunk)
        while True:
            time.sleep(1)
            with engine.connect() as conn:
                status = conn.execute(text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign}).scalar_one()
            if status == "completed":
                break
            if worker.poll() is not None:
                raise RuntimeError("the worker stopped")
            if time.monotonic() - began > args.timeout:
                raise TimeoutError(f"campaign not completed after {args.timeout}s")
        elapsed = time.monotonic() - began
        pids = process_tree(worker.pid)
        peaks = {pid: peak_kib(pid) for pid in pids}
        with engine.connect() as conn:
            counts = dict(conn.execute(text("SELECT status, count(*) FROM message_deliveries WHERE campaign_id = :c "
                                            "GROUP BY status"), {"c": campaign}).all())
        stats = admin(port, "/_admin/stats")
        messages = counts.get("sent", 0)
        result.update(messages=messages, engine_seconds=elapsed, engine_rate=messages / elapsed,
                      statuses=counts, provider=stats,
                      worker_peak_mib=max(v for p, v in peaks.items() if p != worker.pid) / 1024,
                      worker_main_peak_mib=peaks.get(worker.pid, 0) / 1024)
        print(f"[{n:,}] engine: {messages:,} messages in {elapsed:.1f}s = {messages / elapsed:,.0f} msg/s; "
              f"statuses {counts}; provider duplicates {stats['duplicates']}; worker peak "
              f"{result['worker_peak_mib']:.0f} MiB per process (main {result['worker_main_peak_mib']:.0f} MiB)",
              flush=True)
        os.kill(worker.pid, signal.SIGTERM)  # warm shutdown: the last jobs record their outcome
        worker.wait(120)
        admin(port, "/_admin/reset", {})
        bare = bare_loop(port, n)
        requests = n + -(-n // 1000)
        result.update(bare_seconds=bare, bare_rate=2 * n / bare, bare_requests_per_s=requests / bare)
        print(f"[{n:,}] bare http.client loop: {requests:,} requests ({2 * n:,} messages) in {bare:.1f}s = "
              f"{2 * n / bare:,.0f} msg/s ({requests / bare:,.0f} req/s)", flush=True)
        print(f"[{n:,}] ratio engine/bare: {result['engine_rate'] / result['bare_rate']:.2f}", flush=True)
    finally:
        relay.stop.set()
        for proc in (worker, server):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        engine.dispose()
        relay.engine.dispose()
        redis.Redis.from_url(redis_url).flushdb()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audience", type=int, action="append", help="customers (repeat for several sizes)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--threads", type=int, default=8, help="provider calls in parallel per process")
    parser.add_argument("--chunk", type=int, default=sending.CHUNK_SIZE)
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    parser.add_argument("--redis-db", type=int, default=3, help="the Redis database flushed and used (default 3)")
    args = parser.parse_args()
    results = [run_size(n, args) for n in (args.audience or [10_000])]
    print("\naudience   messages  engine msg/s  bare msg/s  ratio  worker peak MiB")
    for r in results:
        print(f"{r['audience']:>9,} {r['messages']:>10,} {r['engine_rate']:>12,.0f} {r['bare_rate']:>11,.0f} "
              f"{r['engine_rate'] / r['bare_rate']:>6.2f} {r['worker_peak_mib']:>16.0f}")


if __name__ == "__main__":
    main()
