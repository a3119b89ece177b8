"""The API shell: problem+json for every bad input (and nothing written), health, OpenAPI, docs."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import Engine

from tests.factories.accounts import Account, client_for
from tests.helpers import count_jobs

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"views": "dashboard_stats"}, 422, "views"),  # wrong type
        ({"views": ["no_such_view"]}, 422, "views"),  # not one of the views
        ({"views": []}, 422, "views"),  # empty list
        ({"views": ["dashboard_stats"], "force": True}, 422, "force"),  # unknown field
        ([1, 2], 422, "_schema"),  # not an object
    ],
)
def test_invalid_refresh_body_is_rejected_field_by_field_and_writes_nothing(
    client, engine: Engine, clean_jobs: None, body: object, status: int, field: str
) -> None:
    response = client.post("/api/v1/reports/refresh", json=body)
    assert response.status_code == status
    assert response.content_type == PROBLEM
    assert field in response.json["errors"]
    assert response.json["status"] == status
    assert count_jobs(engine) == 0


def test_malformed_json_is_400_and_writes_nothing(client, engine: Engine, clean_jobs: None) -> None:
    response = client.post("/api/v1/reports/refresh", data='{"views": [', content_type="application/json")
    assert response.status_code == 400
    assert response.content_type == PROBLEM
    assert response.json["errors"]
    assert count_jobs(engine) == 0


def test_oversized_body_is_413_and_writes_nothing(app_factory, engine: Engine, clean_jobs: None,
                                                  operator: Account) -> None:
    client = client_for(app_factory(OMBARO_MAX_REQUEST_BYTES="1024"), operator)
    response = client.post("/api/v1/reports/refresh", data='{"views": ["' + "x" * 4096 + '"]}',
                           content_type="application/json")
    assert response.status_code == 413
    assert response.content_type == PROBLEM
    assert count_jobs(engine) == 0


def test_malformed_idempotency_key_is_400_naming_the_header(client, engine: Engine, clean_jobs: None) -> None:
    response = client.post("/api/v1/reports/refresh", json={}, headers={"Idempotency-Key": "k" * 300})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json["errors"]
    assert count_jobs(engine) == 0


def test_unknown_job_is_404_problem(client) -> None:
    response = client.get("/api/v1/jobs/6f1c1e8e-8a43-4a39-9d5e-0e1d7a1f0b9c")
    assert response.status_code == 404
    assert response.content_type == PROBLEM
    assert "6f1c1e8e-8a43-4a39-9d5e-0e1d7a1f0b9c" in response.json["detail"]
    assert client.get("/api/v1/jobs/not-a-uuid").status_code == 404


def test_job_list_filters_by_kind_and_status(client, engine: Engine, clean_jobs: None) -> None:
    client.post("/api/v1/reports/refresh", json={})
    client.post("/api/v1/reports/refresh", json={"views": ["dashboard_stats"]})
    listed = client.get("/api/v1/jobs?kind=reports.refresh&status=queued&status=running")
    assert listed.status_code == 200
    assert len(listed.json) == 2
    assert client.get("/api/v1/jobs?kind=settlements.run").json == []
    bad = client.get("/api/v1/jobs?status=exploded&limit=0")
    assert bad.status_code == 422
    assert set(bad.json["errors"]) == {"status", "limit"}


def test_health_and_readiness(anon_client) -> None:
    assert anon_client.get("/healthz").json == {"status": "ok"}
    ready = anon_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "broker": "ok"}


def test_readiness_is_503_without_a_broker_and_shows_no_trace(app_factory) -> None:
    client = app_factory(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "ok", "broker": "unreachable"}
    assert "Traceback" not in response.get_data(as_text=True)


def test_openapi_document_comes_from_the_request_schemas(anon_client) -> None:
    client = anon_client
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/reports/refresh", "/api/v1/reports/dashboard"} <= set(
        spec["paths"])
    refresh_body = spec["paths"]["/api/v1/reports/refresh"]["post"]["requestBody"]["content"]["application/json"]
    schema_name = refresh_body["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "views" in spec["components"]["schemas"][schema_name]["properties"]


def test_docs_page_is_served_without_a_cdn(anon_client) -> None:
    client = anon_client
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/openapi.json" in page.get_data(as_text=True)
    assert "http" not in page.get_data(as_text=True).replace("/openapi.json", "")
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_whether_a_hook_or_view_is_async_is_worked_out_once_a_function(app, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ensure_sync` keeps its answer for plain functions (web.OmbaroFlask): a second request asks
    `iscoroutinefunction` nothing; an `async def` function is still handed to Flask every time."""
    import flask.app

    asked: list[object] = []
    real = flask.app.iscoroutinefunction

    def counting(func: object) -> bool:
        asked.append(func)
        return real(func)

    monkeypatch.setattr(flask.app, "iscoroutinefunction", counting)
    anonymous = app.test_client()
    assert anonymous.get("/healthz").status_code == 200
    first = len(asked)
    assert anonymous.get("/healthz").status_code == 200 and anonymous.get("/console/login").status_code == 200
    assert first >= 5  # the hooks and the view
    again = len(asked)
    assert anonymous.get("/console/login").status_code == 200
    assert len(asked) == again  # nothing asked again

    async def view() -> None:
        return None

    for _ in range(2):
        with contextlib.suppress(RuntimeError):  # without Flask's async extra: "Install Flask with ..."
            assert app.ensure_sync(view) is not view  # wrapped
    assert asked[-2:] == [view, view]
