"""The web process as the Procfile runs it (docs/deploying.md, "The web workers"): gunicorn's workers
share a burst of new connections instead of one worker taking them all, and a reload (HUP) or a
worker's restart while clients keep sending requests on keep-alive connections fails none of them."""

from __future__ import annotations

import http.client
import os
import shlex
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ombaro.config import PROJECT_ROOT
from tests.chaos.helpers import free_port
from tests.deploy.slow_app import SLOW_SECONDS
from tests.services import Process


def procfile_web() -> tuple[list[str], str]:
    """The Procfile's `web:` gunicorn options (without --bind) and its application."""
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            words = shlex.split(line.removeprefix("web:"))
            at = words.index("--bind")
            return [*words[1:at], *words[at + 2:-1]], words[-1]
    raise AssertionError("no web: line in the Procfile")


def workers_of(master: int) -> set[int]:
    """The pids of gunicorn's workers: the master's children, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                    found.add(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def serve(spawn: Callable[..., Process], application: str | None = None) -> tuple[Process, int]:
    """gunicorn with the Procfile's options on a free port, serving `application` (the Procfile's own
    by default), once both its workers answer."""
    options, procfile_app = procfile_web()
    port = free_port()
    web = spawn("web", sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--log-level", "info",
                *options, application or procfile_app)
    wait_until(lambda: len(workers_of(web.proc.pid)) == 2 and web.output().count("Booting worker") >= 2
               and answers(port), "gunicorn's two workers")
    return web, port


def answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def test_a_burst_of_new_connections_is_shared_by_the_workers(spawn: Callable[..., Process]) -> None:
    """16 clients connect at once, each with a request that holds a thread for 0.3 s: a worker takes a
    connection only while one of its 4 threads is free, so each of the 2 workers answers 8 (two waves
    of 4), where gthread as shipped lets whichever worker wakes first take most of them."""
    web, port = serve(spawn, "tests.deploy.slow_app:app")

    def burst(clients: int) -> list[int]:
        """The pids that answered `clients` requests sent at once, each on a new connection."""
        start = threading.Barrier(clients)
        served_by: list[int] = []

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            start.wait()
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.status == 200
            served_by.append(int(response.read()))
            conn.close()

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return served_by

    wait_until(lambda: len(set(burst(5))) == 2, "both workers serving the application")
    began = time.monotonic()
    served_by = burst(16)
    took = time.monotonic() - began
    assert set(served_by) == workers_of(web.proc.pid)
    assert sorted(Counter(served_by).values()) == [8, 8]
    assert took >= 2 * SLOW_SECONDS


def test_a_new_connection_is_answered_while_every_thread_is_busy(spawn: Callable[..., Process]) -> None:
    """16 kept-alive clients keep all 8 threads busy (and 8 requests queued) with 0.3 s requests for
    5 s: a client connecting meanwhile still gets its answer within 2 s, since a busy worker takes a
    new connection at least every LONGEST_PAUSE_SECONDS, instead of waiting for the others to stop."""
    _, port = serve(spawn, "tests.deploy.slow_app:app")
    stop_at = time.monotonic() + 5

    def busy_client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop_at:
            conn.request("GET", "/")
            conn.getresponse().read()
        conn.close()

    threads = [threading.Thread(target=busy_client) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    began = time.monotonic()
    newcomer = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    newcomer.request("GET", "/")
    assert newcomer.getresponse().status == 200
    waited = time.monotonic() - began
    newcomer.close()
    for thread in threads:
        thread.join()
    assert waited < 2, f"the new connection waited {waited:.1f} s"


def test_reload_and_worker_restart_under_load_fail_no_request(spawn: Callable[..., Process]) -> None:
    """Eight clients send requests back to back on keep-alive connections (opening a new one when the
    server closes theirs) while gunicorn reloads its workers (HUP) twice and one worker is stopped
    (TERM, as `--max-requests` or an operator's restart does): every request is answered 200."""
    web, port = serve(spawn)
    stop = threading.Event()
    began = time.monotonic()
    answered: list[int] = []
    failures: list[str] = []

    def client(path: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        done = 0
        while not stop.is_set():
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
            except OSError as error:  # reset, refused, or closed without an answer
                failures.append(f"{time.monotonic() - began:.1f} s, {path}: {error!r}")
                conn.close()
                continue
            if response.status != 200:
                failures.append(f"{time.monotonic() - began:.1f} s, {path}: HTTP {response.status}")
            done += 1
        conn.close()
        answered.append(done)

    threads = [threading.Thread(target=client, args=(path,)) for path in ("/healthz", "/readyz") * 4]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2):
            time.sleep(1)
            before = workers_of(web.proc.pid)
            os.kill(web.proc.pid, signal.SIGHUP)
            wait_until(lambda old=before: (now := workers_of(web.proc.pid)).isdisjoint(old) and len(now) == 2,
                       "the reload's new workers, the old ones gone")
        time.sleep(1)
        before = workers_of(web.proc.pid)
        stopped = min(before)
        os.kill(stopped, signal.SIGTERM)
        wait_until(lambda: stopped not in (now := workers_of(web.proc.pid)) and len(now) == 2,
                   "the stopped worker replaced")
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == [], f"{len(failures)} failed: {failures[:10]}"
    assert len(answered) == 8 and min(answered) > 0
