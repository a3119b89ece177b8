"""A RabbitMQ virtual host of the test's own on the machine's broker (TEST_AMQP_URL, default
amqp://guest:guest@127.0.0.1:5672): the engine's queue names are fixed, so a vhost keeps them apart
from every other user of that broker. Made and removed with rabbitmqctl; no broker, no rabbitmqctl:
the caller skips, saying which."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from urllib.parse import urlsplit

BASE_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")


def unavailable() -> str | None:
    """Why RabbitMQ tests cannot run here, or None."""
    where = urlsplit(BASE_URL)
    try:
        socket.create_connection((where.hostname or "127.0.0.1", where.port or 5672), timeout=2).close()
    except OSError as exc:
        return f"RabbitMQ is not running at {where.hostname}:{where.port or 5672} ({exc.strerror or exc})"
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not installed: the RabbitMQ tests need it to make a virtual host of their own"
    return None


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "--quiet", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


class VirtualHost:
    def __init__(self, base_url: str = BASE_URL) -> None:
        """A new virtual host on the broker of `base_url` (its own virtual host, if any, is ignored)."""
        self.name = f"ombaro_t_{secrets.token_hex(4)}"
        where = urlsplit(base_url)
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, where.username or "guest", ".*", ".*", ".*")
        self.url = f"{where.scheme}://{where.netloc}/{self.name}"

    def queue_types(self) -> dict[str, str]:
        rows = rabbitmqctl("list_queues", "-p", self.name, "--no-table-headers", "name", "type").splitlines()
        return dict(row.split()[:2] for row in rows if row.strip())

    def set_policy(self, name: str, queue: str, definition: str) -> None:
        """A policy on one queue, returning once the queue applies it (RabbitMQ applies policies
        asynchronously)."""
        rabbitmqctl("set_policy", "-p", self.name, "--apply-to", "queues", name, f"^{queue}$", definition)

        def applied() -> bool:
            rows = rabbitmqctl("list_queues", "-p", self.name, "--no-table-headers", "name", "policy").splitlines()
            return [queue, name] in (row.split() for row in rows)
        deadline = time.monotonic() + 30
        while not applied():
            if time.monotonic() > deadline:
                raise TimeoutError(f"policy {name} not applied to {queue} in 30 s")
            time.sleep(0.2)

    def purge(self, queue: str) -> None:
        rabbitmqctl("purge_queue", "-p", self.name, queue)

    def clear_policy(self, name: str) -> None:
        rabbitmqctl("clear_policy", "-p", self.name, name)

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)
