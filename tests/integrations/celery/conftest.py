"""Fixtures for the Celery tests: a fresh app and queue per test, real workers, real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from chronos_core import BatchExporter
from chronos_integrations.celery import CeleryIntegration, instrument, uninstrument
from tests.integrations.celery.app import BROKER, RESULTS, make_app
from tests.support.live_server import ThreadedServer


@pytest.fixture
def queue_name() -> Iterator[str]:
    name = f"chronos-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(BROKER)
    try:
        client.delete(name)
        for binding in client.scan_iter("_kombu.binding.*"):
            for member in client.smembers(binding):
                if name.encode() in member:
                    client.srem(binding, member)
        with redis.Redis.from_url(RESULTS) as results:
            results.flushdb()
    finally:
        client.close()


@pytest.fixture
def celery_app(queue_name: str) -> Iterator[Celery]:
    app = make_app(queue_name)
    yield app
    uninstrument(app)
    # One backend for all threads (`result_backend_thread_safe`), so that it can be closed.
    backend = app.backend
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        consumer._pubsub.close()
    backend.client.connection_pool.disconnect()
    app.close()


@pytest.fixture
def exporter(live_server: ThreadedServer) -> Iterator[BatchExporter]:
    exporter = BatchExporter(
        api_key=live_server.api_key, endpoint=live_server.url, flush_interval=0.05
    )
    yield exporter
    exporter.shutdown(5)


@pytest.fixture
def instrumented(celery_app: Celery, exporter: BatchExporter) -> Iterator[CeleryIntegration]:
    integration = instrument(celery_app, exporter=exporter, capture_console=True)
    yield integration
    uninstrument(celery_app)


WorkerFactory = Callable[..., AbstractContextManager[Any]]


@pytest.fixture
def worker(celery_app: Celery) -> WorkerFactory:
    """`with worker(pool="solo"):` runs a real in-process worker on the test's queue."""

    def start(pool: str = "solo", concurrency: int = 1, **options: Any) -> Any:
        return start_worker(
            celery_app,
            pool=pool,
            concurrency=concurrency,
            perform_ping_check=False,
            shutdown_timeout=30,
            queues=[celery_app.conf.task_default_queue],
            **options,
        )

    return start
