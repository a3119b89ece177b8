"""The one sanitation step every request passes before anything parses it (docs/architecture.md,
"Bad input"): the path, the query string, a form body and a JSON body are checked for what no field
of ours accepts and what would otherwise fail deep inside a library or the database: NUL characters,
unpaired surrogates, JSON nested too deeply, integers too long to be numbers, non-finite numbers.

A refused request gets a 400 problem+json whose `errors` names the place (a query or form
parameter by its name, a place in a JSON body by its JSON pointer such as `/items/0/name`, `_body`
for the body as a whole, `_path` for the path) before any handler, any authentication or any
transaction runs, so it changes nothing. What passes is safe for every parser after it: the
blueprints' webargs parser (`Blueprint` below) takes the document decoded here, and anything else
reading the body again with plain `json.loads` can no longer fail or be handed `inf`."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import flask_smorest
from flask import Request, g
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import RequestURITooLarge

from web.extension import this_request

# The longest path and query string read (gunicorn runs with --limit-request-line 8190, so a longer
# URI up to that size gets this 414 as problem+json; beyond it gunicorn's own 414 answers).
MAX_URI_BYTES = 4000
# Deeper than any document of ours (a campaign's content is 3 levels, a provider's webhook 6).
MAX_DEPTH = 32
# More digits than any id, count or amount we store (bigint has 19); far below Python's own
# 4,300-digit limit, beyond which int() raises ValueError.
MAX_INTEGER_DIGITS = 30
# NUL (PostgreSQL text cannot hold it) and the surrogate code points (not encodable as UTF-8).
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


BODY = "_body"


class RefusedInput(Exception):
    """400: the request holds something no endpoint accepts; `where` names the place."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


class _Refused:
    """A number the JSON decoder met that we refuse; found (with its path) by the walk."""

    def __init__(self, message: str) -> None:
        self.message = message


