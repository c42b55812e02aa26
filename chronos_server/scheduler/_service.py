"""The server scheduler: due times of registered jobs, turned into triggers for runners.

Every server process runs a `TriggerScheduler`; the one holding the lease schedules. Once
elected, it first makes sure that answers of runners on other processes reach it
(`TriggerDelivery.hears_answers`). Each tick (at the next due time, and at least every third
of the lease) it renews the lease, refreshes the jobs now and then, and for every due time:

1. claims the trigger id (deterministic from job id + due time) in the `TriggerStore`, so a
   due time is handled once across processes and leader changes; a claim left pending by a
   leader that died expires and is taken over;
2. delivers `job:trigger` to one runner of the job (`TriggerDelivery`);
3. if no runner took it (none connected, all refused or silent, or it is later than
   `misfire_grace`), records an execution with status `missed` through the ingestion service
   (metrics and realtime apply), under an id derived from the trigger id;
4. settles the claim; a one-time job is marked fired for its current arming.

Which jobs: those a runner has joined at least once (`join-job`), registered with source
`runner` or none. A job nobody ever joined is scheduled elsewhere (a local-mode runner, a
cron) and is left alone; Celery, APScheduler, RQ and `exec` jobs schedule themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chronos_core._models import ExecutionEvent, ExecutionStatus, format_timestamp
from chronos_server.auth import Principal
from chronos_server.ingest.service import IngestService
from chronos_server.realtime import RealtimeHub
from chronos_server.scheduler._clock import SchedulerClock
from chronos_server.scheduler._delivery import Delivery, DeliveryOutcome, TriggerDelivery
from chronos_server.scheduler._directory import RunnerDirectory
from chronos_server.scheduler._lease import Lease
from chronos_server.scheduler._plan import JobPlan, missed_exec_id
from chronos_server.storage import (
    AccountStore,
    ClaimState,
    OnceArming,
    TelemetryStore,
    TriggerStore,
)

__all__ = ["SettledTrigger", "TriggerScheduler"]

logger = logging.getLogger("chronos_server.scheduler")

# Due times handled per job and tick at most (a per-second cron after a long stall).
_MAX_DUE_PER_TICK = 100
# How long a settled claim is kept: far longer than any catch-up window.
_SETTLED_KEEP_SECONDS = 2 * 86_400.0
_MAX_CONCURRENT_DELIVERIES = 256


@dataclass(frozen=True, slots=True)
class SettledTrigger:
    """A trigger this process handled, kept in `TriggerScheduler.recent`."""

    tenant: str
    job_id: str
    trigger_id: str
    scheduled_for: datetime
    delivery: Delivery


class TriggerScheduler:
    """Schedules the server-triggered jobs of every tenant while holding the lease."""

    def __init__(
        self,
        *,
        hub: RealtimeHub,
        telemetry: TelemetryStore,
        triggers: TriggerStore,
        accounts: AccountStore,
        ingest: IngestService,
        lease: Lease,
        directory: RunnerDirectory,
        clock: SchedulerClock,
        server_id: str,
        ack_timeout: float,
        max_attempts: int,
        refresh_interval: float,
        misfire_grace: float,
        on_close: Any = None,
    ) -> None:
        self.hub = hub
        self.telemetry = telemetry
        self.triggers = triggers
        self.accounts = accounts
        self.ingest = ingest
        self.lease = lease
        self.directory = directory
        self.clock = clock
        self.server_id = server_id
        self.delivery = TriggerDelivery(
            hub, directory, ack_timeout=ack_timeout, max_attempts=max_attempts
        )
        self.refresh_interval = refresh_interval
        self.misfire_grace = timedelta(seconds=misfire_grace)
        # A new leader looks back this far: due times a dead leader may not have handled.
        self.catchup = timedelta(seconds=2 * lease.ttl + ack_timeout * max_attempts)
        self.pending_seconds = ack_timeout * (max_attempts + 1) + lease.ttl
        self.recent: deque[SettledTrigger] = deque(maxlen=10_000)
        """The latest triggers this process settled, oldest first."""
        self._stats = dict.fromkeys(
            ("triggers", "delivered", "legacy", "resent", "missed", "elections"), 0
        )
        self._on_close = on_close
        self._plans: dict[tuple[str, str], JobPlan] = {}
        self._cursors: dict[tuple[str, str], datetime] = {}
        self._armings: dict[tuple[str, str, str], OnceArming] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(_MAX_CONCURRENT_DELIVERIES)
        self._wake = asyncio.Event()
        self._leading = False
        self._caught_up = False
        self._hears_answers = False
        self._refreshed_at = float("-inf")
        self._next_due: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        """Whether this process schedules right now."""
        return self._leading

    def planned(self) -> list[tuple[str, str]]:
        """(tenant, job id) of every job the leader schedules now; empty when not leading."""
        return sorted(self._plans) if self._leading else []

    def stats(self) -> dict[str, int]:
        """Counters of this process: triggers settled, delivered, legacy, resent, missed."""
        return dict(self._stats)

    async def start(self) -> None:
        """Start scheduling in the background and listen to the hub's rooms."""
        self.hub.add_listener(self)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chronos-scheduler")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop, let deliveries in progress end (bounded), release the lease."""
        self._stopping = True
        self._wake.set()
        self.hub.remove_listener(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
        await self.lease.release()
        await self.directory.close()
        if self._on_close is not None:
            with contextlib.suppress(Exception):
                await self._on_close()

    def wake(self) -> None:
        """Re-read the jobs and the time now (a test moved the clock, a job was joined)."""
        self._refreshed_at = float("-inf")
        self._wake.set()

    # -- room listener (see RealtimeHub) --------------------------------------------------

    async def joined(self, tenant: str, job_id: str, sid: str) -> None:
        """Register the runner; the job becomes server-triggered."""
        await self.directory.joined(tenant, job_id, sid)
        if (tenant, job_id) not in self._plans:
            await self.triggers.mark_server_triggered(tenant, job_id)
            self.wake()

    async def left(self, tenant: str, job_id: str, sid: str) -> None:
        """Unregister the runner."""
        await self.directory.left(tenant, job_id, sid)

    async def acknowledged(self, tenant: str, sid: str) -> None:
        """Remember the socket acknowledges triggers."""
        await self.directory.acknowledged(tenant, sid)

    # -- loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            failed = False
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("scheduler tick failed; retrying", exc_info=True)
                self._next_due = None
                failed = True
            cap = self.lease.ttl / 3
            if self._leading and not failed:  # a failed tick is not retried at once
                left = self._refreshed_at + self.refresh_interval - time.monotonic()
                cap = max(0.0, min(cap, left))
            await self.clock.wait(self._next_due, cap, self._wake)

    async def _tick(self) -> None:
        leading = await self.lease.hold()
        try:
            await self.directory.heartbeat()
        except Exception:
            logger.debug("runner directory heartbeat failed", exc_info=True)
        if not leading:
            if self._leading:
                logger.info("scheduler %s: no longer the leader", self.server_id)
            self._leading = False
            self._next_due = None
            return
        if not self._leading:
            logger.info("scheduler %s: now the leader", self.server_id)
            self._leading, self._caught_up = True, False
            self._cursors.clear()
            self._armings.clear()
            self._stats["elections"] += 1
            self._refreshed_at = float("-inf")
        if not self._hears_answers:
            # Not a trigger before answers from runners on other processes can reach us:
            # each would time out and be recorded missed while a runner runs it.
            self._hears_answers = await self.delivery.hears_answers(self.delivery.ack_timeout)
            if not self._hears_answers:
                logger.warning(
                    "scheduler %s: answers to triggers do not reach this process yet; "
                    "delivering nothing until they do",
                    self.server_id,
                )
                self._next_due = None
                return
        if time.monotonic() - self._refreshed_at >= self.refresh_interval:
            await self._refresh()
        now = self.clock.now()
        start = now - self.catchup if not self._caught_up else now
        self._caught_up = True
        next_due: datetime | None = None
        for plan in list(self._plans.values()):
            due = await self._once(plan, now) if plan.once else self._recurring(plan, now, start)
            if due is not None and (next_due is None or due < next_due):
                next_due = due
        self._next_due = next_due

    async def _refresh(self) -> None:
        plans: dict[tuple[str, str], JobPlan] = {}
        for user in await self.accounts.list_users():
            served = await self.triggers.server_triggered_jobs(user.id)
            if not served:
                continue
            for job in await self.telemetry.list_jobs(user.id):
                plan = JobPlan.of(user.id, job) if job.id in served else None
                if plan is not None:
                    plans[(user.id, job.id)] = plan
        for key, plan in plans.items():
            old = self._plans.get(key)
            if old is not None and old.key != plan.key:
                self._cursors.pop(key, None)  # a changed schedule starts from now
        self._plans = plans
        self._refreshed_at = time.monotonic()

    def _recurring(self, plan: JobPlan, now: datetime, start: datetime) -> datetime | None:
        key = (plan.tenant, plan.job.id)
        cursor = self._cursors.get(key, start)
        for due in plan.due_between(cursor, now, _MAX_DUE_PER_TICK):
            self._spawn(plan, due)
        self._cursors[key] = now
        return plan.schedule.next_after(now)

    async def _once(self, plan: JobPlan, now: datetime) -> datetime | None:
        key = (plan.tenant, plan.job.id, plan.arming)
        arming = self._armings.get(key)
        if arming is None:
            arming = await self.triggers.arm_once(plan.tenant, plan.job.id, plan.arming, now)
            self._armings[key] = arming
        if arming.fired_at is not None:
            return None
        due = plan.once_due(arming.armed_at)
        if due is None:
            return None
        if due <= now:
            self._spawn(plan, due)
            return None
        return due

    # -- one trigger ---------------------------------------------------------------------

    def _spawn(self, plan: JobPlan, due: datetime) -> None:
        trigger_id = plan.trigger_id(due)
        if (plan.tenant, trigger_id) in self._in_flight:
            return
        self._in_flight.add((plan.tenant, trigger_id))
        task = asyncio.create_task(self._settle(plan, due, trigger_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, plan: JobPlan, due: datetime, trigger_id: str) -> None:
        try:
            async with self._slots:
                await self._handle(plan, due, trigger_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("trigger %s failed; a later tick retries it", trigger_id, exc_info=True)
        finally:
            self._in_flight.discard((plan.tenant, trigger_id))

    async def _claim(self, plan: JobPlan, trigger_id: str) -> bool:
        while not self._stopping:
            claim = await self.triggers.claim_trigger(
                plan.tenant,
                trigger_id,
                owner=self.server_id,
                pending_seconds=self.pending_seconds,
            )
            if claim.state is ClaimState.CLAIMED:
                return True
            if claim.state is ClaimState.SETTLED or not self._leading:
                return False
            # Another process claimed it and has not settled it: wait for its claim to end.
            await asyncio.sleep(min(max(claim.expires_in, 0.05), self.pending_seconds))
        return False

    async def _handle(self, plan: JobPlan, due: datetime, trigger_id: str) -> None:
        tenant, job = plan.tenant, plan.job
        if not await self._claim(plan, trigger_id):
            if plan.once:
                self._armings.pop((tenant, job.id, plan.arming), None)  # re-read: fired
            return
        now = self.clock.now()
        # A trigger may reach us late because a leader that died held its claim: it may
        # even have delivered it. So the grace is extended by a claim's lifetime, and the
        # trigger is offered again; a runner that already took it answers `duplicate`, so
        # a handover neither runs a trigger twice nor records a delivered one as missed.
        if now - due > self.misfire_grace + timedelta(seconds=self.pending_seconds):
            delivery = Delivery(DeliveryOutcome.REFUSED, answers=["late"])
        else:
            payload = {
                "jobId": job.id,
                "triggerId": trigger_id,
                "scheduledFor": format_timestamp(due),
            }
            delivery = await self.delivery.deliver(tenant, job.id, payload)
        if delivery.outcome is not DeliveryOutcome.DELIVERED:
            await self._record_missed(plan, due, trigger_id, delivery)
        await self.triggers.settle_trigger(
            tenant, trigger_id, delivery.outcome.value, keep_seconds=_SETTLED_KEEP_SECONDS
        )
        if plan.once:
            await self.triggers.mark_fired(tenant, job.id, plan.arming, now)
            self._armings[(tenant, job.id, plan.arming)] = OnceArming(due, fired_at=now)
        self._count(delivery)
        self.recent.append(SettledTrigger(tenant, job.id, trigger_id, due, delivery))

    def _count(self, delivery: Delivery) -> None:
        self._stats["triggers"] += 1
        if delivery.outcome is DeliveryOutcome.DELIVERED:
            self._stats["delivered"] += 1
            self._stats["legacy"] += int(delivery.legacy)
        else:
            self._stats["missed"] += 1
        self._stats["resent"] += max(0, len(delivery.answers) - 1)

    async def _record_missed(
        self, plan: JobPlan, due: datetime, trigger_id: str, delivery: Delivery
    ) -> None:
        if delivery.outcome is DeliveryOutcome.NO_RUNNER:
            reason = "no runner was connected for this job"
        elif delivery.answers == ["late"]:
            reason = "due while no server was scheduling; past the misfire grace"
        else:
            reason = "no runner accepted the trigger: " + ", ".join(delivery.answers)
        event = ExecutionEvent(
            exec_id=missed_exec_id(trigger_id),
            job_id=plan.job.id,
            status=ExecutionStatus.MISSED,
            started_at=due,
            finished_at=max(due, self.clock.now()),
            error_message=reason,
            job_version=plan.job.version,
            source=plan.job.source,
            trigger_id=trigger_id,
            scheduled_for=due,
            metadata={"answers": delivery.answers, "scheduler": self.server_id},
        )
        payload = {"executions": [event.model_dump(mode="json", by_alias=True, exclude_none=True)]}
        await self.ingest.ingest_executions(Principal(user_id=plan.tenant), payload)
