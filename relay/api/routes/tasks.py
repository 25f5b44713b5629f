"""Task routes: register, read, list, wait for, delete."""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.requests import Request
from starlette.responses import Response

from relay.api.context import context
from relay.api.errors import ApiError
from relay.api.params import cursor_text, path_task_id, query_cursor, query_int, read_json
from relay.api.responses import JSONResponse
from relay.api.validation import parse_registration
from relay.api.waiters import TooManyWaits, Waiter, Waiters
from relay.core.model import FINAL_STATUSES, STATUSES, Registration, new_rid
from relay.core.resource import task_resource
from relay.outbound import Blocked
from relay.store.registry import BadCursor, RegisterOutcome, Registry, TaskView

WAIT_MAX = 60.0  # seconds a long-poll may hold a request


async def register_task(request: Request) -> Response:
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    asked = parse_registration(await read_json(request))
    if asked.webhook_url is not None:
        try:
            await ctx.guard.check_url(asked.webhook_url)
        except Blocked as exc:
            raise ApiError(422, "webhook_url_forbidden", str(exc), "webhook_url") from None
    registration = Registration(
        tenant=tenant,
        task_id=asked.task_id,
        registered_at=round(time.time(), 3),
        rid=new_rid(),
        webhook_url=asked.webhook_url,
        events=tuple(asked.events or ()),
        metadata=asked.metadata or {},
        upstream_webhook=bool(asked.upstream_webhook),
    )
    registry = ctx.registry
    registered = await registry.register(registration)
    ctx.recorder.inc("relay_registrations_total", registered.outcome.value)
    if registered.outcome is RegisterOutcome.QUOTA:
        limit = ctx.settings.tenant_max_tasks
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
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(
            400, "invalid_query", f"status must be one of {', '.join(STATUSES)}", "status"
        )
    limit = query_int(request, "limit", 50, 1, 200)
    try:
        views, page = await ctx.registry.list_tasks(
            tenant, status=status, limit=limit, cursor=query_cursor(request)
        )
    except BadCursor:
        raise ApiError(400, "invalid_query", "cursor is not one this API gave", "cursor") from None
    return JSONResponse(
        {
            "tasks": [task_resource(v.state, v.registration, v.polls) for v in views],
            "next_cursor": cursor_text(page),
        }
    )


async def wait_task(request: Request) -> Response:
    """Long-poll: answer when the task is final, or after `timeout` seconds with it as it is.

    The task is read once at the start, then again only when this process's
    subscription says it may have changed (relay.api.waiters), and at the timeout.
    """
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    task_id = path_task_id(request)
    timeout = query_int(request, "timeout", 30, 0, int(WAIT_MAX))
    registry = ctx.registry
    waiters: Waiters = ctx.waiters
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with contextlib.ExitStack() as stack:
        # Registered before the first read, so that an end published right after it wakes us.
        try:
            waiter: Waiter | None = stack.enter_context(waiters.waiting(task_id))
        except TooManyWaits:
            waiter = None
        view = await _read(registry, tenant, task_id)
        if view.state.status in FINAL_STATUSES or timeout == 0:
            return _answer(view)
        if waiter is None:
            raise ApiError(
                429,
                "too_many_waits",
                f"this API process holds {waiters.cap} open waits already; "
                "retry shortly, or receive the task's final event by webhook",
            )
        gone = asyncio.ensure_future(_client_gone(request))
        stack.callback(gone.cancel)
        while (remaining := deadline - loop.time()) > 0:
            if await waiter.next(remaining, gone):
                return Response(status_code=204)
            try:
                view = await _read(registry, tenant, task_id)
            except (RedisConnectionError, RedisTimeoutError):
                continue  # Redis is away: the read at the timeout answers 503 if it still is
            if view.state.status in FINAL_STATUSES:
                return _answer(view)
        return _answer(await _read(registry, tenant, task_id))


async def _read(registry: Registry, tenant: str, task_id: str) -> TaskView:
    view = await registry.get(tenant, task_id)
    if view is None:
        raise ApiError(404, "not_found", "No such task")
    return view


def _answer(view: TaskView) -> Response:
    return JSONResponse(task_resource(view.state, view.registration, view.polls))


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (a GET's body, if any, is read and dropped)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def get_task(request: Request) -> Response:
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    view = await ctx.registry.get(tenant, path_task_id(request))
    if view is None:
        raise ApiError(404, "not_found", "No such task")
    return JSONResponse(task_resource(view.state, view.registration, view.polls))


async def delete_task(request: Request) -> Response:
    ctx = context(request)
    tenant = ctx.tenants.tenant_of(request)
    task_id = path_task_id(request)
    if not await ctx.registry.unregister(tenant, task_id):
        raise ApiError(404, "not_found", "No such task")
    # Its long-polls, in every API process, read it again: a 404 for this tenant's.
    await ctx.waiters.announce(task_id)
    return Response(status_code=204)
