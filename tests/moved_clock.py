"""Run the test suite with the clock moved: `make test-clock` (README, "Tests").

Every process of the run sees the same moved clock: pytest, the engine's workers, scheduler and
gunicorn it starts, and the embedded PostgreSQL and Redis, which are started for the run under a
directory of their own (`var/clock-<scenario>-<pid>`, deleted after the run) so that they
inherit the moved clock too. The clock is moved by libfaketime (the .so the `libfaketime` wheel ships),
preloaded with a fixed offset (`FAKETIME=+<seconds>`), so the moved clocks of all processes agree
and keep running; monotonic clocks are left alone (timeouts stay real).

    python -m tests.moved_clock [SCENARIO ...] [-- PYTEST_ARGS ...]

Scenarios (default: all three):
  year-ahead  now plus 365 days
  month-end   18:59:00 UTC on the last day of this month: the IST day, month (and in December the
              year) are already the next ones, the UTC ones not yet
  fy-start    23:59:30 IST on 31 March next year: the IST day, month and financial year roll over
              30 seconds into the run
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def _year_ahead(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(days=365)


def _month_end(now: dt.datetime) -> dt.datetime:
    first_of_next = (now.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return (first_of_next - dt.timedelta(days=1)).replace(hour=18, minute=59, second=0, microsecond=0)


def _fy_start(now: dt.datetime) -> dt.datetime:
    return dt.datetime(now.year + 1, 3, 31, 23, 59, 30, tzinfo=IST).astimezone(dt.UTC)


SCENARIOS: dict[str, Callable[[dt.datetime], dt.datetime]] = {
    "year-ahead": _year_ahead, "month-end": _month_end, "fy-start": _fy_start}


def faketime_library() -> Path:
    import libfaketime  # the wheel ships a built libfaketime.so.1

    path = Path(libfaketime.__file__).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    if not path.exists():
        raise SystemExit(f"libfaketime.so.1 not found at {path}")
    return path


def clock_env(target: dt.datetime, var_dir: Path) -> dict[str, str]:
    """The environment of a run whose clocks read `target` now (and run on from there)."""
    offset = (target - dt.datetime.now(dt.UTC)).total_seconds()
    env = {k: v for k, v in os.environ.items()
           if k not in ("TEST_DATABASE_URL", "TEST_REDIS_URL", "FAKETIME", "FAKETIME_TIMESTAMP_FILE")}
    env.update({
        "LD_PRELOAD": " ".join(filter(None, [str(faketime_library()), os.environ.get("LD_PRELOAD")])),
        "FAKETIME": f"{offset:+.3f}",
        "DONT_FAKE_MONOTONIC": "1",
        "OMBARO_VAR_DIR": str(var_dir),
        # tests/conftest.py checks that this process and the database really read this time.
        "OMBARO_TEST_CLOCK": target.isoformat(),
    })
    return env


def run(name: str, pytest_args: list[str]) -> int:
    target = SCENARIOS[name](dt.datetime.now(dt.UTC))
    var_dir = ROOT / "var" / f"clock-{name}-{os.getpid()}"  # runs may go at once
    env = clock_env(target, var_dir)
    print(f"== {name}: clocks moved to {target:%Y-%m-%d %H:%M:%S} UTC "
          f"({target.astimezone(IST):%Y-%m-%d %H:%M:%S} IST), FAKETIME={env['FAKETIME']} ==", flush=True)
    from devtools import embedded_services as services

    started = time.monotonic()
    try:
        code = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], env=env, cwd=ROOT, check=False).returncode
    finally:
        services.destroy(var_dir)
        shutil.rmtree(var_dir, ignore_errors=True)
    print(f"== {name}: pytest exited {code} after {time.monotonic() - started:.0f}s ==", flush=True)
    return code


def main(argv: list[str]) -> int:
    names, pytest_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    names = names or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    failed = [name for name in names if run(name, pytest_args) != 0]
    if failed:
        print(f"== moved clock: failed under {failed} ==")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
