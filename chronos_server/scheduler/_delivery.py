"""Handing one trigger to one runner: `job:trigger` with an acknowledgement, then the next
runner if it refuses or does not answer in time.

Each attempt is `AsyncServer.call(..., to=sid)`: with Redis, python-socketio's manager carries
the event to the process that holds the socket and the acknowledgement back to us. What an
answer means:

* a dict with `accepted: true` — delivered (`started`, `queued`, `skipped`, `duplicate`);
* a dict with `accepted: false` — refused (`stopping`, `unknown-job`...): try another runner;
* an acknowledgement without a payload — an original-contract client whose handler returns
  nothing (python-socketio always acknowledges): delivered;
* no acknowledgement in `ack_timeout` — if the socket is still in the room and has never
  emitted `trigger:ack`, it is an original-contract client that does not acknowledge, and the
  trigger counts as delivered to it (as the original server did); otherwise (it left, or it
  speaks the protocol and went silent) try another runner.

Runners are tried in rotation per job, so triggers spread over them.

With Redis, an answer given to another process comes back over python-socketio's channel,
which a process reads only once its client manager is initialized; python-socketio does that
when the first client connects to the process. A leader holding no socket of its own would
send triggers and never hear an answer (each one a `no-ack`, recorded `missed` while the
runner ran it). `hears_answers()` starts the listener and proves it subscribed by sending an
acknowledgement to itself through the channel; the scheduler delivers nothing before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import socketio
from socketio.async_pubsub_manager import AsyncPubSubManager

from chronos_server.realtime import RealtimeHub
from chronos_server.scheduler._directory import RunnerDirectory

__all__ = ["Delivery", "DeliveryOutcome", "TriggerDelivery"]

logger = logging.getLogger("chronos_server.scheduler")

TRIGGER_EVENT = "job:trigger"
# How often `hears_answers()` sends its probe again while waiting for it.
_PROBE_INTERVAL = 0.1


class DeliveryOutcome(StrEnum):
    """How a trigger ended."""

    DELIVERED = "delivered"
    """A runner accepted it (or an original-contract client received it)."""
    NO_RUNNER = "no-runner"
    """No runner was in the job's room: recorded as `missed`."""
    REFUSED = "refused"
    """Every runner tried refused it or did not answer: recorded as `missed`."""


@dataclass(slots=True)
class Delivery:
    """The result of delivering one trigger."""

    outcome: DeliveryOutcome
    runner: str | None = None
    """The socket that took it."""
    legacy: bool = False
    """Taken by a client that does not acknowledge (original contract)."""
    answers: list[str] = field(default_factory=list)
    """What each runner tried answered (`started`, `stopping`, `no-ack`...), in order."""


class TriggerDelivery:
    """Delivers triggers over the hub's Socket.IO server."""

    def __init__(
        self,
        hub: RealtimeHub,
        directory: RunnerDirectory,
        *,
        ack_timeout: float,
        max_attempts: int,
    ) -> None:
        self.hub = hub
        self.directory = directory
        self.ack_timeout = ack_timeout
        self.max_attempts = max_attempts
        self._turns: dict[tuple[str, str], itertools.count[int]] = {}

    async def hears_answers(self, timeout: float) -> bool:
        """Whether answers that runners give to other server processes reach this one.

        Starts python-socketio's listener if no client has started it yet, then publishes an
        acknowledgement addressed to this process (the very message a runner's answer
        becomes on its way back) until the listener hands it over, for at most `timeout`
        seconds. True at once without a message queue (embedded: every socket is local).
        """
        server = self.hub.server
        manager = server.manager
        if not isinstance(manager, AsyncPubSubManager):
            return True
        # python-socketio keeps the acknowledgement path to itself; these are the calls its
        # own `_handle_eio_connect` and `_return_callback` make.
        if not server.manager_initialized:
            server.manager_initialized = True
            manager.initialize()
            await asyncio.sleep(0)  # the listener connects before anything is published
        heard = asyncio.Event()
        probe = "chronos-probe-" + uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while not heard.is_set() and loop.time() < deadline:
                ack_id = manager._generate_ack_id(probe, lambda *_: heard.set())
                await manager._publish(
                    {
                        "method": "callback",
                        "host_id": manager.host_id,
                        "sid": probe,
                        "namespace": "/",
                        "id": ack_id,
                        "args": [],
                    }
                )
                wait = max(0.0, min(_PROBE_INTERVAL, deadline - loop.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(heard.wait(), wait)
        finally:
            manager.callbacks.pop(probe, None)
        return heard.is_set()

    async def deliver(self, tenant: str, job_id: str, payload: dict[str, Any]) -> Delivery:
        """Send `payload` to one runner of the job, trying others on refusal or silence."""
        runners = await self.directory.runners(tenant, job_id)
        if not runners:
            return Delivery(DeliveryOutcome.NO_RUNNER)
        turn = next(self._turns.setdefault((tenant, job_id), itertools.count()))
        start = turn % len(runners)
        order = runners[start:] + runners[:start]
        result = Delivery(DeliveryOutcome.REFUSED)
        for sid in order[: self.max_attempts]:
            answer, accepted, legacy = await self._attempt(tenant, job_id, sid, payload)
            result.answers.append(answer)
            if accepted:
                result.outcome, result.runner, result.legacy = (
                    DeliveryOutcome.DELIVERED,
                    sid,
                    legacy,
                )
                return result
        return result

    async def _attempt(
        self, tenant: str, job_id: str, sid: str, payload: dict[str, Any]
    ) -> tuple[str, bool, bool]:
        """(answer, accepted, legacy) of one runner."""
        try:
            ack = await self.hub.server.call(
                TRIGGER_EVENT, payload, to=sid, timeout=self.ack_timeout
            )
        except socketio.exceptions.TimeoutError:
            if await self._silent_legacy(tenant, job_id, sid):
                return "legacy", True, True
            return "no-ack", False, False
        except Exception:
            logger.warning("trigger %s: emit to %s failed", payload.get("triggerId"), sid)
            return "error", False, False
        if isinstance(ack, tuple):  # several acknowledgement arguments: the first counts
            ack = ack[0] if ack else None
        if isinstance(ack, dict) and "accepted" in ack:
            return str(ack.get("outcome") or "accepted"), ack.get("accepted") is True, False
        return "acknowledged", True, True

    async def _silent_legacy(self, tenant: str, job_id: str, sid: str) -> bool:
        if sid not in await self.directory.runners(tenant, job_id):
            return False
        return not await self.directory.acknowledges(sid)
