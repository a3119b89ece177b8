"""A WSGI app for tests/deploy/test_web_workers.py: every request holds its thread for `SLOW_SECONDS`
(0.3 s), then answers with the serving process's id, so a test sees which worker took it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

SLOW_SECONDS = 0.3


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    time.sleep(SLOW_SECONDS)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
