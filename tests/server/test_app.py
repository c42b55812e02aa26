"""The app surface: OpenAPI, health and readiness, error bodies."""

from __future__ import annotations

import pytest

from chronos_server import ServerSettings, create_app

from .helpers import LiveServer


async def test_every_operation_has_an_operation_id(server: LiveServer) -> None:
    async with server.client() as http:
        schema = (await http.get("/schema/openapi.json")).json()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    ids = [op.get("operationId") for op in operations]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    assert {"registerJobs", "ingestExecutions", "health", "ready"} <= set(ids)
    batch = schema["paths"]["/api/ingest/executions/batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ExecutionBatch"
    )
    assert "ExecutionEvent" in schema["components"]["schemas"]


async def test_health_and_ready(server: LiveServer) -> None:
    async with server.client() as http:
        health = await http.get("/api/health")
        ready = await http.get("/api/ready")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"telemetry": True, "accounts": True}


async def test_unknown_route_is_a_json_404(server: LiveServer) -> None:
    async with server.client() as http:
        answer = await http.get("/api/nope")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_ready_is_503_when_the_store_is_gone(server: LiveServer) -> None:
    await server.context.stores.telemetry.close()
    async with server.client() as http:
        answer = await http.get("/api/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"]["telemetry"] is False


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_PORT", "4000")
    monkeypatch.setenv("CHRONOS_MAX_BATCH_ITEMS", "10")
    monkeypatch.setenv("CHRONOS_REDIS_URL", "")
    settings = ServerSettings()
    assert (settings.port, settings.max_batch_items, settings.redis_url) == (4000, 10, None)
    assert create_app(settings).state.context.settings is settings
