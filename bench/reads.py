"""Hot reads under gunicorn started as the Procfile starts it (`make run`): a customer's
GET /api/v1/bookings with a bearer token against GET /healthz on the same server, in the same run,
alternating rounds at the same number of keep-alive connections. Prints requests per second and
the latency percentiles of each, and the ratio bookings/healthz.

Runs against a scratch database (`<db>_reads_bench` on the configured PostgreSQL server, migrated
and filled with the demo data here, dropped after) and the configured Redis database (REDIS_URL),
which it flushes at the end.
Usage: python bench/reads.py [--seconds 5] [--rounds 3] [--connections 32] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import free_port  # noqa: E402
from cli import alembic_config  # noqa: E402
from devtools.demo import DEMO_PASSWORD, enable_demo_logins, seed_demo  # noqa: E402
from ombaro.access.permissions import seed_permissions  # noqa: E402
from ombaro.config import load_settings  # noqa: E402


def procfile_web() -> list[str]:
    """The Procfile's `web:` command line (gunicorn's arguments), with the port left to us."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            words = shlex.split(line.removeprefix("web:"))
            at = words.index("--bind")
            return [*words[1:at], *words[at + 2:]]  # without `gunicorn` and its --bind
    raise RuntimeError("no web: line in the Procfile")


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
            *procfile_web()]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        finally:
            conn.close()
        if time.monotonic() > deadline or proc.poll() is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            raise RuntimeError("gunicorn did not start")
        time.sleep(0.2)


def login(port: int, email: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/api/v1/auth/login", headers={"Content-Type": "application/json"},
                 body=json.dumps({"email": email, "password": DEMO_PASSWORD}).encode())
    response = conn.getresponse()
    answer = json.loads(response.read() or b"{}")
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"login failed: HTTP {response.status} {answer}")
    return str(answer["access_token"])


def load(port: int, path: str, headers: dict[str, str], seconds: float, connections: int) -> tuple[float, list[float]]:
    """Requests per second and every request's latency (s) from `connections` keep-alive clients."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[str] = []
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = latencies[n]
        while time.monotonic() < stop_at:
            began = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                errors.append(f"HTTP {response.status} {body[:300]!r}")
                return
            mine.append(time.perf_counter() - began)
        conn.close()

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{path}: requests failed: {errors[:3]}")
    every = sorted(x for mine in latencies for x in mine)
    return len(every) / (time.monotonic() - began), every


def worker_cpu_seconds(master: int) -> float:
    """User + system CPU so far of gunicorn's workers (the master's children), from /proc: the
    steadier figure on a shared machine, where requests a second follow the share of the cores."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:  # ppid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--scale", type=float, default=1.0, help="of the demo data set")
    args = parser.parse_args()

    settings = load_settings()
    url = make_url(settings.database_url)
    bench_db = f"{url.database}_reads_bench"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    bench_url = url.set(database=bench_db).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    from alembic import command

    cfg = alembic_config(bench_url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")
    engine = create_engine(make_url(bench_url).set(drivername="postgresql+psycopg"), poolclass=NullPool)
    with Session(engine) as session, session.begin():
        seed_permissions(session)  # as `ombaro migrate` does
    with engine.begin() as conn:
        seed_demo(conn, scale=args.scale)
        enable_demo_logins(conn)
        # The demo customer whose login enable_demo_logins set, and how many bookings it has.
        email, rows = conn.execute(text(
            "SELECT u.email, (SELECT count(*) FROM bookings b WHERE b.customer_id = u.id) "
            "FROM user_profiles p JOIN auth.users u ON u.id = p.id WHERE p.role = 'customer' AND p.status = 'active' "
            "ORDER BY u.email LIMIT 1")).one()
    engine.dispose()
    env = {**os.environ, "DATABASE_URL": bench_url, "REDIS_URL": settings.redis_url, "OMBARO_LOG_LEVEL": "WARNING"}

    proc, port = serve(env)
    paths = {"healthz": ("/healthz", {}), "bookings": ("/api/v1/bookings", {})}
    rates: dict[str, list[float]] = {name: [] for name in paths}
    latencies: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}  # worker CPU ms per request, each round
    try:
        paths["bookings"] = ("/api/v1/bookings", {"Authorization": f"Bearer {login(port, email)}"})
        for path, headers in paths.values():  # warm up (connection pools, imports)
            load(port, path, headers, 1, args.connections)
        for round_no in range(args.rounds):
            for name in ("healthz", "bookings") if round_no % 2 == 0 else ("bookings", "healthz"):
                used = worker_cpu_seconds(proc.pid)
                rate, every = load(port, *paths[name], args.seconds, args.connections)
                cpu[name].append((worker_cpu_seconds(proc.pid) - used) * 1000 / len(every))
                rates[name].append(rate)
                latencies[name].extend(every)
                print(f"round {round_no + 1}: {name:<8} {rate:8.1f} req/s  "
                      f"median {statistics.median(every) * 1000:6.1f} ms  "
                      f"p99 {percentile(every, 0.99) * 1000:6.1f} ms  worker CPU {cpu[name][-1]:.2f} ms a request  "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        redis.Redis.from_url(settings.redis_url).flushdb()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_db}" WITH (FORCE)')
    print(f"\n{args.connections} connections, {args.rounds} rounds of {args.seconds:g} s; "
          f"the customer has {rows} bookings")
    for name in paths:
        every = sorted(latencies[name])
        print(f"{name:<9} {statistics.median(rates[name]):8.1f} req/s (median)  "
              f"p50 {percentile(every, 0.5) * 1000:6.1f} ms  p99 {percentile(every, 0.99) * 1000:6.1f} ms  "
              f"worker CPU {statistics.median(cpu[name]):.2f} ms a request (median)")
    ratio = statistics.median(rates["bookings"]) / statistics.median(rates["healthz"])
    print(f"ratio bookings/healthz: {ratio:.2f} (worker CPU a request: "
          f"{statistics.median(cpu['healthz']) / statistics.median(cpu['bookings']):.2f}); "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
