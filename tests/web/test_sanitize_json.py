"""parse_json decodes floats with the decoder's own C parsing and refuses the infinity an
overflowing number becomes, and judges a container of plain scalars without visiting each member
(issue 16, session 4): the same refusals at the same places as a visit per number and member."""

from __future__ import annotations

import json
from typing import Any

import pytest

from web.sanitize import RefusedInput, parse_json

TOO_LARGE = "a number too large to represent is not accepted"
TOO_DEEP = "nested more than 32 levels deep"


def nest(levels: int, inner: str) -> str:
    return "[" * levels + inner + "]" * levels


@pytest.mark.parametrize(("body", "where", "message"), [
    ("1e309", "_body", TOO_LARGE),
    ("-1e400", "_body", TOO_LARGE),
    ("[1.5, 1e309]", "/1", TOO_LARGE),
    ('{"a": [1, {"b": -1e999}], "c": 1e309}', "/a/1/b", TOO_LARGE),
    ('{"pings": [{"x": 1.0}, {"x": 2E400, "y": "\\u0000"}]}', "/pings/1/x", TOO_LARGE),
    ('{"s": "\\u0000", "n": 1e309}', "/s", "the string contains a NUL character"),
    ('{"n": 1e309, "s": "\\u0000"}', "/n", TOO_LARGE),
    ('{"a": NaN, "b": 1e999}', "/a", "NaN is not a number JSON allows is not accepted"),
    ('{"a": 1e999, "b": NaN}', "/a", TOO_LARGE),
    ("[" + "1" * 31 + ", 1e999]", "/0", "an integer of more than 30 digits is not accepted"),
    ("[1e999, " + "1" * 31 + "]", "/0", TOO_LARGE),
    (nest(31, '{"a": 1e999}'), "/0" * 31 + "/a", TOO_LARGE),
    (nest(32, '{"a": 1}'), "/0" * 32 + "/a", TOO_DEEP),
    (nest(31, '{"a": {"b": 1}}'), "/0" * 31 + "/a/b", TOO_DEEP),
    (nest(31, '[{"a": 1}]'), "/0" * 32 + "/a", TOO_DEEP),
    (nest(32, "1e999"), "/0" * 32, TOO_LARGE),
    (nest(33, "1"), "/0" * 33, TOO_DEEP),
])
def test_an_overflowing_number_and_depth_are_refused_where_they_are(body: str, where: str, message: str) -> None:
    with pytest.raises(RefusedInput) as refused:
        parse_json(body.encode())
    assert (refused.value.where, str(refused.value)) == (where, message)


@pytest.mark.parametrize(("body", "document"), [
    ('{"ok": [1.25, -0.0, 1e308, 2, true, null, "x"]}', {"ok": [1.25, -0.0, 1e308, 2, True, None, "x"]}),
    (nest(31, '{"a": 1}'), json.loads(nest(31, '{"a": 1}'))),
    (nest(32, "{}"), json.loads(nest(32, "{}"))),
    (nest(30, '{"a": {"b": 1}}'), json.loads(nest(30, '{"a": {"b": 1}}'))),
])
def test_plain_documents_up_to_the_depth_limit_pass_unchanged(body: str, document: Any) -> None:
    assert parse_json(body.encode()) == document
