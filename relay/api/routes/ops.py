"""Operations: health, readiness, metrics, the OpenAPI description, the status page."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from relay import metrics
from relay.api.context import context
from relay.api.errors import error_response
from relay.api.responses import JSONResponse


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready while Redis answers; says too whether the upstream accepts the relay's key
    (a refused key does not take the API out of service: registrations still work)."""
    ctx = context(request)
    try:
        async with asyncio.timeout(2.0):
            await ctx.registry.ping()
            refused_since = await ctx.polls.unauthorized_since()
    except Exception:
        return error_response(503, "unavailable", "Redis does not answer")
    upstream = "ok" if refused_since is None else "unauthorized"
    return JSONResponse({"status": "ready", "upstream": upstream})


async def prometheus(request: Request) -> Response:
    body = await metrics.render(context(request).redis)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


STATUS_PAGE = Path(__file__).parent.parent / "static" / "status.html"


async def status_page(request: Request) -> Response:
    """The operator's page: static; it asks for a tenant key and reads the API with it."""
    return HTMLResponse(
        STATUS_PAGE.read_bytes(),
        headers={
            "cache-control": "no-store",
            "content-security-policy": (
                "default-src 'none'; script-src 'self' 'unsafe-inline'; "
                "style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; "
                "frame-ancestors 'none'; base-uri 'none'"
            ),
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
        },
    )


async def openapi(request: Request) -> Response:
    return JSONResponse(context(request).openapi)
