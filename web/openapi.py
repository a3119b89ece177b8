"""The published contract: what `/openapi.json` says beyond what flask-smorest derives from the
marshmallow schemas, written here once for every operation (docs/api-contract.md).

- Money and other decimals: a `fields.Decimal` with `places` is a decimal *string* on the wire
  (`{"type": "string", "format": "decimal", "pattern": ...}`); one without is a JSON number whose
  bounds are numbers, not strings.
- Errors: every 4xx/5xx is `application/problem+json` with the `Problem` schema, and each operation
  lists the statuses it can answer: 401/403 from its declared permission (`web.auth.permission_of`),
  400/413 where it takes a body, 404 where the path names something, 409/422 where it changes
  state or takes arguments, 503 everywhere (database or broker down), 429 and others where a
  decorator (`@blp.alt_response`) says so.
- operationIds from the endpoint names (`bookings.create_booking` -> `bookings_create_booking`).
- `security: []` on public operations (login, webhooks, unsubscribe).
- Command POSTs: the `Idempotency-Key` request header where the endpoint honours it (`@idempotent`),
  and the `Location` / `Idempotent-Replayed` headers of their 202 answers.
- CSV and PDF answers with their media types and `Content-Disposition`.
"""

from __future__ import annotations

import copy
import decimal
import re
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from apispec import APISpec, BasePlugin
from flask import Flask
from flask_smorest import Api
from marshmallow import Schema, fields, validate

from ombaro import commands
from web.auth import permission_of
from web.extension import this_request
from web.schemas import JSON_DEPTH, JsonObject, json_value_schemas

F = TypeVar("F", bound=Callable[..., Any])

PROBLEM_MEDIA_TYPE = "application/problem+json"
BINARY_MEDIA_TYPES = {"text/csv": {"type": "string"}, "application/pdf": {"type": "string", "format": "binary"}}
WRITE_METHODS = {"post", "put", "patch", "delete"}
METHODS = {"get", "post", "put", "patch", "delete"}


class ProblemSchema(Schema):
    """RFC 9457 problem details, as web/errors.py writes them."""

    type = fields.String(required=True, metadata={"description": "always `about:blank`: the status says it all"})
    title = fields.String(required=True, metadata={"description": "the status's reason phrase"})
    status = fields.Integer(required=True, validate=validate.Range(min=400, max=599))
    detail = fields.String(metadata={"description": "what went wrong, for a person"})
    instance = fields.String(metadata={"description": "the request's path"})
    errors = fields.Dict(metadata={"description": "for invalid input: each field (or header) and its messages; "
                                                  "nested objects name nested fields"})


# Status -> (component name, description, response headers {name: (header component, required)}).
ERROR_RESPONSES: dict[int, tuple[str, str, dict[str, tuple[str, bool]]]] = {
    400: ("BadRequest", "The body is not valid JSON, or a header (e.g. Idempotency-Key) is malformed.", {}),
    401: ("Unauthorized", "No valid access token (missing, expired, or its account is gone).",
          {"WWW-Authenticate": ("WWWAuthenticate", False)}),
    403: ("Forbidden", "The caller's role lacks the operation's permission, or the account is suspended.", {}),
    404: ("NotFound", "Nothing by that id that the caller may see (row-level security hides other tenants' rows).",
          {}),
    409: ("Conflict", "The object's state does not allow this now (e.g. already approved, still running).", {}),
    410: ("Gone", "Already used.", {}),
    413: ("PayloadTooLarge", "The body is larger than OMBARO_MAX_REQUEST_BYTES.", {}),
    414: ("UriTooLong", "The path and query string are longer than 4,000 bytes.", {}),
    422: ("UnprocessableContent", "The request is not valid: `errors` names each field and what is wrong; nothing "
                                  "was changed. Also an Idempotency-Key reused with another body.", {}),
    429: ("TooManyRequests", "Rate limited; retry after `Retry-After` seconds.", {"Retry-After": ("RetryAfter", True)}),
    503: ("ServiceUnavailable", "A dependency (database, broker, provider) is unavailable, or the endpoint is not "
                                "configured; retry later.", {"Retry-After": ("RetryAfter", False)}),
}

