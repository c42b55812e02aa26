"""Enqueue some work: `python -m rq_app.enqueue --url redis://localhost:6379/0` (from examples/)."""

from __future__ import annotations

import argparse

from redis import Redis
from rq import Queue

from rq_app import tasks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="redis://localhost:6379/0")
    parser.add_argument("--queue", default="default")
    parser.add_argument("--images", type=int, default=10)
    args = parser.parse_args()
    queue = Queue(args.queue, connection=Redis.from_url(args.url))
    for n in range(args.images):
        queue.enqueue(tasks.resize_image, f"photo-{n}")
    queue.enqueue(tasks.charge_card, 1999)
    queue.enqueue(tasks.slow_export, job_timeout=1)
    print(f"enqueued {args.images + 2} jobs on {args.queue!r}")


if __name__ == "__main__":
    main()
