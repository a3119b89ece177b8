"""A private PgBouncer in transaction pooling, on a free port, in front of the test's PostgreSQL.
Debian's `pgbouncer` package (`make pgbouncer`, run by `make test`); the caller skips without it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.deploy import free_port

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def installed() -> bool:
    return Path(BINARY).exists()


class PgBouncer:
    """`pool_size` server connections per database and user: 1 makes every client transaction
    share one PostgreSQL session, the harshest case for anything session-scoped."""

    def __init__(self, server_url: str, *, pool_size: int) -> None:
        url = make_url(server_url)
        host = url.host or str(url.query.get("host") or "/tmp")  # a TCP host or a Unix socket directory
        # Its own directory under /tmp, readable by the unprivileged user PgBouncer runs as.
        workdir = self.workdir = Path(tempfile.mkdtemp(prefix="ombaro-pgbouncer-"))
        workdir.chmod(0o755)
        self.port, self.user = free_port(), url.username or "postgres"
        (workdir / "users.txt").write_text(f'"{self.user}" ""\n')
        (workdir / "pgbouncer.ini").write_text("\n".join([
            "[databases]",
            f"* = host={host} port={url.port or 5432}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {workdir / 'users.txt'}",
            "pool_mode = transaction",
            f"default_pool_size = {pool_size}",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            "max_client_conn = 500",
            "ignore_startup_parameters = extra_float_digits,options",
            # PgBouncer refuses to run as root; it drops to this user after reading its files.
            *(["user = nobody"] if os.geteuid() == 0 else []),
            "",
        ]))
        self.log_path = workdir / "pgbouncer.log"  # its log goes to stderr, written by us
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([BINARY, str(workdir / "pgbouncer.ini")], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {self.log_path.read_text()}") from None
                time.sleep(0.1)

    def url_for(self, database_url: str) -> str:
        """The same database and user, through this PgBouncer."""
        url = make_url(database_url)
        query = {k: v for k, v in url.query.items() if k != "host"}
        return url.set(host="127.0.0.1", port=self.port, query=query).render_as_string(hide_password=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)
