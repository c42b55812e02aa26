"""Cron jobs for `rq cron rq_app.cron_config` (RQ 2.5+). A `ChronosWorker` finds them in
Redis and registers their schedules with Chronos."""

from rq import cron

from rq_app import tasks

cron.register(tasks.nightly_cleanup, queue_name="default", cron="0 3 * * *")
