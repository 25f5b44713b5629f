"""The simulator's HTTP face: the upstream's `POST /api/v1/fetch` plus a `/sim/*` control API."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, replace
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from relay.simulator.faults import FaultError, errors_response, parse_fault, render
from relay.simulator.plans import PERCENTAGE_STYLES, SHAPES, Plan, answer, plan_for
from relay.simulator.state import SimState, SimTask, dispatch_webhooks
from relay.simulator.webhooks import WebhookSender

# Only the canonical hyphenated form: the upstream's ids are always written that way.
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RAW_SEND: Final = "relay.simulator.raw_send"
_NO_BODY: Final = object()

_SECONDS_FIELDS: Final = (
    "staged_seconds",
    "queue_seconds",
    "starting_seconds",
    "duration_seconds",
    "retry_seconds",
)
_TEXT_FIELDS: Final = ("task_type", "model", "error")
_TASK_FIELDS: Final = frozenset(
    {
        "task_id",
        "shape",
        "percentage_style",
        "extra_fields",
        "webhook_url",
        "webhook_secret",
        *_SECONDS_FIELDS,
        *_TEXT_FIELDS,
    }
)


class _BadRequest(ValueError):
    pass


class _SimulatorApp(Starlette):
    """Keeps the server's own `send` in the scope so a fault can drop the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


def _canonical_uuid(value: Any, field: str = "task_id") -> str:
    if value is None:
        raise _BadRequest(f"{field}: field required")
    if not isinstance(value, str) or not _UUID.match(value):
        raise _BadRequest(f"{field}: value is not a valid uuid")
    return str(uuid.UUID(value))


