"""The published contract: /openapi.json validates and says what the server does (docs/api-contract.md)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from web.auth import permission_of

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document(service_env: dict[str, str], db_url: str, redis_url: str) -> dict[str, Any]:
    from web import create_app

    response = create_app({"DATABASE_URL": db_url, "REDIS_URL": redis_url}).test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.json


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items()
            for method, op in item.items() if method in METHODS]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = document["components"][kind][name]
    return node


def test_document_validates_against_the_openapi_3_schema(document: dict[str, Any]) -> None:
    validate(document)


def test_every_operation_has_a_unique_snake_case_operation_id_from_its_endpoint(document: dict[str, Any],
                                                                                   app_factory: Any) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)) == len(operations(document))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) for i in ids), ids
    assert "jobs_get_job" in ids and "settlements_export_settlements" in ids


def test_every_error_is_problem_json_and_the_old_error_schema_is_gone(document: dict[str, Any]) -> None:
    assert "Error" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert problem["properties"]["status"]["type"] == "integer"
    assert {"title", "detail", "instance", "errors"} <= set(problem["properties"])
    for path, method, op in operations(document):
        assert "default" not in op["responses"], (method, path)
        for status, response in op["responses"].items():
            response = resolve(document, response)
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (method, path, status)
            for media in response.get("content", {}).values():
                assert "schema" in media, (method, path, status)


def test_statuses_follow_permission_arguments_and_path(document: dict[str, Any], app_factory: Any) -> None:
    app = app_factory()
    views = {rule.endpoint.replace(".", "_"): app.view_functions[rule.endpoint] for rule in app.url_map.iter_rules()}
    for path, method, op in operations(document):
        statuses = set(op["responses"])
        public = permission_of(views[op["operationId"]]).public
        assert public == (op.get("security") == []), (method, path)
        assert {"401", "503"} <= statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
        if "requestBody" in op:
            assert {"400", "413", "422"} <= statuses, (method, path)
        if any(p.get("in") == "query" for p in op.get("parameters", [])):
            assert "422" in statuses, (method, path)
    assert document["security"] == [{"bearerAuth": []}]
    public_ids = {op["operationId"] for _, _, op in operations(document) if op.get("security") == []}
    assert {"auth_login", "auth_register", "auth_refresh", "webhooks_razorpay_webhook",
            "webhooks_messaging_sendgrid_events", "webhooks_messaging_twilio_events", "unsubscribe_confirm",
            "unsubscribe_unsubscribe_now"} == public_ids
    login = {op["operationId"]: op for _, _, op in operations(document)}["auth_login"]
    assert resolve(document, login["responses"]["429"])["headers"]["Retry-After"]["required"] is True


def test_money_is_a_decimal_string_and_numeric_bounds_are_numbers(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name in ("Settlement", "Payment", "CampaignCreate", "CashPayment", "SettlementAdjustmentRequest",
                 "PayrollAdjustmentIn", "CompensationIn"):
        money = [p for p in schemas[name]["properties"].values() if p.get("format") == "decimal"]
        assert money, name
        for prop in money:
            assert prop["type"] == "string" and prop["pattern"].startswith("^"), (name, prop)
    cash = schemas["CashPayment"]["properties"]["amount"]
    assert re.match(cash["pattern"], "1770.50") and not re.match(cash["pattern"], "0")
    assert not re.match(cash["pattern"], "1.005") and not re.match(cash["pattern"], "-5")
    adjustment = schemas["PayrollAdjustmentIn"]["properties"]["amount"]["pattern"]
    assert re.match(adjustment, "0.01") and not re.match(adjustment, "0.00") and not re.match(adjustment, "0.001")
    heading = schemas["Ping"]["properties"]["heading"]
    assert heading == {**heading, "type": "number", "minimum": 0, "maximum": 360, "exclusiveMaximum": True}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("minimum", "maximum", "default"):
                if key in node and node.get("type") in ("number", "integer") and \
                        not (node[key] is None and node.get("nullable")):
                    assert isinstance(node[key], (int, float)) and not isinstance(node[key], bool), node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)


def test_a_nullable_nested_object_is_that_object_or_null_not_any_object(document: dict[str, Any]) -> None:
    stats = document["components"]["schemas"]["Dashboard"]["properties"]["stats"]["anyOf"]
    assert stats == [{"$ref": "#/components/schemas/DashboardStats"},
                     {"type": "object", "nullable": True, "enum": [None]}]


def test_times_and_urls_carry_the_patterns_the_server_reads(document: dict[str, Any]) -> None:
    from web.api.bookings import CreateBookingSchema

    booking_time = document["components"]["schemas"]["CreateBooking"]["properties"]["booking_time"]
    field = CreateBookingSchema().fields["booking_time"]
    for value in ("11:00", "9:05", "23:59", "24:00", "11:00:00", "T11:00", " 11:00", "11h00"):
        try:
            field.deserialize(value)
            accepted = True
        except Exception:
            accepted = False
        assert accepted == bool(re.match(booking_time["pattern"], value)), value
    documents = document["components"]["schemas"]["LeaveApply"]["properties"]["documents"]["items"]
    assert documents["format"] == "uri" and re.match(documents["pattern"], "https://files.example/a.pdf")
    assert not re.match(documents["pattern"], "javascript:alert(1)")


def test_command_posts_document_the_idempotency_key_and_their_headers(document: dict[str, Any]) -> None:
    by_id = {op["operationId"]: op for _, _, op in operations(document)}
    for operation_id in ("reports_refresh", "settlements_create_run", "payroll_start_run", "dispatch_batch",
                         "payments_refund_payment", "settlements_pay_settlement"):
        op = by_id[operation_id]
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in op["parameters"], operation_id
        accepted = op["responses"]["202"]["headers"]
        assert {"Location", "Idempotent-Replayed"} <= set(accepted), operation_id
    assert "parameters" not in by_id["jobs_retry_job"] or not any(
        p.get("$ref", "").endswith("IdempotencyKey") for p in by_id["jobs_retry_job"]["parameters"])
    key = document["components"]["parameters"]["IdempotencyKey"]
    assert key["in"] == "header" and key["name"] == "Idempotency-Key"


def test_csv_and_pdf_answers_are_documented_with_their_media_types(document: dict[str, Any]) -> None:
    by_id = {op["operationId"]: op for _, _, op in operations(document)}
    for operation_id, media in (("settlements_export_settlements", "text/csv"),
                                ("settlements_download_statement", "text/csv"),
                                ("payroll_run_summary", "text/csv"), ("payroll_get_bank_file", "text/csv"),
                                ("payroll_payslip", "application/pdf"),
                                ("payroll_employee_payslip", "application/pdf")):
        ok = by_id[operation_id]["responses"]["200"]
        assert list(ok["content"]) == [media], operation_id
        assert ok["content"][media]["schema"]["type"] == "string"
        assert "Content-Disposition" in ok["headers"]


def test_errors_the_server_sends_match_the_document(document: dict[str, Any], app_factory: Any) -> None:
    """The runtime side of the problem+json promise, for three statuses every API operation lists."""
    client = app_factory().test_client()
    for response, status in ((client.get("/api/v1/jobs"), 401),
                             (client.get("/api/v1/jobs", headers={"Authorization": "Bearer nonsense"}), 401),
                             (client.post("/api/v1/auth/login", json={"email": 5}), 422)):
        assert response.status_code == status
        assert response.mimetype == "application/problem+json"
        body = response.json
        assert isinstance(body["status"], int) and body["status"] == status and body["title"]
        assert set(body) <= set(document["components"]["schemas"]["Problem"]["properties"])


def test_every_command_kind_documents_its_params_and_result(document: dict[str, Any]) -> None:
    from ombaro import commands

    documented = document["x-commands"]
    assert set(documented) == set(commands.registry())
    schemas = document["components"]["schemas"]
    for kind, entry in documented.items():
        command = commands.command_of(kind)
        assert (entry["queue"], entry["permission"]) == (command.queue, ":".join(command.permission)), kind
        for part in ("params", "result"):
            name = entry[part]["$ref"].removeprefix("#/components/schemas/")
            assert schemas[name]["type"] == "object", (kind, part)
    run = schemas[documented["settlements.run"]["params"]["$ref"].rsplit("/", 1)[1]]
    assert {"period_start", "period_end", "vendor_ids", "dry_run"} == set(run["properties"])
    refreshed = schemas[documented["reports.refresh"]["result"]["$ref"].rsplit("/", 1)[1]]
    assert refreshed["properties"]["views"]["type"] == "array"
