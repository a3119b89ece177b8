"""The web process's gunicorn worker (`Procfile`: `--worker-class web.serving.FreeThreadWorker`).

Gunicorn's gthread workers all poll one shared listening socket and each accepts whenever its poller
wakes, so a burst of new keep-alive connections goes mostly to whichever worker is on a core: one
process (one GIL) then serves them all while the other idles (docs/deploying.md, "The web
workers"). This worker accepts only while one of its threads is free; a busy worker leaves new
connections in the shared backlog, where an idle worker, or the next of its own threads to finish,
takes them. Nothing else of gthread changes: the shared socket, keep-alive, graceful stop.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

# A worker whose threads stay busy (its kept-alive clients keep every thread at work) still takes
# a new connection this often, so that a new client is never starved by the connected ones.
LONGEST_PAUSE_SECONDS = 0.1


class FreeThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    """gthread that listens for new connections while it has fewer requests in hand (running or
    queued for its threads) than threads, and otherwise once every LONGEST_PAUSE_SECONDS."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_hand = 0  # connections submitted to the thread pool and not yet finished
        self.paused_at = 0.0  # when accepting was last turned off for want of a free thread

    def has_free_thread(self) -> bool:
        return bool(self.in_hand < self.cfg.threads)

    def set_accept_enabled(self, enabled: bool) -> None:
        # gthread's loop turns accepting on, after every event, whenever the worker is below
        # worker_connections: a busy worker stays off until a thread is free or the pause is over.
        if enabled and not self.has_free_thread():
            enabled = time.monotonic() - self.paused_at >= LONGEST_PAUSE_SECONDS
        super().set_accept_enabled(enabled)

    # enqueue_req and finish_request both run on the worker's main thread (finish_request through
    # gthread's method queue), so the count needs no lock.
    def enqueue_req(self, conn: TConn) -> None:
        self.in_hand += 1
        super().enqueue_req(conn)
        if self._accepting and not self.has_free_thread():
            self.paused_at = time.monotonic()
            super().set_accept_enabled(False)

    def finish_request(self, conn: TConn, fs: Future[Any]) -> None:
        self.in_hand -= 1
        super().finish_request(conn, fs)
