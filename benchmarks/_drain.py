"""One RQ worker draining no-op jobs, for the benchmarks that count what a job costs."""

from __future__ import annotations

from typing import Any

# A job the work horse can import (functions of __main__ cannot be enqueued); as cheap as a
# job gets, so that what a worker adds to each is at its largest.
NO_OP_JOB = "os.getpid"


def drain_no_op_jobs(worker_class: type, redis_url: str, queue_name: str, jobs: int) -> Any:
    """Fill a queue in `redis_url`'s database (flushed before and after) with `jobs` no-op
    jobs, drain it with one burst of a `worker_class` worker, and return the worker."""
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue(queue_name, connection=connection)
    for _ in range(jobs):
        queue.enqueue(NO_OP_JOB)
    worker = worker_class([queue], connection=connection)
    worker.work(burst=True, logging_level="WARNING")
    connection.flushdb()
    return worker
