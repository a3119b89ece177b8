"""The tasks: one per declared command kind (ombaro/commands.py `registry`), all the same generic
task. The task name is the command kind; the task claims the job, loads its typed params, runs the
kind's handler and records the outcome. workers/app.py includes this module."""

from __future__ import annotations

import uuid

from celery import Task
from celery.exceptions import Reject

from ombaro import commands
from ombaro.config import load_settings
from ombaro.db import get_engine
from workers.app import celery, enqueue


def environment() -> commands.Environment:
    """What a handler gets from the worker process: settings, database and broker (read when the
    task runs, as the settings are)."""
    return commands.Environment(settings=load_settings(), engine=get_engine(), enqueue=enqueue)


def run(job_id: str, kind: str) -> str:
    """Run the job `job_id` of `kind` through its declaration; 'succeeded', 'failed', 'retrying' or 'skipped'."""
    command = commands.command_of(kind)
    env = environment()
    try:
        outcome = commands.execute(uuid.UUID(job_id), command.run(env), engine=env.engine,
                                   lease_seconds=env.settings.job_lease_seconds,
                                   heartbeat_seconds=env.settings.job_heartbeat_seconds)
    except commands.DatabaseUnavailable as exc:
        # Not acknowledged: the message goes back to the broker and is tried again, instead of its
        # job waiting for the relay's stale period.
        raise Reject(str(exc), requeue=True) from exc
    if outcome == "succeeded" and command.after is not None:
        command.after(uuid.UUID(job_id), env)
    return outcome


def run_command(task: Task[[str], str], job_id: str) -> str:
    """The one task: its name is the kind."""
    return run(job_id, task.name)


for _kind in commands.registry():
    celery.task(name=_kind, bind=True)(run_command)