HEADERS: dict[str, dict[str, Any]] = {
    "WWWAuthenticate": {"description": "`Bearer realm=\"ombaro\"`", "schema": {"type": "string"}},
    "RetryAfter": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}},
    "Location": {"description": "the job's URL (`GET /api/v1/jobs/{job_id}`)", "schema": {"type": "string"}},
    "IdempotentReplayed": {"description": "`true` when an earlier request with the same Idempotency-Key "
                                          "created this job", "schema": {"type": "string", "enum": ["true"]}},
    "ContentDisposition": {"description": "`attachment; filename=\"...\"`", "schema": {"type": "string"}},
}

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "IETF draft-ietf-httpapi-idempotency-key-header: the same key and body give the same job "
                   "(`Idempotent-Replayed: true`); the same key with another body is a 422. A Structured Field "
                   "string (`\"abc\"`) or a bare token: 1 to 255 printable ASCII characters.",
    # Quoted, anything printable but '"' inside; bare, no space at either end (the server trims).
    "schema": {"type": "string", "minLength": 1, "maxLength": 257, "pattern": (
        '^("[\\x20\\x21\\x23-\\x7e]{1,255}"'
        '|[\\x21\\x23-\\x7e]([\\x20\\x21\\x23-\\x7e]{0,253}[\\x21\\x23-\\x7e])?)$')},
}


def idempotent(view: F) -> F:
    """Declare that a command endpoint honours the Idempotency-Key header (documented here)."""
    view.honours_idempotency_key = True  # type: ignore[attr-defined]
    return view


_IMMUTABLE = (str, int, float, decimal.Decimal, bytes, type(None))


def defaults_without_query(schema: Schema) -> Callable[[F], F]:
    """Place right above `blp.arguments(schema, location="query", as_kwargs=True)`: a request with
    no query string skips webargs and gets the schema's defaults, loaded once here (issue 16: the
    parse cost a hot listing ~0.1 ms of CPU for nothing). Any query string is parsed as before."""
    defaults = schema.load({})
    # The defaults a handler could change (a list): copied for each request, never shared; the
    # immutable ones (numbers, strings, None) are handed over as they are.
    copied = tuple(name for name, value in defaults.items() if not isinstance(value, _IMMUTABLE))

    def decorate(view: F) -> F:
        parsed_view: Callable[..., Any] = view.__wrapped__  # type: ignore[attr-defined]  # under webargs

        @wraps(view)
        def choose(*args: Any, **kwargs: Any) -> Any:
            if this_request().query_string:
                return view(*args, **kwargs)
            fresh = dict(defaults)
            for name in copied:
                fresh[name] = copy.copy(fresh[name])
            return parsed_view(*args, **fresh, **kwargs)

        return choose  # type: ignore[return-value]

    return decorate


def _declared(view: Callable[..., Any] | None, name: str) -> bool:
    while view is not None:
        if getattr(view, name, False):
            return True
        view = getattr(view, "__wrapped__", None)
    return False


def operation_id(endpoint: str) -> str:
    """`bookings.create_booking` -> `bookings_create_booking`: stable (the endpoint's name), unique
    (Flask's endpoints are), snake_case."""
    return endpoint.replace(".", "_").replace("-", "_")


# --- decimals -----------------------------------------------------------------------------------------


def _places(field: fields.Decimal) -> int | None:
    """Decimal places: the field's own (it rounds to them), or `metadata={"places": n}` for a money
    field that refuses more instead of rounding."""
    places = getattr(field, "places", None)
    if places is None:
        declared = field.metadata.get("places")
        return int(declared) if declared is not None else None
    exponent = decimal.Decimal(places).as_tuple().exponent
    return -exponent if isinstance(exponent, int) else None


def _bounds(field: fields.Field[Any]) -> tuple[Any, Any, bool, bool]:
    low = high = None
    low_inclusive = high_inclusive = True
    for validator in field.validators:
        if isinstance(validator, validate.Range):
            if validator.min is not None and (low is None or validator.min > low):
                low, low_inclusive = validator.min, validator.min_inclusive
            if validator.max is not None and (high is None or validator.max < high):
                high, high_inclusive = validator.max, validator.max_inclusive
    return low, high, low_inclusive, high_inclusive


