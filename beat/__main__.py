"""`python -m beat`: run the scheduler until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from beat.scheduler import Beat
from ombaro import logs, metrics
from ombaro.config import load_settings
from ombaro.db import direct_engine
from workers.app import enqueuer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m beat", description="Run the OMBARO scheduler.")
    parser.add_argument("--no-leader-lock", action="store_true",
                        help="act without the leader lock (tests of the duplicate guard only)")
    parser.add_argument("--reload-seconds", type=float, default=15,
                        help="how often schedule edits are picked up (default 15)")
    args = parser.parse_args(argv)
    settings = load_settings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, process="beat")
    metrics.configure(settings.redis_url)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # our own lines say what fired
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Directly to PostgreSQL: the leader lock is a session advisory lock, which PgBouncer's
    # transaction pooling would share with whichever client gets that server connection next.
    Beat(direct_engine(settings), enqueuer(settings.broker_url), leader_lock=not args.no_leader_lock,
         reload_seconds=args.reload_seconds, relay_interval=settings.relay_interval_seconds,
         relay_stale_seconds=settings.relay_stale_seconds).run(stop)


if __name__ == "__main__":
    main()
