"""A small Celery app monitored by Chronos: see README.md."""
