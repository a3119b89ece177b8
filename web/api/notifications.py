"""The caller's in-app notifications (row-level security: their own), marking them read, and
registering the caller's device for push."""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import Schema, fields, validate

from ombaro import notifications
from ombaro.db import WORKER_ROLE, act_as
from ombaro.models.support import Notification
from web.auth import current_user_id, requires
from web.errors import NotFound
from web.extension import Ombaro, db_session
from web.sanitize import Blueprint
from web.schemas import Boolean, Integer

blp = Blueprint("notifications", __name__, url_prefix="/api/v1/notifications", description="In-app notifications")


class NotificationSchema(Schema):
    id = fields.UUID()
    type = fields.String()
    title = fields.String()
    message = fields.String()
    data = fields.Dict(allow_none=True)
    channels = fields.List(fields.String(), allow_none=True)
    is_read = fields.Boolean(allow_none=True)
    read_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class NotificationQuerySchema(Schema):
    unread = Boolean(load_default=False)
    before = fields.AwareDateTime(load_default=None, metadata={"description": "created before (paging)"})
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=200))


class MarkedSchema(Schema):
    marked = fields.Integer()


class DeviceSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=10, max=4096))
    platform = fields.String(load_default=None, validate=validate.OneOf(("android", "ios", "web")))


class DeviceRegisteredSchema(Schema):
    token = fields.String()
    platform = fields.String(allow_none=True)


@blp.get("")
@requires("notifications", "read")
@blp.arguments(NotificationQuerySchema, location="query", as_kwargs=True)
@blp.response(200, NotificationSchema(many=True))
def list_notifications(unread: bool, before: Any, limit: int) -> Any:
    """The caller's notifications, newest first."""
    return notifications.inbox(db_session(), unread=unread, before=before, limit=limit)


@blp.post("/<uuid:notification_id>/read")
@requires("notifications", "update")
@blp.response(200, NotificationSchema)
def mark_read(notification_id: uuid.UUID) -> Any:
    """Mark one notification read (someone else's is a 404)."""
    session = db_session()
    with session.begin():
        notification = session.get(Notification, notification_id)
        if notification is None:
            raise NotFound(f"no notification {notification_id}")
        return notifications.mark_read(session, notification)


@blp.post("/read-all")
@requires("notifications", "update")
@blp.response(200, MarkedSchema)
def mark_all_read() -> Any:
    """Mark every unread notification of the caller read."""
    session = db_session()
    with session.begin():
        marked = notifications.mark_all_read(session)
    return {"marked": marked}


@blp.post("/devices")
@requires("notifications", "update")
@blp.arguments(DeviceSchema)
@blp.response(201, DeviceRegisteredSchema)
def register_device(data: dict[str, Any]) -> Any:
    """Register the caller's device token for push. Written on the service session as the workers'
    role: a token that moves to another account (a phone changing hands) belongs to a row the
    caller cannot see; it becomes the caller's."""
    user_id = current_user_id()
    with Ombaro.get().sessions() as session, session.begin():
        act_as(session, WORKER_ROLE, {"role": "worker", "sub": str(user_id), "purpose": "push device"})
        notifications.register_device(session, user_id=user_id, token=data["token"], platform=data["platform"])
    return {"token": data["token"], "platform": data["platform"]}
