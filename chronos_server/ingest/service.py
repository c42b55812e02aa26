"""Ingestion: validating batches item by item, storing them, publishing what was new."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from chronos_core._models import (
    ExecutionEvent,
    IngestResult,
    ItemError,
    JobDefinition,
    RegisterResult,
    WireModel,
)
from chronos_server.auth import Principal
from chronos_server.errors import BadRequest, PayloadTooLarge
from chronos_server.storage import EventBroker, TelemetryStore
from chronos_server.storage._codec import encode_ingested, encode_received

__all__ = ["IngestService", "truncate_log"]

logger = logging.getLogger("chronos_server.ingest")

M = TypeVar("M", bound=WireModel)

_TRUNCATED = "[chronos: {} bytes truncated]\n"


def truncate_log(text: str, max_bytes: int) -> str:
    """Keep the end of a log (where errors are) within `max_bytes` of UTF-8, marked as cut."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= max_bytes:
        return text
    marker = _TRUNCATED.format(len(data) - max_bytes)
    tail = data[len(data) - max(0, max_bytes - len(marker)) :] if max_bytes > len(marker) else b""
    return marker + tail.decode("utf-8", errors="ignore")


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


class _BatchValidator:
    """Validates a list of items in one pass, falling back to item by item on errors."""

    def __init__(self, model: type[M]) -> None:
        self.model: type[WireModel] = model
        self.adapter: TypeAdapter[list[Any]] = TypeAdapter(list[model])  # type: ignore[valid-type]

    def validate(self, items: list[Any]) -> tuple[list[tuple[int, Any]], list[ItemError]]:
        try:
            return list(enumerate(self.adapter.validate_python(items))), []
        except ValidationError:
            pass
        valid: list[tuple[int, Any]] = []
        errors: list[ItemError] = []
        for index, item in enumerate(items):
            try:
                valid.append((index, self.model.model_validate(item)))
            except ValidationError as exc:
                for error in exc.errors(include_url=False, include_input=False):
                    message = str(error["msg"]).removeprefix("Value error, ")
                    field = _field(error["loc"])
                    errors.append(ItemError(index=index, field=field, message=message))
        return valid, errors


class IngestService:
    """Turns request payloads into store writes; knows nothing about HTTP."""

    _jobs = _BatchValidator(JobDefinition)
    _executions = _BatchValidator(ExecutionEvent)

    def __init__(
        self,
        store: TelemetryStore,
        broker: EventBroker,
        *,
        max_items: int,
        max_log_bytes: int,
    ) -> None:
        self.store = store
        self.broker = broker
        self.max_items = max_items
        self.max_log_bytes = max_log_bytes

    def _items(self, payload: Any, name: str) -> list[Any]:
        if not isinstance(payload, dict):
            raise BadRequest(f'expected a JSON object {{"{name}": [...]}}', field=name)
        items = payload.get(name)
        if not isinstance(items, list):
            raise BadRequest(f"`{name}` must be a list", field=name)
        if len(items) > self.max_items:
            raise PayloadTooLarge(
                f"{len(items)} {name} in one request, over the limit of {self.max_items}",
                field=name,
            )
        return items

    async def register_jobs(self, principal: Principal, payload: Any) -> RegisterResult:
        """Upsert the valid job definitions of `payload`; report the others by index."""
        valid, errors = self._jobs.validate(self._items(payload, "jobs"))
        jobs: list[JobDefinition] = [job for _, job in valid]
        if principal.org_id is not None:
            jobs = [
                job if job.org_id else job.model_copy(update={"org_id": principal.org_id})
                for job in jobs
            ]
        registered = await self.store.upsert_jobs(principal.tenant, jobs) if jobs else 0
        return RegisterResult(success=not errors, registered=registered, errors=errors)

    async def ingest_executions(self, principal: Principal, payload: Any) -> IngestResult:
        """Store the valid executions of `payload` once each; report the others by index."""
        items = self._items(payload, "executions")
        valid, errors = self._executions.validate(items)
        events = [self._bounded(event) for _, event in valid]
        if not events:
            return IngestResult(success=not errors, errors=errors)
        received = [items[index] for index, _ in valid]
        encoded = [
            encode_received(item, event) for item, event in zip(received, events, strict=True)
        ]
        outcome = await self.store.ingest_executions(principal.tenant, events, encoded)
        if len(outcome.stored) == len(events):
            stored = list(zip(received, events, strict=True))
        else:
            position = {id(event): item for item, event in zip(received, events, strict=True)}
            stored = [(position[id(event)], event) for event in outcome.stored]
        await self._publish(principal.tenant, stored)
        return IngestResult(
            success=not errors,
            ingested=len(outcome.stored),
            duplicates=outcome.duplicates,
            errors=errors,
        )

    def _bounded(self, event: ExecutionEvent) -> ExecutionEvent:
        limit = self.max_log_bytes
        update: dict[str, str] = {}
        # Characters are at most 4 bytes: short strings need no encoding to be checked.
        if event.stdout is not None and len(event.stdout) * 4 > limit:
            update["stdout"] = truncate_log(event.stdout, limit)
        if event.stderr is not None and len(event.stderr) * 4 > limit:
            update["stderr"] = truncate_log(event.stderr, limit)
        return event.model_copy(update=update) if update else event

    async def _publish(self, tenant: str, stored: list[tuple[Any, ExecutionEvent]]) -> None:
        """Publish the summaries of stored executions, given their received items."""
        if not stored:
            return
        try:
            await self.broker.publish(tenant, encode_ingested(stored))
        except Exception:
            # Stored is what counts; realtime delivery is best effort.
            logger.exception("could not publish %d ingested executions", len(stored))
