"""A marshmallow schema's dump for plain database rows, for the hot listings: the values the
schema's fields would produce (docs/benchmarks.md, issue 16: marshmallow spent 1.6 ms of a 10 ms
listing on 8 x 20 fields), worked out once per schema from its field types. A field type this
does not know is refused when the dumper is built, never guessed at a request.
tests/bookings/test_listing.py compares the output with the schema's dump."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from marshmallow import Schema, fields

Convert = Callable[[Any], Any]


def _text(value: Any) -> Any:  # fields.String, fields.UUID
    return None if value is None else str(value)


def _date(value: dt.date | None) -> str | None:  # fields.Date, fields.Time, fields.DateTime ("iso")
    return None if value is None else value.isoformat()


def _mapping(value: Any) -> Any:  # fields.Dict without key or value fields: a copy of the mapping
    return None if value is None else dict(value)


def _decimal_string(places: decimal.Decimal, rounding: str | None) -> Convert:
    """fields.Decimal(as_string=True, places=...): quantized (the context's rounding unless named),
    written without an exponent; NaN and infinities unquantized, as marshmallow does."""

    def convert(value: Any) -> str | None:
        if value is None:
            return None
        number = value if type(value) is decimal.Decimal else decimal.Decimal(str(value))
        if number.is_finite():
            number = number.quantize(places, rounding=rounding)
        return format(number, "f")

    return convert


def _converter(name: str, field: fields.Field[Any]) -> Convert:
    kind = type(field)
    if kind in (fields.String, fields.UUID):
        return _text
    if kind in (fields.Date, fields.Time, fields.DateTime) and getattr(field, "format", None) in (None, "iso"):
        return _date
    if isinstance(field, fields.Dict) and kind is fields.Dict and field.key_field is None and field.value_field is None:
        return _mapping
    if (isinstance(field, fields.Decimal) and kind is fields.Decimal and field.as_string and field.places is not None
            and not field.allow_nan):
        return _decimal_string(field.places, field.rounding)
    raise TypeError(f"no plain dump for {name}: {kind.__name__} ({field!r})")


class PlainDump:
    """`schema.dump(rows, many=True)` for rows (tuples) whose columns are the schema's dumped
    fields, in `columns` order."""

    def __init__(self, schema: Schema) -> None:
        dumped = [(field.data_key or name, name, field) for name, field in schema.dump_fields.items()]
        if any(field.attribute not in (None, name) for _key, name, field in dumped):
            raise TypeError("a field with another attribute name has no plain dump")
        self.keys = tuple(key for key, _name, _field in dumped)
        self.columns: tuple[str, ...] = tuple(name for _key, name, _field in dumped)
        self._converters = tuple(_converter(name, field) for _key, name, field in dumped)

    def many(self, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
        keys, converters = self.keys, self._converters
        return [{key: convert(value) for key, convert, value in zip(keys, converters, row, strict=True)}
                for row in rows]
