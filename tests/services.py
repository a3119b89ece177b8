"""The engine's servers and processes for tests: databases migrated to head, and child processes
(worker, scheduler, gunicorn) with their output kept."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from cli import alembic_config
from ombaro.config import PROJECT_ROOT


def migrate(url: str, revision: str = "heads") -> None:
    from alembic import command

    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, revision)
    from ombaro.access.permissions import seed_permissions
    from ombaro.db import transaction

    if revision == "heads":
        with transaction(create_engine(url, poolclass=NullPool)) as session:
            seed_permissions(session)


@dataclass(frozen=True)
class Database:
    url: str
    engine: Engine


def purge_queues(env: dict[str, str]) -> int:
    """Empty the engine's queues on the broker `env` names; returns how many messages went."""
    from celery import Celery

    from ombaro.config import load_settings
    from workers.app import celery_config

    app = Celery("ombaro-test-purge")
    app.conf.update(celery_config(load_settings(env)))
    try:
        return app.control.purge() or 0
    finally:
        app.close()


class Process:
    """A child process of the engine (worker, scheduler, gunicorn) with its output kept."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=PROJECT_ROOT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.output():
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited ({self.proc.returncode}):\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not seen in {timeout}s:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def start_worker(spawn: Callable[..., Process], name: str = "worker", concurrency: int = 2,
                 env: dict[str, str] | None = None) -> Process:
    worker = spawn(name, sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel=INFO",
                   "-Q", "dispatch,bulk,maintenance", f"--concurrency={concurrency}", "--without-heartbeat",
                   "--without-gossip", "--without-mingle", "-n", f"{name}-{secrets.token_hex(3)}@%h", env=env)
    worker.wait_for("ready.")
    return worker
