"""Operator commands that start work: settle, payroll, campaign send, prune, refresh, and the
schedules. Each submits the same job kind with the same params as its API endpoint: the arguments
are read into the command's params and `commands.submit` validates them through the kind's params
schema (ombaro/commands.py, the registry), as it does for the API; a refusal exits 2."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from sqlalchemy.orm import Session

from cli.common import (
    EXIT_OK,
    SCOPE,
    BrokerEnqueue,
    UsageError,
    add_json_option,
    add_wait_options,
    start_job,
)
from cli.output import cell, emit_json, table
from ombaro import commands
from ombaro.models.jobs import Job


def submitter(kind: str, params: dict[str, Any]) -> Any:
    def make(session: Session, enqueue: BrokerEnqueue) -> Job:
        return commands.submit(session, kind, params, enqueue=enqueue, scope=SCOPE).job

    return make


def one_uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise UsageError(f"{what} {value!r} is not a UUID") from None


def uuids(values: list[str] | None, what: str) -> list[str] | None:
    """The ids as given (the params schema checks them, and how many); None when there are none."""
    return list(values) if values else None


def checked(kind: str, params: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
    """The params as the registry loads them, or a UsageError naming the offending options."""
    try:
        return commands.validate_params(kind, params)
    except commands.InvalidParams as exc:
        problems = "; ".join(f"{options.get(name, name)}: {' '.join(map(str, m)) if isinstance(m, list) else m}"
                             for name, m in sorted(exc.errors.items()))
        raise UsageError(problems) from None


# --- settlements: POST /api/v1/settlements/runs ------------------------------------------------------


def settlement_params(period: str, *, dry_run: bool, vendors: list[str] | None) -> dict[str, Any]:
    start, sep, end = period.partition("..")
    if not sep or not start or not end:
        raise UsageError(f"--period {period!r}: write it as YYYY-MM-DD..YYYY-MM-DD")
    params: dict[str, Any] = {"period_start": start, "period_end": end, "dry_run": dry_run}
    if vendor_ids := uuids(vendors, "--vendor"):
        params["vendor_ids"] = vendor_ids
    return checked("settlements.run", params, {"period_start": f"--period {period}", "period_end": f"--period {period}",
                                               "vendor_ids": "--vendor"})


def cmd_settle(args: argparse.Namespace) -> int:
    params = settlement_params(args.period, dry_run=args.dry_run, vendors=args.vendor)
    return start_job(args, submitter("settlements.run", params))


# --- payroll: POST /api/v1/payroll/runs --------------------------------------------------------------


def payroll_params(month: str, *, dry_run: bool, employees: list[str] | None) -> dict[str, Any]:
    from ombaro.payroll.runs import RUN_KIND

    try:
        year, number = (int(part) for part in month.split("-"))
    except ValueError:
        raise UsageError(f"--month {month!r}: write it as YYYY-MM") from None
    params: dict[str, Any] = {"year": year, "month": number, "dry_run": dry_run}
    if employee_ids := uuids(employees, "--employee"):
        params["employee_ids"] = employee_ids
    return checked(RUN_KIND, params, {"year": f"--month {month}", "month": f"--month {month}",
                                      "employee_ids": "--employee"})


def cmd_payroll(args: argparse.Namespace) -> int:
    from ombaro.payroll.runs import RUN_KIND

    params = payroll_params(args.month, dry_run=args.dry_run, employees=args.employee)
    return start_job(args, submitter(RUN_KIND, params))


# --- campaigns: POST /api/v1/campaigns/<id>/send -----------------------------------------------------


def cmd_campaign_send(args: argparse.Namespace) -> int:
    from ombaro.campaigns import lifecycle

    campaign_id = one_uuid(args.campaign_id, "campaign id")

    def make(session: Session, enqueue: BrokerEnqueue) -> Job:
        campaign = lifecycle.get(session, campaign_id, for_update=True)  # CampaignNotFound: exit 2
        return lifecycle.send_now(session, campaign, enqueue=enqueue, key=None, idempotency_scope=SCOPE,
                                  requested_by=None).job

    return start_job(args, make)


# --- maintenance: locations.prune, reports.refresh ---------------------------------------------------


def cmd_prune(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.retention_hours is not None:
        params["retention_hours"] = args.retention_hours
    params = checked("locations.prune", params, {"retention_hours": "--retention-hours"})
    return start_job(args, submitter("locations.prune", params))


def cmd_refresh(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"views": list(dict.fromkeys(args.view))} if args.view else {}
    return start_job(args, submitter("reports.refresh", checked("reports.refresh", params, {"views": "--view"})))


# --- schedules ---------------------------------------------------------------------------------------

SCHEDULE_COLUMNS = ("name", "kind", "trigger", "timezone", "enabled", "overlap", "next_fire", "last_fired")


def schedule_document(schedule: Any) -> dict[str, Any]:
    from ombaro.schedules import next_fire_time

    return {"id": str(schedule.id), "name": schedule.name, "kind": schedule.kind, "params": schedule.params,
            "cron": schedule.cron, "interval_seconds": schedule.interval_seconds, "timezone": schedule.timezone,
            "enabled": schedule.enabled, "overlap_policy": schedule.overlap_policy,
            "misfire_policy": schedule.misfire_policy, "next_fire_time": next_fire_time(schedule),
            "last_fired_for": schedule.last_fired_for}


def cmd_schedules_list(args: argparse.Namespace) -> int:
    from ombaro import schedules
    from ombaro.db import transaction

    with transaction() as session:
        documents = [schedule_document(s) for s in schedules.list_schedules(session)]
    if args.json:
        emit_json(documents)
    else:
        table([{**d, "trigger": d["cron"] or f"every {d['interval_seconds']}s", "overlap": d["overlap_policy"],
                "next_fire": d["next_fire_time"], "last_fired": d["last_fired_for"]} for d in documents],
              SCHEDULE_COLUMNS)
    return EXIT_OK


def cmd_schedules_enable(args: argparse.Namespace) -> int:
    from ombaro import schedules
    from ombaro.db import transaction

    with transaction() as session:
        document = schedule_document(schedules.set_enabled(session, args.schedule, args.action == "enable"))
    if args.json:
        emit_json(document)
    else:
        state = "enabled" if document["enabled"] else "disabled"
        print(f"{document['name']} {state}; next firing {cell(document['next_fire_time'])} "
              "(the scheduler picks the change up at its next reload)")
    return EXIT_OK


def cmd_schedules_run(args: argparse.Namespace) -> int:
    from ombaro import schedules

    return start_job(args, lambda session, enqueue: schedules.run_now(session, args.schedule, enqueue=enqueue))


# --- the parsers -------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    settle = sub.add_parser("settle", help="settle vendors for a period (job settlements.run)")
    settle.add_argument("--period", required=True, metavar="YYYY-MM-DD..YYYY-MM-DD", help="first and last day")
    settle.add_argument("--dry-run", action="store_true", help="compute and show, write nothing")
    settle.add_argument("--vendor", action="append", metavar="VENDOR_ID", help="only this vendor (may repeat)")
    add_wait_options(settle)
    settle.set_defaults(func=cmd_settle)

    payroll = sub.add_parser("payroll", help="compute a month's payroll (job payroll.run)")
    payroll.add_argument("--month", required=True, metavar="YYYY-MM")
    payroll.add_argument("--dry-run", action="store_true", help="compute everyone against last month, write nothing")
    payroll.add_argument("--employee", action="append", metavar="EMPLOYEE_ID",
                         help="only this employee (may repeat), e.g. after a failure")
    add_wait_options(payroll)
    payroll.set_defaults(func=cmd_payroll)

    campaign = sub.add_parser("campaign", help="campaigns")
    campaign_actions = campaign.add_subparsers(dest="action", required=True)
    send = campaign_actions.add_parser("send", help="start an approved campaign now (job campaigns.start)")
    send.add_argument("campaign_id")
    add_wait_options(send)
    send.set_defaults(func=cmd_campaign_send)

    prune = sub.add_parser("prune", help="live-location maintenance: partitions ahead, old pings dropped")
    prune.add_argument("--retention-hours", type=float, help="keep this many hours of pings (default the job's)")
    add_wait_options(prune)
    prune.set_defaults(func=cmd_prune)

    refresh = sub.add_parser("refresh", help="refresh the reporting views (job reports.refresh)")
    refresh.add_argument("--view", action="append", choices=_views(), help="only this view (may repeat)")
    add_wait_options(refresh)
    refresh.set_defaults(func=cmd_refresh)

    sched = sub.add_parser("schedules", help="the periodic commands: list, enable, disable, run now")
    actions = sched.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every schedule with its next firing")
    add_json_option(listing)
    listing.set_defaults(func=cmd_schedules_list)
    for name in ("enable", "disable"):
        toggle = actions.add_parser(name, help=f"{name} a schedule (by name or id)")
        toggle.add_argument("schedule", metavar="NAME_OR_ID")
        add_json_option(toggle)
        toggle.set_defaults(func=cmd_schedules_enable)
    run = actions.add_parser("run", help="fire a schedule now (its overlap policy holds), then wait")
    run.add_argument("schedule", metavar="NAME_OR_ID")
    add_wait_options(run)
    run.set_defaults(func=cmd_schedules_run)


def _views() -> tuple[str, ...]:
    from ombaro.reporting import VIEWS

    return VIEWS
