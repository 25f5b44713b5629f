"""Task routes: register, read, list, wait for, delete."""

from __future__ import annotations

import asyncio
import secrets
import time

from starlette.requests import Request
from starlette.responses import Response

from relay.api.errors import ApiError
from relay.api.params import cursor_text, path_task_id, query_cursor, query_int, read_json
from relay.api.responses import JSONResponse
from relay.api.validation import parse_registration
from relay.core.model import FINAL_STATUSES, Registration
from relay.core.resource import task_resource
from relay.outbound import Blocked
from relay.store.registry import RegisterOutcome

STATUSES = ("queued", "running", "succeeded", "failed", "timed_out")


WAIT_MAX = 60.0  # seconds a long-poll may hold a request


WAIT_STEP = 0.25


async def register_task(request: Request) -> Response:
    tenant = request.app.state.tenants.tenant_of(request)
    asked = parse_registration(await read_json(request))
    if asked.webhook_url is not None:
        try:
            await request.app.state.guard.check_url(asked.webhook_url)
        except Blocked as exc:
            raise ApiError(422, "webhook_url_forbidden", str(exc), "webhook_url") from None
    registration = Registration(
        tenant=tenant,
        task_id=asked.task_id,
        registered_at=round(time.time(), 3),
        rid=secrets.token_hex(8),
        webhook_url=asked.webhook_url,
        events=asked.events,
        metadata=asked.metadata,
        upstream_webhook=asked.upstream_webhook,
    )
    registry = request.app.state.registry
    registered = await registry.register(registration)
    request.app.state.recorder.inc("relay_registrations_total", registered.outcome.value)
    if registered.outcome is RegisterOutcome.QUOTA:
        limit = request.app.state.settings.tenant_max_tasks
        raise ApiError(
            429,
            "quota_exceeded",
            f"this tenant already tracks {limit} tasks that have not ended "
            "(RELAY_TENANT_MAX_TASKS); register more once some end or are deleted",
        )
    if registered.outcome is RegisterOutcome.CONFLICT:
        raise ApiError(
            409,
            "conflict",
            f"task {asked.task_id} is already registered with another {registered.conflict_field}",
            registered.conflict_field,
        )
    view = registered.view
    status = 201 if registered.outcome is RegisterOutcome.CREATED else 200
    return JSONResponse(
        task_resource(view.state, view.registration, view.polls), status_code=status
    )


async def list_tasks(request: Request) -> Response:
    tenant = request.app.state.tenants.tenant_of(request)
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(
            400, "invalid_query", f"status must be one of {', '.join(STATUSES)}", "status"
        )
    views, page = await request.app.state.registry.list_tasks(
        tenant,
        status=status,
        limit=query_int(request, "limit", 50, 1, 200),
        cursor=query_cursor(request),
    )
    return JSONResponse(
        {
            "tasks": [task_resource(v.state, v.registration, v.polls) for v in views],
            "next_cursor": cursor_text(page),
        }
    )


async def wait_task(request: Request) -> Response:
    """Long-poll: answer when the task is final, or after `timeout` seconds with it as it is."""
    tenant = request.app.state.tenants.tenant_of(request)
    task_id = path_task_id(request)
    timeout = query_int(request, "timeout", 30, 0, int(WAIT_MAX))
    registry = request.app.state.registry
    deadline = time.monotonic() + timeout
    while True:
        view = await registry.get(tenant, task_id)
        if view is None:
            raise ApiError(404, "not_found", "No such task")
        if view.state.status in FINAL_STATUSES or time.monotonic() >= deadline:
            return JSONResponse(task_resource(view.state, view.registration, view.polls))
        if await request.is_disconnected():
            return Response(status_code=204)
        await asyncio.sleep(WAIT_STEP)


async def get_task(request: Request) -> Response:
    tenant = request.app.state.tenants.tenant_of(request)
    view = await request.app.state.registry.get(tenant, path_task_id(request))
    if view is None:
        raise ApiError(404, "not_found", "No such task")
    return JSONResponse(task_resource(view.state, view.registration, view.polls))


async def delete_task(request: Request) -> Response:
    tenant = request.app.state.tenants.tenant_of(request)
    if not await request.app.state.registry.unregister(tenant, path_task_id(request)):
        raise ApiError(404, "not_found", "No such task")
    return Response(status_code=204)
