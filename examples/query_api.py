"""Ask the server what happened: jobs, failed runs, percentiles, the slowest jobs.

    export CHRONOS_API_KEY=chr_...    # the key `chronos server` printed
    python examples/query_api.py

The same questions from a terminal: `chronos jobs`, `chronos runs --status failed`,
`chronos run-info EXEC_ID`, `chronos runs --follow`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chronos_core import ChronosAPI


def main() -> None:
    with ChronosAPI() as api:  # CHRONOS_API_KEY / CHRONOS_API_URL from the environment
        print("jobs:")
        for job in api.jobs():
            stats = job.stats
            rate = "-" if stats.success_rate is None else f"{stats.success_rate:.0%}"
            last = job.last_status or "-"
            print(f"  {job.id:24} last={last:8} success={rate:5} next={job.next_run_at}")

        since = datetime.now(UTC) - timedelta(days=1)
        failed = list(api.executions(status="failed", since=since))
        print(f"failed runs in the last day: {len(failed)}")
        if failed:
            latest = api.execution(failed[0].exec_id)  # the full record
            print(f"  latest: {latest.job_id} {latest.error_type}: {latest.error_message}")
            print("  " + (latest.code_snippet or "").replace("\n", "\n  "))

        summary = api.summary(since=since)
        totals = summary.totals
        print(
            f"runs={totals.runs} failures={totals.failures} "
            f"p50={totals.p50_ms}ms p95={totals.p95_ms}ms p99={totals.p99_ms}ms"
        )
        for ranking in summary.slowest_jobs:
            print(f"  slowest: {ranking.job_id} p95={ranking.stats.p95_ms}ms")
        for ranking in summary.most_failing_jobs:
            print(f"  most failing: {ranking.job_id} failures={ranking.stats.failures}")


if __name__ == "__main__":
    main()
