"""Command submissions per second through POST /api/v1/reports/refresh (distinct Idempotency-Keys)
under gunicorn, against two floors under the same gunicorn settings, in the same run: a bare Flask
route returning the same JSON shape (issue 16's floor), and a bare Flask route doing the same work
(the token verified, the job and its audit line written by the same statement and committed, the
task message published; bench/bare_app.py). Prints the median of several rounds, the order of the
three rotating every round, and the ratios.

Runs against a scratch database (`<db>_bench`, migrated here, dropped after) on the configured
PostgreSQL server (DATABASE_URL or the embedded one) and the configured Redis database (REDIS_URL), which it
flushes at the end.
Usage: python bench/api.py [--seconds 5] [--rounds 3] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import redis
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import alembic_config  # noqa: E402
from devtools.demo import DEMO_PASSWORD, enable_demo_logins  # noqa: E402
from ombaro.config import load_settings  # noqa: E402

GUNICORN = ["--workers", "2", "--threads", "4", "--worker-class", "gthread", "--log-level", "warning"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(app: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", *GUNICORN, "--bind", f"127.0.0.1:{port}", app],
                            env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"gunicorn for {app} did not start") from None
            time.sleep(0.1)


def login(port: int) -> str:
    """An access token for the scratch database's super admin, through the real login endpoint."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/api/v1/auth/login", headers={"Content-Type": "application/json"},
                 body=json.dumps({"email": "super.admin@ombaro.test", "password": DEMO_PASSWORD}).encode())
    response = conn.getresponse()
    answer = json.loads(response.read() or b"{}")
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"login failed: HTTP {response.status} {answer}")
    return str(answer["access_token"])


def worker_cpu_seconds(proc: subprocess.Popen[bytes]) -> float:
    """utime + stime of the gunicorn workers (the children of the arbiter `proc`), from /proc."""
    total = 0.0
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        return float("nan")  # not Linux: no CPU figure
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def load(port: int, seconds: float, clients: int, token: str) -> tuple[float, int]:
    """Requests per second from `clients` keep-alive connections posting for `seconds`, and how many."""
    counts = [0] * clients
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    body = json.dumps({}).encode()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop_at:
            conn.request("POST", "/api/v1/reports/refresh", body=body, headers={
                "Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(12),
                "Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                errors.append(f"HTTP {response.status}")
                return
            counts[n] += 1
        conn.close()

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"requests failed: {errors[:3]}")
    return sum(counts) / (time.monotonic() - began), sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    settings = load_settings()
    url = make_url(settings.database_url)
    bench_db = f"{url.database}_bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    redis_url = settings.redis_url  # flushed at the end: give the bench a Redis database of its own
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    from alembic import command

    cfg = alembic_config(bench_url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")
    engine = create_engine(make_url(bench_url).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    with engine.begin() as conn:
        enable_demo_logins(conn)  # the super admin whose bearer token every request carries
    engine.dispose()
    env = {**os.environ, "DATABASE_URL": bench_url, "REDIS_URL": redis_url, "OMBARO_LOG_LEVEL": "WARNING"}

    servers = {"engine": serve("web:create_app()", env), "bare": serve("bench.bare_app:create_app()", env),
               "writing": serve("bench.bare_app:create_writing_app()", env)}
    results: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}  # the gunicorn workers' CPU ms per request
    try:
        token = login(servers["engine"][1])
        for name in results:  # warm both up (connection pools, imports)
            load(servers[name][1], 1, args.clients, token)
        for round_no in range(args.rounds):
            names = list(servers)
            for name in names[round_no % 3:] + names[:round_no % 3]:
                cpu_before = worker_cpu_seconds(servers[name][0])
                rate, served = load(servers[name][1], args.seconds, args.clients, token)
                cpu[name].append((worker_cpu_seconds(servers[name][0]) - cpu_before) * 1000 / max(served, 1))
                results[name].append(rate)
                print(f"round {round_no + 1}: {name:<7} {rate:8.1f} req/s, workers' CPU {cpu[name][-1]:.2f} ms a "
                      f"request (load average {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        for proc, _ in servers.values():
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        redis.Redis.from_url(redis_url).flushdb()
        with psycopg.connect(admin, autocommit=True) as conn:
            jobs = psycopg.connect(make_url(bench_url).set(drivername="postgresql")
                                   .render_as_string(hide_password=False)).execute(
                "SELECT count(*) FROM jobs").fetchone()
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
    submits, bare, writing = (statistics.median(results[name]) for name in ("engine", "bare", "writing"))
    print(f"\njobs recorded: {jobs[0] if jobs else '?'}")
    print(f"command submissions: {submits:.1f} req/s (median of {args.rounds})")
    print(f"bare Flask route:    {bare:.1f} req/s (median of {args.rounds})")
    print(f"same work, bare:     {writing:.1f} req/s (median of {args.rounds})")
    print(f"ratio engine/bare:   {submits / bare:.2f}")
    print(f"ratio engine/same work: {submits / writing:.2f}")
    print(f"workers' CPU a request: engine {statistics.median(cpu['engine']):.2f} ms, "
          f"bare {statistics.median(cpu['bare']):.2f} ms, same work {statistics.median(cpu['writing']):.2f} ms "
          "(medians)")


if __name__ == "__main__":
    main()
