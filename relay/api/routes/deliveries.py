"""Delivery routes: a task's attempt log, redelivery, the failed list."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from relay.api.context import context
from relay.api.errors import ApiError
from relay.api.params import cursor_text, path_task_id, query_cursor, query_int
from relay.api.responses import JSONResponse
from relay.store import Registry
from relay.store.deliveries import is_delivery_id


async def _registered(request: Request) -> tuple[str, str, Registry]:
    """The caller's tenant and the path's task, which that tenant must have registered."""
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    task_id = path_task_id(request)
    registry: Registry = ctx.registry
    if await registry.get(tenant, task_id) is None:
        raise ApiError(404, "not_found", "No such task")
    return tenant, task_id, registry


async def list_deliveries(request: Request) -> Response:
    tenant, task_id, registry = await _registered(request)
    return JSONResponse({"deliveries": await registry.deliveries(tenant, task_id)})


async def redeliver(request: Request) -> Response:
    tenant, task_id, registry = await _registered(request)
    delivery_id = await registry.redeliver(tenant, task_id, time.time())
    if delivery_id is None:
        raise ApiError(409, "no_event", "The task has no event to deliver yet")
    return JSONResponse({"delivery_id": delivery_id}, status_code=202)


async def failed_deliveries(request: Request) -> Response:
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    status = request.query_params.get("status", "failed")
    if status != "failed":
        raise ApiError(400, "invalid_query", "status: only failed deliveries are listed", "status")
    listing, page = await ctx.registry.failed_deliveries(
        tenant, query_int(request, "limit", 50, 1, 200), query_cursor(request)
    )
    return JSONResponse({"deliveries": listing, "next_cursor": cursor_text(page)})


async def redeliver_delivery(request: Request) -> Response:
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    delivery_id = request.path_params["delivery_id"]
    if not is_delivery_id(delivery_id):
        raise ApiError(404, "not_found", "No such delivery")
    started = await ctx.registry.redeliver_one(tenant, delivery_id, time.time())
    if started is None:
        raise ApiError(404, "not_found", "No such delivery")
    return JSONResponse({"delivery_id": started}, status_code=202)


async def redeliver_failed(request: Request) -> Response:
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    started = await ctx.registry.redeliver_failed(tenant, time.time())
    return JSONResponse({"delivery_ids": started}, status_code=202)
