"""Realtime delivery of `execution:ingested`: Socket.IO (`socketio`) and Server-Sent Events
(`sse`), both fed by the tenant-scoped `EventBroker`."""

from chronos_server.realtime.hub import SOCKETIO_PATH, RealtimeHub, job_room, tenant_room
from chronos_server.realtime.sse import STREAM_PATH, StreamController

__all__ = [
    "SOCKETIO_PATH",
    "STREAM_PATH",
    "RealtimeHub",
    "StreamController",
    "job_room",
    "tenant_room",
]
