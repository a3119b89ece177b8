"""`ombaro jobs list|show|watch|retry`: the command log from the server's shell."""

from __future__ import annotations

import argparse

from cli.common import (
    EXIT_OK,
    add_json_option,
    add_wait_options,
    job_id_arg,
    load_job,
    start_job,
    wait_and_report,
)
from cli.output import emit_json, job_document, key_values, table
from ombaro import commands
from ombaro.models.jobs import JOB_STATUSES

LIST_COLUMNS = ("id", "kind", "status", "progress", "attempts", "created_at", "duration_seconds")


def cmd_list(args: argparse.Namespace) -> int:
    from ombaro.db import transaction

    with transaction() as session:
        found = commands.list_jobs(session, kinds=args.kind or (), statuses=args.status or (), limit=args.limit)
        documents = [job_document(job) for job in found]
    if args.json:
        emit_json(documents)
    else:
        table([{**d, "created_at": job.created_at} for d, job in zip(documents, found, strict=True)], LIST_COLUMNS)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    document = job_document(load_job(args.job_id))
    if args.json:
        emit_json(document)
    else:
        if document["error"]:  # the traceback is for --json and the API; a person reads the message
            document["error"] = {k: v for k, v in document["error"].items() if k != "trace"}
        key_values(document)
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    load_job(args.job_id)  # an unknown id is exit 2 before any waiting
    return wait_and_report(args.job_id, as_json=args.json)


def cmd_retry(args: argparse.Namespace) -> int:
    # Like the API's retry: the owner's session rewrites the row; JobNotRetryable unless failed or cancelled.
    return start_job(args, lambda session, enqueue: commands.retry(session, args.job_id, enqueue=enqueue))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = sub.add_parser("jobs", help="the command log: list, show, watch and retry jobs")
    actions = jobs.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="newest jobs first")
    listing.add_argument("--kind", action="append", metavar="KIND", help="only this kind (may repeat)")
    listing.add_argument("--status", action="append", choices=JOB_STATUSES, help="only this status (may repeat)")
    listing.add_argument("--limit", type=_limit, default=50, help="at most this many (1 to 500, default 50)")
    add_json_option(listing)
    listing.set_defaults(func=cmd_list)

    for name, func, text in (("show", cmd_show, "one job: params, progress, result or error"),
                             ("watch", cmd_watch, "follow a job to its end with a progress bar (exit 1 if it fails)")):
        action = actions.add_parser(name, help=text)
        action.add_argument("job_id", type=job_id_arg)
        add_json_option(action)
        action.set_defaults(func=func)

    retry = actions.add_parser("retry", help="run a failed or cancelled job again, then wait for it")
    retry.add_argument("job_id", type=job_id_arg)
    add_wait_options(retry)
    retry.set_defaults(func=cmd_retry)


def _limit(value: str) -> int:
    number = int(value) if value.isdigit() else 0
    if not 1 <= number <= 500:
        raise argparse.ArgumentTypeError(f"{value!r}: give a number from 1 to 500")
    return number
