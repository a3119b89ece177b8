"""Marshmallow schemas and fields shared by several areas of the API.

Every input field is bounded (docs/architecture.md, "Bad input"): money is `Money` (two decimal
places at most, explicit bounds), booleans are `Boolean` (strict), integers carry a `Range` with
both ends inside their column's type; tests/web/test_schema_bounds.py holds every schema to it."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from webargs.multidictproxy import MultiDictProxy

from ombaro import money
from ombaro.models.jobs import JOB_STATUSES
from web.plain import PlainDump

CENT = Decimal("0.01")
# What numeric(10,2), the default money column (ombaro/models/base.py), holds.
MONEY_MAX = Decimal("99999999.99")


class Money(fields.Decimal):
    """An amount in rupees: a JSON number or a decimal string with at most two decimal places
    (paise; more is refused, never rounded), between `minimum` and `maximum` (by default 0 and
    what numeric(10,2) holds). Loaded as a Decimal, dumped as a string with two places."""

    default_error_messages = {
        "places": "At most two decimal places (paise).",
        "range": "Must be between {minimum} and {maximum}.",
        "above_minimum": "Must be more than {minimum} and at most {maximum}.",
    }

    def __init__(self, *, minimum: Decimal | int | str = 0, maximum: Decimal | int | str = MONEY_MAX,
                 exclusive_minimum: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("as_string", True)
        super().__init__(places=2, **kwargs)
        self.minimum, self.maximum = Decimal(minimum), Decimal(maximum)
        self.exclusive_minimum = exclusive_minimum
        # Declared for the OpenAPI document; _deserialize has already enforced it.
        self.validators.insert(0, validate.Range(min=self.minimum, max=self.maximum,
                                                 min_inclusive=not exclusive_minimum))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            raise self.make_error("invalid")
        try:
            amount = Decimal(str(value).strip())
        except (InvalidOperation, ValueError) as exc:
            raise self.make_error("invalid") from exc
        if not amount.is_finite():
            raise self.make_error("special")
        too_low = amount <= self.minimum if self.exclusive_minimum else amount < self.minimum
        if too_low or amount > self.maximum:
            raise self.make_error("above_minimum" if self.exclusive_minimum else "range",
                                  minimum=self.minimum, maximum=self.maximum)
        if amount != amount.quantize(CENT):
            raise self.make_error("places")
        return amount.quantize(CENT)


class MoneyAmount(fields.Decimal):
    """An amount in rupees as the API answers it: a decimal string with two places ("1800.00"),
    rounded once, half away from zero, by ombaro/money.py. The dump side of `Money` (one field for
    every response schema, instead of `fields.Decimal(as_string=True, places=2)` repeated)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("as_string", True)
        super().__init__(places=2, rounding=ROUND_HALF_UP, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | Decimal | None:
        if value is None:
            return None
        return super()._serialize(money.round_money(Decimal(str(value))), attr, obj, **kwargs)


class Boolean(fields.Boolean):
    """Strict: JSON `true` or `false` only (`0`, `1`, `"yes"`, `"false"` in a JSON body are refused).
    In a query string or form, whose values are all text, `true`/`false` and `1`/`0` (any case)."""

    TEXT = {"true": True, "false": False, "1": True, "0": False}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and isinstance(data, MultiDictProxy) and value.lower() in self.TEXT:
            return self.TEXT[value.lower()]
        raise self.make_error("invalid", input=value)


class Integer(fields.Integer):
    """A whole number: a JSON integer (`1.5`, `1e2`, `true` and `"5"` are refused, never truncated);
    in a query string or form, optional sign and digits. Declare a `validate.Range` with both ends
    inside the column's type with it: bigger numbers are a 422 here, not an overflow in PostgreSQL."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and isinstance(data, MultiDictProxy):
            text = value.strip()
            if not _DIGITS.fullmatch(text):
                raise self.make_error("invalid", input=value)
            return int(text)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid", input=value)
        return value


_DIGITS = re.compile(r"[+-]?[0-9]{1,30}")
# The largest value of a PostgreSQL bigint (paging by a bigint id).
BIGINT_MAX = 2**63 - 1


class JobSchema(Schema):
    """A job as every command endpoint's 202, GET /api/v1/jobs and their replays answer it. Dumped
    by `web.plain.PlainDump` from the job's columns (issue 16, session 9: marshmallow's per-field
    dump was about a tenth of a submit's CPU); tests/web/test_job_dump.py compares the two."""

    id = fields.UUID(dump_only=True)
    kind = fields.String(dump_only=True)
    status = fields.String(dump_only=True, metadata={"enum": list(JOB_STATUSES)})
    params = fields.Dict(dump_only=True, metadata={
        "description": "the command's params as its kind's `<Kind>Params` schema loaded them (see `x-commands`)"})
    progress = fields.Float(dump_only=True, metadata={"description": "percent done, 0 to 100"})
    progress_message = fields.String(dump_only=True, allow_none=True)
    result = fields.Dict(dump_only=True, allow_none=True, metadata={
        "description": "what the job produced, once it succeeded: shaped per kind as the `<Kind>Result` schema "
                       "that `x-commands` names for the job's kind (e.g. `ReportsRefreshResult`)"})
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
        return public_error(job["error"] if isinstance(job, Mapping) else job.error)

    @functools.cached_property
    def _plain(self) -> PlainDump:
        return PlainDump(self, converters={"error": public_error})

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """marshmallow's dump, the same values in the same order: a job (`Job`) or its row's
        mapping with every column, or a list of them with `many`; anything else (a mapping that
        lacks a column) goes to marshmallow."""
        plain = self._plain
        jobs = obj if (self.many if many is None else many) else (obj,)
        try:
            rows = [tuple(job[name] for name in plain.columns) if isinstance(job, Mapping)
                    else tuple(getattr(job, name) for name in plain.columns) for job in jobs]
        except (KeyError, AttributeError):
            return super().dump(obj, many=many)
        dumped = plain.many(rows)
        return dumped if jobs is obj else dumped[0]


def public_error(error: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A job's error as the API shows it: without the traceback (operators read it in the logs)."""
    if error is None:
        return None
    return {key: value for key, value in error.items() if key != "trace"}


class JobQuerySchema(Schema):
    kind = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list)
    status = fields.List(fields.String(validate=validate.OneOf(JOB_STATUSES)), load_default=list)
    before = fields.AwareDateTime(load_default=None, metadata={"description": "created before (paging)"})
    limit = Integer(load_default=50, validate=validate.Range(min=1, max=500))


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


# A free-form JSON object's bounds (JsonObject): what the OpenAPI document's `JsonValue*` schemas say.
JSON_DEPTH = 3  # containers below the object itself: {"slabs": [{"over": "0"}]} is two
JSON_NUMBER_LIMIT = 10**15
JSON_STRING_MAX = 10_000


class JsonObject(fields.Dict):
    """A free-form JSON object whose shape another layer decides (a statutory rate's `data`, a
    schedule's `params`), bounded so the document can say exactly what is accepted: keys are text;
    values are text (at most 10,000 characters), numbers between -10^15 and 10^15, booleans, null,
    and arrays or objects of those nested at most three levels below the object. Anything else is a
    422 naming the place (`data.slabs.0.over`)."""

    default_error_messages = {
        "too_deep": f"Nested more than {JSON_DEPTH} levels.",
        "value": f"Must be text of at most {JSON_STRING_MAX} characters, a number between "
                 f"-{JSON_NUMBER_LIMIT} and {JSON_NUMBER_LIMIT}, true, false, null, a list or an object.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        # marshmallow's Mapping._deserialize has no annotations (marshmallow 4.x).
        loaded: dict[str, Any] = super()._deserialize(value, attr, data, **kwargs)  # type: ignore[no-untyped-call]
        errors: dict[str, Any] = {}
        for key, item in loaded.items():
            self._check(item, JSON_DEPTH, [key], errors)
        if errors:
            raise ValidationError(errors)
        return loaded

    def _check(self, value: Any, depth: int, path: list[str], errors: dict[str, Any]) -> None:
        if isinstance(value, (dict, list)):
            if depth == 0:
                errors[".".join(path)] = [self.error_messages["too_deep"]]
                return
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                self._check(item, depth - 1, [*path, str(key)], errors)
            return
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, str):
            ok = len(value) <= JSON_STRING_MAX
        else:
            ok = isinstance(value, (int, float)) and -JSON_NUMBER_LIMIT <= value <= JSON_NUMBER_LIMIT
        if not ok:
            errors[".".join(path)] = [self.error_messages["value"]]


def json_value_schemas() -> dict[str, dict[str, Any]]:
    """The OpenAPI schemas JsonObject's values follow: `JsonValue0` (scalars) to `JsonValue3`."""
    scalars: list[dict[str, Any]] = [
        {"type": "string", "maxLength": JSON_STRING_MAX},
        {"type": "number", "minimum": -JSON_NUMBER_LIMIT, "maximum": JSON_NUMBER_LIMIT},
        {"type": "boolean"},
        {"type": "boolean", "nullable": True, "enum": [None]},
    ]
    schemas = {"JsonValue0": {"anyOf": scalars}}
    for level in range(1, JSON_DEPTH + 1):
        inner = {"$ref": f"#/components/schemas/JsonValue{level - 1}"}
        schemas[f"JsonValue{level}"] = {"anyOf": [*scalars, {"type": "array", "items": inner},
                                                  {"type": "object", "additionalProperties": inner}]}
    return schemas
