"""The scheduler's bookkeeping in the embedded store (see `TriggerStore`).

Three small tables next to the telemetry: trigger claims (a pending claim expires, a settled
one is kept for a while), one-time job armings keyed by the hash of their definition, and the
jobs a runner has joined (those the server schedules).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from chronos_server.storage._protocols import ClaimState, OnceArming, TriggerClaim

__all__ = ["TRIGGER_SCHEMA", "SQLiteTriggers"]

T = TypeVar("T")

TRIGGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS trigger_claims (
    tenant TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (tenant, trigger_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trigger_claims_by_expiry ON trigger_claims (expires_at);
CREATE TABLE IF NOT EXISTS once_armings (
    tenant TEXT NOT NULL,
    job_id TEXT NOT NULL,
    arming TEXT NOT NULL,
    armed_at REAL NOT NULL,
    fired_at REAL,
    PRIMARY KEY (tenant, job_id, arming)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS server_triggered_jobs (
    tenant TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (tenant, job_id)
) WITHOUT ROWID;
"""


def _at(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


class SQLiteTriggers:
    """`TriggerStore` methods of `SQLiteStore`; it provides `_run`."""

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:  # pragma: no cover
        raise NotImplementedError

    async def claim_trigger(
        self, tenant: str, trigger_id: str, *, owner: str, pending_seconds: float
    ) -> TriggerClaim:
        """Insert a pending claim unless a live one (or a settled one) exists."""

        def claim(conn: sqlite3.Connection) -> TriggerClaim:
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT state, expires_at FROM trigger_claims"
                    " WHERE tenant = ? AND trigger_id = ?",
                    (tenant, trigger_id),
                ).fetchone()
                if row is not None and row["expires_at"] > now:
                    conn.execute("COMMIT")
                    if row["state"] == ClaimState.SETTLED:
                        return TriggerClaim(ClaimState.SETTLED)
                    return TriggerClaim(ClaimState.PENDING, row["expires_at"] - now)
                conn.execute(
                    "INSERT OR REPLACE INTO trigger_claims"
                    " (tenant, trigger_id, state, owner, expires_at) VALUES (?, ?, ?, ?, ?)",
                    (tenant, trigger_id, ClaimState.PENDING.value, owner, now + pending_seconds),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return TriggerClaim(ClaimState.CLAIMED)

        return await self._run(claim)

    async def settle_trigger(
        self, tenant: str, trigger_id: str, outcome: str, *, keep_seconds: float
    ) -> None:
        """Keep the trigger settled for `keep_seconds`; drop claims that expired."""

        def settle(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute(
                "INSERT OR REPLACE INTO trigger_claims"
                " (tenant, trigger_id, state, owner, expires_at) VALUES (?, ?, ?, ?, ?)",
                (tenant, trigger_id, ClaimState.SETTLED.value, outcome, now + keep_seconds),
            )
            conn.execute("DELETE FROM trigger_claims WHERE expires_at < ?", (now,))

        await self._run(settle)

    async def arm_once(self, tenant: str, job_id: str, arming: str, now: datetime) -> OnceArming:
        """Insert the arming at `now` if it is new; return the stored one."""

        def arm(conn: sqlite3.Connection) -> OnceArming:
            conn.execute(
                "INSERT OR IGNORE INTO once_armings (tenant, job_id, arming, armed_at)"
                " VALUES (?, ?, ?, ?)",
                (tenant, job_id, arming, now.timestamp()),
            )
            row = conn.execute(
                "SELECT armed_at, fired_at FROM once_armings"
                " WHERE tenant = ? AND job_id = ? AND arming = ?",
                (tenant, job_id, arming),
            ).fetchone()
            armed = _at(row["armed_at"])
            assert armed is not None
            return OnceArming(armed_at=armed, fired_at=_at(row["fired_at"]))

        return await self._run(arm)

    async def mark_fired(self, tenant: str, job_id: str, arming: str, when: datetime) -> None:
        """Set the fired time of the arming (the first one wins)."""

        def fire(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE once_armings SET fired_at = coalesce(fired_at, ?)"
                " WHERE tenant = ? AND job_id = ? AND arming = ?",
                (when.timestamp(), tenant, job_id, arming),
            )

        await self._run(fire)

    async def mark_server_triggered(self, tenant: str, job_id: str) -> None:
        """Remember the job as scheduled by the server."""
        await self._run(
            lambda conn: conn.execute(
                "INSERT OR IGNORE INTO server_triggered_jobs (tenant, job_id) VALUES (?, ?)",
                (tenant, job_id),
            )
        )

    async def server_triggered_jobs(self, tenant: str) -> set[str]:
        """Every job of the tenant a runner has joined."""
        rows = await self._run(
            lambda conn: conn.execute(
                "SELECT job_id FROM server_triggered_jobs WHERE tenant = ?", (tenant,)
            ).fetchall()
        )
        return {row["job_id"] for row in rows}
