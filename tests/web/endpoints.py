"""What the app's URL map and its endpoints' argument schemas say about every input, for the tests
that hold all of them to the bad-input rules (fuzzing, field bounds)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Flask
from marshmallow import Schema, fields
from werkzeug.routing import Rule

BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Endpoint:
    rule: Rule
    method: str
    schemas: tuple[tuple[str, Schema], ...]  # (location, schema) of each @blp.arguments

    @property
    def name(self) -> str:
        return f"{self.method} {self.rule.rule}"

    def path(self) -> str:
        """The rule with its variables filled: ids that exist nowhere, roles and tokens that name nothing."""
        values: dict[str, object] = {}
        for argument, converter in self.rule._converters.items():
            kind = type(converter).__name__
            values[argument] = uuid.uuid4() if kind == "UUIDConverter" else f"no-such-{argument}"
        return self.rule.build(values, append_unknown=False)[1]

    def field_names(self, location: str) -> list[str]:
        return sorted({name for loc, schema in self.schemas if loc == location
                       for name, _ in input_fields(schema) if "." not in name and "[]" not in name})


def argument_schemas(view: object) -> tuple[tuple[str, Schema], ...]:
    """The (location, schema) pairs flask-smorest recorded on a view (through any decorators)."""
    while view is not None:
        doc = getattr(view, "_apidoc", None)
        if doc and "arguments" in doc:
            found = []
            for parameter in doc["arguments"]["parameters"]:
                if isinstance(parameter, dict) and "schema" in parameter:
                    schema = parameter["schema"]
                    found.append((parameter["in"], schema() if isinstance(schema, type) else schema))
            return tuple(found)
        view = getattr(view, "__wrapped__", None)
    return ()


def endpoints(app: Flask) -> list[Endpoint]:
    """Every route of the API and the webhooks (not the console's pages, the docs or static files)."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") and rule.rule not in ("/healthz", "/readyz"):
            continue
        schemas = argument_schemas(app.view_functions[rule.endpoint])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append(Endpoint(rule, method, schemas))
    return sorted(found, key=lambda e: e.name)


def input_fields(schema: Schema, prefix: str = "") -> Iterator[tuple[str, fields.Field]]:
    """Every field a request may set, nested ones as `outer.inner`, list items as `name[]`."""
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        yield prefix + name, field
        inner = field
        if isinstance(field, fields.List):
            inner = field.inner
            yield prefix + name + "[]", inner
        if isinstance(inner, fields.Nested):
            yield from input_fields(inner.schema, prefix + name + ".")
