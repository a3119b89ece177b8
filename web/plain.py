"""A marshmallow schema's dump for plain database rows, for the hot listings: the values the
schema's fields would produce (docs/benchmarks.md, issue 16: marshmallow spent 1.6 ms of a 10 ms
listing on 8 x 20 fields), worked out once per schema from its field types. A field type this
does not know is refused when the dumper is built, never guessed at a request.
tests/bookings/test_listing.py compares the output with the schema's dump."""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any, cast

from flask import Flask, Response, current_app, jsonify
from flask.json.provider import DefaultJSONProvider
from marshmallow import Schema, fields
from sqlalchemy import JSON, FromClause, Numeric, Uuid

Convert = Callable[[Any], Any]


def _text(value: Any) -> Any:  # fields.String, fields.UUID
    return None if value is None else str(value)


def _date(value: dt.date | None) -> str | None:  # fields.Date, fields.Time, fields.DateTime ("iso")
    return None if value is None else value.isoformat()


def _mapping(value: Any) -> Any:  # fields.Dict without key or value fields: a copy of the mapping
    return None if value is None else dict(value)


def _integer(value: Any) -> int | None:  # fields.Integer
    return None if value is None else int(value)


def _float(value: Any) -> float | None:  # fields.Float
    return None if value is None else float(value)


def _mapping_text(value: str | None) -> Any:  # the same from the server's text of a json(b) column
    return None if value is None else dict(json.loads(value))


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
    if kind is fields.Integer and not field.as_string:  # type: ignore[attr-defined]
        return _integer
    if kind is fields.Float and not field.as_string:  # type: ignore[attr-defined]
        return _float
    if kind in (fields.Date, fields.Time, fields.DateTime) and getattr(field, "format", None) in (None, "iso"):
        return _date
    if isinstance(field, fields.Dict) and kind is fields.Dict and field.key_field is None and field.value_field is None:
        return _mapping
    if (isinstance(field, fields.Decimal) and kind is fields.Decimal and field.as_string and field.places is not None
            and not field.allow_nan):
        return _decimal_string(field.places, field.rounding)
    raise TypeError(f"no plain dump for {name}: {kind.__name__} ({field!r})")


def _same_as_text(field: fields.Field[Any], column: Any) -> bool:
    """Whether the server's text of `column` gives the field's JSON value as the typed value does:
    a uuid's text is str(UUID); a numeric's of the field's scale is the quantized decimal's (a
    numeric column holds no exponent or negative zero); a json(b)'s text is what psycopg's loader
    reads with the same json.loads."""
    kind = type(field)
    if kind is fields.UUID:
        return isinstance(column.type, Uuid)
    if kind is fields.Decimal:
        places = field.places  # type: ignore[attr-defined]  # checked by _converter: a Decimal here
        return isinstance(column.type, Numeric) and column.type.scale == -places.as_tuple().exponent
    return kind is fields.Dict and isinstance(column.type, JSON)