def _number(value: Any) -> int | float:
    value = decimal.Decimal(str(value))
    return int(value) if value == value.to_integral_value() else float(value)


def decimal_pattern(places: int, low: Any, high: Any, low_inclusive: bool) -> str:
    """A regular expression for a decimal string with at most `places` decimals: no sign when the
    field may not go below zero, no zero when it must stay above it, at most as many integer digits
    as the upper bound has."""
    digits = len(str(int(abs(decimal.Decimal(str(high)))))) if high is not None else 12
    if low is not None and decimal.Decimal(str(low)) < 0:
        digits = max(digits, len(str(int(abs(decimal.Decimal(str(low)))))))
    fraction = f"(\\.[0-9]{{1,{places}}})?" if places else ""
    if low is not None and (decimal.Decimal(str(low)) > 0 or (decimal.Decimal(str(low)) == 0 and not low_inclusive)):
        # Positive: a non-zero integer part, or 0 followed by a non-zero fraction (a higher minimum
        # is in the description: a pattern cannot say >= 0.01 in general).
        nonzero = "|".join(f"0\\.{'0' * i}[1-9]" + (f"[0-9]{{0,{places - i - 1}}}" if places - i > 1 else "")
                           for i in range(places))
        return f"^([1-9][0-9]{{0,{digits - 1}}}{fraction}" + (f"|{nonzero})$" if places else ")$")
    sign = "-?" if low is None or decimal.Decimal(str(low)) < 0 else ""
    return f"^{sign}(0|[1-9][0-9]{{0,{digits - 1}}}){fraction}$"


def decimal2properties(self: Any, field: fields.Field[Any], ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """apispec attribute function (runs after the built-in ones): decimals as the server reads and
    writes them."""
    if not isinstance(field, fields.Decimal):
        return {}
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "x-minimum", "x-maximum"):
        ret.pop(key, None)
    low, high, low_inclusive, high_inclusive = _bounds(field)
    places = _places(field)
    nullable = {"nullable": True} if field.allow_none else {}
    if places is None and not field.as_string:
        out: dict[str, Any] = {"type": "number", **nullable}
        if low is not None:
            out["minimum"] = _number(low)
            if not low_inclusive:
                out["exclusiveMinimum"] = True
        if high is not None:
            out["maximum"] = _number(high)
            if not high_inclusive:
                out["exclusiveMaximum"] = True
        if "default" in ret and ret["default"] is not None:
            out["default"] = _number(ret["default"])
        return out
    out = {"type": "string", "format": "decimal", **nullable,
           "pattern": decimal_pattern(places if places is not None else 6, low, high, low_inclusive)}
    limits = []
    if low is not None:
        limits.append(f"{'>=' if low_inclusive else '>'} {low}")
    if high is not None:
        limits.append(f"{'<=' if high_inclusive else '<'} {high}")
    if places is not None:
        limits.append(f"at most {places} decimals")
    note = "a decimal written as a string" + (f" ({', '.join(limits)})" if limits else "")
    out["description"] = f"{ret['description']}; {note}" if ret.get("description") else note
    if low is not None:
        out["x-minimum"] = str(low)
    if high is not None:
        out["x-maximum"] = str(high)
    if "default" in ret and ret["default"] is not None:
        out["default"] = str(ret["default"])
    return out


# What `time.strptime` reads for each directive a time field may use (so the pattern is exact).
_STRPTIME = {"%H": "(2[0-3]|[01][0-9]|[0-9])", "%M": "([0-5][0-9]|[0-9])", "%S": "([0-5][0-9]|6[01]|[0-9])"}