def _json_or_sentinel(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _NO_BODY


async def _drop_connection(request: Request) -> Response:
    raw_send = request.scope.get(_RAW_SEND)
    transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
    close = getattr(transport, "close", None)
    if not callable(close):
        # Not served by uvicorn: a bodiless gateway error is the nearest thing.
        return Response(b"", status_code=502)
    close()
    # Give uvicorn a turn to notice the lost connection, so it drops the response
    # below quietly instead of logging an ASGI protocol error.
    for _ in range(3):
        await asyncio.sleep(0)
    return Response(b"", status_code=502)


def _overrides(data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - _TASK_FIELDS)
    if unknown:
        raise _BadRequest(f"{unknown[0]}: unknown field")
    out: dict[str, Any] = {}
    for key in _SECONDS_FIELDS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _BadRequest(f"{key}: must be a number")
            if not math.isfinite(value) or value < 0:
                raise _BadRequest(f"{key}: must be a finite number >= 0")
            out[key] = float(value)
    for key in _TEXT_FIELDS:
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise _BadRequest(f"{key}: must be a non-empty string")
            out[key] = data[key]
    if "percentage_style" in data:
        if data["percentage_style"] not in PERCENTAGE_STYLES:
            raise _BadRequest(f"percentage_style: must be one of {', '.join(PERCENTAGE_STYLES)}")
        out["percentage_style"] = data["percentage_style"]
    if "extra_fields" in data:
        if not isinstance(data["extra_fields"], bool):
            raise _BadRequest("extra_fields: must be a boolean")
        out["extra_fields"] = data["extra_fields"]
    return out


def _webhook_fields(data: dict[str, Any]) -> tuple[str | None, str | None]:
    url = data.get("webhook_url")
    secret = data.get("webhook_secret")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise _BadRequest("webhook_url: must be an http or https URL")
    if secret is not None and not isinstance(secret, str):
        raise _BadRequest("webhook_secret: must be a string")
    return url, secret


def create_app(
    *,
    api_key: str | None = None,
    speed: float = 1.0,
    strict: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The simulator app. `speed` multiplies elapsed time; `strict` refuses tasks not made here.

    The `/sim/*` control routes take no key: the simulator is a local development tool.
    """
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError("speed must be a finite number > 0")
    state = SimState(speed=speed, clock=clock)
    senders: list[WebhookSender] = []

    def authorized(request: Request) -> bool:
        given = request.headers.get("authorization")
        if not given:
            return False
        # Without a configured key any key will do, as with a dev account.
        return api_key is None or hmac.compare_digest(given.encode(), api_key.encode())

    async def fetch(request: Request) -> Response:
        state.fetches += 1
        data = _json_or_sentinel(await request.body())
        raw_id = data.get("task_id") if isinstance(data, dict) else None
        try:
            known_id: str | None = _canonical_uuid(raw_id)
        except _BadRequest:
            known_id = None
        if known_id is not None:
            state.by_task[known_id] += 1

        fault = state.faults.take(known_id)
        if fault is not None:
            if fault.kind == "disconnect":
                return await _drop_connection(request)
            if fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            else:
                return render(fault, known_id)

        if not authorized(request):
            return JSONResponse({}, status_code=401)
        if not isinstance(data, dict):
            return errors_response(400, "body: expected a JSON object")
        try:
            task_id = _canonical_uuid(raw_id)
        except _BadRequest as exc:
            return errors_response(400, str(exc))
        now = state.clock()
        task = state.tasks.get(task_id)
        if task is None:
            if strict:
                return errors_response(404, "Task not found")
            # Without strict, any id is a real task whose clock starts at this first fetch.
            task = SimTask(plan=plan_for(task_id), started_at=now, created=False)
            state.add(task)
        return JSONResponse(answer(task.plan, task.elapsed(now, speed)))

    async def create_task(request: Request) -> Response:
        raw = await request.body()
        data = _json_or_sentinel(raw) if raw.strip() else {}
        if not isinstance(data, dict):
            return errors_response(400, "body: expected a JSON object")
        try:
            task_id = _canonical_uuid(data["task_id"]) if "task_id" in data else str(uuid.uuid4())
            shape = data.get("shape")
            if shape is not None and shape not in SHAPES:
                raise _BadRequest(f"shape: must be one of {', '.join(SHAPES)}")
            plan: Plan = replace(plan_for(task_id, shape), **_overrides(data))
            url, secret = _webhook_fields(data)
        except _BadRequest as exc:
            return errors_response(400, str(exc))
        task = SimTask(
            plan=plan,
            started_at=state.clock(),
            created=True,
            webhook_url=url,
            webhook_secret=secret,
        )
        state.add(task)
        return JSONResponse({"task_id": task_id, "plan": asdict(plan)}, status_code=201)

    async def add_fault(request: Request) -> Response:
        data = _json_or_sentinel(await request.body())
        try:
            target = data.get("task_id") if isinstance(data, dict) else None
            task_id = _canonical_uuid(target) if target is not None else None
            fault = parse_fault(data, task_id)
        except (_BadRequest, FaultError) as exc:
            return errors_response(400, str(exc))
        state.faults.add(fault)
        return JSONResponse(
            {"fault": fault.describe(), "faults_pending": len(state.faults)}, status_code=201
        )

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"faults": state.faults.describe()})

    async def clear_faults(request: Request) -> Response:
        state.faults.clear()
        return Response(status_code=204)

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def reset(request: Request) -> Response:
        state.reset()
        for sender in senders:
            await sender.cancel_all()
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A fresh event per run: an asyncio.Event belongs to the loop that first awaits it.
        state.wake = asyncio.Event()
        sender = WebhookSender(speed)
        await sender.start()
        senders.append(sender)
        dispatcher = asyncio.create_task(dispatch_webhooks(state, sender))
        try:
            yield
        finally:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher
            senders.remove(sender)
            await sender.close()

    routes = [
        Route("/api/v1/fetch", fetch, methods=["POST"]),
        Route("/sim/tasks", create_task, methods=["POST"]),
        Route("/sim/faults", add_fault, methods=["POST"]),
        Route("/sim/faults", list_faults, methods=["GET"]),
        Route("/sim/faults", clear_faults, methods=["DELETE"]),
        Route("/sim/stats", stats, methods=["GET"]),
        Route("/sim/reset", reset, methods=["POST"]),
    ]
    return _SimulatorApp(routes=routes, lifespan=lifespan)
