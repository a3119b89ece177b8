"""web.schemas.JsonObject, the one free-form object inputs may have, accepts exactly what the OpenAPI
document's `JsonValue*` schemas describe: a client (or schemathesis) that sends what the document
allows is never refused, and what it does not allow is a 422 naming the place."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError
from openapi_schema_validator import OAS30Validator

from web.schemas import JSON_DEPTH, JSON_NUMBER_LIMIT, JsonObject, json_value_schemas


class Holder(Schema):
    data = JsonObject(required=True)


def _inline(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(components[node["$ref"].rsplit("/", 1)[-1]], components)
        return {k: _inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


DOCUMENTED = OAS30Validator(_inline({"type": "object", "additionalProperties": {
    "$ref": f"#/components/schemas/JsonValue{JSON_DEPTH}"}}, json_value_schemas()))

numbers = st.one_of(st.integers(-2 * JSON_NUMBER_LIMIT, 2 * JSON_NUMBER_LIMIT),
                    st.floats(-2e15, 2e15, allow_nan=False), st.sampled_from([JSON_NUMBER_LIMIT, -JSON_NUMBER_LIMIT]))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20), st.just("x" * 10_001))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=12)


def _accepted(data: Any) -> bool:
    try:
        Holder().load({"data": data})
    except ValidationError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=5), values, max_size=3))
def test_accepts_exactly_what_the_document_allows(data: dict[str, Any]) -> None:
    assert _accepted(data) == DOCUMENTED.is_valid(data)


def test_the_served_document_carries_the_same_schemas(app: Any) -> None:
    with app.test_client() as client:
        doc = client.get("/openapi.json").get_json()
    assert {k: v for k, v in doc["components"]["schemas"].items() if k.startswith("JsonValue")} == json_value_schemas()
    trigger = doc["components"]["schemas"]["Trigger"]["properties"]["params"]
    assert trigger["additionalProperties"] == {"$ref": f"#/components/schemas/JsonValue{JSON_DEPTH}"}


@pytest.mark.parametrize(("data", "place"), [
    ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "a.b.c.d"),
    ({"slabs": [{"over": JSON_NUMBER_LIMIT + 1}]}, "slabs.0.over"),
    ({"note": "x" * 10_001}, "note"),
])
def test_a_refusal_names_the_place(data: dict[str, Any], place: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Holder().load({"data": data})
    assert place in refused.value.messages["data"]
