"""HTTP client for the ingestion API: `ChronosClient` and its async twin."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self, TypeVar

import httpcore  # noqa: F401  (imported now, not half-way on a thread when a process forks)
import httpx
from pydantic import BaseModel, ValidationError

from chronos_core import _exceptions as exc_mod
from chronos_core._config import ChronosSettings
from chronos_core._models import (
    ExecutionEvent,
    IngestResult,
    JobDefinition,
    RegisterResult,
)
from chronos_core._retry import (
    RETRYABLE_STATUS_CODES,
    RetryPolicy,
    monotonic_deadline,
    parse_retry_after,
    remaining,
)
from chronos_core._version import __version__

__all__ = ["AsyncChronosClient", "ChronosClient"]

REGISTER_PATH = "/api/ingest/jobs/register"
BATCH_PATH = "/api/ingest/executions/batch"
USER_AGENT = f"chronos-synapse-python/{__version__}"

_ResultT = TypeVar("_ResultT", bound=BaseModel)

# Loading the CA bundle takes tens of milliseconds and, inside OpenSSL, a lock: it is done
# once per process, under a lock that fork() waits for (see `_exporter`), so that no child
# starts life with OpenSSL's lock held by a thread it does not have.
tls_setup_lock = threading.Lock()
_tls_context: ssl.SSLContext | None = None


def tls_verify_for(url: str) -> ssl.SSLContext | bool:
    """What to pass as httpx's `verify`: the shared default context for https URLs.

    Plain-http endpoints never use TLS (redirects are not followed), so they skip loading it.
    """
    global _tls_context
    if not url.startswith("https:"):
        return False
    with tls_setup_lock:
        if _tls_context is None:
            _tls_context = httpx.create_ssl_context()
        return _tls_context


def reset_tls_after_fork() -> None:
    """In a forked child: a fresh lock (the context itself is safe to reuse)."""
    global tls_setup_lock
    tls_setup_lock = threading.Lock()


class _BaseClient:
    """What the sync and async clients share: settings, encoding, status mapping."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        endpoint: str | None = None,
        settings: ChronosSettings | None = None,
        retry: RetryPolicy | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = ChronosSettings.load(api_key=api_key, endpoint=endpoint, **overrides)
        elif api_key is not None or endpoint is not None or overrides:
            given = {"api_key": api_key, "endpoint": endpoint, **overrides}
            settings = ChronosSettings.load(
                **{**settings.model_dump(), **{k: v for k, v in given.items() if v is not None}}
            )
        self.settings = settings
        self._api_key = settings.require_api_key()
        self.retry = retry if retry is not None else RetryPolicy()
        self._headers = {
            "x-api-key": self._api_key,
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": USER_AGENT,
        }

    @property
    def endpoint(self) -> str:
        """Base URL of the server, without a trailing slash."""
        return self.settings.endpoint

    def _jobs_body(self, jobs: Iterable[JobDefinition | Mapping[str, Any]]) -> dict[str, Any]:
        wire = []
        for job in jobs:
            model = job if isinstance(job, JobDefinition) else JobDefinition.model_validate(job)
            fill = {
                key: value
                for key, value in (
                    ("org_id", self.settings.org_id),
                    ("app_id", self.settings.app_id),
                )
                if value and getattr(model, key) is None
            }
            if fill:
                model = model.model_copy(update=fill)
            wire.append(model.to_wire())
        return {"jobs": wire}

    @staticmethod
    def _executions_body(
        events: Iterable[ExecutionEvent | Mapping[str, Any]],
    ) -> dict[str, Any]:
        return {
            "executions": [
                event.to_wire()
                if isinstance(event, ExecutionEvent)
                else ExecutionEvent.model_validate(event).to_wire()
                for event in events
            ]
        }

    def encode(self, body: Mapping[str, Any] | bytes) -> tuple[bytes, dict[str, str]]:
        """JSON-encode (unless already bytes) and gzip bodies above `gzip_min_bytes`."""
        raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        headers = dict(self._headers)
        if len(raw) >= self.settings.gzip_min_bytes:
            # Level 1: a third of the CPU of the default for ~10% more bytes; this runs
            # on the exporter's thread, beside the user's jobs. zlib writes the gzip format
            # itself (wbits 31) in one C call, where `gzip.compress` adds Python around it.
            raw = zlib.compress(raw, 1, wbits=31)
            headers["content-encoding"] = "gzip"
        return raw, headers

    def _timeout(self, deadline: float | None) -> httpx.Timeout:
        left = remaining(deadline)
        per_request = self.settings.request_timeout
        if left is not None:
            per_request = max(min(per_request, left), 0.001)
        return httpx.Timeout(per_request)

    @staticmethod
    def _parse(response: httpx.Response, result_type: type[_ResultT]) -> _ResultT:
        status = response.status_code
        if 200 <= status < 300:
            try:
                return result_type.model_validate(response.json())
            except (ValueError, ValidationError):
                # An older server may answer with less; a 2xx is still an acknowledgement.
                return result_type()
        text = response.text[:500]
        if status in RETRYABLE_STATUS_CODES:
            raise exc_mod.RetryableStatusError(
                status, text, retry_after=parse_retry_after(response.headers.get("retry-after"))
            )
        if status in (401, 403):
            raise exc_mod.AuthenticationError(status, text)
        raise exc_mod.RejectedError(status, text)

    @staticmethod
    def _translate(error: httpx.HTTPError) -> exc_mod.TransportError:
        if isinstance(error, httpx.TimeoutException) and not isinstance(
            error, httpx.ConnectTimeout
        ):
            return exc_mod.RequestTimeout(str(error) or type(error).__name__)
        if isinstance(error, httpx.TransportError):
            return exc_mod.ConnectError(str(error) or type(error).__name__)
        return exc_mod.TransportError(str(error) or type(error).__name__)

    def _next_wait(
        self, error: exc_mod.TransportError, attempt: int, deadline: float | None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise."""
        if not error.retryable:
            return None
        retry_after = error.retry_after if isinstance(error, exc_mod.HTTPStatusError) else None
        wait = self.retry.backoff(attempt, retry_after)
        left = remaining(deadline)
        if left is not None and wait >= left:
            return None
        return wait


class ChronosClient(_BaseClient):
    """Synchronous client for the ingestion API.

    Each call retries connection errors and 429/502/503/504 (honouring `Retry-After`) with
    exponential backoff, all within `timeout` seconds (default: the `export_timeout` setting).
    Other error statuses raise at once.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        endpoint: str | None = None,
        settings: ChronosSettings | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(
            api_key=api_key, endpoint=endpoint, settings=settings, retry=retry, **overrides
        )
        self._http = httpx.Client(
            base_url=self.endpoint, transport=transport, verify=tls_verify_for(self.endpoint)
        )

    def register_jobs(
        self,
        jobs: Iterable[JobDefinition | Mapping[str, Any]],
        *,
        timeout: float | None = None,
        abort: threading.Event | None = None,
        on_retry: Callable[[exc_mod.TransportError, float], None] | None = None,
    ) -> RegisterResult:
        """Register (upsert) job definitions with the server.

        Blocks for the request; `BatchExporter.register_jobs` queues them instead.
        """
        return self._post(
            REGISTER_PATH,
            self._jobs_body(jobs),
            RegisterResult,
            timeout=timeout,
            abort=abort,
            on_retry=on_retry,
        )

    def send_executions(
        self,
        events: Iterable[ExecutionEvent | Mapping[str, Any]],
        *,
        timeout: float | None = None,
        abort: threading.Event | None = None,
    ) -> IngestResult:
        """Send execution events in one request. `abort` cuts retry waits short."""
        return self._post(
            BATCH_PATH, self._executions_body(events), IngestResult, timeout=timeout, abort=abort
        )

    def post_encoded(
        self,
        path: str,
        body: bytes,
        *,
        timeout: float | None = None,
        abort: threading.Event | None = None,
        on_retry: Callable[[exc_mod.TransportError, float], None] | None = None,
    ) -> IngestResult:
        """Send an already JSON-encoded batch body (used by the exporter and its spool).

        `on_retry(error, wait)` is called before each wait between attempts.
        """
        return self._post(path, body, IngestResult, timeout=timeout, abort=abort, on_retry=on_retry)

    def _post(
        self,
        path: str,
        body: Mapping[str, Any] | bytes,
        result_type: type[_ResultT],
        *,
        timeout: float | None,
        abort: threading.Event | None = None,
        on_retry: Callable[[exc_mod.TransportError, float], None] | None = None,
    ) -> _ResultT:
        content, headers = self.encode(body)
        deadline = monotonic_deadline(self.settings.export_timeout if timeout is None else timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                try:
                    response = self._http.post(
                        path, content=content, headers=headers, timeout=self._timeout(deadline)
                    )
                except httpx.HTTPError as error:
                    raise self._translate(error) from error
                return self._parse(response, result_type)
            except exc_mod.TransportError as error:
                wait = self._next_wait(error, attempt, deadline)
                if wait is None or (abort is not None and abort.is_set()):
                    error.attempts = attempt
                    raise
                if on_retry is not None:
                    on_retry(error, wait)
                if abort is not None:
                    if abort.wait(wait):
                        raise
                else:
                    time.sleep(wait)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncChronosClient(_BaseClient):
    """Asynchronous twin of `ChronosClient`, same retry rules."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        endpoint: str | None = None,
        settings: ChronosSettings | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(
            api_key=api_key, endpoint=endpoint, settings=settings, retry=retry, **overrides
        )
        self._http = httpx.AsyncClient(
            base_url=self.endpoint, transport=transport, verify=tls_verify_for(self.endpoint)
        )

    async def register_jobs(
        self, jobs: Iterable[JobDefinition | Mapping[str, Any]], *, timeout: float | None = None
    ) -> RegisterResult:
        """Register (upsert) job definitions with the server."""
        return await self._post(REGISTER_PATH, self._jobs_body(jobs), RegisterResult, timeout)

    async def send_executions(
        self, events: Iterable[ExecutionEvent | Mapping[str, Any]], *, timeout: float | None = None
    ) -> IngestResult:
        """Send execution events in one request."""
        return await self._post(BATCH_PATH, self._executions_body(events), IngestResult, timeout)

    async def _post(
        self,
        path: str,
        body: Mapping[str, Any] | bytes,
        result_type: type[_ResultT],
        timeout: float | None,
    ) -> _ResultT:
        content, headers = self.encode(body)
        deadline = monotonic_deadline(self.settings.export_timeout if timeout is None else timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                try:
                    response = await self._http.post(
                        path, content=content, headers=headers, timeout=self._timeout(deadline)
                    )
                except httpx.HTTPError as error:
                    raise self._translate(error) from error
                return self._parse(response, result_type)
            except exc_mod.TransportError as error:
                wait = self._next_wait(error, attempt, deadline)
                if wait is None:
                    raise
                await asyncio.sleep(wait)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
