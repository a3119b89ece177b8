"""Marshmallow schemas shared by several areas of the API."""

from __future__ import annotations

from typing import Any

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
    error = fields.Method("_error", dump_only=True, allow_none=True, metadata={
        "type": "object", "description": "type, message and attempt of the last failure; the traceback stays in "
                                        "the logs and for operators (docs/security.md)"})
    attempts = fields.Integer(dump_only=True)
    max_attempts = fields.Integer(dump_only=True)
    requested_by = fields.UUID(dump_only=True, allow_none=True)
    scheduled_for = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    started_at = fields.DateTime(dump_only=True, allow_none=True)
    finished_at = fields.DateTime(dump_only=True, allow_none=True)


    def _error(self, job: Any) -> dict[str, Any] | None:
        error = job["error"] if isinstance(job, dict) else job.error
        if error is None:
            return None
        return {key: value for key, value in error.items() if key != "trace"}


class JobQuerySchema(Schema):
    kind = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list)
    status = fields.List(fields.String(validate=validate.OneOf(JOB_STATUSES)), load_default=list)
    before = fields.AwareDateTime(load_default=None, metadata={"description": "created before (paging)"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


MOBILE = validate.Regexp(r"^\+?[0-9]{10,15}$", error="Not a valid mobile number (10 to 15 digits, optional +).")
PASSWORD = validate.Length(min=10, max=128, error="Passwords are 10 to 128 characters.")
GENDERS = ("male", "female", "other")


class BankDetailsSchema(Schema):
    account_number = fields.String(required=True, validate=validate.Regexp(
        r"^[0-9]{9,18}$", error="An account number is 9 to 18 digits."))
    ifsc = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Z]{4}0[A-Z0-9]{6}$", error="Not a valid IFSC code (e.g. HDFC0001234)."))
    bank_name = fields.String(required=True, validate=validate.Length(min=2, max=100))
    branch = fields.String(validate=validate.Length(max=100))
