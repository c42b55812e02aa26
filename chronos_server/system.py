"""Liveness and readiness."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from chronos_server.storage import Stores

__all__ = ["SystemController"]


class SystemController(Controller):
    """`/api/health` and `/api/ready`: no authentication."""

    path = "/api"
    tags = ["system"]

    @get("/health", operation_id="health", summary="Liveness", cache=False)
    async def health(self) -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @get("/ready", operation_id="ready", summary="Readiness: the stores answer", cache=False)
    async def ready(self, stores: NamedDependency[Stores]) -> Response[dict[str, object]]:
        """200 when every store answers, else 503 naming the ones that do not."""
        checks = {
            "telemetry": await stores.telemetry.ping(),
            "accounts": await stores.accounts.ping(),
        }
        ok = all(checks.values())
        return Response(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE,
        )
