"""The wire schema's limits and enumerations, in plain Python.

`_models` builds the pydantic models on these; a process that only captures runs and hands
plain values on (an RQ worker and its work horses) imports this module, not pydantic.
"""

from __future__ import annotations

from enum import StrEnum

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
    "ExecutionStatus",
    "RunMode",
    "Source",
]

# Size limits declared by the schema. The SDK truncates to much less by default
# (max_log_bytes); these bound what a server has to accept from any client.
MAX_ID_LENGTH = 256
MAX_NAME_LENGTH = 512
MAX_SCHEDULE_LENGTH = 256
MAX_VERSION_LENGTH = 128
MAX_SHORT_TEXT = 256
MAX_MESSAGE_LENGTH = 8_192
MAX_STACK_LENGTH = 100_000
MAX_LOG_LENGTH = 1_000_000
MAX_SNIPPET_LENGTH = 20_000
MAX_LABELS = 64
MAX_METADATA_BYTES = 16_384
MAX_BATCH_ITEMS = 1_000


class ExecutionStatus(StrEnum):
    """The state of one run. `success` and `failed` are the original contract's statuses."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    RETRYING = "retrying"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    MISSED = "missed"
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        """Whether no later event of the same run is expected."""
        return self is not ExecutionStatus.RUNNING

    @property
    def is_failure(self) -> bool:
        """Whether the run counts as a failure in metrics."""
        return self in _FAILURES


_FAILURES = frozenset({ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT, ExecutionStatus.MISSED})


class RunMode(StrEnum):
    """How often a job is meant to run."""

    ONCE = "once"
    RECURRING = "recurring"


class Source(StrEnum):
    """Which part of the SDK observed a run."""

    RUNNER = "runner"
    CELERY = "celery"
    APSCHEDULER = "apscheduler"
    RQ = "rq"
    EXEC = "exec"
