"""The commands of booking notifications (ombaro/notifications.py): deliver captured events, and
the scan that creates booking reminders. They share campaigns' delivery runtime."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from ombaro import commands, notifications
from ombaro.campaigns.commands import runtime


class DispatchNotificationsResultSchema(Schema):
    """Also `sent_<outcome>`: deliveries per provider outcome."""

    events = fields.Integer()
    stale_events = fields.Integer()
    deliveries = fields.Integer()


def dispatch_notifications(params: commands.NoParams, ctx: commands.Context) -> dict[str, Any]:
    return notifications.dispatch(ctx.session, runtime(ctx.env), ctx.job, ctx.progress)


class RemindersResultSchema(DispatchNotificationsResultSchema):
    reminders = fields.Integer(metadata={"description": "reminder events created"})


def booking_reminders(params: commands.NoParams, ctx: commands.Context) -> dict[str, Any]:
    return notifications.scan_reminders(ctx.session, runtime(ctx.env), ctx.job, ctx.progress)


commands.declare(
    commands.Command(
        kind=notifications.KIND_DISPATCH, params=commands.NoParamsSchema, handler=dispatch_notifications,
        queue="bulk", permission=("jobs", "create"), result=DispatchNotificationsResultSchema,
        description="Deliver the notification events captured since the last run."),
    commands.Command(
        kind="notifications.reminders", params=commands.NoParamsSchema, handler=booking_reminders, queue="bulk",
        permission=("jobs", "create"), result=RemindersResultSchema,
        description="Create reminders for upcoming bookings, then deliver them."),
)
