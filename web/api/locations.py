"""Live locations: therapists' phones post batches of fixes; a customer follows their therapist on
the way; operations see whether pruning keeps up."""

from __future__ import annotations

import datetime as dt
import math
import operator
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

from flask_smorest import abort
from marshmallow import Schema, fields, validate

from ombaro import locations
from web.auth import current_user, current_user_id, requires
from web.errors import NotFound
from web.extension import Ombaro, caller_write, db_session
from web.sanitize import Blueprint
from web.schemas import Boolean, Integer

blp = Blueprint("locations", __name__, url_prefix="/api/v1/locations", description="Live therapist locations")


class PingSchema(Schema):
    latitude = fields.Decimal(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Decimal(required=True, validate=validate.Range(min=-180, max=180))
    accuracy = fields.Decimal(validate=validate.Range(min=0, max=10_000), metadata={"description": "metres"})
    altitude = fields.Decimal(validate=validate.Range(min=-500, max=10_000), metadata={"description": "metres"})
    speed = fields.Decimal(validate=validate.Range(min=0, max=300), metadata={"description": "km/h"})
    heading = fields.Decimal(validate=validate.Range(min=0, max=360, max_inclusive=False),
                             metadata={"description": "degrees"})
    battery_level = Integer(data_key="battery", validate=validate.Range(min=0, max=100),
                                   metadata={"description": "percent"})
    is_moving = Boolean()
    timestamp = fields.AwareDateTime(required=True, metadata={
        "description": "when the fix was taken; not in the future, not older than the 24-hour retention"})


class _Rule(NamedTuple):
    attribute: str
    kind: str  # "number", "integer", "boolean" or "datetime"
    low: int | None
    high: int | None
    high_inclusive: bool


def _rules(schema: Schema) -> dict[str, _Rule]:
    """PingSchema's fields as plain checks, read from the schema itself (one source of truth)."""
    kinds = ((fields.Decimal, "number"), (Integer, "integer"), (Boolean, "boolean"), (fields.AwareDateTime, "datetime"))
    rules = {}
    for name, field in schema.fields.items():
        kind = next(k for cls, k in kinds if isinstance(field, cls))
        bounds = [v for v in field.validators if isinstance(v, validate.Range)]
        assert len(bounds) <= 1 and all(b.min_inclusive for b in bounds), name
        # Integer bounds (issue 16): a JSON float compares with them exactly as the Decimal of its
        # shortest repr does (no decimal that rounds to the float lies across an integer it is not).
        assert all(type(b.min) is int and type(b.max) is int for b in bounds), name
        low, high, inclusive = (bounds[0].min, bounds[0].max, bounds[0].max_inclusive) if bounds else (None, None, True)
        rules[field.data_key or name] = _Rule(name, kind, low, high, inclusive)
    return rules


# The exact types a whole column may hold on PingList's fast path (the JSON decoder makes no subclasses).
_NUMBERS, _INTEGERS = frozenset((float, int)), frozenset((int,))
_BOOLEANS, _STRINGS = frozenset((bool,)), frozenset((str,))
_AT_MOST: Callable[[Any, Any], bool] = operator.le
_BELOW: Callable[[Any, Any], bool] = operator.lt


class PingList(fields.List[dict[str, Any]]):
    """`fields.List(fields.Nested(PingSchema))` with a fast path (issue 16): marshmallow spends
    about 0.5 ms a ping in its generic machinery, most of a request's time. A batch whose every
    ping is plainly valid (known keys, JSON numbers, booleans and ISO timestamps with an offset,
    all in range) is converted here to exactly what the schema would load; anything else goes
    through the schema, so errors are the schema's own, word for word."""

    def __init__(self, schema: type[Schema], **kwargs: Any) -> None:
        super().__init__(fields.Nested(schema), **kwargs)
        self._rules = _rules(schema())
        self._required = {key for key, field in schema().fields.items() if field.required}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any] | None]:
        fast = self._fast(value)
        return fast if fast is not None else super()._deserialize(value, attr, data, **kwargs)

    # Typed as marshmallow types what a List loads (its items could be None): here they never are.
    # Exact types (the JSON decoder makes no subclasses; anything else takes the schema's path), and
    # numbers checked against the bounds before the one conversion to Decimal (issue 16, session 4).
    def _fast(self, value: Any) -> list[dict[str, Any] | None] | None:
        if type(value) is not list:
            return None
        if value and type(value[0]) is dict:
            keys = value[0].keys()
            if all(type(ping) is dict and ping.keys() == keys for ping in value):
                return self._fast_columns(value, list(keys))
        return self._fast_rows(value)

    def _fast_columns(self, value: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any] | None] | None:
        """_fast_rows for a batch whose pings all have the same keys (what phones send), a column at a
        time: the type and bound checks and the conversions run in C over each column (issue 16,
        session 5), with the same outcome as ping by ping."""
        rules = self._rules
        if not self._required <= value[0].keys():
            return None
        attributes, columns = [], []
        for key in keys:
            rule = rules.get(key)
            if rule is None:
                return None
            attribute, kind, low, high, inclusive = rule
            raws = list(map(itemgetter(key), value))
            loaded: list[Any]
            given = set(map(type, raws))
            if (kind == "number" and given <= _NUMBERS) or (kind == "integer" and given == _INTEGERS):
                if low is None:
                    if float in given and not all(map(math.isfinite, raws)):
                        return None
                elif not (all(map(operator.le, repeat(low), raws))  # NaN fails too
                          and all(map(_AT_MOST if inclusive else _BELOW, raws, repeat(high)))):
                    return None
                loaded = raws if kind == "integer" else list(map(Decimal, map(str, raws)))
            elif kind == "boolean" and given == _BOOLEANS:
                loaded = raws
            elif kind == "datetime" and given == _STRINGS and low is None:
                try:
                    stamps = list(map(dt.datetime.fromisoformat, raws))
                except ValueError:
                    return None
                if not all(stamp.tzinfo is not None and stamp.utcoffset() is not None for stamp in stamps):
                    return None
                loaded = stamps
            else:
                return None
            attributes.append(attribute)
            columns.append(loaded)
        return [dict(zip(attributes, row, strict=True)) for row in zip(*columns, strict=True)]

    def _fast_rows(self, value: list[Any]) -> list[dict[str, Any] | None] | None:
        rules, required = self._rules, self._required
        loaded: list[dict[str, Any] | None] = []
        for ping in value:
            if type(ping) is not dict or not required <= ping.keys():
                return None
            out: dict[str, Any] = {}
            for key, raw in ping.items():
                rule = rules.get(key)
                if rule is None:
                    return None
                attribute, kind, low, high, inclusive = rule
                given = type(raw)
                if (kind == "number" and (given is float or given is int)) or (kind == "integer" and given is int):
                    if low is None:
                        if given is float and not math.isfinite(raw):
                            return None
                    elif not low <= raw <= high or (raw == high and not inclusive):  # NaN fails too
                        return None
                    out[attribute] = raw if kind == "integer" else Decimal(str(raw))
                elif kind == "boolean" and given is bool:
                    out[attribute] = raw
                elif kind == "datetime" and given is str:
                    try:
                        stamp = dt.datetime.fromisoformat(raw)
                    except ValueError:
                        return None
                    if stamp.tzinfo is None or stamp.utcoffset() is None:
                        return None
                    if low is not None:  # no datetime field has a Range; the schema would judge one
                        return None
                    out[attribute] = stamp
                else:
                    return None
            loaded.append(out)
        return loaded


