"""Marshmallow schemas shared by several areas of the API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ombaro.models.jobs import JOB_STATUSES


class JobSchema(Schema):
    id = fields.UUID(dump_only=True)
    kind = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": list(JOB_STATUSES)})
    params = fields.Dict(dump_only=True)
    progress = fields.Float(dump_only=True, metadata={"description": "percent done, 0 to 100"})
    progress_message = fields.String(dump_only=True, allow_none=True)
    result = fields.Dict(dump_only=True, allow_none=True)
    error = fields.Dict(dump_only=True, allow_none=True)
    attempts = fields.Integer(dump_only=True)
    max_attempts = fields.Integer(dump_only=True)
    requested_by = fields.UUID(dump_only=True, allow_none=True)
    scheduled_for = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    started_at = fields.DateTime(dump_only=True, allow_none=True)
    finished_at = fields.DateTime(dump_only=True, allow_none=True)


class JobQuerySchema(Schema):
    kind = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list)
    status = fields.List(fields.String(validate=validate.OneOf(JOB_STATUSES)), load_default=list)
    before = fields.AwareDateTime(load_default=None, metadata={"description": "created before (paging)"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
