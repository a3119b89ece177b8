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


def test_the_blueprints_arguments_are_the_document_the_sanitation_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The body is decoded once (issue 16): `@arguments` of our Blueprint load what check_request
    parsed, and a body check_request left alone (empty) still gets webargs' own answer."""
    import webargs.core
    from flask import Flask
    from marshmallow import Schema, fields

    from web.sanitize import Blueprint, check_request

    class Pair(Schema):
        a = fields.Float(required=True)
        b = fields.List(fields.Integer())

    app = Flask(__name__)
    app.before_request(check_request)
    blp = Blueprint("pair", __name__)

    @blp.post("/pair")
    @blp.arguments(Pair)
    def pair(loaded: dict[str, Any]) -> Any:
        return loaded

    app.register_blueprint(blp)
    decoded: list[Any] = []
    real = webargs.core.parse_json
    monkeypatch.setattr(webargs.core, "parse_json", lambda body: decoded.append(body) or real(body))
    client = app.test_client()
    answer = client.post("/pair", data=b'{"a": 1.5, "b": [1, 2]}', content_type="application/json")
    assert (answer.status_code, answer.json, decoded) == (200, {"a": 1.5, "b": [1, 2]}, [])
    assert client.post("/pair", data=b" ", content_type="application/json").status_code == 400
    assert decoded == [b" "]  # webargs' own path for what check_request does not decode
