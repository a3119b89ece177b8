"""gunicorn settings for a benchmark's server, passed as GUNICORN_CMD_ARGS="--config python:bench.gunicorn_stalls"
(bench/locations.py does): a worker that misses its heartbeat for the worker timeout (30 s) gets
SIGABRT from the arbiter; before it exits, every thread's stack goes to stderr, so a stalled round
says where the worker was stuck instead of only "WORKER TIMEOUT"."""

from __future__ import annotations

import faulthandler
import sys
from typing import Any


def worker_abort(worker: Any) -> None:
    print(f"gunicorn worker {worker.pid} stalled; its threads:", file=sys.stderr, flush=True)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