class PlainDump:
    """`schema.dump(rows, many=True)` for rows (tuples) whose columns are the schema's dumped
    fields, in `columns` order. Given the table the rows come from, `as_text` names the columns
    whose server text gives the same answer for less work (no UUID, Decimal or JSON object made
    to be written again, issue 16 session 7): select those as text. `converters` gives the value of
    a field by its name where its type says nothing this knows (a `fields.Method`): a function of
    the column of that name."""

    def __init__(self, schema: Schema, table: FromClause | None = None, *,
                 converters: Mapping[str, Convert] | None = None) -> None:
        dumped = [(field.data_key or name, name, field) for name, field in schema.dump_fields.items()]
        if any(field.attribute not in (None, name) for _key, name, field in dumped):
            raise TypeError("a field with another attribute name has no plain dump")
        self.keys = tuple(key for key, _name, _field in dumped)
        self.columns: tuple[str, ...] = tuple(name for _key, name, _field in dumped)
        given = converters or {}
        chosen = [given[name] if name in given else _converter(name, field) for _key, name, field in dumped]
        self.as_text: tuple[str, ...] = () if table is None else tuple(
            name for _key, name, field in dumped if _same_as_text(field, table.c[name]))
        texts = [name in self.as_text for name in self.columns]
        self._converters = tuple(_mapping_text if text and convert is _mapping else convert
                                 for convert, text in zip(chosen, texts, strict=True))
        self._json_row = _json_row(self.keys, self._converters, texts, [name in given for name in self.columns])

    def many(self, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
        keys, converters = self.keys, self._converters
        return [{key: convert(value) for key, convert, value in zip(keys, converters, row, strict=True)}
                for row in rows]

    def json(self, rows: Iterable[Sequence[Any]]) -> str:
        """`json.dumps(self.many(rows), ensure_ascii=True, sort_keys=True, separators=(",", ":"))`
        and a newline, the text Flask's `jsonify` sends outside debug mode, written row by row
        without the dicts (issue 16, session 6). tests/bookings/test_listing.py compares the two."""
        return f"[{','.join(map(self._json_row, rows))}]\n"


# The nested mappings (fields.Dict) as the whole document's encoder writes them.
_NESTED = json.JSONEncoder(ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode


@functools.lru_cache(maxsize=4096)
def _nested_text(text: str) -> str:
    """_NESTED of a json(b) column's server text as loaded: a function of the text alone, kept for
    the rows a hot listing sends again and again (issue 16, session 7; a few MB at most)."""
    return _NESTED(json.loads(text))


def _json_value(column: int, convert: Convert, as_text: bool, given: bool) -> str:
    """An expression of the row's value `c<column>` giving the JSON text of the converted value; `as_text`:
    the column is the server's text of a uuid, a numeric of the field's scale or a json(b); `given`:
    `convert` was given to PlainDump (any JSON value)."""
    value = f"c{column}"  # the row's values are unpacked into c0, c1, ...
    if as_text and convert is _mapping_text:
        text = f"_nested_text({value})"
    elif as_text:  # a uuid's or a numeric's text (hex digits and dashes; digits, sign, point, NaN, Infinity)
        text = f"f'\"{{{value}}}\"'"  # needs no escaping: quoted as it is
    elif convert is _text:
        text = f"_string(str({value}))"
    elif convert is _date:  # ISO dates and times need no escaping
        text = f"f'\"{{{value}.isoformat()}}\"'"
    elif convert is _mapping:
        text = f"_nested({value})"
    elif convert in (_integer, _float) or given:  # a number, or what a given converter made
        text = f"_nested(_converters[{column}]({value}))"
    else:  # the decimals: a string
        text = f"_string(_converters[{column}]({value}))"
    return f"('null' if {value} is None else {text})"


def _json_row(keys: Sequence[str], converters: Sequence[Convert],
              texts: Sequence[bool], given: Sequence[bool]) -> Callable[[Sequence[Any]], str]:
    """One function (its source made here, as `dataclasses` does) that writes a row's JSON object,
    members in sorted key order, with no call per value but the escaping and the conversions: the
    object's text with a `%s` for each value, filled by one `%` (issue 16, session 10: a quarter
    less than joining the members); the row unpacked once into locals (a row of another length is
    refused) and a uuid's or numeric's server text quoted with an f-string, not escaped (session 10,
    reads10b: ~7 % less)."""
    ordered = sorted(enumerate(keys), key=lambda pair: pair[1])
    template = "{" + ",".join(f"{encode_basestring_ascii(key).replace('%', '%%')}:%s" for _column, key in ordered) + "}"
    values = [_json_value(column, converters[column], texts[column], given[column]) for column, _key in ordered]
    unpacked = "".join(f"c{column}, " for column in range(len(keys)))
    source = f"def json_row(row):\n    {unpacked}= row\n    return {template!r} % ({', '.join(values)},)\n"
    namespace: dict[str, Any] = {"_string": encode_basestring_ascii, "_nested": _NESTED, "_nested_text": _nested_text,
                                 "_converters": converters}
    exec(source, namespace)  # the source is built above from the schema's field names only
    row: Callable[[Sequence[Any]], str] = namespace["json_row"]
    return row


def json_response(dump: PlainDump, rows: Iterable[Sequence[Any]]) -> Response:
    """`jsonify(dump.many(rows))`: the same response, its text written by `dump.json` when the app's
    JSON provider is Flask's own with its defaults (ASCII, sorted keys, compact outside debug)."""
    app: Flask = cast(Any, current_app)._get_current_object()  # the app itself: one proxy look-up
    provider = app.json
    if (type(provider) is DefaultJSONProvider and provider.ensure_ascii and provider.sort_keys
            and (provider.compact or (provider.compact is None and not app.debug))):
        return app.response_class(dump.json(rows), mimetype=provider.mimetype)
    return jsonify(dump.many(rows))
