"""web.openapi.defaults_without_query: without a query string the handler gets the schema's
defaults; a mutable default (a list) is a copy of its own on every request, the immutable ones are
handed over as they are (issue 16, session 10)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from marshmallow import Schema, fields

from web.openapi import defaults_without_query


class Query(Schema):
    status = fields.List(fields.String(), load_default=list)
    tags = fields.List(fields.String(), load_default=lambda: ["a"])
    limit = fields.Integer(load_default=50)
    order = fields.String(load_default="newest")


def test_each_request_gets_its_own_lists_and_the_same_immutable_defaults() -> None:
    seen: list[dict[str, Any]] = []

    def handler(**kwargs: Any) -> str:
        seen.append(kwargs)
        kwargs["status"].append("changed")  # a handler that changes its list changes no later request's
        kwargs["tags"].append("changed")
        return "parsed"

    def parsing(**kwargs: Any) -> str:  # stands for webargs' wrapper: only a query string reaches it
        return "with a query"

    parsing.__wrapped__ = handler  # type: ignore[attr-defined]
    view = defaults_without_query(Query())(parsing)
    app = Flask(__name__)
    for _ in range(3):
        with app.test_request_context("/"):
            assert view() == "parsed"
    assert [s["status"] for s in seen] == [["changed"]] * 3
    assert [s["tags"] for s in seen] == [["a", "changed"]] * 3
    assert len({id(s["status"]) for s in seen}) == 3
    assert [(s["limit"], s["order"]) for s in seen] == [(50, "newest")] * 3
    with app.test_request_context("/?limit=5"):
        assert view() == "with a query"
    assert len(seen) == 3
