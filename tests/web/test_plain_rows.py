"""web.plain's row writer (issue 16, session 10): it unpacks each row once and writes a uuid's or a
numeric's server text in quotes as it is (that text holds no character JSON escapes), dates and
times as ISO text, and null for every kind of value; a row of another length than the columns is
refused, never written short."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
from marshmallow import Schema, fields
from sqlalchemy import Column, Date, DateTime, MetaData, Numeric, Table, Text, Time, Uuid
from sqlalchemy.dialects.postgresql import JSONB

from web.plain import PlainDump


class Texts(Schema):
    ref = fields.UUID()
    amount = fields.Decimal(as_string=True, places=2)
    note = fields.Dict(allow_none=True)
    when = fields.DateTime()
    day = fields.Date()
    at = fields.Time()
    name = fields.String()


TABLE = Table("texts", MetaData(), Column("ref", Uuid), Column("amount", Numeric(12, 2)), Column("note", JSONB),
              Column("when", DateTime(timezone=True)), Column("day", Date), Column("at", Time), Column("name", Text))


def test_server_text_of_uuids_and_money_is_quoted_as_it_is_and_nulls_are_null() -> None:
    dump = PlainDump(Texts(), TABLE)
    assert set(dump.as_text) == {"ref", "amount", "note"}
    ref = uuid.UUID("5f0c1e9e-2f61-4c7a-9d55-0d1f0d3c2b1a")
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=dt.UTC)
    rows = [
        (str(ref), "-99999999.99", '{"b": [1, "\\u2028"], "a": "\\"q\\""}', when, when.date(), dt.time(23, 59),
         'a "b" \\ \u00e9'),
        ("00000000-0000-0000-0000-000000000000", "0.00", None, None, None, None, None),
        (None, None, None, None, None, None, None),
    ]
    expected = Texts(many=True).dump([
        SimpleNamespace(ref=ref, amount=Decimal("-99999999.99"), note={"b": [1, "\u2028"], "a": '"q"'}, when=when,
                        day=when.date(), at=dt.time(23, 59), name='a "b" \\ \u00e9'),
        SimpleNamespace(ref=uuid.UUID(int=0), amount=Decimal("0.00"), note=None, when=None, day=None, at=None,
                        name=None),
        SimpleNamespace(ref=None, amount=None, note=None, when=None, day=None, at=None, name=None),
    ])
    assert dump.json(rows) == json.dumps(expected, sort_keys=True, separators=(",", ":")) + "\n"
    assert dump.many(rows) == expected


def test_a_row_of_another_length_than_the_columns_is_refused() -> None:
    dump = PlainDump(Texts(), TABLE)
    row = ("5f0c1e9e-2f61-4c7a-9d55-0d1f0d3c2b1a", "1.00", None, None, None, None, "x")
    assert dump.json([row]).startswith("[{")
    for wrong in (row[:-1], (*row, "extra")):
        with pytest.raises(ValueError):
            dump.json([wrong])
