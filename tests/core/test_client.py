"""ChronosClient against a real HTTP server on loopback: configuration and the retry matrix."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from chronos_core import (
    AsyncChronosClient,
    AuthenticationError,
    ChronosClient,
    ConfigurationError,
    ConnectError,
    JobDefinition,
    RejectedError,
    RequestTimeout,
    RetryableStatusError,
    RetryPolicy,
)
from chronos_core._retry import parse_retry_after
from tests.support.events import make_event
from tests.support.recording_server import BlackHole, RecordingServer, Scripted, free_port

FAST = RetryPolicy(initial=0.05, maximum=0.2)


def client_for(url: str, **kwargs: object) -> ChronosClient:
    return ChronosClient(api_key="test-key", endpoint=url, retry=FAST, **kwargs)  # type: ignore[arg-type]


def test_missing_api_key_is_a_clear_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHRONOS_API_KEY", raising=False)
    with pytest.raises(ValueError, match="CHRONOS_API_KEY"):
        ChronosClient(endpoint="http://127.0.0.1:1")


@pytest.mark.parametrize("endpoint", ["localhost:3001", "ftp://example.org", "http://", "::"])
def test_malformed_endpoint_is_a_clear_value_error(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="endpoint"):
        ChronosClient(api_key="k", endpoint=endpoint)


def test_configuration_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_API_KEY", "env-key")
    monkeypatch.setenv("CHRONOS_API_URL", "http://127.0.0.1:4000/")
    monkeypatch.setenv("CHRONOS_ORG_ID", "org-9")
    client = ChronosClient()
    assert client.endpoint == "http://127.0.0.1:4000"
    assert client.settings.org_id == "org-9"
    monkeypatch.delenv("CHRONOS_API_URL")
    monkeypatch.setenv("CHRONOS_ENDPOINT", "http://127.0.0.1:5000")
    assert ChronosClient().endpoint == "http://127.0.0.1:5000"
    monkeypatch.delenv("CHRONOS_ENDPOINT")
    assert ChronosClient().endpoint == "http://localhost:3001"
    # Arguments win over the environment.
    assert ChronosClient(endpoint="http://127.0.0.1:6000").endpoint == "http://127.0.0.1:6000"


def test_register_jobs_sends_contract_shape_and_fills_org_and_app(
    recording_server: RecordingServer,
) -> None:
    with client_for(recording_server.url, org_id="org-1", app_id="app-1") as client:
        client.register_jobs(
            [
                {"id": "job-1", "name": "Reports", "schedule": "0 * * * *", "runMode": "recurring"},
                JobDefinition(id="job-once", name="Once", run_mode="once", run_at=0, org_id="mine"),
            ]
        )
    request = recording_server.requests[0]
    assert request.path == "/api/ingest/jobs/register"
    assert request.headers["x-api-key"] == "test-key"
    jobs = request.body["jobs"]
    assert jobs[0] == {
        "id": "job-1",
        "name": "Reports",
        "schedule": "0 * * * *",
        "runMode": "recurring",
        "orgId": "org-1",
        "appId": "app-1",
    }
    assert jobs[1]["orgId"] == "mine"
    assert jobs[1]["runAt"] == "1970-01-01T00:00:00.000Z"


def test_large_bodies_are_gzipped(recording_server: RecordingServer) -> None:
    with client_for(recording_server.url) as client:
        client.send_executions([make_event(1)])
        client.send_executions([make_event(i) for i in range(100)])
    small, large = recording_server.requests
    assert "content-encoding" not in small.headers
    assert large.headers["content-encoding"] == "gzip"
    assert len(large.body["executions"]) == 100


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried(recording_server: RecordingServer, status: int) -> None:
    recording_server.respond(Scripted(status), Scripted(status))
    with client_for(recording_server.url) as client:
        result = client.send_executions([make_event(1)])
    assert result.ingested == 1
    assert [r.status for r in recording_server.requests] == [status, status, 200]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, RejectedError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (413, RejectedError),
        (422, RejectedError),
        (500, RejectedError),
    ],
)
def test_other_statuses_are_not_retried(
    recording_server: RecordingServer, status: int, error: type[Exception]
) -> None:
    recording_server.respond(Scripted(status, body={"error": {"message": "no"}}))
    with client_for(recording_server.url) as client, pytest.raises(error) as info:
        client.send_executions([make_event(1)])
    assert len(recording_server.requests) == 1
    assert info.value.status_code == status  # type: ignore[attr-defined]


def test_retry_after_in_seconds_is_honoured(recording_server: RecordingServer) -> None:
    recording_server.respond(Scripted(429, headers={"Retry-After": "1"}))
    with client_for(recording_server.url) as client:
        started = time.monotonic()
        client.send_executions([make_event(1)])
        waited = time.monotonic() - started
    assert waited >= 0.95
    assert len(recording_server.requests) == 2


def test_retry_after_as_http_date_is_honoured(recording_server: RecordingServer) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    recording_server.respond(Scripted(503, headers={"Retry-After": format_datetime(when, True)}))
    with client_for(recording_server.url) as client:
        client.send_executions([make_event(1)])
    assert datetime.now(UTC) >= when - timedelta(milliseconds=50)
    assert len(recording_server.requests) == 2


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0


def test_retry_after_beyond_the_deadline_gives_up(recording_server: RecordingServer) -> None:
    recording_server.respond(Scripted(429, headers={"Retry-After": "30"}))
    with client_for(recording_server.url) as client, pytest.raises(RetryableStatusError):
        client.send_executions([make_event(1)], timeout=1.0)
    assert len(recording_server.requests) == 1


def test_slow_answer_times_out_and_is_retried(recording_server: RecordingServer) -> None:
    recording_server.respond(Scripted(200, delay=1.0))
    with client_for(recording_server.url, request_timeout=0.3) as client:
        result = client.send_executions([make_event(1)], timeout=5)
    assert result.success


def test_refused_connection_retries_until_the_deadline() -> None:
    with client_for(f"http://127.0.0.1:{free_port()}") as client:
        started = time.monotonic()
        with pytest.raises(ConnectError) as info:
            client.send_executions([make_event(1)], timeout=1.0)
    assert time.monotonic() - started < 1.5
    assert info.value.attempts > 1


def test_black_holed_server_is_bounded_by_the_deadline(black_hole: BlackHole) -> None:
    with client_for(black_hole.url) as client:
        started = time.monotonic()
        with pytest.raises(RequestTimeout):
            client.send_executions([make_event(1)], timeout=1.0)
    assert time.monotonic() - started < 1.5


async def test_async_client_retries_like_the_sync_one(recording_server: RecordingServer) -> None:
    recording_server.respond(Scripted(503))
    async with AsyncChronosClient(api_key="k", endpoint=recording_server.url, retry=FAST) as c:
        result = await c.send_executions([make_event(1), make_event(2)])
        registered = await c.register_jobs([{"id": "a", "name": "A", "schedule": "* * * * *"}])
    assert result.ingested == 2
    assert registered.success
    assert [r.status for r in recording_server.requests] == [503, 200, 200]