class PingBatchSchema(Schema):
    therapist_id = fields.UUID(metadata={"description": "optional; if given it must be the caller's own"})
    pings = PingList(PingSchema, required=True, validate=validate.Length(min=1, max=locations.MAX_PINGS_PER_BATCH))


class PositionSchema(Schema):
    latitude = fields.Float()
    longitude = fields.Float()
    recorded_at = fields.DateTime()


class PingResultSchema(Schema):
    accepted = fields.Integer()
    latest = fields.Nested(PositionSchema, allow_none=True)
    live = fields.Boolean(metadata={"description": "published to the live index (fresh and Redis reachable)"})


class TrackingSchema(Schema):
    booking_id = fields.UUID()
    assignment_id = fields.UUID()
    therapist_id = fields.UUID()
    status = fields.String()
    latitude = fields.Float(allow_none=True)
    longitude = fields.Float(allow_none=True)
    recorded_at = fields.DateTime(allow_none=True)
    distance_km = fields.Float(allow_none=True, metadata={"description": "straight line to the service location"})
    eta_minutes = fields.Integer(allow_none=True, metadata={"description": "estimated drive, rounded up"})
    source = fields.String(metadata={"description": "redis, database, or none (no fix yet)"})


class RetentionSchema(Schema):
    oldest_ping_at = fields.DateTime(allow_none=True)
    oldest_ping_age_seconds = fields.Integer(allow_none=True)
    stale = fields.Boolean(metadata={"description": "true when the oldest ping is older than 25 hours"})
    stale_after_seconds = fields.Integer()