def _parse_int(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        return _Refused(f"an integer of more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _parse_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a number JSON allows")


def _string_problem(value: str) -> str | None:
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    return "contains a NUL character" if found.group() == "\x00" else "contains an unpaired surrogate"


def _pointer(path: list[str | int]) -> str:
    """RFC 6901 pointer into the body (`/items/0/name`); `_body` for the document itself."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path) or BODY


_CONTAINERS = frozenset({dict, list, _Refused})
_WITH_STRINGS = _CONTAINERS | {str}
_WITH_FLOATS = _CONTAINERS | {float}
_WITH_STRINGS_AND_FLOATS = _WITH_STRINGS | {float}
_ANY: frozenset[type] = frozenset()  # at the depth limit every value is one level too deep
_INFINITIES = frozenset({math.inf, -math.inf})


def _plain(members: Any) -> bool:
    """Only finite numbers, strings, booleans and nulls: two passes in C instead of a visit per
    member (issue 16). Valid below the depth limit and when strings need no look."""
    return _CONTAINERS.isdisjoint(map(type, members)) and _INFINITIES.isdisjoint(members)


def _walk(value: Any, path: list[str | int], strings: bool) -> None:
    """Depth-first over the decoded document; the first problem is refused with its pointer. `path`
    is one list pushed and popped on the way (no copy per value: a body of 10,000 ids stays cheap);
    scalars that cannot be a problem are not visited. `strings`: look inside strings at all.
    A float too large to represent is the decoder's infinity (parse_json decodes floats itself)."""
    if len(path) > MAX_DEPTH:
        raise RefusedInput(_pointer(path), f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        problem = _string_problem(value)
        if problem:
            raise RefusedInput(_pointer(path), f"the string {problem}")
    elif isinstance(value, _Refused):
        raise RefusedInput(_pointer(path), f"{value.message} is not accepted")
    elif type(value) is float:
        if not math.isfinite(value):
            raise RefusedInput(_pointer(path), "a number too large to represent is not accepted")
    elif isinstance(value, (dict, list)):
        if not strings and len(path) < MAX_DEPTH and _plain(value.values() if isinstance(value, dict) else value):
            return
        # The decoder makes exact types, so a set lookup decides which values need a visit.
        visit = _ANY if len(path) >= MAX_DEPTH else _WITH_STRINGS_AND_FLOATS if strings else _WITH_FLOATS
        items = value.items() if isinstance(value, dict) else enumerate(value)
        leaf_ok = not strings and len(path) < MAX_DEPTH - 1  # the item's members are not too deep
        for key, item in items:
            if strings and isinstance(key, str) and (problem := _string_problem(key)):
                path.append(_FORBIDDEN.sub("?", key))
                raise RefusedInput(_pointer(path), f"the member name {problem}")
            if visit is _ANY or type(item) in visit:
                if leaf_ok and type(item) is dict and _plain(item.values()):
                    continue  # the common leaf (an item of a list), judged without a call of _walk
                path.append(key)
                _walk(item, path, strings)
                path.pop()


# In JSON text a NUL or a surrogate can only be written as a \u escape (a raw control character is
# invalid JSON, a raw surrogate invalid UTF-8): without one, no string needs looking into.
_ESCAPED = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def parse_json(body: bytes) -> Any:
    """Decode a JSON body with the limits above; RefusedInput names what is wrong and where."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RefusedInput(BODY, f"the body is not UTF-8 (byte {exc.start})") from exc
    try:
        # Floats as the decoder makes them (a Python call per number cost more than the rest of
        # the check, issue 16); the walk refuses the infinity an overflowing one becomes.
        document = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except RecursionError as exc:  # the decoder's own guard, far beyond MAX_DEPTH
        raise RefusedInput(BODY, f"nested more than {MAX_DEPTH} levels deep") from exc
    except ValueError as exc:
        raise RefusedInput(BODY, f"not valid JSON: {exc}") from exc
    _walk(document, [], strings=_ESCAPED.search(text) is not None)
    return document


def _check_parameters(pairs: Any) -> None:
    """Query string or form: each parameter by its name."""
    for key, values in pairs.lists():
        problem = _string_problem(key)
        if problem:
            raise RefusedInput(_FORBIDDEN.sub("?", key), f"the parameter name {problem}")
        for value in values:
            if isinstance(value, str) and (problem := _string_problem(value)):
                raise RefusedInput(key, f"the value {problem}")


def check_request() -> None:
    """before_request, registered once in create_app ahead of authentication and every handler."""
    req = this_request()
    size = len(req.environ.get("PATH_INFO", "")) + len(req.environ.get("QUERY_STRING", ""))
    if size > MAX_URI_BYTES:
        raise RequestURITooLarge(f"the path and query string are {size} bytes; at most {MAX_URI_BYTES} are read")
    problem = _string_problem(req.path)
    if problem:
        raise RefusedInput("_path", f"the path {problem}")
    _check_parameters(req.args)
    if req.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        _check_parameters(req.form)
    elif req.is_json:
        body = req.get_data(cache=True)  # cached: webhooks read the same bytes for signatures
        if body.strip():
            g.json_body = parse_json(body)


class SanitizedParser(FlaskParser):
    """webargs' Flask parser, reading a JSON body as check_request already decoded it (issue 16):
    the same document (plain `json.loads` of the same text), without a second decode per request.
    `_raw_load_json` is webargs' internal hook (webargs is pinned below 9 in setup.cfg for it);
    tests/web/test_sanitize_json.py fails if a webargs release stops calling it."""

    def _raw_load_json(self, req: Request) -> Any:  # webargs' hook behind load_json
        if "json_body" in g and is_json_request(req):
            return g.json_body
        return super()._raw_load_json(req)


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask-smorest is untyped
    """flask-smorest's Blueprint whose `@arguments` read the body through SanitizedParser."""

    ARGUMENTS_PARSER = SanitizedParser()
