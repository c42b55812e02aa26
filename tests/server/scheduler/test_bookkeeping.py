"""Due-time planning and the trigger bookkeeping of both stores (SQLite and Redis)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from chronos_core import JobDefinition
from chronos_server.scheduler import JobPlan, arming_of, trigger_id_for
from chronos_server.storage import ClaimState, Stores, TriggerStore

T0 = datetime(2024, 10, 27, 0, 0, tzinfo=UTC)


def job(**fields: object) -> JobDefinition:
    return JobDefinition.model_validate({"id": "j", "name": "J", **fields})


def test_only_runner_and_unsourced_jobs_are_planned() -> None:
    assert JobPlan.of("t", job(schedule="* * * * *")) is not None
    assert JobPlan.of("t", job(schedule="* * * * *", source="runner")) is not None
    for source in ("celery", "apscheduler", "rq", "exec"):
        assert JobPlan.of("t", job(schedule="* * * * *", source=source)) is None


def test_cron_due_times_follow_the_runner_dst_rules() -> None:
    # Berlin, autumn: 02:00-03:00 happens twice; `0 * * * *` fires every real hour.
    plan = JobPlan.of("t", job(schedule="0 * * * *", timezone="Europe/Berlin"))
    assert plan is not None
    due = plan.due_between(T0 - timedelta(minutes=1), T0 + timedelta(hours=4), 100)
    assert [d.hour for d in due] == [0, 1, 2, 3, 4]
    fixed = JobPlan.of("t", job(schedule="30 2 * * *", timezone="Europe/Berlin"))
    assert fixed is not None
    assert len(fixed.due_between(T0 - timedelta(hours=3), T0 + timedelta(hours=6), 10)) == 1


def test_interval_jobs_are_aligned_to_the_epoch() -> None:
    plan = JobPlan.of("t", job(interval_seconds=90))
    assert plan is not None
    due = plan.due_between(T0, T0 + timedelta(minutes=5), 10)
    assert all(int(d.timestamp()) % 90 == 0 for d in due)
    assert len(due) == 3


def test_trigger_ids_are_deterministic_and_arming_follows_the_definition() -> None:
    assert trigger_id_for("j", T0) == f"j:{int(T0.timestamp() * 1000)}"
    once = job(run_mode="once", run_at=T0)
    assert arming_of(once) == arming_of(job(run_mode="once", run_at=T0, name="renamed"))
    assert arming_of(once) != arming_of(job(run_mode="once", run_at=T0 + timedelta(seconds=1)))
    assert arming_of(once) != arming_of(job(run_mode="once", run_at=T0, schedule="0 * * * *"))
    plan = JobPlan.of("t", once)
    assert plan is not None
    assert plan.once
    assert plan.once_due(T0 + timedelta(days=1)) == T0
    assert plan.trigger_id(T0) != trigger_id_for("j", T0)


async def test_claims_arms_and_served_jobs(stores: Stores) -> None:
    store = stores.telemetry
    assert isinstance(store, TriggerStore)
    first = await store.claim_trigger("t", "j:1", owner="a", pending_seconds=5)
    assert first.state is ClaimState.CLAIMED
    second = await store.claim_trigger("t", "j:1", owner="b", pending_seconds=5)
    assert second.state is ClaimState.PENDING
    assert 0 < second.expires_in <= 5
    other_tenant = await store.claim_trigger("u", "j:1", owner="b", pending_seconds=5)
    assert other_tenant.state is ClaimState.CLAIMED
    await store.settle_trigger("t", "j:1", "delivered", keep_seconds=60)
    assert (await store.claim_trigger("t", "j:1", owner="b", pending_seconds=5)).state is (
        ClaimState.SETTLED
    )
    expired = await store.claim_trigger("t", "j:2", owner="a", pending_seconds=0.001)
    assert expired.state is ClaimState.CLAIMED
    await asyncio.sleep(0.05)
    taken_over = await store.claim_trigger("t", "j:2", owner="b", pending_seconds=5)
    assert taken_over.state is ClaimState.CLAIMED

    armed = await store.arm_once("t", "j", "h1", T0)
    again = await store.arm_once("t", "j", "h1", T0 + timedelta(hours=1))
    assert armed.armed_at == again.armed_at == T0
    assert again.fired_at is None
    await store.mark_fired("t", "j", "h1", T0 + timedelta(minutes=1))
    fired = await store.arm_once("t", "j", "h1", T0 + timedelta(hours=2))
    assert fired.fired_at == T0 + timedelta(minutes=1)
    assert (await store.arm_once("t", "j", "h2", T0 + timedelta(hours=2))).fired_at is None

    assert await store.server_triggered_jobs("t") == set()
    await store.mark_server_triggered("t", "j")
    await store.mark_server_triggered("t", "j")
    assert await store.server_triggered_jobs("t") == {"j"}
    assert await store.server_triggered_jobs("u") == set()