@blp.post("")
@requires("assignments", "update")
@blp.arguments(PingBatchSchema)
@blp.response(201, PingResultSchema)
def post_pings(body: dict[str, Any]) -> Any:
    """A therapist's phone sends its fixes (up to 500 at once). Out-of-range values, fixes from the
    future or older than the retention window, and another therapist's id are refused with field
    errors; nothing of a refused batch is stored. Row-level security also limits the insert to the
    caller's own therapist id."""
    now = dt.datetime.now(dt.UTC)
    ombaro = Ombaro.get()
    pings, claimed = body["pings"], body.get("therapist_id")
    try:
        if locations.timestamp_errors(pings, now=now):  # refused: the session's path names every error
            with db_session().begin() as transaction:
                therapist = locations.therapist_of(transaction.session, current_user().id)
                locations.check_pings(pings, therapist=therapist, claimed=claimed, now=now)
            raise AssertionError("check_pings refuses a batch with timestamp errors")
        # The whole transaction in one round trip; the therapist is looked up inside it (issue 16).
        latest = caller_write(partial(locations.queue_own_pings, user_id=current_user_id(), pings=pings,
                                      claimed=claimed), settings=locations.BATCH_SETTINGS)
    except locations.PingsRejected as exc:
        abort(422, message=str(exc), messages={"json": exc.errors})
    live = latest is not None and locations.publish(ombaro.redis, latest, now=now)
    shown = None if latest is None else {"latitude": float(latest.latitude), "longitude": float(latest.longitude),
                                         "recorded_at": latest.recorded_at}
    return {"accepted": len(body["pings"]), "latest": shown, "live": live}


@blp.get("/bookings/<uuid:booking_id>")
@requires("bookings", "read")
@blp.response(200, TrackingSchema)
@blp.alt_response(409, description="The booking's therapist is not on the way (the assignment's state is named).")
def track(booking_id: uuid.UUID) -> Any:
    """Where the booking's therapist is, how far and how long away, while they are on the way (409
    otherwise, naming the assignment's state). Another customer's booking is a 404."""
    try:
        return locations.track_booking(db_session(), Ombaro.get().redis, booking_id, now=dt.datetime.now(dt.UTC))
    except LookupError as exc:
        raise NotFound(str(exc)) from exc


@blp.get("/retention")
@requires("schedules", "read")
@blp.response(200, RetentionSchema)
def retention() -> Any:
    """The oldest stored ping: pruning keeps it under 24 hours, `stale` says when it is over 25.
    Read on the service connection: an age, no row of anyone's."""
    with Ombaro.get().engine.connect() as conn:
        return locations.retention_status(conn)
