"""Route handlers: read the request, call the store, render the answer."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import secrets
import time
from pathlib import Path

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from relay import metrics
from relay.api.errors import ApiError, error_response
from relay.api.validation import MAX_BODY, decode_json, parse_registration, parse_task_id
from relay.core import lifecycle
from relay.core.model import FINAL_STATUSES, Registration
from relay.core.normalize import Malformed, normalize
from relay.core.resource import task_resource
from relay.outbound import Blocked
from relay.store.polls import Outcome
from relay.store.registry import Page, RegisterOutcome

STATUSES = ("queued", "running", "succeeded", "failed", "timed_out")
WAIT_MAX = 60.0  # seconds a long-poll may hold a request
WAIT_STEP = 0.25


async def read_json(request: Request) -> object:
    """The request's JSON body, refusing what is too large or not JSON."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, "body_too_large", f"The body must be at most {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise ApiError(413, "body_too_large", f"The body must be at most {MAX_BODY} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "bad_request", "The client went away mid-body") from None
    if not size:
        raise ApiError(400, "invalid_json", "The body is empty; send a JSON object")
    return decode_json(b"".join(chunks))


def path_task_id(request: Request) -> str:
    task_id = parse_task_id(request.path_params["task_id"])
    if task_id is None:
        raise ApiError(404, "not_found", "No such task")
    return task_id


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
        registered_at=time.time(),
        rid=secrets.token_hex(8),
        webhook_url=asked.webhook_url,
        events=asked.events,
        metadata=asked.metadata,
    )
    registry = request.app.state.registry
    registered = await registry.register(registration)
    request.app.state.recorder.inc("relay_registrations_total", registered.outcome.value)
    if registered.outcome is RegisterOutcome.CONFLICT:
        raise ApiError(
            409,
            "conflict",
            f"task {asked.task_id} is already registered with another {registered.conflict_field}",
            registered.conflict_field,
        )
    view = await registry.get(tenant, asked.task_id)
    if view is None:  # deleted in the instant between the two calls
        raise ApiError(409, "conflict", "The registration was deleted meanwhile; register again")
    status = 201 if registered.outcome is RegisterOutcome.CREATED else 200
    return JSONResponse(
        task_resource(view.state, view.registration, view.polls), status_code=status
    )


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"{name} must be an integer", name) from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_query", f"{name} must be from {low} to {high}", name)
    return value


def query_cursor(request: Request) -> Page | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    try:
        score, member = msgspec.json.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, TypeError, binascii.Error, msgspec.DecodeError):
        score = member = None
    if (
        isinstance(score, bool)
        or not isinstance(score, int | float)
        or not math.isfinite(score)
        or not isinstance(member, str)
    ):
        raise ApiError(400, "invalid_query", "cursor is not one this API gave", "cursor")
    return Page(float(score), member)


def cursor_text(page: Page | None) -> str | None:
    if page is None:
        return None
    return (
        base64.urlsafe_b64encode(msgspec.json.encode([page.score, page.member]))
        .decode()
        .rstrip("=")
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


async def list_deliveries(request: Request) -> Response:
    tenant = request.app.state.tenants.tenant_of(request)
    task_id = path_task_id(request)
    registry = request.app.state.registry
    if await registry.get(tenant, task_id) is None:
        raise ApiError(404, "not_found", "No such task")
    return JSONResponse({"deliveries": await registry.deliveries(tenant, task_id)})


async def redeliver(request: Request) -> Response:
    tenant = request.app.state.tenants.tenant_of(request)
    task_id = path_task_id(request)
    registry = request.app.state.registry
    if await registry.get(tenant, task_id) is None:
        raise ApiError(404, "not_found", "No such task")
    delivery_id = await registry.redeliver(tenant, task_id, time.time())
    if delivery_id is None:
        raise ApiError(409, "no_event", "The task has no event to deliver yet")
    return JSONResponse({"delivery_id": delivery_id}, status_code=202)


async def failed_deliveries(request: Request) -> Response:
    tenant = request.app.state.tenants.tenant_of(request)
    status = request.query_params.get("status", "failed")
    if status != "failed":
        raise ApiError(400, "invalid_query", "status: only failed deliveries are listed", "status")
    listing, page = await request.app.state.registry.failed_deliveries(
        tenant, query_int(request, "limit", 50, 1, 200), query_cursor(request)
    )
    return JSONResponse({"deliveries": listing, "next_cursor": cursor_text(page)})


async def redeliver_delivery(request: Request) -> Response:
    tenant = request.app.state.tenants.tenant_of(request)
    delivery_id = request.path_params["delivery_id"]
    started = await request.app.state.registry.redeliver_one(tenant, delivery_id, time.time())
    if started is None:
        raise ApiError(404, "not_found", "No such delivery")
    return JSONResponse({"delivery_id": started}, status_code=202)


async def redeliver_failed(request: Request) -> Response:
    tenant = request.app.state.tenants.tenant_of(request)
    started = await request.app.state.registry.redeliver_failed(tenant, time.time())
    return JSONResponse({"delivery_ids": started}, status_code=202)


async def upstream_webhook(request: Request) -> Response:
    """The upstream's own callback: a fast path, handled exactly like a poll's answer."""
    expected: str | None = request.app.state.settings.upstream_webhook_secret
    given = request.headers.get("x-webhook-secret", "")
    recorder = request.app.state.recorder
    if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
        recorder.inc("relay_upstream_webhooks_total", "unauthorized")
        raise ApiError(401, "unauthorized", "Missing or wrong x-webhook-secret")
    payload = await read_json(request)
    task_id = parse_task_id(payload.get("task_id")) if isinstance(payload, dict) else None
    if task_id is None:
        raise ApiError(400, "invalid_body", "The body must carry the task's task_id", "task_id")
    try:
        observation = normalize(payload, task_id)
    except Malformed as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None
    polls = request.app.state.polls
    for _ in range(5):  # a poll may write between our read and our write: read again
        current = await polls.read(task_id)
        if current is None:
            recorder.inc("relay_upstream_webhooks_total", "ignored")
            return JSONResponse({"status": "ignored"}, status_code=202)
        raw_state, state, count = current
        now = time.time()
        step = lifecycle.observe(state, observation, now, request.app.state.policy)
        if step.state == state:
            recorder.inc("relay_upstream_webhooks_total", "unchanged")
            return JSONResponse({"status": "unchanged"}, status_code=202)
        outcome = Outcome(task_id, raw_state, step, count, lease=None, count_poll=False)
        (reply,) = await polls.apply([outcome], now)
        if reply == "ok":
            recorder.inc("relay_upstream_webhooks_total", "accepted")
            return JSONResponse({"status": "accepted"}, status_code=202)
        await asyncio.sleep(0.01)
    return error_response(503, "busy", "The task is changing; the upstream may retry")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready while Redis answers; says too whether the upstream accepts the relay's key
    (a refused key does not take the API out of service: registrations still work)."""
    try:
        async with asyncio.timeout(2.0):
            await request.app.state.registry.ping()
            refused_since = await request.app.state.polls.unauthorized_since()
    except Exception:
        return error_response(503, "unavailable", "Redis does not answer")
    upstream = "ok" if refused_since is None else "unauthorized"
    return JSONResponse({"status": "ready", "upstream": upstream})


async def prometheus(request: Request) -> Response:
    body = await metrics.render(request.app.state.registry.redis)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


STATUS_PAGE = Path(__file__).with_name("static") / "status.html"


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
    return JSONResponse(request.app.state.openapi)