def time2properties(self: Any, field: fields.Field[Any], ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Time fields with an strptime format (`"%H:%M"`) get the exact pattern the server reads; URL
    fields the schemes marshmallow accepts."""
    if isinstance(field, fields.Time) and field.format and field.format.startswith("%"):
        pattern = field.format
        for directive, regex in _STRPTIME.items():
            pattern = pattern.replace(directive, regex)
        if "%" not in pattern:
            return {"pattern": f"^{pattern}$"}
    if isinstance(field, fields.Url):
        schemes = sorted(getattr(field, "schemes", None) or ("ftp", "ftps", "http", "https"))
        return {"format": "uri", "pattern": f"^({'|'.join(schemes)})://"}
    return {}


def json2properties(self: Any, field: fields.Field[Any], ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A JsonObject's values are the bounded `JsonValue` it checks, not any JSON."""
    if isinstance(field, JsonObject):
        return {"additionalProperties": {"$ref": f"#/components/schemas/JsonValue{JSON_DEPTH}"}}
    return {}


def nullable_nested2properties(self: Any, field: fields.Field[Any], ret: dict[str, Any],
                               **kwargs: Any) -> dict[str, Any]:
    """apispec writes a nullable nested schema as `anyOf: [ref, {type: object, nullable: true}]`, whose
    second branch accepts any object; here it accepts only null."""
    for branch in ret.get("anyOf", []):
        if branch == {"type": "object", "nullable": True}:
            branch["enum"] = [None]
    return {}


# --- the plugin ---------------------------------------------------------------------------------------


class ContractPlugin(BasePlugin):
    """Completes every operation flask-smorest registers (see the module's docstring)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.spec: APISpec | None = None

    def init_spec(self, spec: APISpec) -> None:
        self.spec = spec
        spec.components.schema("Problem", schema=ProblemSchema)
        for name, component in json_value_schemas().items():
            spec.components.schema(name, component=component)
        for name, header in HEADERS.items():
            spec.components.header(name, header)
        spec.components.parameter("IdempotencyKey", "header", dict(IDEMPOTENCY_KEY))
        for name, description, headers in ERROR_RESPONSES.values():
            spec.components.response(name, self._problem(description, headers))

    @staticmethod
    def _problem(description: str, headers: dict[str, tuple[str, bool]]) -> dict[str, Any]:
        response: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if headers:
            response["headers"] = {
                name: ({"$ref": f"#/components/headers/{ref}"} if not required else
                       {**HEADERS[ref], "required": True})
                for name, (ref, required) in headers.items()}
        return response

    def operation_helper(self, path: str | None = None, operations: dict[str, Any] | None = None,
                         **kwargs: Any) -> None:
        rule = kwargs.get("rule")
        if rule is None or not operations:
            return
        view = self.app.view_functions.get(rule.endpoint)
        permission = permission_of(view) if view is not None else None
        public = permission is not None and permission.public
        has_path_params = bool(rule.arguments)
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            operation["operationId"] = operation_id(rule.endpoint)
            if public:
                operation["security"] = []
            takes_body = "requestBody" in operation
            takes_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
            honours_key = _declared(view, "honours_idempotency_key")
            if honours_key:
                operation.setdefault("parameters", []).append("IdempotencyKey")
            # Keyed by status: strings, or the ints a view gave @response and @alt_response (flask-smorest keeps them).
            responses: dict[str | int, Any] = operation.setdefault("responses", {})
            responses.pop("default", None)
            self._success_responses(responses, method)
            statuses = {401, 403, 414, 503}
            if takes_body or honours_key:
                statuses.add(400)
            if takes_body:
                statuses.add(413)
            if has_path_params or self._names_ids(operation):
                statuses.add(404)
            if method in WRITE_METHODS:
                statuses |= {409, 422}
            if takes_body or takes_query:
                statuses.add(422)
            for status in sorted(statuses | {int(s) for s in responses if str(s).isdigit() and int(s) >= 400}):
                self._error_response(responses, status, public=public)

    def _names_ids(self, operation: dict[str, Any]) -> bool:
        """Whether the body names other objects by id (a uuid): one the caller cannot see, or that
        does not exist, is a 404 (a filter in a query string finds nothing instead)."""
        schemas: list[Any] = []
        for media in (operation.get("requestBody") or {}).get("content", {}).values():
            schemas.append(media.get("schema", {}))
        return any(self._has_uuid(schema, depth=0) for schema in schemas)

    def _has_uuid(self, schema: Any, depth: int) -> bool:
        if not isinstance(schema, dict) or depth > 5:
            return False
        if "$ref" in schema and self.spec is not None:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return self._has_uuid(self.spec.components.schemas.get(name), depth + 1)
        if schema.get("format") == "uuid":
            return True
        nested = [*schema.get("properties", {}).values(), schema.get("items"), *schema.get("allOf", []),
                  *schema.get("anyOf", []), *schema.get("oneOf", [])]
        return any(self._has_uuid(child, depth + 1) for child in nested)

    def _success_responses(self, responses: dict[str | int, Any], method: str) -> None:
        for status, response in list(responses.items()):
            if not str(status).isdigit() or int(status) >= 400 or not isinstance(response, dict):
                continue
            content = response.get("content") or {}
            for media_type, body in content.items():
                plain = media_type.split(";")[0].strip()
                if plain in BINARY_MEDIA_TYPES:
                    body.setdefault("schema", dict(BINARY_MEDIA_TYPES[plain]))
                    response.setdefault("headers", {})["Content-Disposition"] = {
                        "$ref": "#/components/headers/ContentDisposition"}
            if int(status) == 202 and method == "post":
                headers = response.setdefault("headers", {})
                headers["Location"] = {"$ref": "#/components/headers/Location"}
                headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/IdempotentReplayed"}

    def _error_response(self, responses: dict[str | int, Any], status: int, *, public: bool) -> None:
        name, description, headers = ERROR_RESPONSES.get(status, (None, "Error", {}))
        declared = responses.get(str(status), responses.get(status))
        responses.pop(status, None)
        if isinstance(declared, dict) and declared.get("description") and "$ref" not in declared:
            # An endpoint's own description (alt_response) wins; the body is still a problem.
            responses[str(status)] = self._problem(declared["description"], headers)
        elif public and status in (401, 403):
            responses[str(status)] = self._problem(
                "Only when an Authorization header is sent: its token is not valid (401) or its account is "
                "suspended (403). The operation itself needs no login.", headers)
        elif name is not None:
            responses[str(status)] = {"$ref": f"#/components/responses/{name}"}
        else:
            responses[str(status)] = self._problem(description, headers)


def init_app(app: Flask) -> Api:
    """flask-smorest's Api with the contract plugin and the decimal mapping."""
    api = Api(app, spec_kwargs={"extra_plugins": [ContractPlugin(app)]})
    api.ma_plugin.converter.add_attribute_function(decimal2properties)
    api.ma_plugin.converter.add_attribute_function(time2properties)
    api.ma_plugin.converter.add_attribute_function(nullable_nested2properties)
    api.ma_plugin.converter.add_attribute_function(json2properties)
    return api


def finish(api: Api) -> None:
    """After every blueprint is registered: the commands' params and results are documented, and
    flask-smorest's own `Error` schema is unused (every error response is a Problem) and goes."""
    document_commands(api.spec)
    components = api.spec.components
    if not _refers(api.spec.to_dict().get("paths", {}), "#/components/schemas/Error"):
        components.schemas.pop("Error", None)


def component_name(kind: str) -> str:
    """`settlements.run_batch` -> `SettlementsRunBatch`."""
    return "".join(part.capitalize() for part in re.split(r"[._]", kind))


def document_commands(spec: APISpec) -> None:
    """Every command kind of the registry (ombaro/commands.py): its params as `<Kind>Params` and its
    job's `result` as `<Kind>Result` in the components, and the top-level `x-commands` naming, per
    kind, its description, queue, permission, attempts and those two schemas. A job's `result`
    (JobSchema) has the shape of its kind's `<Kind>Result`."""
    documented: dict[str, Any] = {}
    named: dict[type, str] = {}  # a schema shared by several kinds (no params) is one component

    def ref(schema: type, name: str) -> dict[str, str]:
        if schema not in named:
            spec.components.schema(name, schema=schema)
            named[schema] = name
        return {"$ref": f"#/components/schemas/{named[schema]}"}

    for kind, command in commands.registry().items():
        name = component_name(kind)
        entry: dict[str, Any] = {
            "description": command.description, "queue": command.queue,
            "permission": ":".join(command.permission), "maxAttempts": command.max_attempts,
            "params": ref(command.params, "NoParams" if command.params is commands.NoParamsSchema else f"{name}Params")}
        if command.result is not None:
            entry["result"] = ref(command.result, f"{name}Result")
        documented[kind] = entry
    spec.options["x-commands"] = documented


def _refers(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_refers(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_refers(v, ref) for v in node)
    return False
