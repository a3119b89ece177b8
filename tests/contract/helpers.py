"""A real server for the contract tests: the demo world, gunicorn (and a worker) on a free port, and
an access token per demo role."""

from __future__ import annotations

import base64
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine

from devtools.demo import DEMO_PASSWORD
from tests.helpers import wait_until
from tests.services import Database, Process

DEMO_SCALE = 0.02


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DemoWorld:
    database: Database
    logins: dict[str, str]  # role -> email (password DEMO_PASSWORD)

    @property
    def engine(self) -> Engine:
        return self.database.engine


def _sendgrid_public_key() -> str:
    """A fresh P-256 public key: nothing the fuzzer sends is signed with its private half."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return base64.b64encode(key.public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


# Webhook secrets, so that the public webhooks check signatures (400) rather than answer 503.
SERVER_ENV = {
    "OMBARO_LOG_FORMAT": "text", "OMBARO_LOG_LEVEL": "WARNING", "OMBARO_ACCESS_TOKEN_SECONDS": "7200",
    "RAZORPAY_WEBHOOK_SECRET": "contract-test-webhook-secret", "TWILIO_AUTH_TOKEN": "contract-test-twilio-token",
    # The fuzzer logs in and registers from 127.0.0.1 thousands of times; the limits are tested elsewhere.
    "OMBARO_LOGIN_LIMIT_PER_ADDRESS": "1000000", "OMBARO_LOGIN_LIMIT_PER_ACCOUNT": "1000000",
    "OMBARO_REGISTER_LIMIT_PER_ADDRESS": "1000000",
}


@dataclass
class Server:
    url: str
    world: DemoWorld
    processes: list[Process]

    def token(self, role: str) -> str:
        answer = requests.post(f"{self.url}/api/v1/auth/login", timeout=30,
                               json={"email": self.world.logins[role], "password": DEMO_PASSWORD})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])


def start_server(world: DemoWorld, service_env: dict[str, str], logs: Path, *, worker: bool) -> Server:
    env = {**service_env, **SERVER_ENV, "DATABASE_URL": world.database.url,
           "OMBARO_SENDGRID_WEBHOOK_PUBLIC_KEY": _sendgrid_public_key()}
    port = free_port()
    processes = [Process([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2", "--threads", "4",
                          "--timeout", "120", "--limit-request-line", "8190", "web:create_app()"],
                         env, logs / "gunicorn.log")]
    try:
        return _started(processes, port, env, logs, worker=worker, world=world)
    except BaseException:
        for process in processes:  # a server that did not come up must not outlive the test
            process.stop()
        raise


def _started(processes: list[Process], port: int, env: dict[str, str], logs: Path, *, worker: bool,
             world: DemoWorld) -> Server:
    if worker:
        processes.append(Process([sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel=INFO",
                                  "-Q", "dispatch,bulk,maintenance", "--concurrency=2", "--without-heartbeat",
                                  "--without-gossip", "--without-mingle", "-n", f"contract-{port}@%h"],
                                 env, logs / "worker.log"))
        processes[-1].wait_for("ready.")
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(f"{url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(answers, timeout=60, what="gunicorn answering")
    return Server(url, world, processes)
