"""Every input field of every endpoint is bounded the project's way (docs/architecture.md, "Bad
input"): money is `Money`, booleans are the strict `Boolean`, whole numbers are the strict `Integer`
with both ends of a `Range` inside a bigint, other numbers have both ends of a `Range`, objects
have typed values or are the bounded `JsonObject` (a free-form object lets a generated client send
what no layer accepts). A new
endpoint that declares a plain marshmallow field fails here, before it can answer a 500."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import fields, validate

from tests.web.endpoints import endpoints, input_fields
from web.schemas import BIGINT_MAX, Boolean, Integer, JsonObject, Money

# Inputs that are amounts of money, by name.
MONEY_NAMES = {"amount", "budget", "basic", "hra", "transport", "medical", "special", "other", "price", "fee"}


def _inputs(app: Any) -> list[tuple[str, str, fields.Field]]:
    seen: dict[tuple[str, str], tuple[str, str, fields.Field]] = {}
    for endpoint in endpoints(app):
        for location, schema in endpoint.schemas:
            for name, field in input_fields(schema):
                seen.setdefault((type(schema).__name__, name), (f"{endpoint.name} ({location})", name, field))
    return list(seen.values())


def _range(field: fields.Field) -> validate.Range | None:
    return next((v for v in field.validators if isinstance(v, validate.Range)), None)


def test_the_app_has_inputs_of_every_kind_to_check(app: Any) -> None:
    kinds = {type(field) for _, _, field in _inputs(app)}
    assert {Money, Boolean, Integer} <= kinds


@pytest.mark.parametrize("kind", ["money", "boolean", "integer", "number", "object"])
def test_every_input_field_is_bounded(app: Any, kind: str) -> None:
    wrong = []
    for where, name, field in _inputs(app):
        leaf = name.rsplit(".", 1)[-1].removesuffix("[]")
        bounds = _range(field)
        if kind == "money" and (leaf in MONEY_NAMES or leaf.endswith("_amount")) and not isinstance(field, Money):
            wrong.append((where, name, "money must be web.schemas.Money"))
        elif kind == "boolean" and isinstance(field, fields.Boolean) and not isinstance(field, Boolean):
            wrong.append((where, name, "booleans must be web.schemas.Boolean (strict)"))
        elif kind == "integer" and isinstance(field, fields.Integer):
            if not isinstance(field, Integer):
                wrong.append((where, name, "whole numbers must be web.schemas.Integer (strict)"))
            elif bounds is None or bounds.min is None or bounds.max is None:
                wrong.append((where, name, "needs a Range with both ends"))
            elif not -BIGINT_MAX <= bounds.min <= bounds.max <= BIGINT_MAX:
                wrong.append((where, name, "its Range goes beyond a bigint"))
        elif (kind == "number" and isinstance(field, (fields.Decimal, fields.Float)) and not isinstance(field, Money)
              and (bounds is None or bounds.min is None or bounds.max is None)):
            wrong.append((where, name, "needs a Range with both ends"))
        elif (kind == "object" and isinstance(field, fields.Dict) and field.value_field is None
              and not isinstance(field, JsonObject)):
            wrong.append((where, name, "a free-form object: type its values or make it web.schemas.JsonObject"))
    assert wrong == []
