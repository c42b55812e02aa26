"""The wire schema, defined once and used by the SDK and the server.

Field names are camelCase on the wire and snake_case in Python. Unknown fields are ignored
(a newer client never breaks an older server), and every field we added to the original
contract is optional.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from chronos_core._limits import (
    MAX_BATCH_ITEMS,
    MAX_ID_LENGTH,
    MAX_LABELS,
    MAX_LOG_LENGTH,
    MAX_MESSAGE_LENGTH,
    MAX_METADATA_BYTES,
    MAX_NAME_LENGTH,
    MAX_SCHEDULE_LENGTH,
    MAX_SHORT_TEXT,
    MAX_SNIPPET_LENGTH,
    MAX_STACK_LENGTH,
    MAX_VERSION_LENGTH,
    ExecutionStatus,
    RunMode,
    Source,
)

__all__ = [
    "MAX_BATCH_ITEMS",
    "MAX_ID_LENGTH",
    "MAX_LABELS",
    "MAX_LOG_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_NAME_LENGTH",
    "MAX_SCHEDULE_LENGTH",
    "MAX_SHORT_TEXT",
    "MAX_SNIPPET_LENGTH",
    "MAX_STACK_LENGTH",
    "MAX_VERSION_LENGTH",
    "ExecutionBatch",
    "ExecutionEvent",
    "ExecutionIngested",
    "ExecutionStatus",
    "IngestResult",
    "ItemError",
    "JobDefinition",
    "JobRegistration",
    "JobTrigger",
    "RegisterResult",
    "RunMode",
    "Source",
    "WireModel",
    "format_timestamp",
    "parse_timestamp",
]


def parse_timestamp(value: Any) -> Any:
    """Accept ISO-8601 strings and epoch milliseconds; naive times are taken as UTC.

    Returns an aware datetime, or the value for pydantic to refuse with its own message. ISO
    strings are read by `datetime.fromisoformat`: a `Z` string then carries `datetime.UTC`,
    whose arithmetic is several times cheaper than pydantic's own zone type.
    """
    if isinstance(value, str):
        text = value if value[-1:] == "Z" else value.strip()
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return value
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


_ZERO = timedelta(0)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """Format as the original API does: UTC, millisecond precision, `Z` suffix."""
    # Any zero-offset tzinfo (pydantic's parsed `TzInfo(UTC)` too) formats with "+00:00".
    if value.tzinfo is not UTC and value.utcoffset() != _ZERO:
        value = _as_utc(value)
    # isoformat is C code; its "+00:00" suffix becomes the original API's "Z".
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


Timestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]


def _short(max_length: int = MAX_SHORT_TEXT) -> Any:
    return Field(default=None, max_length=max_length)


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        use_enum_values=False,
        ser_json_timedelta="float",
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase dict, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class JobDefinition(WireModel):
    """A job as registered with the server (`POST /api/ingest/jobs/register`)."""

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    schedule: str = Field(default="", max_length=MAX_SCHEDULE_LENGTH)
    run_mode: RunMode = RunMode.RECURRING
    version: str | None = _short(MAX_VERSION_LENGTH)
    signature_hash: str | None = _short()
    org_id: str | None = _short()
    app_id: str | None = _short()
    run_at: Timestamp | None = None
    # Additive fields.
    timezone: str | None = Field(default=None, max_length=64, description="IANA zone of the cron")
    interval_seconds: float | None = Field(default=None, gt=0, description="For interval jobs")
    description: str | None = _short(MAX_MESSAGE_LENGTH)
    source: Source | None = None

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            return value
        # Imported here, so that a process that validates no cron schedule (an RQ worker
        # without cron jobs, its horses) does not load croniter and dateutil.
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"not a valid cron expression: {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone: {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _schedule_matches_mode(self) -> JobDefinition:
        if self.run_mode is RunMode.RECURRING and not self.schedule and not self.interval_seconds:
            raise ValueError("a recurring job needs a non-empty schedule (or intervalSeconds)")
        if self.run_mode is RunMode.ONCE and not self.schedule and self.run_at is None:
            raise ValueError("a one-time job needs a cron schedule or runAt")
        return self


class ExecutionEvent(WireModel):
    """One observation of a run (`POST /api/ingest/executions/batch`).

    A run may be reported twice under the same `exec_id`: a `running` event when it starts and
    its final event; the server keeps one execution.
    """

    exec_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    job_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    status: ExecutionStatus
    started_at: Timestamp
    finished_at: Timestamp | None = None
    duration_ms: float | None = Field(default=None, ge=0)
    exit_code: int | None = None
    error_message: str | None = _short(MAX_MESSAGE_LENGTH)
    error_type: str | None = _short()
    error_stack: str | None = _short(MAX_STACK_LENGTH)
    stdout: str | None = _short(MAX_LOG_LENGTH)
    stderr: str | None = _short(MAX_LOG_LENGTH)
    attempt: int = Field(default=1, ge=1)
    labels: list[Annotated[str, Field(max_length=MAX_SHORT_TEXT)]] = Field(
        default_factory=list, max_length=MAX_LABELS
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    job_version: str | None = _short(MAX_VERSION_LENGTH)
    app_version: str | None = _short(MAX_VERSION_LENGTH)
    code_snippet: str | None = _short(MAX_SNIPPET_LENGTH)
    code_language: str | None = _short(32)
    # Additive fields.
    source: Source | None = None
    host: str | None = _short()
    pid: int | None = None
    queue: str | None = _short()
    worker: str | None = _short()
    trigger_id: str | None = _short()
    scheduled_for: Timestamp | None = None
    trace_id: str | None = Field(
        default=None,
        max_length=64,
        validation_alias=AliasChoices("traceId", "trace_id"),
    )

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, default=str))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes, over the limit of {MAX_METADATA_BYTES}")
        return value

    @model_validator(mode="after")
    def _finish_after_start(self) -> ExecutionEvent:
        if self.finished_at is not None and self.finished_at < self.started_at:
            raise ValueError("finishedAt is before startedAt")
        return self


class JobRegistration(WireModel):
    """Body of `POST /api/ingest/jobs/register`."""

    jobs: list[JobDefinition] = Field(max_length=MAX_BATCH_ITEMS)


class ExecutionBatch(WireModel):
    """Body of `POST /api/ingest/executions/batch`."""

    executions: list[ExecutionEvent] = Field(max_length=MAX_BATCH_ITEMS)


class ItemError(WireModel):
    """Why one item of a batch was refused; `index` is its position in the request."""

    index: int
    field: str
    message: str


class RegisterResult(WireModel):
    """Response of job registration. `success` is the original contract's field."""

    success: bool = True
    registered: int = 0
    errors: list[ItemError] = Field(default_factory=list)


class IngestResult(WireModel):
    """Response of execution ingestion. `success` and `ingested` are the original's fields."""

    success: bool = True
    ingested: int = 0
    duplicates: int = 0
    errors: list[ItemError] = Field(default_factory=list)


class ExecutionIngested(WireModel):
    """The realtime `execution:ingested` payload."""

    job_id: str
    exec_id: str
    status: ExecutionStatus
    started_at: Timestamp
    finished_at: Timestamp | None = None
    duration_ms: float | None = None
    exit_code: int | None = None

    @classmethod
    def from_event(cls, event: ExecutionEvent) -> ExecutionIngested:
        """The summary broadcast for one stored execution."""
        return cls(
            job_id=event.job_id,
            exec_id=event.exec_id,
            status=event.status,
            started_at=event.started_at,
            finished_at=event.finished_at,
            duration_ms=event.duration_ms,
            exit_code=event.exit_code,
        )


class JobTrigger(WireModel):
    """The realtime `job:trigger` payload sent to a runner."""

    job_id: str
    trigger_id: str
    scheduled_for: Timestamp
