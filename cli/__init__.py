"""`ombaro`: the operator's command line: services, migrations and demo data here; the command log
(cli/jobs.py) and the commands that start work (cli/operations.py) beside it.

Exit codes: 0 success, 1 the job failed or was cancelled, 2 usage or validation error (a bad
argument, an unknown job or schedule, a refusal), 3 the database cannot be reached; 130 when
Ctrl-C stops the waiting (the job goes on)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from cli import jobs, operations
from cli.common import EXIT_DATABASE, EXIT_USAGE, database_unreachable_types, refusal_types
from ombaro.config import PROJECT_ROOT, default_var_dir, load_settings

if TYPE_CHECKING:
    from alembic.config import Config


def _var_dir() -> Path:
    import os

    return Path(os.environ.get("OMBARO_VAR_DIR") or default_var_dir()).resolve()


def cmd_services(args: argparse.Namespace) -> int:
    warnings.filterwarnings("ignore", module="platformdirs")
    from devtools import embedded_services as services

    var_dir = _var_dir()
    if args.action == "up":
        urls = services.up(var_dir)
        print(f"PostgreSQL: {urls.database_url}\nRedis:      {urls.redis_url}\n(data under {var_dir})")
    elif args.action == "down":
        services.down(var_dir)
        print("embedded services stopped (data kept)")
    else:
        print(json.dumps(services.status(var_dir), indent=2))
    return 0


# The migrations package (alembic.ini, env.py, versions/) beside `ombaro/`: in the checkout, and in
# site-packages when installed from the wheel.
ALEMBIC_INI = PROJECT_ROOT / "migrations" / "alembic.ini"


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def cmd_migrate(args: argparse.Namespace) -> int:
    from alembic import command

    command.upgrade(alembic_config(), args.revision)
    from ombaro.access.permissions import seed_permissions
    from ombaro.db import transaction

    with transaction() as session:
        added = seed_permissions(session)
    print(f"permission matrix: {added} default grant(s) added")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    if not args.demo:
        print("nothing to seed: pass --demo", file=sys.stderr)
        return 2
    from sqlalchemy import text

    from devtools.demo import DEMO_PASSWORD, enable_demo_logins, seed_demo
    from ombaro.db import get_engine

    with get_engine().begin() as conn:
        if conn.execute(text("SELECT EXISTS (SELECT 1 FROM vendors)")).scalar_one():
            print("demo data already present; nothing to do")
            return 0
        began = time.perf_counter()
        counts = seed_demo(conn, seed=args.seed, scale=args.scale, progress=lambda m: print(f"  {m}", flush=True))
        logins = enable_demo_logins(conn)
    print(f"seeded {sum(counts.values())} rows in {time.perf_counter() - began:.1f}s:")
    for table, count in counts.items():
        print(f"  {table:<28} {count:>8}")
    print(f"\ndemo logins (password {DEMO_PASSWORD!r}, development data only):")
    for email, role in logins:
        print(f"  {role:<22} {email}")
    return 0


def cmd_env(_args: argparse.Namespace) -> int:
    settings = load_settings()
    print(f"export DATABASE_URL='{settings.database_url}'\nexport REDIS_URL='{settings.redis_url}'")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ombaro", description="OMBARO Ops operator commands")
    sub = parser.add_subparsers(dest="command", required=True)
    services = sub.add_parser("services", help="embedded PostgreSQL and Redis under ./var")
    services.add_argument("action", choices=["up", "down", "status"])
    services.set_defaults(func=cmd_services)
    migrate = sub.add_parser("migrate", help="apply database migrations (alembic upgrade)")
    migrate.add_argument("revision", nargs="?", default="heads")
    migrate.set_defaults(func=cmd_migrate)
    seed = sub.add_parser("seed", help="fill the database with the demo data set (once)")
    seed.add_argument("--demo", action="store_true", help="the deterministic demo data set")
    seed.add_argument("--seed", type=int, default=20261126, help="random seed (default 20261126)")
    seed.add_argument("--scale", type=float, default=1.0, help="size relative to the default (1.0)")
    seed.set_defaults(func=cmd_seed)
    env = sub.add_parser("env", help="print DATABASE_URL and REDIS_URL as shell exports")
    env.set_defaults(func=cmd_env)
    jobs.register(sub)
    operations.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except Exception as exc:
        # Domain refusals and an unreachable database become exit codes here, in one place.
        if isinstance(exc, refusal_types()):
            print(f"ombaro {args.command}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, database_unreachable_types()):
            print(f"ombaro {args.command}: cannot reach the database: {_first_line(exc)}", file=sys.stderr)
            return EXIT_DATABASE
        raise


def _first_line(exc: Exception) -> str:
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]


if __name__ == "__main__":
    sys.exit(main())
